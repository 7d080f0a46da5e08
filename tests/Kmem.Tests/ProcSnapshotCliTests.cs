// `kmem import proc DIR`: what it derived, the findings line by line, and the views of the rebuilt state.
namespace Kmem.Tests;

public class ProcSnapshotCliTests
{
    private static string Dir(params (string Name, string Text)[] files)
    {
        string dir = Path.Combine(Path.GetTempPath(), "kmem-proc-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var (n, t) in files) File.WriteAllText(Path.Combine(dir, n), t);
        return dir;
    }

    [Fact]
    public void Import_proc_prints_the_derivations_and_the_same_pagetypeinfo()
    {
        string pti = TestSupport.Fixture("pagetypeinfo_arm32_4.14_2GB_cma_order12.txt");
        string dir = Dir(("pagetypeinfo", pti), ("cmdline", "console=ttyS0 cma=912M\n"));
        try
        {
            var (code, o, e) = TestSupport.Cli("import", "proc", dir);
            Assert.Equal("", e);
            Assert.Equal(0, code);
            Assert.Contains("# read: pagetypeinfo, cmdline\n", o);
            Assert.Contains("# derived: architecture arm (32-bit): pagetypeinfo has a HighMem zone", o);
            Assert.Contains("# derived: command line 'console=ttyS0 cma=912M': cmdline", o);
            Assert.Contains("Node    0, zone  HighMem, type          CMA    261    915    778    204     48     20      5      0      0      0      0      1     13 \n", o);
            Assert.Contains("Node 0, zone  HighMem            3           32            0            0           57            0 \n", o);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Import_proc_refuses_a_malformed_file_with_its_line_and_a_missing_directory()
    {
        string dir = Dir(("buddyinfo", "Node 0, zone DMA 1 2 3\nNode 0 zone Normal 1 2 3\n"));
        try
        {
            var (code, o, e) = TestSupport.Cli("import", "proc", dir, "--profile", "x86_64");
            Assert.Equal(2, code);
            Assert.Equal("", o);
            Assert.Equal("kmem: buddyinfo:2: not a buddyinfo line: 'Node 0 zone Normal 1 2 3'\n", e);
        }
        finally { Directory.Delete(dir, true); }
        var (c2, _, e2) = TestSupport.Cli("import", "proc", dir);
        Assert.Equal(2, c2);
        Assert.Contains($"import: no directory '{dir}'", e2);
    }
}
