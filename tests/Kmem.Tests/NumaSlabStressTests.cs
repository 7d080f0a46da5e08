// A two-node slab stress: one thread per CPU (two per node) allocates with kmalloc, kmalloc_node and a cache's
// alloc_node, hands half of its objects to a thread of the other node to free (cross-thread, cross-node frees
// through the detached freelists and __slab_free()), while another thread shrinks the caches. At the end every
// object is freed, every slab is on its own node's lists and every counter agrees with the memory.
using System.Collections.Concurrent;

namespace Kmem.Tests;

public sealed class NumaSlabStressTests
{
    [Fact]
    public async Task Two_nodes_with_cross_node_frees_and_shrinks_stay_consistent()
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_stress", 176, flags: SlabFlags.NoMerge);
        var sheafed = m.KmemCacheCreate("numa_stress_sheaf", 64, sheafCapacity: 32);
        long kmalloc64Before = m.FindSlabCache("kmalloc-64")!.ObjectsInUse;
        // Objects waiting to be freed by a thread of the other node: inbox[node].
        var inbox = new[] { new ConcurrentQueue<(nint P, int Kind, int Node)>(), new ConcurrentQueue<(nint, int, int)>() };
        using var stop = new CancellationTokenSource();
        int wrongNode = 0;
        const int Rounds = 3000;
        var running = new int[1];
        running[0] = 4;

        void Free((nint P, int Kind, int Node) o)
        {
            switch (o.Kind)
            {
                case 0: m.Kfree(o.P); break;
                case 1: cache.Free(o.P); break;
                default: sheafed.Free(o.P); break;
            }
        }

        var workers = Enumerable.Range(0, 4).Select(cpu => Task.Factory.StartNew(() =>
        {
            m.MigrateToCpu(cpu);
            int me = m.NumaNodeId, other = 1 - me;
            var rnd = new Random(cpu * 7919 + 1);
            var mine = new List<(nint, int, int)>();
            for (int i = 0; i < Rounds; i++)
            {
                int kind = rnd.Next(3);
                int node = rnd.Next(3) - 1;                                   // -1 (no node), 0 or 1
                nint p = kind switch
                {
                    0 => node < 0 ? m.Kmalloc(64, Gfp.Kernel) : m.KmallocNode(64, Gfp.Kernel, node),
                    1 => node < 0 ? cache.Alloc(Gfp.Kernel) : cache.AllocNode(Gfp.Kernel, node),
                    _ => node < 0 ? sheafed.Alloc(Gfp.Kernel) : sheafed.AllocNode(Gfp.Kernel, node),
                };
                Assert.NotEqual(0, p);
                // Memory is plentiful: an object asked for on a node must come from that node.
                if (node >= 0 && NumaSlabMachines.Nid(m, p) != node) Interlocked.Increment(ref wrongNode);
                if (rnd.Next(2) == 0) inbox[other].Enqueue((p, kind, node));
                else mine.Add((p, kind, node));
                if (mine.Count > 64) { Free(mine[0]); mine.RemoveAt(0); }
                while (inbox[me].TryDequeue(out var o)) Free(o);
            }
            foreach (var o in mine) Free(o);
            Interlocked.Decrement(ref running[0]);
            // Keep draining what the other node's threads still send.
            while (Volatile.Read(ref running[0]) > 0 || !inbox[me].IsEmpty)
                while (inbox[me].TryDequeue(out var o)) Free(o);
        }, TaskCreationOptions.LongRunning)).ToArray();
        var shrinker = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                cache.Shrink();
                m.ShrinkSlabs();
                Thread.Sleep(1);
            }
        });
        await Task.WhenAll(workers);
        stop.Cancel();
        await shrinker;
        foreach (var q in inbox) while (q.TryDequeue(out var o)) Free(o);
        Assert.Equal(0, wrongNode);
        Assert.Equal(0, cache.ObjectsInUse);
        Assert.Equal(0, sheafed.ObjectsInUse);
        Assert.Equal(kmalloc64Before, m.FindSlabCache("kmalloc-64")!.ObjectsInUse);
        cache.Shrink();
        Assert.Equal(0, cache.Slabs);
        TestSupport.AssertConsistent(m);
        cache.Destroy();
        sheafed.Destroy();
    }
}
