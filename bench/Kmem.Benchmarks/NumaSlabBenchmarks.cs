// Slab pairs on the two-node x86_64-numa2 board: 64-byte kmalloc from a thread of node 0, plain (the thread's own
// node), with kmalloc_node() for node 0 (local) and for node 1 (remote), next to the same kmem_cache pair.
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// Alloc+free pairs of 64-byte objects on a two-node machine, from the benchmark thread running as CPU 0 (node 0).
/// Each operation allocates one object, writes one byte into it and frees it. The local rows take objects of node 0's
/// slabs; the remote rows ask for node 1 (<c>kmalloc_node(64, GFP_KERNEL, 1)</c>): after the first call the thread's
/// CPU slab is node 1's and both halves stay on the fast path (kmem_cache_alloc_node's node_match() and the free of
/// an object of the CPU slab). Kmem's memory is the host's, so "remote" costs no extra memory latency here: the rows
/// show the cost of the node-aware paths, not of a NUMA interconnect. Figures are per pair.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public unsafe class NumaSlabPairBenchmarks
{
    private const int Pairs = 1024;
    private const int Size = 64;

    private Machine _machine = null!;
    private SlabCache _cache = null!;

    /// <summary>Boots x86_64-numa2, runs the benchmark thread as CPU 0 and creates the unmerged 64-byte cache <c>bench64</c>.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("x86_64-numa2");
        _machine.MigrateToCpu(0);
        if (_machine.NumaNodeId != 0) throw new InvalidOperationException("the benchmark thread is not on node 0");
        _cache = _machine.KmemCacheCreate("bench64", Size, 0, SlabFlags.NoMerge);
    }

    /// <summary>Destroys the cache and shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Destroy();
        _machine.Dispose();
    }

    /// <summary><c>kmalloc(64, GFP_KERNEL)</c> + <c>kfree</c> on node 0's thread (its node's slabs).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void NumaKmallocKfree()
    {
        var m = _machine;
        for (int i = 0; i < Pairs; i++)
        {
            nint p = m.Kmalloc(Size, Gfp.Kernel);
            if (p == 0) Fail.NoMemory("Kmalloc");
            *(byte*)p = 1;
            m.Kfree(p);
        }
    }

    /// <summary><c>kmalloc_node(64, GFP_KERNEL, 0)</c> + <c>kfree</c> on node 0's thread (local).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmallocNodeLocal()
    {
        var m = _machine;
        for (int i = 0; i < Pairs; i++)
        {
            nint p = m.KmallocNode(Size, Gfp.Kernel, 0);
            if (p == 0) Fail.NoMemory("KmallocNode");
            *(byte*)p = 1;
            m.Kfree(p);
        }
    }

    /// <summary><c>kmalloc_node(64, GFP_KERNEL, 1)</c> + <c>kfree</c> on node 0's thread (remote).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmallocNodeRemote()
    {
        var m = _machine;
        for (int i = 0; i < Pairs; i++)
        {
            nint p = m.KmallocNode(Size, Gfp.Kernel, 1);
            if (p == 0) Fail.NoMemory("KmallocNode");
            *(byte*)p = 1;
            m.Kfree(p);
        }
    }

    /// <summary><c>kmem_cache_alloc_node(bench64, GFP_KERNEL, 0)</c> + <c>kmem_cache_free</c> (local).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void CacheAllocNodeLocal()
    {
        var c = _cache;
        for (int i = 0; i < Pairs; i++)
        {
            nint o = c.AllocNode(Gfp.Kernel, 0);
            if (o == 0) Fail.NoMemory("AllocNode");
            *(byte*)o = 1;
            c.Free(o);
        }
    }

    /// <summary><c>kmem_cache_alloc_node(bench64, GFP_KERNEL, 1)</c> + <c>kmem_cache_free</c> (remote).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void CacheAllocNodeRemote()
    {
        var c = _cache;
        for (int i = 0; i < Pairs; i++)
        {
            nint o = c.AllocNode(Gfp.Kernel, 1);
            if (o == 0) Fail.NoMemory("AllocNode");
            *(byte*)o = 1;
            c.Free(o);
        }
    }
}
