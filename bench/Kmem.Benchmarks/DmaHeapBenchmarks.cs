// DMA-BUF heaps: one 1 MiB buffer allocated and released from the system heap with a warm pool (blocks come
// back through the deferred-free worker, whose zeroing is included) and with a cold one (every block from the
// buddy allocator, freed straight back), and from the CMA heap; NativeMemory.Alloc(1 MiB) is the baseline.
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>1 MiB dma-buf allocate+release. Each operation also writes one byte into each page of the buffer.</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public unsafe class DmaHeapBenchmarks
{
    private const int Ops = 16;
    private const int Size = 1 << 20;
    private Machine _machine = null!;
    private DmaHeap _system = null!, _cma = null!;

    /// <summary>Boots rk3588 (8 GiB, a 16 MiB default CMA area) and fills the system heap's 1 MiB pool.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("rk3588");
        _system = _machine.DmaHeaps["system"];
        _cma = _machine.DmaHeaps["reserved"];
        var warm = Enumerable.Range(0, 2 * Ops).Select(_ => _system.AllocateBuffer(Size)!).ToList();
        foreach (var b in warm) b.Put();
        _machine.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30));
    }

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    private static void Touch(DmaBuf b)
    {
        var s = b.Span;
        for (int off = 0; off < Size; off += Machine.PageSize) s[off] = 1;
    }

    /// <summary>System heap, warm pool: the block comes from the pool; the release's zeroing by the worker is waited for.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void SystemHeapWarmPool()
    {
        for (int i = 0; i < Ops; i++)
        {
            var b = _system.AllocateBuffer(Size) ?? throw new InvalidOperationException("system heap: no memory");
            Touch(b);
            b.Put();
        }
        _machine.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30));
    }

    /// <summary>System heap, cold pool: the deferred list is freed straight back at once, so every block comes from the buddy allocator (zeroed there).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void SystemHeapColdPool()
    {
        _machine.Sysctl.Kmem.DmaBufDeferredFreeWorker = false;
        _machine.Reclaim();                         // the pools' shrinker empties them
        for (int i = 0; i < Ops; i++)
        {
            var b = _system.AllocateBuffer(Size) ?? throw new InvalidOperationException("system heap: no memory");
            Touch(b);
            b.Put();
            _machine.DmaBufFreeDeferredUnderPressure();
        }
        _machine.Sysctl.Kmem.DmaBufDeferredFreeWorker = true;
    }

    /// <summary>CMA heap: one 1 MiB run (alignment 8), zeroed; released with cma_release.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void CmaHeap()
    {
        for (int i = 0; i < Ops; i++)
        {
            var b = _cma.AllocateBuffer(Size) ?? throw new InvalidOperationException("cma heap: no memory");
            Touch(b);
            b.Put();
        }
    }

    /// <summary><c>NativeMemory.Alloc(1 MiB)</c> + <c>Free</c> (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Ops)]
    public void NativeMalloc()
    {
        for (int i = 0; i < Ops; i++)
        {
            byte* p = (byte*)NativeMemory.Alloc(Size);
            for (int off = 0; off < Size; off += Machine.PageSize) p[off] = 1;
            NativeMemory.Free(p);
        }
    }
}
