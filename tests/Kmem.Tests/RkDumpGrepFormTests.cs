// The rk-dma-heap-info dump in its `grep Alloc` form (bare "Alloc by" lines, as such dumps are usually shared): it
// parses, lands in the board's RK-DMA-HEAP area, rebuilds the same memory as the full dump, and keeps every check.
namespace Kmem.Tests;

public class RkDumpGrepFormTests
{
    /// <summary>The fixture as the kernel prints it in full: PART A's dma-bufs, then PART B's page runs, each under its header.</summary>
    private static string FullDump() =>
        RkDumpFixture.PartA() + string.Concat(RkDumpFixture.PartBLines().Select(l => $"dma-heap:<rk-dma-heap-cma> -non dmabuf\n{l}\n"));

    /// <summary>What `grep Alloc` keeps of a file.</summary>
    private static string GrepAlloc(string text) => string.Join("\n", text.Split('\n').Where(l => l.Contains("Alloc", StringComparison.Ordinal))) + "\n";

    /// <summary>The memory a replay leaves: every buffer's range and name, the area's bitmap, the free lists.</summary>
    private static string State(Machine m)
    {
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"];
        var bufs = rk.DmaBufEntries.Concat(rk.ContigEntries).OrderBy(e => e.Start).Select(e => $"{e.Start:x}-{e.End:x} {e.AllocBy}");
        return string.Join("\n", bufs) + "\n" + m.ProcFs.Read("/proc/rk_dma_heap/alloc_bitmap") + $"used {rk.Area.Used} max {rk.Area.MaxChunk}\n"
               + TestSupport.Buddy(m) + m.ProcFs.Read("/proc/pagetypeinfo");
    }

    [Fact]
    public void The_fixtures_grep_form_rebuilds_the_same_state_as_the_full_dump()
    {
        string grep = GrepAlloc(TestSupport.Fixture("rk_dma_heap_info_rv1106.txt"));
        var bare = RkDmaHeapImport.Parse(grep);
        Assert.Equal(44, bare.Count);
        Assert.All(bare, e => Assert.Equal(RkDmaHeapImport.UnnamedHeap, e.Heap));
        Assert.All(bare, e => Assert.True(e.IsDmaBuf && e.Ino < 0 && e.Devices.Count == 0));

        string full;
        using (var a = Machine.Boot("rv1106"))
        {
            var r = RkDmaHeapImport.Replay(a, RkDmaHeapImport.Parse(FullDump()));
            Assert.Equal((32, 12), (r.DmaBufs, r.PageRuns));
            Assert.Null(r.UnnamedHeapTakenAs);
            full = State(a);
        }
        using var b = Machine.Boot("rv1106");
        var rb = RkDmaHeapImport.Replay(b, bare);
        Assert.Equal("rk-dma-heap-cma", rb.UnnamedHeapTakenAs);
        Assert.Equal((44, 0, 0x03e34000UL - 0x02800000), (rb.DmaBufs, rb.PageRuns, rb.Bytes));
        Assert.Equal(full, State(b));
        TestSupport.AssertConsistent(b);
        // The grep form of the kernel's own full print (tabs and padding) reads the same.
        Assert.Equal(bare.Select(e => (e.Start, e.End, e.AllocBy)).Order(), RkDmaHeapImport.Parse(GrepAlloc(FullDump())).Select(e => (e.Start, e.End, e.AllocBy)).Order());
    }

    [Theory]
    [InlineData("Alloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\nTotal : 0x1000 (4 KiB)\n", 2, "unexpected line 'Total : 0x1000 (4 KiB)' (a dump without dma-heap:<name> headers holds only")]
    [InlineData("Alloc by (x ) [0x02800000-0x02800fff] 0x00002000 (8 KiB)\n", 1, "does not match the range")]
    [InlineData("# grep Alloc\nAlloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\nAlloc by (y ) [0x02801100-0x02801fff] 0x00000f00 (3 KiB)\n", 3, "not page aligned")]
    [InlineData("Alloc by (x ) [0x02801000-0x02800fff] 0x00001000 (4 KiB)\n", 1, "ends before it starts")]
    [InlineData("Alloc by (x ) [0x02800000-0x02800fff] 0x00001000 (8 KiB)\n", 1, "8 KiB does not match")]
    [InlineData("# only a comment\n\n", 0, "no \"Alloc by\" entry found")]
    public void Malformed_grep_forms_name_the_line(string text, int line, string problem)
    {
        var ex = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(text));
        Assert.Equal(line, ex.Line);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void A_grep_form_that_cannot_be_rebuilt_leaves_nothing_behind()
    {
        using var m = Machine.Boot("rv1106");
        string before = State(m);
        var overlap = RkDmaHeapImport.Parse("Alloc by (a ) [0x02800000-0x02801fff] 0x00002000 (8 KiB)\nAlloc by (b ) [0x02801000-0x02801fff] 0x00001000 (4 KiB)\n");
        var ex = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Replay(m, overlap));
        Assert.Equal(2, ex.Line);
        Assert.Contains("overlaps the buffer at 0x2800000 (line 1)", ex.Message);
        var outside = RkDmaHeapImport.Parse("Alloc by (a ) [0x02800000-0x02801fff] 0x00002000 (8 KiB)\nAlloc by (x ) [0x05000000-0x05000fff] 0x00001000 (4 KiB)\n");
        ex = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Replay(m, outside));
        Assert.Equal(2, ex.Line);
        Assert.Contains("outside rk-dma-heap-cma", ex.Message);
        Assert.Equal(before, State(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_grep_form_needs_a_board_with_an_rk_dma_heap_area()
    {
        using var m = Machine.Boot("x86_64");
        Assert.Null(RkDmaHeapImport.BoardHeap(m));
        var bare = RkDmaHeapImport.Parse("Alloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\n");
        var ex = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Replay(m, bare));
        Assert.Equal(1, ex.Line);
        Assert.Contains("needs the board's RK-DMA-HEAP area; x86_64 has none", ex.Message);
        Assert.Throws<ArgumentNullException>(() => RkDmaHeapImport.BoardHeap(null!));
    }
}
