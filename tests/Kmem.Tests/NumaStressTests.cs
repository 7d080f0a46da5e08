// Two-node stress and model checks: threads of both nodes allocating local and remote pages, freeing each other's
// pages across nodes while DrainAllPages runs, with every counter checked at the end; and a randomized run against
// a reference model of which node each allocation lands on (and what zone_statistics() counts for it).
using System.Collections.Concurrent;
using Kmem.Paging;
using static Kmem.Tests.NumaAllocTests;

namespace Kmem.Tests;

public class NumaStressTests
{
    private static long Sum(Machine m, NumaStat s) => Enumerable.Range(0, m.NodeCount).Sum(n => m.Pages.NodeNumaEventState(n, s));

    [Fact]
    public void Two_nodes_of_threads_with_cross_node_frees_and_drains_keep_every_count()
    {
        using var m = TwoNode();
        m.DrainAllPages();
        var before = m.Pages.Zones.Select(z => z.FreePages).ToArray();
        long hit = Sum(m, NumaStat.Hit), miss = Sum(m, NumaStat.Miss), foreign = Sum(m, NumaStat.Foreign);
        long local = Sum(m, NumaStat.Local), other = Sum(m, NumaStat.Other);
        var shared = new ConcurrentQueue<(Page Page, int Order)>();
        long allocations = 0;
        int running = 4;
        var errors = new ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, 4).Select(cpu => new Thread(() =>
        {
            try
            {
                m.MigrateToCpu(cpu);
                var rng = new Random(cpu * 7919 + 1);
                var mine = new List<(Page Page, int Order)>();
                for (int i = 0; i < 20000; i++)
                {
                    int op = rng.Next(10);
                    if (op < 4)
                    {
                        var p = m.AllocPage(Gfp.Kernel);
                        Assert.Equal(m.CpuToNode(cpu), m.PageToNid(p));
                        mine.Add((p, 0));
                        Interlocked.Increment(ref allocations);
                    }
                    else if (op < 6)
                    {
                        int nid = rng.Next(2), order = rng.Next(3);
                        var p = m.AllocPagesNode(nid, Gfp.Kernel, order);
                        Assert.Equal(nid, m.PageToNid(p));
                        if (rng.Next(2) == 0) mine.Add((p, order)); else shared.Enqueue((p, order));
                        Interlocked.Increment(ref allocations);
                    }
                    else if (op < 8 && mine.Count > 0)
                    {
                        int k = rng.Next(mine.Count);
                        var (p, o) = mine[k];
                        mine[k] = mine[^1];
                        mine.RemoveAt(mine.Count - 1);
                        if (rng.Next(2) == 0) m.FreePages(p, o); else shared.Enqueue((p, o));
                    }
                    else if (shared.TryDequeue(out var q)) m.FreePages(q.Page, q.Order);
                }
                foreach (var (p, o) in mine) m.FreePages(p, o);
            }
            catch (Exception e) { errors.Enqueue(e); }
            finally { Interlocked.Decrement(ref running); }
        })).ToList();
        var drainer = new Thread(() =>
        {
            while (Volatile.Read(ref running) > 0) { m.DrainAllPages(); Thread.Sleep(1); }
        });
        workers.ForEach(t => t.Start());
        drainer.Start();
        workers.ForEach(t => t.Join());
        drainer.Join();
        Assert.Empty(errors);
        while (shared.TryDequeue(out var q)) m.FreePages(q.Page, q.Order);
        m.DrainAllPages();
        TestSupport.AssertConsistent(m);
        Assert.Equal(before, m.Pages.Zones.Select(z => z.FreePages).ToArray());
        // Every allocation counted once as a hit or a miss, once as local or other; each miss has its foreign event.
        long h = Sum(m, NumaStat.Hit) - hit, mi = Sum(m, NumaStat.Miss) - miss;
        Assert.Equal(allocations, h + mi);
        Assert.Equal(allocations, Sum(m, NumaStat.Local) - local + Sum(m, NumaStat.Other) - other);
        Assert.Equal(mi, Sum(m, NumaStat.Foreign) - foreign);
        Assert.Equal(0, mi); // nothing was short of memory: every page came from the node asked
    }

    private enum Kind { Default, Node, ThisNode, Preferred, Bind, Interleave }

    [Fact]
    public void Random_allocations_land_where_a_reference_model_says()
    {
        using var m = TwoNode();
        var rng = new Random(20261206);
        var hits = new long[2]; var local = new long[2]; var other = new long[2]; var il = new long[2];
        long[] Now(NumaStat s) => [m.Pages.NodeNumaEventState(0, s), m.Pages.NodeNumaEventState(1, s)];
        var (h0, l0, o0, i0) = (Now(NumaStat.Hit), Now(NumaStat.Local), Now(NumaStat.Other), Now(NumaStat.Interleave));
        OnCpu(m, 0, () =>
        {
            var held = new List<(Page, int)>();
            bool interleaved = false;
            int cursor = -1; // the model's il_prev: -1 right after set_mempolicy() (the next node is the set's first)
            int NextInterleave() => cursor = cursor == 0 ? 1 : 0;
            for (int i = 0; i < 3000; i++)
            {
                int cpu = rng.Next(4);
                m.MigrateToCpu(cpu);
                int here = m.CpuToNode(cpu);
                var kind = (Kind)rng.Next(6);
                int n = rng.Next(2), order = rng.Next(4);
                if (interleaved && kind is Kind.Preferred or Kind.Bind)
                {
                    m.SetMempolicy(MemPolicyMode.Default);
                    interleaved = false;
                }
                int want;
                Page p;
                switch (kind)
                {
                    // alloc_pages_node() and __GFP_THISNODE ignore the policy and leave the interleave cursor alone.
                    case Kind.Node: want = n; p = m.AllocPagesNode(n, Gfp.Kernel, order); break;
                    case Kind.ThisNode: want = n; p = m.AllocPagesNode(n, Gfp.Kernel | Gfp.ThisNode, order); break;
                    case Kind.Preferred:
                        m.SetMempolicy(MemPolicyMode.Preferred, n); want = n; p = m.AllocPages(Gfp.Kernel, order); m.SetMempolicy(MemPolicyMode.Default); break;
                    case Kind.Bind:
                        m.SetMempolicy(MemPolicyMode.Bind, n); want = n; p = m.AllocPages(Gfp.Kernel, order); m.SetMempolicy(MemPolicyMode.Default); break;
                    case Kind.Interleave or Kind.Default when kind == Kind.Interleave || interleaved:
                        if (!interleaved || rng.Next(4) == 0)
                        {
                            m.SetMempolicy(MemPolicyMode.Interleave, 0, 1); // restarts the cursor
                            interleaved = true;
                            cursor = -1;
                        }
                        want = NextInterleave();
                        p = m.AllocPages(Gfp.Kernel, order);
                        il[want]++;
                        break;
                    default: want = here; p = m.AllocPages(Gfp.Kernel, order); break;
                }
                Assert.Equal(want, m.PageToNid(p));
                hits[want]++;
                if (want == here) local[want]++; else other[want]++;
                held.Add((p, order));
                if (held.Count > 200 || rng.Next(3) == 0)
                {
                    int k = rng.Next(held.Count);
                    m.FreePages(held[k].Item1, held[k].Item2);
                    held.RemoveAt(k);
                }
            }
            foreach (var (p, o) in held) m.FreePages(p, o);
        });
        m.DrainAllPages();
        for (int n = 0; n < 2; n++)
        {
            Assert.Equal(h0[n] + hits[n], m.Pages.NodeNumaEventState(n, NumaStat.Hit));
            Assert.Equal(l0[n] + local[n], m.Pages.NodeNumaEventState(n, NumaStat.Local));
            Assert.Equal(o0[n] + other[n], m.Pages.NodeNumaEventState(n, NumaStat.Other));
            Assert.Equal(i0[n] + il[n], m.Pages.NodeNumaEventState(n, NumaStat.Interleave));
        }
        TestSupport.AssertConsistent(m);
    }
}
