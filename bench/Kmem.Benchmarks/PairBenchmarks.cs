// Groups A and B: one alloc+free pair of an order-0 (4 KiB) or order-3 (32 KiB) block on one thread, Kmem next to ArrayPool, glibc and mimalloc.
using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// Alloc+free pairs: each operation allocates one block of 2^Order pages, writes one byte into it and frees it.
/// Kmem's order-0 requests take the per-thread page lists (no lock); order-3 requests take the buddy lists
/// under the zone lock. Figures are per pair.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public unsafe class PairBenchmarks
{
    private const int Pairs = 1024;
    /// <summary>The block order: 0 (4 KiB) or 3 (32 KiB).</summary>
    [Params(0, 3)]
    public int Order;

    private nuint _size;

    private Machine _machine = null!;

    /// <summary>Boots one x86_64 machine for the whole class.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("x86_64");
        _size = (nuint)(Machine.PageSize << Order);
    }

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary>Kmem <c>AllocPages(GFP_KERNEL, order)</c> + <c>FreePages(page, order)</c>.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmemAllocPages()
    {
        var m = _machine;
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, Order);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            *(byte*)m.PageAddress(p) = 1;
            m.FreePages(p, Order);
        }
    }

    /// <summary>
    /// Kmem <c>AllocPages</c> + <c>FreePages</c> without touching the page: the method of the kernel's
    /// page_bench02 figure (≈46 ns), which also allocates and frees without using the memory.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmemAllocPagesUntouched()
    {
        var m = _machine;
        for (int i = 0; i < Pairs; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, Order);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            m.FreePages(p, Order);
        }
    }

    /// <summary>Kmem <c>GetFreePages(GFP_KERNEL, order)</c> + <c>FreePages(address, order)</c>.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmemGetFreePages()
    {
        var m = _machine;
        for (int i = 0; i < Pairs; i++)
        {
            nint a = m.GetFreePages(Gfp.Kernel, Order);
            if (a == 0) Fail.NoMemory("GetFreePages");
            *(byte*)a = 1;
            m.FreePages(a, Order);
        }
    }

    /// <summary><c>ArrayPool&lt;byte&gt;.Shared.Rent(size)</c> + <c>Return</c> (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void ArrayPoolRent()
    {
        var pool = ArrayPool<byte>.Shared;
        for (int i = 0; i < Pairs; i++)
        {
            byte[] a = pool.Rent((int)_size);
            a[0] = 1;
            pool.Return(a);
        }
    }

    /// <summary><c>NativeMemory.AlignedAlloc(size, 4096)</c> + <c>AlignedFree</c> (glibc).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void NativeAlignedAlloc()
    {
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)NativeMemory.AlignedAlloc(_size, Machine.PageSize);
            *p = 1;
            NativeMemory.AlignedFree(p);
        }
    }

    /// <summary><c>mi_malloc_aligned(size, 4096)</c> + <c>mi_free</c>; returns at once without mimalloc.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void MimallocAligned()
    {
        if (!Mimalloc.IsAvailable) return;
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)Mimalloc.MallocAligned(_size, Machine.PageSize);
            if (p == null) Fail.NoMemory("mi_malloc_aligned");
            *p = 1;
            Mimalloc.Free(p);
        }
    }
}
