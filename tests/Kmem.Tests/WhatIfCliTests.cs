// What-if on a real state from the command line: `kmem cat`, `map` and `slabtop` take --after as `kmem run` does (a
// real rk-dma-heap-info dump, in full or in its `grep Alloc` form), malformed dumps are named file:line, and the run
// summary prints each step's outcome, the fragmentation and the CMA area's largest free run before and after.
namespace Kmem.Tests;

public sealed class WhatIfCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"kmem-whatif-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public WhatIfCliTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>`grep Alloc` of the fixture dump, written to a file.</summary>
    private string GrepDump()
    {
        string path = Path.Combine(_dir, "grep.txt");
        File.WriteAllLines(path, TestSupport.Fixture("rk_dma_heap_info_rv1106.txt").Split('\n').Where(l => l.Contains("Alloc", StringComparison.Ordinal)));
        return path;
    }

    [Fact]
    public void Cat_after_a_grep_form_dump_shows_its_state_and_says_where_the_lines_went()
    {
        string dump = GrepDump();
        var (code, o, e) = TestSupport.Cli("cat", "/proc/rk_dma_heap/alloc_bitmap", "--after", dump);
        Assert.True(code == 0, e);
        Assert.StartsWith("Total: 32768 KiB\n Used: 22736 KiB\n", o);
        Assert.Contains($"kmem: imported 44 dma-bufs and 0 page runs (22736 KiB) from {dump}", e);
        Assert.Contains("'grep Alloc' form): they were put in rk-dma-heap-cma, the board's RK-DMA-HEAP area, as dma-bufs", e);
        var (_, fresh, _) = TestSupport.Cli("cat", "/proc/rk_dma_heap/alloc_bitmap");
        Assert.StartsWith("Total: 32768 KiB\n Used: 0 KiB\n", fresh);
    }

    [Fact]
    public void Slabtop_and_map_take_after_too()
    {
        string dump = GrepDump(), svg = Path.Combine(_dir, "map.svg");
        var (code, o, e) = TestSupport.Cli("slabtop", "--after", dump, "--lines", "3");
        Assert.True(code == 0, e);
        Assert.Contains("imported 44 dma-bufs", e);
        Assert.Contains("Active / Total Objects", o);
        (code, o, e) = TestSupport.Cli("map", "--after", dump, "--out", svg);
        Assert.True(code == 0, e);
        Assert.Contains("imported 44 dma-bufs", e);
        Assert.Contains("rv1106 (state of grep.txt): physical memory after boot", File.ReadAllText(svg));
    }

    [Theory]
    [InlineData("cat", "/proc/buddyinfo")]
    [InlineData("slabtop", null)]
    [InlineData("run", "camera-dma")]
    public void A_malformed_dump_is_named_by_file_and_line_and_nothing_runs(string verb, string? arg)
    {
        string dump = Path.Combine(_dir, "bad.txt");
        File.WriteAllText(dump, "Alloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\nAlloc by (y ) [0x02800000-0x02801fff] 0x00002000 (8 KiB)\n");
        string[] args = arg is null ? [verb, "--after", dump] : [verb, arg, "--after", dump];
        var (code, o, e) = TestSupport.Cli(args);
        Assert.Equal(2, code);
        Assert.Contains($"kmem: {dump}:2: 0x2800000 overlaps the buffer at 0x2800000 (line 1)", e);
        Assert.DoesNotContain("summary:", o);
        File.WriteAllText(dump, "Alloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\nAttached Devices:\n");
        (code, _, e) = TestSupport.Cli(args);
        Assert.Equal(2, code);
        Assert.Contains($"kmem: {dump}:2: unexpected line 'Attached Devices:'", e);
    }

    [Theory]
    [InlineData("cat", "/proc/buddyinfo")]
    [InlineData("slabtop", null)]
    [InlineData("map", "--out=x.svg")]
    public void A_missing_after_file_is_refused_before_booting(string verb, string? arg)
    {
        string[] args = arg is null ? [verb, "--after", "/nonexistent/dump.txt"] : [verb, arg, "--after", "/nonexistent/dump.txt"];
        var (code, _, e) = TestSupport.Cli(args);
        Assert.NotEqual(0, code);
        Assert.Contains($"{verb} --after: no file '/nonexistent/dump.txt'", e);
    }

    [Fact]
    public void Run_after_a_real_state_answers_which_step_fails_why_and_what_is_left()
    {
        var (code, o, e) = TestSupport.Cli("run", "camera-dma", "--after", GrepDump());
        Assert.Equal(1, code);                                      // the ISP's frames no longer fit
        Assert.Contains("step steps[1] alloc_movable (page-cache): ok, 40000 allocated; pages from order 0 Movable x40000 (40000 pages)\n", o);
        // The first 5992448-byte frame (1463 pages) still fits in the area, the second does not.
        Assert.Contains("step steps[3] dma_alloc_coherent (isp-frames): FAILED 1 of 2; pages from CMA runs Movable x1 (1463 pages); first failure: cma_alloc: rk-dma-heap-cma: alloc failed, req-size: 1463 pages, ret: -12\n", o);
        Assert.Contains("step steps[7] dma_alloc_coherent (venc-atomic): ok, 4 allocated\n", o);   // GFP_ATOMIC: perhaps the atomic pool, not counted
        Assert.Contains("step steps[8] cma_alloc (rk-heap-raw): ok, 3 allocated; pages from CMA runs", o);
        Assert.Matches(@"fragmentation \(extfrag unusable_index, per order\) before:\nNode 0, zone   Normal (\d\.\d{3} ){9}\nafter:\nNode 0, zone   Normal (\d\.\d{3} ){9}\n", o);
        // The dump left 10032 KiB in one run at the top of the area; the workload leaves 548 KiB.
        Assert.Contains("CMA rk-dma-heap-cma: largest free run 10032 KiB before, 548 KiB after (of 32768 KiB)\n", o);
        Assert.Contains("kmem: steps[3]: dma_alloc_coherent(ffa00000.rkisp, 5992448) for 'isp-frames' failed", e);
    }

    [Fact]
    public void The_summary_table_fills_bytes_held_for_dma_buf_steps()
    {
        var (code, o, e) = TestSupport.Cli("run", "camera-pipeline");
        Assert.True(code == 0, e);
        // 24 dma-bufs of vmpi: 3049 pages, 12488704 bytes (the sizes of the fixture's dma-bufs); the ISP's page runs too.
        Assert.Matches(@"vmpi-dmabufs +│ 24 +│ 0 +│ 0 +│ 3049 +│ 12488704 ", o);
        Assert.Matches(@"isp-pages +│ 8 +│ 0 +│ 0 +│ 1954 +│ 8003584 ", o);
        // An RK dma-buf is one run of the heap's CMA area, however its pages are split into blocks.
        Assert.Contains("step steps[1] rk_dma_heap_alloc (vmpi-dmabufs): ok, 1 allocated; pages from CMA runs Movable x1 (3 pages)\n", o);
    }
}
