// The used memory of a /proc snapshot rebuilt as real allocations: slabinfo's caches with their slabs and active
// objects, vmallocinfo's areas, the CMA pageblocks' used pages as movable pages a cma_alloc migrates; the free state
// still exact; more slab than used memory and impossible rows as findings with file:line; Release() undoing it all.
using Kmem.Scenarios.ProcSnapshots;

namespace Kmem.Tests;

public class ProcSnapshotRebuildTests
{
    private const string Arm32 = "pagetypeinfo_arm32_4.14_2GB_cma_order12.txt";
    private const string Linuxmm2010 = "slabinfo_meminfo_buddyinfo_x86_64_numa2_2.6.3x_linuxmm2010.txt";

    private static string Slab(string text, string name) =>
        StateFiles.ParseSlabInfo(text).Where(r => r.Name == name).Select(r => $"{r.ActiveObjs}/{r.NumObjs}/{r.NumSlabs}").SingleOrDefault() ?? "none";

    [Fact]
    public void Linuxmm2010_slabinfo_becomes_caches_with_the_files_counts_and_buddyinfo_stays_exact()
    {
        string bi = ProcSnapshotTests.Section(Linuxmm2010, "buddyinfo");
        string si = ProcSnapshotTests.Section(Linuxmm2010, "slabinfo");
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["buddyinfo"] = bi, ["slabinfo"] = si });
        Assert.False(s.HasFatalFindings);
        var (m, import) = s.Boot(MachineProfile.Embedded("x86_64-numa2"));
        using (m)
        {
            Assert.Equal(FreeListFiles.ParseBuddyInfo(bi).Select(r => string.Join(" ", r.Free)),
                FreeListFiles.ParseBuddyInfo(m.ProcFs.Read("/proc/buddyinfo")).Select(r => string.Join(" ", r.Free)));
            var rows = StateFiles.ParseSlabInfo(si);
            var now = StateFiles.ParseSlabInfo(m.ProcFs.Read("/proc/slabinfo"));
            Assert.Equal(rows.Select(r => r.Name), import.SlabCaches.Select(c => c.Name));
            int same = 0;
            foreach (var r in rows)
            {
                var n = now.Single(x => x.Name == r.Name);   // every cache of the file is listed
                if (n.ObjPerSlab != r.ObjPerSlab || n.PagesPerSlab != r.PagesPerSlab)
                {
                    Assert.Contains(import.Notes, x => x.StartsWith($"slabinfo:{r.Line}: {r.Name}: ", StringComparison.Ordinal));
                    continue;
                }
                if (import.Notes.Any(x => x.StartsWith($"slabinfo:{r.Line}: {r.Name}: the machine already has", StringComparison.Ordinal))) continue;
                Assert.Equal((r.Name, r.ActiveObjs, r.NumObjs, r.NumSlabs), (n.Name, n.ActiveObjs, n.NumObjs, n.NumSlabs));
                same++;
            }
            Assert.True(same >= rows.Count / 2, $"{same} of {rows.Count} caches with the file's geometry");
            Assert.True(import.SlabPages > 0);
            Assert.Contains(import.SlabCaches, c => c.Name == "nf_conntrack" && c.Created && c.Objects == 240);
            import.Release();
            Assert.Null(m.FindSlabCache("nf_conntrack"));
        }
    }

    [Fact]
    public void More_slab_than_used_memory_is_a_finding_with_its_line_and_nothing_is_built()
    {
        string pti = TestSupport.Fixture(Arm32);
        string si = "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables : slabdata\n" +
                    "small 8 8 512 8 1 : tunables 0 0 0 : slabdata 1 1 0\n" +
                    "huge 800000 800000 4096 8 8 : tunables 0 0 0 : slabdata 100000 100000 0\n";
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti, ["slabinfo"] = si });
        Assert.False(s.HasFatalFindings);
        using var m = Machine.Boot(s.DeriveProfile());
        m.DrainAllPages();   // the import drains the per-CPU lists first, as a failed one does too
        string Caches() => string.Join(",", m.SlabCaches.Select(c => $"{c.Name}:{c.Slabs}"));
        string before = TestSupport.State(m) + Caches();
        var e = Assert.Throws<ProcSnapshotException>(() => s.Apply(m));
        Assert.Equal(("slabinfo", 4), (e.File, e.Line));
        Assert.Contains("huge need", e.Problem);
        Assert.Contains(s.Findings, f => f.Fatal && f.ToString().StartsWith("slabinfo:4: error: the caches down to huge need", StringComparison.Ordinal));
        Assert.Equal(before, TestSupport.State(m) + Caches());
        Assert.Null(m.FindSlabCache("small"));
    }

    [Theory]
    [InlineData("nothing 0 0 64 0 1 : tunables 0 0 0 : slabdata 3 3 0\n", "nothing: 3 slabs of 0 objects each")]
    [InlineData("empty 0 0 0 16 1 : tunables 0 0 0 : slabdata 0 0 0\n", "empty: objects of 0 bytes")]
    public void A_cache_row_that_cannot_be_rebuilt_is_a_fatal_finding(string row, string message)
    {
        var s = ProcSnapshot.Parse(new Dictionary<string, string>
        {
            ["pagetypeinfo"] = TestSupport.Fixture(Arm32),
            ["slabinfo"] = "slabinfo - version: 2.1\n" + row,
        });
        var f = Assert.Single(s.Findings, x => x.Fatal);
        Assert.Equal($"slabinfo:2: error: {message}", f.ToString());
    }

    [Fact]
    public void Arm32_cma_use_becomes_movable_pages_that_a_cma_alloc_migrates()
    {
        string pti = TestSupport.Fixture(Arm32);
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti });
        var (m, import) = s.Boot();
        using (m)
        {
            var p = FreeListFiles.ParsePageTypeInfo(pti);
            long cmaFree = p.Zones.Sum(z => Enumerable.Range(0, p.MaxOrder).Sum(o => z.Free[(int)MigrateType.Cma, o] << o));
            long cmaAll = p.Zones.Sum(z => z.Blocks![(int)MigrateType.Cma]) << p.PageblockOrder;
            Assert.Equal(cmaAll - cmaFree, import.CmaPages);
            Assert.Equal(import.CmaPages, import.Recorded.Single(r => r.Name == "recorded:cma:reserved").Pages);
            // The area's largest free run is 13 order-12 blocks at most (pagetypeinfo's CMA row); a cma_alloc of 16
            // pageblocks from its start meets used pages: they are movable, so it succeeds by migrating them, as
            // alloc_contig_range() does in the kernel.
            var area = m.Cma["reserved"];
            int count = 16 << p.PageblockOrder;
            long migrated = m.PagesMigrated;
            var run = m.CmaAlloc(area, count, 0);
            Assert.False(run.IsNull);
            Assert.True(m.PagesMigrated > migrated, "the used CMA pages in the way were migrated");
            m.CmaRelease(area, run, count);
            import.Release();
            Assert.Equal(cmaAll, m.Zones.Sum(z => z.FreeCmaPages));
        }
    }

    [Fact]
    public void Export_with_caches_and_vmalloc_areas_then_import_gives_the_same_slabinfo_and_vmallocinfo()
    {
        using var src = Machine.Boot("x86_64");
        var cache = src.KmemCacheCreate("snap_obj", 200, 0, SlabFlags.NoMerge);
        var objs = Enumerable.Range(0, 1000).Select(_ => cache.Alloc(Gfp.Kernel)).ToList();
        for (int i = 0; i < objs.Count; i += 3) cache.Free(objs[i]);
        cache.Shrink();
        var ks = Enumerable.Range(0, 300).Select(_ => src.Kmalloc(96, Gfp.Kernel)).ToList();
        nint v1 = src.Vmalloc(5 * 4096), v2 = src.Vmalloc(40 * 4096);
        src.DrainAllPages();
        var files = new Dictionary<string, string>
        {
            ["pagetypeinfo"] = src.ProcFs.Read("/proc/pagetypeinfo"),
            ["buddyinfo"] = src.ProcFs.Read("/proc/buddyinfo"),
            ["slabinfo"] = src.ProcFs.Read("/proc/slabinfo"),
            ["vmallocinfo"] = src.ProcFs.Read("/proc/vmallocinfo"),
        };
        var snap = ProcSnapshot.Parse(files);
        Assert.DoesNotContain(snap.Findings, f => f.Fatal);
        using var dst = Machine.Boot("x86_64");
        // Release shrinks the caches (the slabs the import added are empty then): the machine's own empty slabs go too.
        dst.ShrinkSlabs();
        dst.DrainAllPages();
        string slabBefore = dst.ProcFs.Read("/proc/slabinfo"), vmBefore = dst.ProcFs.Read("/proc/vmallocinfo");
        long freeBefore = dst.Zones.Sum(z => z.FreePages);
        var import = snap.Apply(dst);
        Assert.Equal(files["pagetypeinfo"], dst.ProcFs.Read("/proc/pagetypeinfo"));
        Assert.Equal(files["buddyinfo"], dst.ProcFs.Read("/proc/buddyinfo"));
        string slab = dst.ProcFs.Read("/proc/slabinfo");
        Assert.Equal(Slab(files["slabinfo"], "snap_obj"), Slab(slab, "snap_obj"));
        Assert.Equal(Slab(files["slabinfo"], "kmalloc-96"), Slab(slab, "kmalloc-96"));
        // vmallocinfo: the same areas (callers, sizes, pages, flags); the addresses are the machine's window's.
        static IEnumerable<string> NoAddr(string t) => t.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[(l.IndexOf(' ') + 1)..].Trim()).Order();
        var want = NoAddr(files["vmallocinfo"]).ToList();
        var got = NoAddr(dst.ProcFs.Read("/proc/vmallocinfo")).ToList();
        foreach (var line in want.Where(l => l.Contains("pages=")))
            Assert.Contains(line, got);
        Assert.Contains(import.VmallocAreas, a => a.Pages == 40);
        // Release gives back every page, object, area and cache the import made.
        import.Release();
        Assert.Null(dst.FindSlabCache("snap_obj"));
        Assert.Equal(Slab(slabBefore, "kmalloc-96"), Slab(dst.ProcFs.Read("/proc/slabinfo"), "kmalloc-96"));
        Assert.Equal(vmBefore, dst.ProcFs.Read("/proc/vmallocinfo"));
        dst.DrainAllPages();
        Assert.Equal(freeBefore, dst.Zones.Sum(z => z.FreePages));
        foreach (var k in ks) src.Kfree(k);
        src.Vfree(v1);
        src.Vfree(v2);
    }

    [Fact]
    public void A_rebuild_that_fails_midway_is_undone_and_the_machine_is_as_it_was()
    {
        // A 960 MiB ioremap range takes no pages (the check before the build passes) but cannot fit the 32-bit machine's
        // vmalloc window: the rebuild fails after the first area took its pages, and everything it did is undone.
        var s = ProcSnapshot.Parse(new Dictionary<string, string>
        {
            ["pagetypeinfo"] = TestSupport.Fixture(Arm32),
            ["vmallocinfo"] = "0xc0000000-0xc0005000   20480 small_probe+0x0/0x10 pages=4 vmalloc\n" +
                              "0xc1000000-0xfd001000 1006637056 big_io+0x0/0x10 phys=0x10000000 ioremap\n",
        });
        using var m = Machine.Boot(s.DeriveProfile());
        m.DrainAllPages();
        string before = TestSupport.State(m) + m.ProcFs.Read("/proc/vmallocinfo");
        var e = Assert.Throws<ProcSnapshotException>(() => s.Apply(m));
        Assert.Equal(("vmallocinfo", 2), (e.File, e.Line));
        Assert.Contains("big_io", e.Problem);
        Assert.Equal(before, TestSupport.State(m) + m.ProcFs.Read("/proc/vmallocinfo"));
        // The machine still works: a high-order allocation and its free.
        var p = m.AllocPages(Gfp.Kernel, 4);
        Assert.False(p.IsNull);
        m.FreePages(p, 4);
    }
}
