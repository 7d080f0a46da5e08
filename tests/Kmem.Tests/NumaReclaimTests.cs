// Reclaim per node: filling one node wakes that node's kswapd only, direct reclaim asks NUMA-aware shrinkers for the
// nodes of the zonelist (the others with node 0), and a node whose kswapd keeps failing becomes unreclaimable
// until something is reclaimed there again.
using System.Collections.Concurrent;
using static Kmem.Tests.NumaAllocTests;

namespace Kmem.Tests;

public class NumaReclaimTests
{
    /// <summary>A shrinker over pages a test hoards per node, recording which node each call asked for.</summary>
    private sealed class NodeHoard : Shrinker
    {
        private readonly Machine m;
        private readonly bool numaAware;

        public NodeHoard(Machine machine, bool numaAware) : base("node-hoard")
        {
            m = machine;
            this.numaAware = numaAware;
            NumaAware = numaAware;
        }

        public readonly List<Page>[] Hoard = [[], []];
        public readonly ConcurrentQueue<(int Nid, bool Kswapd)> Asked = new();

        public override long CountObjects(ShrinkControl sc)
        {
            Asked.Enqueue((sc.Nid, sc.Kswapd));
            lock (Hoard) return numaAware ? Hoard[sc.Nid].Count : Hoard[0].Count + Hoard[1].Count;
        }

        public override long ScanObjects(ShrinkControl sc)
        {
            long freed = 0;
            lock (Hoard)
            {
                foreach (var list in numaAware ? [Hoard[sc.Nid]] : Hoard)
                    while (freed < sc.NrToScan && list.Count > 0)
                    {
                        m.FreePage(list[^1]);
                        list.RemoveAt(list.Count - 1);
                        freed++;
                    }
            }
            return freed;
        }
    }

    private const Gfp FillGfp = Gfp.Kernel | Gfp.ThisNode | Gfp.NoRetry | Gfp.NoWarn;

    /// <summary>Takes every page node 1 gives to __GFP_THISNODE requests (order 9 down to 0).</summary>
    private static List<(Page Page, int Order)> FillNode1(Machine m) => OnCpu(m, 2, () =>
    {
        var held = new List<(Page, int)>();
        for (int order = 9; order >= 0; order--)
            while (m.AllocPagesNode(1, FillGfp, order) is { IsNull: false } p) held.Add((p, order));
        return held;
    });

    /// <summary>Hands node 1's order-0 pages of <paramref name="held"/> to a registered node hoard (they leave the list).</summary>
    private static NodeHoard HoardOrder0(Machine m, List<(Page Page, int Order)> held, bool numaAware)
    {
        var s = new NodeHoard(m, numaAware);
        lock (s.Hoard) s.Hoard[1].AddRange(held.Where(h => h.Order == 0).Select(h => h.Page));
        held.RemoveAll(h => h.Order == 0);
        m.RegisterShrinker(s);
        return s;
    }

    /// <summary>Unregisters the hoard and frees everything the test holds, then checks the machine.</summary>
    private static void GiveBack(Machine m, NodeHoard s, Page p, List<(Page Page, int Order)> held)
    {
        m.UnregisterShrinker(s);
        m.FreePage(p);
        lock (s.Hoard) foreach (var q in s.Hoard[1]) m.FreePage(q);
        foreach (var (q, o) in held) m.FreePages(q, o);
        m.DrainAllPages();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Filling_node_1_wakes_kswapd1_only_and_direct_reclaim_asks_node_1()
    {
        using var m = TwoNode();
        long w0 = m.Pages.Nodes[0].KswapdWakeups, w1 = m.Pages.Nodes[1].KswapdWakeups;
        var held = FillNode1(m);
        Assert.True(m.Pages.Nodes[1].KswapdWakeups > w1);
        Assert.Equal(w0, m.Pages.Nodes[0].KswapdWakeups);
        // Give node 1's order-0 pages to a NUMA-aware shrinker, then ask node 1 again with direct reclaim allowed.
        var s = HoardOrder0(m, held, numaAware: true);
        var p = OnCpu(m, 0, () => m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoWarn, 0));
        Assert.False(p.IsNull);
        Assert.Equal(1, m.PageToNid(p));
        Assert.Contains(s.Asked, a => a is { Nid: 1, Kswapd: false });
        Assert.DoesNotContain(s.Asked, a => a.Nid == 0);
        Assert.Equal(w0, m.Pages.Nodes[0].KswapdWakeups);
        GiveBack(m, s, p, held);
    }

    [Fact]
    public void A_shrinker_that_is_not_numa_aware_is_asked_with_node_0()
    {
        using var m = TwoNode();
        var held = FillNode1(m);
        var s = HoardOrder0(m, held, numaAware: false);
        var p = OnCpu(m, 2, () => m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoWarn, 0));
        Assert.False(p.IsNull);
        Assert.NotEmpty(s.Asked);
        Assert.All(s.Asked, a => Assert.Equal(0, a.Nid));
        GiveBack(m, s, p, held);
    }

    [Fact]
    public void A_node_whose_kswapd_keeps_failing_becomes_unreclaimable_until_reclaim_helps()
    {
        using var m = TwoNode();
        var held = FillNode1(m);
        var until = DateTime.UtcNow.AddSeconds(20);
        while (!m.Pages.NodeUnreclaimable(1) && DateTime.UtcNow < until)
        {
            OnCpu(m, 2, () => Assert.True(m.AllocPagesNode(1, FillGfp, 0).IsNull));
            Thread.Sleep(2);
        }
        Assert.True(m.Pages.NodeUnreclaimable(1));
        Assert.False(m.Pages.NodeUnreclaimable(0));
        long wakeups = m.Pages.Nodes[1].KswapdWakeups;
        OnCpu(m, 2, () => Assert.True(m.AllocPagesNode(1, FillGfp, 0).IsNull));
        Assert.Equal(wakeups, m.Pages.Nodes[1].KswapdWakeups); // a hopeless node's kswapd is not woken
        // Direct reclaim that frees something on node 1 makes it reclaimable again (shrink_node() resets the count).
        var s = HoardOrder0(m, held, numaAware: true);
        var p = OnCpu(m, 2, () => m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoWarn, 0));
        Assert.False(p.IsNull);
        Assert.False(m.Pages.NodeUnreclaimable(1));
        GiveBack(m, s, p, held);
    }
}
