// SLUB per node on a small two-node x86_64 machine: objects of a thread come from its node's slabs,
// kmalloc_node()/kmem_cache_alloc_node() on each node (large kmalloc included), the CPU slab given up on a
// node mismatch, cross-node frees landing on the slab's own node's partial list, get_any_partial() taking
// another node's partial slabs when the local node is full (and never with remote_node_defrag_ratio 0), a
// node without memory treated as no node, and bad node numbers refused with nothing changed.
using System.Runtime.ExceptionServices;

namespace Kmem.Tests;

/// <summary>Small NUMA machines and a way to run code on a CPU of a chosen node.</summary>
internal static class NumaSlabMachines
{
    /// <summary>
    /// x86_64 on 6.6 with CONFIG_NUMA: node 0 = the first 128 MiB (DMA and DMA32, the kernel image), node 1 = the next
    /// 128 MiB (DMA32); CPUs 0 and 1 on node 0, 2 and 3 on node 1.
    /// </summary>
    public const string Json = """
    {
      "name": "numa2-small", "arch": "x86_64", "cpus": 4, "cpu_nodes": [0, 0, 1, 1],
      "cache_line_size": 64, "kmalloc_min_align": 8, "version": "6.6",
      "config": { "NUMA": true },
      "dram": [
        { "base": "0x1000", "size": "0x9e000", "node": 0 },
        { "base": "0x100000", "size": "0x7f00000", "node": 0 },
        { "base": "0x8000000", "size": "0x8000000", "node": 1 }
      ],
      "kernel": { "base": "0x1000000", "code": "4M", "rwdata": "1M", "rodata": "1M", "init": "512K", "bss": "512K" }
    }
    """;

    public static MachineProfile Profile(string? replace = null, string? with = null) =>
        MachineProfile.Parse(replace is null ? Json : Json.Replace(replace, with));

    public static Machine Boot()
    {
        var m = Machine.Boot(Profile());
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    /// <summary>Runs <paramref name="f"/> on a new thread that runs as profile CPU <paramref name="cpu"/>.</summary>
    public static T OnCpu<T>(Machine m, int cpu, Func<T> f)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var t = new Thread(() =>
        {
            try
            {
                m.MigrateToCpu(cpu);
                result = f();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        });
        t.Start();
        t.Join();
        error?.Throw();
        return result;
    }

    public static void OnCpu(Machine m, int cpu, Action a) => OnCpu(m, cpu, () => { a(); return 0; });

    /// <summary>The node whose memory holds the object (page_to_nid(virt_to_page(obj))).</summary>
    public static int Nid(Machine m, nint obj) => m.PageToNid(m.VirtToPage(obj));
}

public sealed class NumaSlabTests
{
    private static int Nid(Machine m, nint p) => NumaSlabMachines.Nid(m, p);

