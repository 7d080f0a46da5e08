// The run summary answers the usual what-if questions directly: each allocation step's success and first failure
// (with the kernel's own reason), the buddy orders and pageblock migratetypes its pages came from, the allocator's
// migratetype fallbacks, extfrag's unusable_index and every CMA area's largest free run before and after, and the
// bytes the dma-buf steps hold.
namespace Kmem.Tests;

public class RunSummaryTests
{
    private const string UnusableIndex = "/sys/kernel/debug/extfrag/unusable_index";

    [Fact]
    public void Each_step_says_how_many_succeeded_and_the_order_and_migratetype_of_its_pages()
    {
        using var m = Machine.Boot("x86_64");
        var runner = new WorkloadRunner(m);
        var r = runner.Run(Workload.Parse("""
        { "steps": [
          { "op": "alloc_movable", "label": "cache", "order": 0, "count": 64 },
          { "op": "repeat", "times": 3, "steps": [ { "op": "alloc_pages", "label": "dma", "order": 3, "count": 2 } ] },
          { "op": "alloc_pages_exact", "label": "exact", "size": 20000 },
          { "op": "kmalloc", "label": "small", "size": 64 } ] }
        """));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(["steps[0]", "steps[1].steps[0]", "steps[2]", "steps[3]"], r.Steps.Select(s => s.Location));
        var cache = r.Steps[0];
        Assert.Equal(("alloc_movable", "cache", 64L, 0L, true), (cache.Op, cache.Label, cache.Allocated, cache.Failed, cache.Succeeded));
        var movable = Assert.Single(cache.Sources);
        Assert.Equal((0, MigrateType.Movable, 64L, 64L), (movable.Order, movable.Migratetype, movable.Blocks, movable.Pages));
        // The repeated step adds up; its GFP_KERNEL blocks are order 3 wherever they came from.
        var dma = r.Steps[1];
        Assert.Equal(6, dma.Allocated);
        Assert.All(dma.Sources, s => Assert.Equal(3, s.Order));
        Assert.Equal(6, dma.Sources.Sum(s => s.Blocks));
        Assert.Equal(48, dma.Sources.Sum(s => s.Pages));
        // alloc_pages_exact(20000): one block of get_order(20000) = 3 (5 pages kept, the tail given back).
        Assert.Equal(3, Assert.Single(r.Steps[2].Sources).Order);
        Assert.Empty(r.Steps[3].Sources);                           // a kmalloc buffer has no pages of its own
        Assert.All(r.Steps, s => Assert.Null(s.FirstFailure));
        runner.ReleaseAll();
    }

    [Fact]
    public void Unmovable_requests_beyond_their_free_lists_show_the_fallback_to_movable_blocks()
    {
        using var m = Machine.Boot("x86_64");
        var runner = new WorkloadRunner(m);
        // A fresh board has almost all of its free memory in movable pageblocks: order-5 kernel allocations soon run
        // out of unmovable blocks and __rmqueue_fallback() steals movable ones (claiming their pageblocks).
        var r = runner.Run(Workload.Parse("""{ "steps": [ { "op": "alloc_pages", "label": "k", "order": 5, "count": 400 } ] }"""));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        var fb = Assert.Single(r.Steps[0].Fallbacks);
        Assert.Equal((MigrateType.Unmovable, MigrateType.Movable), (fb.Wanted, fb.From));
        Assert.True(fb.Count > 0);
        Assert.Contains(r.Steps[0].Sources, s => s.Migratetype == MigrateType.Unmovable);
        // Movable order-0 requests are served from their own lists: no fallback.
        var r2 = runner.Run(Workload.Parse("""{ "steps": [ { "op": "alloc_movable", "label": "c", "order": 0, "count": 100 } ] }"""));
        Assert.Empty(r2.Steps[0].Fallbacks);
        runner.ReleaseAll();
    }

