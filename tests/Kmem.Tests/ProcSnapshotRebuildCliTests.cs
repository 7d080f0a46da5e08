// `kmem import proc DIR` with slabinfo and vmallocinfo: what was rebuilt (caches, objects, slab pages; vmalloc areas
// and pages; CMA pages), what stayed recorded, and the rebuilt vmallocinfo; a contradiction exits 2 with file:line.
namespace Kmem.Tests;

public class ProcSnapshotRebuildCliTests
{
    private static string Dir(params (string Name, string Text)[] files)
    {
        string dir = Path.Combine(Path.GetTempPath(), "kmem-reb-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var (n, t) in files) File.WriteAllText(Path.Combine(dir, n), t);
        return dir;
    }

    private const string SlabHead = "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables : slabdata\n";

    [Fact]
    public void Import_proc_lists_what_was_rebuilt_and_what_stayed_recorded()
    {
        string dir = Dir(("pagetypeinfo", TestSupport.Fixture("pagetypeinfo_arm32_4.14_2GB_cma_order12.txt")),
            ("slabinfo", SlabHead + "board_obj 100 128 512 8 1 : tunables 0 0 0 : slabdata 16 16 0\n"),
            ("vmallocinfo", "0xf0800000-0xf0805000   20480 board_probe+0x10/0x40 pages=4 vmalloc\n"));
        try
        {
            var (code, o, e) = TestSupport.Cli("import", "proc", dir);
            Assert.Equal("", e);
            Assert.Equal(0, code);
            Assert.Matches(@"# rebuilt: 1 slab caches \(1 created\), \d+ objects, \d+ slab pages", o);
            Assert.Contains("# rebuilt: 1 vmalloc areas (0 ioremap reservations), 4 pages\n", o);
            Assert.Matches(@"# rebuilt: \d+ used CMA pages \(\d+ kB\) as movable pages a cma_alloc migrates", o);
            Assert.Matches(@"# recorded:cma:reserved: \d+ pages", o);
            Assert.Matches(@"# recorded:node0:DMA: \d+ pages", o);
            Assert.Contains("# cat /proc/vmallocinfo\n", o);
            Assert.Contains(" board_probe+0x10/0x40 pages=4 vmalloc", o);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Import_proc_refuses_more_slab_than_used_memory_with_the_line()
    {
        string dir = Dir(("pagetypeinfo", TestSupport.Fixture("pagetypeinfo_arm32_4.14_2GB_cma_order12.txt")),
            ("slabinfo", SlabHead + "huge 800000 800000 4096 8 8 : tunables 0 0 0 : slabdata 100000 100000 0\n"));
        try
        {
            var (code, _, e) = TestSupport.Cli("import", "proc", dir);
            Assert.Equal(2, code);
            Assert.StartsWith("kmem: slabinfo:3: the caches down to huge need 800000 pages of slab", e);
        }
        finally { Directory.Delete(dir, true); }
    }
}
