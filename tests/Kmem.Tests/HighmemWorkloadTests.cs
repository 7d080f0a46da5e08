// The high-memory workload: highmem_stream on rv1126 (frames of GFP_HIGHUSER pages written through kmap_atomic on its
// 4.19 kernel, kmap_local_page from 5.11, read back through kmap or vmap), the built-in highmem-camera through the
// CLI, and the generic write/verify steps on HighMem page blocks.
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public class HighmemWorkloadTests
{
    private static long Figure(string note, string pattern) => long.Parse(Regex.Match(note, pattern).Groups[1].Value);

    private static Workload Stream(int pages, int framePages, int frames, string extra = "") => Workload.Parse($$"""
        { "steps": [
          { "op": "alloc_pages", "label": "frames", "gfp": "GFP_HIGHUSER", "count": {{pages}}, "expect": "success" },
          { "op": "highmem_stream", "label": "frames", "frame_pages": {{framePages}}, "frames": {{frames}}{{extra}} },
          { "op": "free_pages", "label": "frames" },
          { "op": "check" } ] }
        """);

    [Fact]
    public void Frames_of_highmem_pages_go_round_the_ring_through_kmap_atomic_and_kmap_on_4_19()
    {
        using var m = Machine.Boot("rv1126");
        // Two buffers of 300 pages: the consumer's kmap() touches 600 pages per round, more than the 512 pkmap slots.
        var r = new WorkloadRunner(m).Run(Stream(600, 300, 6));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        string note = Assert.Single(r.Notes);
        Assert.StartsWith("highmem_stream frames: 6 frames of 300 pages (7372800 bytes) through a ring of 2, 6 read back intact; 600 of 600 ring pages HighMem (100%); kmap_atomic: ", note);
        // arm's kmap_atomic() finds the pages the consumer's kmap() left in their pkmap slots (kmap_high_get()).
        long served = Figure(note, @"(\d+) served from pkmap slots");
        Assert.True(served > 0, note);
        Assert.Equal(6 * 300, Figure(note, @"(\d+) window hits") + Figure(note, @"(\d+) cold maps") + served);
        Assert.Equal(6 * 300, Figure(note, @"kmap: (\d+) maps"));
        Assert.True(Figure(note, @"(\d+) pkmap flushes") >= 2, note);
        Assert.Equal(0, Figure(note, @"(\d+) sleeps"));
    }

    [Fact]
    public void From_5_11_the_producer_uses_kmap_local_and_a_vmap_consumer_reads_the_same_bytes()
    {
        using var m = Machine.Boot(TestSupport.AtRelease("rv1126", "5.15"));
        var r = new WorkloadRunner(m).Run(Stream(64, 16, 10, """, "consumer": "vmap" """));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        string note = Assert.Single(r.Notes);
        Assert.Contains("10 read back intact; 64 of 64 ring pages HighMem (100%); kmap_local_page: ", note);
        Assert.EndsWith("vmap: 10 areas of 16 pages", note);
        // 64 ring pages and a window of 32: every frame after the window has turned over maps cold again.
        Assert.Equal(10 * 16, Figure(note, @"(\d+) window hits") + Figure(note, @"(\d+) cold maps"));
        Assert.Equal(0, Figure(note, @"(\d+) served from pkmap slots"));   // nothing kmap()s here
    }

    [Fact]
    public void Kmap_local_is_refused_before_the_run_where_the_release_has_none()
    {
        using var m = Machine.Boot("rv1126");
        var runner = new WorkloadRunner(m);
        var e = Assert.Throws<WorkloadException>(() => runner.Run(Stream(16, 16, 1, """, "producer": "kmap_local" """)));
        Assert.Equal("steps[1].producer", e.Location);
        Assert.Contains("5.11", e.Problem);
        var high = m.Zones.Single(z => z.Name == "HighMem");
        Assert.Equal(high.Managed, high.FreePages + high.PcpPages);   // nothing ran: the allocation step did not either
    }

    [Fact]
    public void A_ring_smaller_than_a_frame_is_a_problem_of_the_run()
    {
        using var m = Machine.Boot("rv1126");
        var r = new WorkloadRunner(m).Run(Stream(10, 16, 1));
        Assert.Contains(r.Problems, p => p.Contains("holds 10 pages, less than one frame of 16"));
    }

    [Fact]
    public void Write_and_verify_reach_highmem_page_blocks_through_kmap()
    {
        using var m = Machine.Boot("rv1126");
        var runner = new WorkloadRunner(m);
        var r = runner.Run(Workload.Parse("""
            { "steps": [
              { "op": "alloc_pages", "label": "user", "order": 2, "gfp": "GFP_HIGHUSER", "count": 3, "fill": "0x6b" },
              { "op": "verify", "label": "user", "pattern": "0x6b" } ] }
            """));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        var high = m.Zones.Single(z => z.Name == "HighMem");
        Assert.True(high.Managed - high.FreePages - high.PcpPages >= 12);
        // verify reads what is there: after another write the old pattern is reported, the new one holds.
        r = runner.Run(Workload.Parse("""{ "steps": [ { "op": "write", "label": "user", "pattern": "0x11" }, { "op": "verify", "label": "user", "pattern": "0x6b" } ] }"""));
        Assert.Contains(r.Problems, p => p.Contains("byte 0 of") && p.Contains("is not 0x6b"));
        r = runner.Run(Workload.Parse("""{ "steps": [ { "op": "verify", "label": "user", "pattern": "0x11" } ] }"""));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        runner.ReleaseAll();
    }

    [Fact]
    public void Kmem_run_highmem_camera_on_rv1126()
    {
        var (code, o, e) = TestSupport.Cli("run", "highmem-camera", "--profile", "rv1126");
        Assert.True(code == 0, o + e);
        Assert.Contains("highmem_stream frames: 240 frames of 760 pages (747110400 bytes) through a ring of 4, 240 read back intact; 3040 of 3040 ring pages HighMem (100%); kmap_atomic: ", o);
        Assert.Contains("highmem_stream frames: 60 frames of 760 pages (186777600 bytes) through a ring of 4, 60 read back intact;", o);
        Assert.Contains("all expectations held", o);
    }
}