    [Fact]
    public void A_failed_step_gives_the_kernels_reason_and_the_cma_areas_runs_before_and_after()
    {
        using var m = Machine.Boot("rv1106");
        var area = m.Cma["rk-dma-heap-cma"];
        ulong before = area.MaxChunk;
        string fragBefore = m.ProcFs.Read(UnusableIndex);
        var runner = new WorkloadRunner(m);
        var r = runner.Run(Workload.Parse("""
        { "steps": [
          { "op": "cma_alloc", "label": "raw", "cma": "rk-dma-heap-cma", "count": 100 },
          { "op": "cma_alloc", "label": "huge", "cma": "rk-dma-heap-cma", "count": 100000, "expect": "failure" },
          { "op": "cma_alloc", "label": "quiet", "cma": "rk-dma-heap-cma", "count": 100000, "gfp": "GFP_KERNEL|__GFP_NOWARN", "times": 2, "expect": "failure" },
          { "op": "alloc_movable", "label": "cache", "order": 0, "count": 3000 } ] }
        """));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.True(r.Steps[0].Succeeded);
        var src = Assert.Single(r.Steps[0].Sources);
        Assert.Equal((-1, 100L), (src.Order, src.Pages));            // a run from the area, not one buddy block
        var huge = r.Steps[1];
        Assert.Equal((0L, 1L, false), (huge.Allocated, huge.Failed, huge.Succeeded));
        Assert.Contains("cma_alloc: rk-dma-heap-cma: alloc failed, req-size: 100000 pages", huge.FirstFailure);
        Assert.Equal(2, r.Steps[2].Failed);
        Assert.Equal("cma_alloc(rk-dma-heap-cma, 100000) returned nothing (the kernel logged no warning)", r.Steps[2].FirstFailure);
        var run = Assert.Single(r.CmaFreeRuns, c => c.Area == "rk-dma-heap-cma");
        Assert.Equal((before, before - 100, area.Count), (run.BeforePages, run.AfterPages, run.SizePages));
        Assert.Equal(area.MaxChunk, run.AfterPages);
        Assert.Equal(fragBefore, r.UnusableIndexBefore);
        Assert.Equal(m.ProcFs.Read(UnusableIndex), r.UnusableIndexAfter);
        Assert.NotEqual(r.UnusableIndexBefore, r.UnusableIndexAfter);
        runner.ReleaseAll();
    }

    [Fact]
    public void Dma_buf_steps_count_their_bytes_held()
    {
        using var m = Machine.Boot("rv1106");
        long bufBytes = m.DmaBufs.Sum(b => b.Size);
        var runner = new WorkloadRunner(m);
        var r = runner.Run(Workload.Parse("""
        { "steps": [
          { "op": "rk_dma_heap_alloc", "label": "frames", "size": 100000, "count": 3 },
          { "op": "dma_heap_alloc", "label": "sys", "heap": "system", "size": 65536, "count": 2 },
          { "op": "rk_dma_heap_alloc_contig", "label": "raw", "size": 6000 },
          { "op": "rk_dma_heap_free", "label": "frames", "count": 1 } ] }
        """));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        // 100000 bytes is 25 pages: each dma-buf holds 102400 bytes; two remain.
        Assert.Equal((2 * 25L, 2 * 102400L), (r.Labels["frames"].PagesHeld, r.Labels["frames"].BytesHeld));
        Assert.Equal((32L, 2 * 65536L), (r.Labels["sys"].PagesHeld, r.Labels["sys"].BytesHeld));
        Assert.Equal((2L, 8192L), (r.Labels["raw"].PagesHeld, r.Labels["raw"].BytesHeld));
        Assert.Equal(m.DmaBufs.Sum(b => b.Size) - bufBytes, r.Labels["frames"].BytesHeld + r.Labels["sys"].BytesHeld);
        runner.ReleaseAll();
        var after = runner.Run(Workload.Parse("""{ "steps": [ { "op": "check" } ] }"""));
        Assert.Equal(0, after.Labels.Values.Sum(l => l.BytesHeld));
    }
}
