// NUMA allocation behaviour on two-node machines: node-local allocation per thread, the zonelist fallback order,
// __GFP_THISNODE, alloc_pages_node/page_to_nid, cross-node frees, the zone_statistics() counters and misuse.
using Kmem.Paging;

namespace Kmem.Tests;

public class NumaAllocTests
{
    /// <summary>
    /// A small two-node x86_64 6.6 board: node 0 = the first 128 MiB (DMA + DMA32), node 1 = the next 128 MiB (DMA32
    /// only), CPUs 0-1 on node 0 and 2-3 on node 1.
    /// </summary>
    internal const string TwoNodeJson = """
    {
      "name": "numa-small", "arch": "x86_64", "cpus": 4, "cpu_nodes": [0, 0, 1, 1], "version": "6.6",
      "config": { "NUMA": true, "CMA": true },
      "dram": [
        { "base": "0x000001000", "size": "0x9e000", "node": 0 },
        { "base": "0x000100000", "size": "0x7f00000", "node": 0 },
        { "base": "0x008000000", "size": "0x8000000", "node": 1 }
      ],
      "kernel": { "base": "0x01000000", "code": "4096K", "rwdata": "1024K", "rodata": "1024K", "init": "512K", "bss": "512K" }
    }
    """;

    internal static Machine TwoNode(string? version = null)
    {
        var p = MachineProfile.Parse(TwoNodeJson);
        if (version is not null) p = p with { Version = KernelVersion.Parse(version) };
        var m = Machine.Boot(p);
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    /// <summary>Runs <paramref name="body"/> on a new thread moved to profile CPU <paramref name="cpu"/>.</summary>
    internal static T OnCpu<T>(Machine m, int cpu, Func<T> body)
    {
        T result = default!;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try { m.MigrateToCpu(cpu); result = body(); }
            catch (Exception e) { error = e; }
        });
        t.Start();
        t.Join();
        if (error is not null) throw new AggregateException(error);
        return result;
    }

    internal static void OnCpu(Machine m, int cpu, Action body) => OnCpu(m, cpu, () => { body(); return 0; });

    private static Zone ZoneOf(Machine m, Page p) => m.Pages.ZoneOfIdx((int)(p.Pfn - m.Pages.BasePfn))!;

    private static long Ev(Machine m, int zoneIndex, NumaStat s) => m.Pages.NumaEventState(m.Pages.Zones[zoneIndex], s);

    private static long NodeEv(Machine m, int nid, NumaStat s) => m.Pages.NodeNumaEventState(nid, s);

    [Fact]
    public void Threads_of_each_node_allocate_from_their_own_node()
    {
        using var m = TwoNode();
        Assert.Equal(2, m.NodeCount);
        for (int cpu = 0; cpu < 4; cpu++)
        {
            int want = m.CpuToNode(cpu);
            var nodes = OnCpu(m, cpu, () =>
            {
                Assert.Equal(cpu, m.CurrentCpu);
                Assert.Equal(want, m.NumaNodeId);
                var pages = Enumerable.Range(0, 200).Select(_ => m.AllocPage(Gfp.Kernel)).ToList();
                pages.Add(m.AllocPages(Gfp.Kernel, 3));
                var r = pages.Select(m.PageToNid).Distinct().ToArray();
                m.FreePages(pages[^1], 3);
                foreach (var p in pages.Take(200)) m.FreePage(p);
                return r;
            });
            Assert.Equal([want], nodes);
        }
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void AllocPagesNode_takes_the_asked_node_whatever_the_thread()
    {
        using var m = TwoNode();
        foreach (int cpu in new[] { 0, 3 })
            OnCpu(m, cpu, () =>
            {
                for (int nid = 0; nid < 2; nid++)
                    for (int order = 0; order < 4; order++)
                    {
                        var p = m.AllocPagesNode(nid, Gfp.Kernel, order);
                        Assert.Equal(nid, m.PageToNid(p));
                        Assert.Equal(nid, ZoneOf(m, p).Node);
                        m.FreePages(p, order);
                    }
                var local = m.AllocPagesNode(Machine.NumaNoNode, Gfp.Kernel, 0);
                Assert.Equal(m.CpuToNode(cpu), m.PageToNid(local));
                m.FreePage(local);
            });
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Zonelists_go_through_the_own_nodes_zones_then_the_other_node()
    {
        using var m = TwoNode();
        string Names(int nid, Gfp g) => string.Join(" ", m.Pages.ZonelistFor(nid, g).Select(z => $"{z.Node}:{z.Name}"));
        Assert.Equal("0:DMA32 0:DMA 1:DMA32", Names(0, Gfp.Kernel));
        Assert.Equal("1:DMA32 0:DMA32 0:DMA", Names(1, Gfp.Kernel));
        Assert.Equal("1:DMA32", Names(1, Gfp.Kernel | Gfp.ThisNode));
        Assert.Equal("0:DMA", Names(0, Gfp.Kernel | Gfp.Dma));
        Assert.Equal("0:DMA", Names(1, Gfp.Kernel | Gfp.Dma));
    }

    [Fact]
    public void A_full_node_falls_back_to_its_other_zone_then_to_the_other_node()
    {
        using var m = TwoNode();
        var held = new List<Page>();
        var order = new List<string>();
        OnCpu(m, 0, () =>
        {
            while (true)
            {
                var p = m.AllocPage(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn);
                Assert.False(p.IsNull);
                held.Add(p);
                var z = ZoneOf(m, p);
                string key = $"{z.Node}:{z.Name}";
                if (order.Count == 0 || order[^1] != key) order.Add(key);
                if (z.Node == 1) break;
            }
        });
        // Node 0's DMA32 first, its DMA next (lowmem_reserve leaves it most of its pages), node 1 only then.
        Assert.Equal(["0:DMA32", "0:DMA", "1:DMA32"], order);
        // The page from node 1 is a miss there and a foreign event of node 0's preferred zone (DMA32).
        var dma32n0 = m.Pages.ZonelistFor(0, Gfp.Kernel)[0];
        Assert.True(m.Pages.NumaEventState(dma32n0, NumaStat.Foreign) >= 1);
        Assert.True(NodeEv(m, 1, NumaStat.Miss) >= 1);
        Assert.True(NodeEv(m, 1, NumaStat.Other) >= 1);
        OnCpu(m, 1, () => { foreach (var p in held) m.FreePage(p); });
        m.DrainAllPages();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void ThisNode_fails_on_a_full_node_and_takes_nothing_elsewhere()
    {
        using var m = TwoNode();
        var held = new List<(Page, int)>();
        OnCpu(m, 2, () =>
        {
            for (int order = 9; order >= 0; order--)
                while (m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoRetry | Gfp.NoWarn, order) is { IsNull: false } p)
                {
                    Assert.Equal(1, m.PageToNid(p));
                    held.Add((p, order));
                }
        });
        long node0Free = m.Pages.NodeZones(0).ToArray().Sum(z => z.FreePages);
        OnCpu(m, 0, () =>
        {
            Assert.True(m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoRetry | Gfp.NoWarn, 0).IsNull);
            Assert.True(m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoRetry | Gfp.NoWarn, 2).IsNull);
        });
        Assert.Equal(node0Free, m.Pages.NodeZones(0).ToArray().Sum(z => z.FreePages));
        // Without __GFP_THISNODE the same request falls back to node 0: a miss on node 0, foreign on node 1.
        long foreign = NodeEv(m, 1, NumaStat.Foreign), miss = NodeEv(m, 0, NumaStat.Miss);
        var fb = OnCpu(m, 0, () => m.AllocPagesNode(1, Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn, 0));
        Assert.Equal(0, m.PageToNid(fb));
        Assert.Equal(foreign + 1, NodeEv(m, 1, NumaStat.Foreign));
        Assert.Equal(miss + 1, NodeEv(m, 0, NumaStat.Miss));
        m.FreePage(fb);
        foreach (var (p, o) in held) m.FreePages(p, o);
        m.DrainAllPages();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Zone_statistics_count_hit_miss_local_and_other_per_thread_and_survive_the_thread()
    {
        using var m = TwoNode();
        int n0 = m.Pages.ZonelistFor(0, Gfp.Kernel)[0].Index, n1 = m.Pages.ZonelistFor(1, Gfp.Kernel)[0].Index;
        long hit0 = Ev(m, n0, NumaStat.Hit), local0 = Ev(m, n0, NumaStat.Local), other0 = Ev(m, n0, NumaStat.Other);
        long hit1 = Ev(m, n1, NumaStat.Hit), local1 = Ev(m, n1, NumaStat.Local);
        var pages = new List<Page>();
        // A thread of node 0: 50 local order-0 pages (the fast path) and 5 order-2 blocks (the general path).
        OnCpu(m, 1, () =>
        {
            for (int i = 0; i < 50; i++) pages.Add(m.AllocPage(Gfp.Kernel));
            for (int i = 0; i < 5; i++) m.FreePages(m.AllocPages(Gfp.Kernel, 2), 2);
        });
        // A thread of node 1 asking for node 0's pages: hits there (the preferred node), but other, not local.
        OnCpu(m, 3, () => { for (int i = 0; i < 7; i++) pages.Add(m.AllocPagesNode(0, Gfp.Kernel, 0)); });
        // Another of node 1: its own pages.
        OnCpu(m, 2, () => { for (int i = 0; i < 11; i++) pages.Add(m.AllocPage(Gfp.Kernel)); });
        m.DrainAllPages(); // the threads are gone: their counts fold into the zones
        Assert.Equal(hit0 + 62, Ev(m, n0, NumaStat.Hit));
        Assert.Equal(local0 + 55, Ev(m, n0, NumaStat.Local));
        Assert.Equal(other0 + 7, Ev(m, n0, NumaStat.Other));
        Assert.Equal(hit1 + 11, Ev(m, n1, NumaStat.Hit));
        Assert.Equal(local1 + 11, Ev(m, n1, NumaStat.Local));
        foreach (var p in pages) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_thread_of_a_memoryless_node_counts_hit_and_other_on_the_fast_path()
    {
        // Node 2 has a CPU (3) but no memory: its zonelist starts on a node with memory, so every page is a hit (the
        // preferred zone's node) and other (not the CPU's node), never local, whether the fast path or the general path
        // takes it.
        var p = NumaSlabMachines.Profile("\"cpu_nodes\": [0, 0, 1, 1]", "\"cpu_nodes\": [0, 0, 1, 2], \"memoryless_nodes\": [2]");
        using var m = Machine.Boot(p);
        var first = m.Pages.ZonelistFor(2, Gfp.Kernel)[0];
        long hit = m.Pages.NumaEventState(first, NumaStat.Hit), local = m.Pages.NumaEventState(first, NumaStat.Local);
        long other = m.Pages.NumaEventState(first, NumaStat.Other);
        var pages = OnCpu(m, 3, () =>
        {
            var got = new List<Page>();
            for (int i = 0; i < 300; i++) got.Add(m.AllocPage(Gfp.Kernel));
            // Counted while the thread lives (its own slots) ...
            Assert.Equal(hit + 300, m.Pages.NumaEventState(first, NumaStat.Hit));
            Assert.Equal(other + 300, m.Pages.NumaEventState(first, NumaStat.Other));
            return got;
        });
        Assert.All(pages, pg => Assert.Equal(first.Node, m.PageToNid(pg)));
        m.DrainAllPages(); // ... and after it, folded into the zone
        Assert.Equal(hit + 300, m.Pages.NumaEventState(first, NumaStat.Hit));
        Assert.Equal(other + 300, m.Pages.NumaEventState(first, NumaStat.Other));
        Assert.Equal(local, m.Pages.NumaEventState(first, NumaStat.Local));
        foreach (var pg in pages) m.FreePage(pg);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Without_numa_nothing_is_counted()
    {
        using var m = TestSupport.Small();
        for (int i = 0; i < 10; i++) m.FreePage(m.AllocPage(Gfp.Kernel));
        Assert.All(m.Pages.Zones, z => Assert.Equal(0, m.Pages.NumaEventState(z, NumaStat.Hit)));
        // No room for counts in the threads' blocks either: only the one long the fast path adds to without a test.
        int lists = m.Pages.Zones.Where(z => z.Populated).Sum(z => PerCpuPages.Stride(z)) + PcpThreadCache.BlockHeader;
        Assert.Equal(((lists + 1) & ~1) + sizeof(long) / sizeof(int), m.Pages.ThreadBlockInts);
    }

    [Fact]
    public void A_page_of_node_1_freed_on_node_0_goes_back_to_node_1s_zone()
    {
        using var m = TwoNode();
        var z1 = m.Pages.ZonelistFor(1, Gfp.Kernel | Gfp.ThisNode)[0];
        m.DrainAllPages();
        long before = z1.FreePages;
        var pages = OnCpu(m, 2, () => Enumerable.Range(0, 300).Select(_ => m.AllocPage(Gfp.Kernel)).ToList());
        Assert.All(pages, p => Assert.Equal(1, m.PageToNid(p)));
        OnCpu(m, 0, () =>
        {
            foreach (var p in pages) m.FreePage(p);
            // On the freeing thread's lists for node 1's zone, not node 0's.
            Assert.True(m.Pages.PcpTotal(z1.Index) > 0);
        });
        m.DrainAllPages();
        Assert.Equal(before, z1.FreePages);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Bad_nodes_and_cpus_are_refused_with_nothing_changed()
    {
        using var m = TwoNode();
        string before = TestSupport.State(m);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.AllocPagesNode(2, Gfp.Kernel, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.AllocPagesNode(-2, Gfp.Kernel, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.MigrateToCpu(4));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.MigrateToCpu(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.CpuToNode(4));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.NodeDistance(0, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.VmallocNode(4096, 2));
        Assert.Equal(before, TestSupport.State(m));
        Assert.Equal(20, m.NodeDistance(0, 1));
        TestSupport.AssertConsistent(m);
    }
}
