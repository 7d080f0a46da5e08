// Orders 1..3 through the high-order per-CPU lists (Linux 5.14 on): alloc+free pairs of 8, 16 and 32 KiB blocks on a
// 6.6 x86_64 machine, next to the order-0 pair of the same machine (the baseline) and ArrayPool's pair of the same size.
using System.Buffers;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// One alloc+free pair of a 2^order-page block per operation, untouched (page_bench02's method), on the x86_64 board
/// moved to 6.6, where orders up to PAGE_ALLOC_COSTLY_ORDER wait on the thread's per-CPU lists instead of merging back
/// into the buddy lists. The baseline is the order-0 pair of the same machine; the same pairs on 5.10 (no high-order
/// lists: split and merge under the zone lock) and ArrayPool's pair of the block's size show what the lists save.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public class PcpHighOrderBenchmarks
{
    private const int Pairs = 1024;
    private Machine _v66 = null!;
    private Machine _v510 = null!;

    /// <summary>The block order of the non-baseline rows: 1, 2 or 3.</summary>
    [Params(1, 2, 3)]
    public int Order;

    /// <summary>Boots the x86_64 board at 6.6 and at its own 5.10.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _v66 = Machine.Boot(MachineProfile.Embedded("x86_64") with { Version = KernelVersion.Parse("6.6") });
        _v510 = Machine.Boot("x86_64");
    }

    /// <summary>Shuts both machines down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _v66.Dispose();
        _v510.Dispose();
    }

    /// <summary>The order-0 pair on 6.6 (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void Order0Pair66() => Pairs0(_v66);

    /// <summary>The order-<see cref="Order"/> pair on 6.6: the high-order per-CPU lists.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void HighOrderPair66() => PairsOf(_v66, Order);

    /// <summary>The order-<see cref="Order"/> pair on 5.10: the buddy lists under the zone lock.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void HighOrderPair510() => PairsOf(_v510, Order);

    /// <summary>ArrayPool's Rent/Return of the block's size.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void ArrayPoolSameSize()
    {
        var pool = ArrayPool<byte>.Shared;
        int size = Machine.PageSize << Order;
        for (int i = 0; i < Pairs; i++) pool.Return(pool.Rent(size));
    }

    private static void Pairs0(Machine m)
    {
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, 0);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            m.FreePages(p, 0);
        }
    }

    private static void PairsOf(Machine m, int order)
    {
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, order);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            m.FreePages(p, order);
        }
    }
}