    [Fact]
    public void Objects_of_a_thread_come_from_slabs_of_its_node()
    {
        using var m = NumaSlabMachines.Boot();
        Assert.Equal(2, m.NodeCount);
        var cache = m.KmemCacheCreate("numa_obj", 200, flags: SlabFlags.NoMerge);
        foreach (int cpu in new[] { 0, 1, 2, 3 })
        {
            int node = m.CpuToNode(cpu);
            var (objs, bufs) = NumaSlabMachines.OnCpu(m, cpu, () =>
            {
                Assert.Equal(node, m.NumaNodeId);
                var o = Enumerable.Range(0, 100).Select(_ => cache.Alloc(Gfp.Kernel)).ToArray();
                var b = Enumerable.Range(0, 100).Select(i => m.Kmalloc(8 + i * 40, Gfp.Kernel)).ToArray();
                return (o, b);
            });
            Assert.All(objs, p => Assert.Equal(node, Nid(m, p)));
            Assert.All(bufs, p => Assert.Equal(node, Nid(m, p)));
            foreach (nint p in objs) cache.Free(p);
            foreach (nint p in bufs) m.Kfree(p);
        }
        // Each node's counters hold the node's slabs only.
        var root = cache.Root;
        Assert.True(root.NodeSlabs(0) > 0 && root.NodeSlabs(1) > 0);
        Assert.Equal(cache.Slabs, root.NodeSlabs(0) + root.NodeSlabs(1));
        Assert.Equal(0, cache.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void KmallocNode_and_KmemCacheAllocNode_allocate_on_the_node_asked_for(int cpu)
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_node_obj", 96, flags: SlabFlags.NoMerge);
        var typed = m.KmemCacheCreate<Guid>("numa_typed");
        NumaSlabMachines.OnCpu(m, cpu, () =>
        {
            // NUMA_NO_NODE first: the thread has no CPU slab of the new cache yet, so its first object is node-local. (Later,
            // NUMA_NO_NODE matches whatever CPU slab the thread holds, of any node, as node_match() does.)
            nint local = cache.AllocNode(Gfp.Kernel, Machine.NumaNoNode);
            Assert.Equal(m.NumaNodeId, Nid(m, local));
            cache.Free(local);
            foreach (int node in new[] { 0, 1, 1, 0 })
            {
                int want = node;
                var small = Enumerable.Range(0, 50).Select(_ => m.KmallocNode(64, Gfp.Kernel, node)).ToArray();
                nint mid = m.KmallocNode(3000, Gfp.Kernel | Gfp.Zero, node);
                nint large = m.KmallocNode(100_000, Gfp.Kernel, node);       // kmalloc_large_node(): pages of that node
                nint obj = m.KmemCacheAllocNode(cache, Gfp.Kernel, node);
                nint obj2 = cache.AllocNode(Gfp.Kernel, node);
                unsafe
                {
                    Guid* g = typed.AllocNode(Gfp.Kernel, node);
                    Assert.Equal(want, Nid(m, (nint)g));
                    typed.Free(g);
                }
                Assert.All(small, p => Assert.Equal(want, Nid(m, p)));
                Assert.All(new[] { mid, large, obj, obj2 }, p => Assert.Equal(want, Nid(m, p)));
                Assert.Equal((nuint)4096, m.Ksize(mid));
                Assert.Equal((nuint)(128 * 1024), m.Ksize(large));
                foreach (nint p in small) m.Kfree(p);
                m.Kfree(mid);
                m.Kfree(large);
                cache.Free(obj);
                cache.Free(obj2);
            }
        });
        Assert.Equal(0, cache.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_cpu_slab_of_another_node_is_deactivated_on_a_node_mismatch()
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_mismatch", 128, flags: SlabFlags.NoMerge);
        NumaSlabMachines.OnCpu(m, 0, () =>
        {
            nint a = cache.Alloc(Gfp.Kernel);                          // the CPU slab is node 0's
            Assert.Equal(0, Nid(m, a));
            long before = cache.Root.NodeMismatches;
            nint b = cache.AllocNode(Gfp.Kernel, 1);                    // node_match() fails: deactivate, take a node-1 slab
            Assert.Equal(1, Nid(m, b));
            Assert.Equal(before + 1, cache.Root.NodeMismatches);
            // The node-0 slab went back to node 0's partial list (it still has free objects).
            Assert.Equal(1, cache.Root.NodePartial(0));
            Assert.Equal(0, cache.Root.NodePartial(1));
            // An allocation without a node matches any CPU slab: it now comes from node 1's.
            nint c = cache.Alloc(Gfp.Kernel);
            Assert.Equal(1, Nid(m, c));
            // Asking for node 1 again is the fast path: no further mismatch.
            nint d = cache.AllocNode(Gfp.Kernel, 1);
            Assert.Equal(1, Nid(m, d));
            Assert.Equal(before + 1, cache.Root.NodeMismatches);
            // Back to node 0: its partial slab is taken again (get_partial() of the node asked for).
            long slabs = cache.Slabs;
            nint e = cache.AllocNode(Gfp.Kernel, 0);
            Assert.Equal(0, Nid(m, e));
            Assert.Equal(slabs, cache.Slabs);
            Assert.Equal(0, cache.Root.NodePartial(0));
            foreach (nint p in new[] { a, b, c, d, e }) cache.Free(p);
        });
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Cross_node_frees_land_on_the_partial_list_of_the_slabs_node()
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_xfree", 256, flags: SlabFlags.NoMerge);
        int perSlab = cache.ObjectsPerSlab;
        // A node-1 thread fills 6 slabs completely; a node-0 thread frees half of each slab's objects.
        var objs = NumaSlabMachines.OnCpu(m, 3, () => Enumerable.Range(0, perSlab * 6).Select(_ => cache.Alloc(Gfp.Kernel)).ToArray());
        Assert.All(objs, p => Assert.Equal(1, Nid(m, p)));
        NumaSlabMachines.OnCpu(m, 1, () =>
        {
            Assert.Equal(0, m.NumaNodeId);
            for (int i = 0; i < objs.Length; i += 2) cache.Free(objs[i]);
        });
        NumaSlabMachines.OnCpu(m, 0, () => cache.Shrink());                  // flush_all(): every thread's slabs go home
        var root = cache.Root;
        Assert.Equal(0, root.NodePartial(0));
        Assert.Equal(0, root.NodeSlabs(0));
        Assert.True(root.NodePartial(1) >= 6, $"node 1 has {root.NodePartial(1)} partial slabs");
        Assert.Equal($"{root.NodePartial(1)} N1={root.NodePartial(1)}\n", m.ProcFs.Read("/sys/kernel/slab/numa_xfree/partial"));
        TestSupport.AssertConsistent(m);
        // The rest freed from a node-0 thread too: the empty slabs go back to node 1's memory.
        NumaSlabMachines.OnCpu(m, 0, () => { for (int i = 1; i < objs.Length; i += 2) cache.Free(objs[i]); });
        cache.Shrink();
        Assert.Equal(0, cache.Slabs);
        Assert.Equal(0, cache.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    /// <summary>Takes every page of node 1 that GFP_KERNEL|__GFP_THISNODE can get (down to the min watermark); returns them.</summary>
    private static List<(Page Page, int Order)> FillNode1(Machine m) => NumaSlabMachines.OnCpu(m, 2, () =>
    {
        var held = new List<(Page, int)>();
        for (int order = 10; order >= 0; order--)
            while (true)
            {
                var p = m.AllocPagesNode(1, Gfp.NoWait | Gfp.ThisNode | Gfp.NoWarn, order);
                if (p.IsNull) break;
                Assert.Equal(1, m.PageToNid(p));
                held.Add((p, order));
            }
        return held;
    });

    [Fact]
    public void Get_any_partial_takes_partial_slabs_of_another_node_when_the_local_node_is_full()
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_anyp", 512, flags: SlabFlags.NoMerge);
        var root = cache.Root;
        int perSlab = cache.ObjectsPerSlab;
        // Node 0 gets 10 partial slabs (more than min_partial 5): full slabs with one object freed in each.
        var objs = NumaSlabMachines.OnCpu(m, 0, () => Enumerable.Range(0, perSlab * 10).Select(_ => cache.Alloc(Gfp.Kernel)).ToList());
        NumaSlabMachines.OnCpu(m, 0, () => { for (int i = 0; i < objs.Count; i += perSlab) cache.Free(objs[i]); });
        cache.Shrink();
        Assert.True(root.NodePartial(0) > 5, $"node 0 has {root.NodePartial(0)} partial slabs");
        var held = FillNode1(m);
        Assert.NotEmpty(held);

        // remote_node_defrag_ratio 0: never another node's partial slab; the new slab falls back to node 0's memory.
        cache.RemoteNodeDefragRatio = 0;
        Assert.Equal("0\n", m.ProcFs.Read("/sys/kernel/slab/numa_anyp/remote_node_defrag_ratio"));
        // (Node 1's kswapd, woken by the filling, may flush threads' CPU slabs onto the partial lists meanwhile: the
        // checks below do not depend on when.)
        long slabs = cache.Slabs, taken = root.RemotePartialTaken;
        nint x = NumaSlabMachines.OnCpu(m, 2, () => cache.Alloc(Gfp.Kernel));
        Assert.Equal(0, Nid(m, x));
        Assert.Equal(slabs + 1, cache.Slabs);
        Assert.Equal(taken, root.RemotePartialTaken);
        objs.Add(x);

        // The default ratio (100 → 1000 of 1024): get_any_partial() takes node 0's partial slabs. The kernel skips it
        // when get_cycles() % 1024 lands above 1000, so a few tries (each a new thread with no CPU slab) may be needed.
        cache.RemoteNodeDefragRatio = 100;
        Assert.Equal("100\n", m.ProcFs.Read("/sys/kernel/slab/numa_anyp/remote_node_defrag_ratio"));
        for (int attempt = 0; attempt < 20 && root.RemotePartialTaken == taken; attempt++)
        {
            nint y = NumaSlabMachines.OnCpu(m, 3, () => cache.Alloc(Gfp.Kernel));
            Assert.Equal(0, Nid(m, y));
            objs.Add(y);
        }
        Assert.Equal(taken + 1, root.RemotePartialTaken);

        // A request for node 1 never takes node 0's partial slabs: new_slab(node 1) falls back to node 0's memory.
        taken = root.RemotePartialTaken;
        nint z = NumaSlabMachines.OnCpu(m, 2, () => cache.AllocNode(Gfp.Kernel, 1));
        Assert.Equal(0, Nid(m, z));
        Assert.Equal(taken, root.RemotePartialTaken);
        objs.Add(z);

        foreach (var (p, order) in held) m.FreePages(p, order);
        foreach (nint p in objs) if (p != 0) { try { cache.Free(p); } catch (SlabException) { } }
        cache.Shrink();
        Assert.Equal(0, cache.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_debug_cache_on_a_full_node_takes_its_object_from_the_one_new_slab_on_the_other_node()
    {
        // alloc_single_from_new_slab(): the new slab (on node 0, as node 1 is full) serves the request; nothing searches
        // node 1 again and makes slab after slab.
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_debug", 256, flags: SlabFlags.NoMerge | SlabFlags.ConsistencyChecks | SlabFlags.RedZone);
        var held = FillNode1(m);
        var objs = new List<nint>();
        foreach (int node in new[] { 1, Machine.NumaNoNode })
        {
            if (node < 0) cache.RemoteNodeDefragRatio = 0;
            long slabs = cache.Slabs;
            nint o = NumaSlabMachines.OnCpu(m, 2, () => node < 0 ? cache.Alloc(Gfp.Kernel) : cache.AllocNode(Gfp.Kernel, node));
            Assert.NotEqual(0, o);
            Assert.Equal(0, Nid(m, o));
            Assert.Equal(slabs + 1, cache.Slabs);
            objs.Add(o);
        }
        foreach (nint o in objs) cache.Free(o);
        foreach (var (p, order) in held) m.FreePages(p, order);
        cache.Shrink();
        Assert.Equal(0, cache.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_node_without_memory_is_no_constraint()
    {
        // Node 2 has a CPU but no memory (memoryless_nodes): it has no kmem_cache_node, and a request for it is NUMA_NO_NODE.
        var p = NumaSlabMachines.Profile("\"cpu_nodes\": [0, 0, 1, 1]", "\"cpu_nodes\": [0, 0, 1, 2], \"memoryless_nodes\": [2]");
        using var m = Machine.Boot(p);
        Assert.Equal(3, m.NodeCount);
        Assert.Contains("Nodes=3", m.Dmesg());
        var cache = m.KmemCacheCreate("numa_ml", 64, flags: SlabFlags.NoMerge);
        NumaSlabMachines.OnCpu(m, 3, () =>
        {
            Assert.Equal(2, m.NumaNodeId);
            nint a = m.KmallocNode(64, Gfp.Kernel, 2);
            nint b = cache.AllocNode(Gfp.Kernel, 2);
            nint c = cache.Alloc(Gfp.Kernel);
            // numa_mem_id() of node 2 is the first node of its zonelist; every object is of a node with memory.
            Assert.All(new[] { a, b, c }, x => Assert.InRange(Nid(m, x), 0, 1));
            Assert.Equal(Nid(m, b), Nid(m, c));
            Assert.Equal(0, cache.Root.NodeMismatches);
            m.Kfree(a);
            cache.Free(b);
            cache.Free(c);
        });
        Assert.Equal(0, cache.Root.NodeSlabs(2));
        // kmem_cache_node holds one structure per cache per node with memory: nodes 0 and 1 only.
        Assert.Equal(2 * m.SlabCaches.Count, m.FindSlabCache("kmem_cache_node")!.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_bad_node_is_refused_and_nothing_changes()
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_bad", 64, flags: SlabFlags.NoMerge);
        string State() => TestSupport.State(m) + m.ProcFs.Read("/proc/slabinfo") + cache.ObjectsInUse;
        string before = State();
        foreach (int node in new[] { 2, -2, 64, int.MinValue })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => m.KmallocNode(64, Gfp.Kernel, node));
            Assert.Contains($"kmalloc_node: node {node} is not online (the machine has 2 nodes", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => m.KmallocNode(100_000, Gfp.Kernel, node));
            Assert.Throws<ArgumentOutOfRangeException>(() => m.KmallocNode((nuint)0, Gfp.Kernel, node));
            e = Assert.Throws<ArgumentOutOfRangeException>(() => m.KmemCacheAllocNode(cache, Gfp.Kernel, node));
            Assert.Contains($"kmem_cache_alloc_node: node {node} is not online", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => cache.AllocNode(Gfp.Kernel, node));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.RemoteNodeDefragRatio = 101);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.RemoteNodeDefragRatio = -1);
        Assert.Equal(100, cache.RemoteNodeDefragRatio);
        Assert.Throws<ArgumentNullException>(() => m.KmemCacheAllocNode(null!, Gfp.Kernel, 0));
        using (var other = NumaSlabMachines.Boot())
            Assert.Throws<ArgumentException>(() => other.KmemCacheAllocNode(cache, Gfp.Kernel, 0));
        Assert.Equal(before, State());
        TestSupport.AssertConsistent(m);

        // A one-node machine has node 0 only.
        using var one = Machine.Boot("x86_64");
        Assert.Throws<ArgumentOutOfRangeException>(() => one.KmallocNode(64, Gfp.Kernel, 1));
        nint p = one.KmallocNode(64, Gfp.Kernel, 0);
        Assert.Equal(0, one.PageToNid(one.VirtToPage(p)));
        one.Kfree(p);
    }
}
