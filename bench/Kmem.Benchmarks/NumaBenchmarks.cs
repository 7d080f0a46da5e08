// Order-0 pairs on the two-node x86_64-numa2 profile: a thread of node 0 allocating its own node's pages (the fast
// path, and alloc_pages_node() of its node) and node 1's pages (alloc_pages_node(1, …): a remote pair, freed to the
// thread's list for node 1's zone), next to the same pair on the one-node x86_64 profile.
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// Local versus remote order-0 alloc+free pairs, untouched pages (page_bench02's method), per pair. The benchmark
/// thread runs as CPU 0 (node 0) of the two-node machine.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public class NumaPairBenchmarks
{
    private const int Pairs = 1024;
    private Machine _one = null!;
    private Machine _two = null!;

    /// <summary>Boots the one-node x86_64 and the two-node x86_64-numa2 machines.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _one = Machine.Boot("x86_64");
        _two = Machine.Boot("x86_64-numa2");
        _two.MigrateToCpu(0);
    }

    /// <summary>Shuts both machines down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _one.Dispose();
        _two.Dispose();
    }

    private void OnCpu0()
    {
        if (_two.CurrentCpu != 0) _two.MigrateToCpu(0);
    }

    /// <summary>One-node x86_64: <c>AllocPages(GFP_KERNEL, 0)</c> + <c>FreePages</c> (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void OneNodeAllocPages()
    {
        var m = _one;
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, 0);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            m.FreePages(p, 0);
        }
    }

    /// <summary>Two nodes, a thread of node 0: <c>AllocPages(GFP_KERNEL, 0)</c> (its own node, the fast path) + <c>FreePages</c>.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void LocalAllocPages()
    {
        OnCpu0();
        var m = _two;
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, 0);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            m.FreePages(p, 0);
        }
    }

    /// <summary>Two nodes, a thread of node 0: <c>AllocPagesNode(0, GFP_KERNEL, 0)</c> + <c>FreePages</c>.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void LocalAllocPagesNode()
    {
        OnCpu0();
        var m = _two;
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPagesNode(0, Gfp.Kernel, 0);
            if (p.IsNull) Fail.NoMemory("AllocPagesNode");
            m.FreePages(p, 0);
        }
    }

    /// <summary>Two nodes, a thread of node 0: <c>AllocPagesNode(1, GFP_KERNEL, 0)</c> (remote) + <c>FreePages</c>.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void RemoteAllocPagesNode()
    {
        OnCpu0();
        var m = _two;
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPagesNode(1, Gfp.Kernel, 0);
            if (p.IsNull) Fail.NoMemory("AllocPagesNode");
            m.FreePages(p, 0);
        }
    }
}
