// Replaying a trace of a NUMA machine on a NUMA profile: mm_page_alloc has no node field, so each page is asked
// of the node its recorded PFN lies in, from that node's zone.
using Kmem.Paging;
using static Kmem.Tests.NumaAllocTests;

namespace Kmem.Tests;

public class NumaReplayTests
{
    [Fact]
    public void Pages_land_on_the_node_of_their_recorded_pfn()
    {
        using var m = TwoNode();
        var z1 = m.Pages.ZonelistFor(1, Gfp.Kernel | Gfp.ThisNode)[0];
        var dma0 = m.Pages.ZonelistFor(0, Gfp.Kernel | Gfp.Dma)[0];
        long hit1 = m.Pages.NumaEventState(z1, NumaStat.Hit), hitDma = m.Pages.NumaEventState(dma0, NumaStat.Hit);
        string trace = string.Join("\n",
            "  sh-1 [000] ..... 1.001: mm_page_alloc: page=0x1 pfn=0x9000 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.002: mm_page_alloc: page=0x2 pfn=0x9100 order=3 migratetype=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.003: mm_page_alloc: page=0x3 pfn=0x1200 order=1 migratetype=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.004: mm_page_alloc: page=0x4 pfn=0x800 order=0 migratetype=0 gfp_flags=GFP_KERNEL|GFP_DMA",
            "  sh-1 [002] ..... 1.005: mm_page_alloc: page=0x5 pfn=0x200000 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.006: mm_page_free: page=0x1 pfn=0x9000 order=0");
        var rep = new TraceReplayer(m);
        var r = rep.Replay(new StringReader(trace));
        Assert.Equal(6, r.Replayed);
        Assert.Equal(2, r.Notes["mm_page_alloc placed on node 1, its recorded PFN's node"]);
        Assert.Equal(2, r.Notes["mm_page_alloc placed on node 0, its recorded PFN's node"]);
        Assert.Equal(1, r.Notes["mm_page_alloc of a PFN outside this machine's memory: its node unknown, the replaying thread's used"]);
        m.DrainAllPages();
        // The zone of the asked node (node 1's DMA32 for GFP_KERNEL; node 0's DMA for GFP_DMA) served each of them.
        Assert.Equal(hit1 + 2, m.Pages.NumaEventState(z1, NumaStat.Hit));
        Assert.Equal(hitDma + 1, m.Pages.NumaEventState(dma0, NumaStat.Hit));
        rep.ReleaseAll();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_one_node_machine_replays_as_before()
    {
        using var m = TestSupport.Small();
        var r = new TraceReplayer(m).Replay(new StringReader(
            "  sh-1 [000] ..... 1.001: mm_page_alloc: page=0x1 pfn=0x61000 order=0 migratetype=0 gfp_flags=GFP_KERNEL"));
        Assert.Equal(1, r.Replayed);
        Assert.DoesNotContain(r.Notes.Keys, k => k.Contains("node"));
    }
}
