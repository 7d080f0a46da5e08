// Group A: one 4 KiB (order-0) alloc+free pair on one thread, Kmem next to ArrayPool, glibc and mimalloc.
using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// Order-0 pairs: each operation allocates one 4 KiB block, writes one byte into it and frees it.
/// Kmem's order-0 requests take the per-thread page lists (no lock). Figures are per pair.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public unsafe class Order0Benchmarks
{
    private const int Pairs = 1024;
    private const int Order = 0;
    private const int Size = Machine.PageSize << Order;

    private Machine _machine = null!;

    /// <summary>Boots one x86_64 machine for the whole class.</summary>
    [GlobalSetup]
    public void Setup() => _machine = Machine.Boot("x86_64");

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary>Kmem <c>AllocPages(GFP_KERNEL, 0)</c> + <c>FreePages(page, 0)</c>.</summary>
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

    /// <summary>Kmem <c>GetFreePages(GFP_KERNEL, 0)</c> + <c>FreePages(address, 0)</c>.</summary>
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

    /// <summary><c>ArrayPool&lt;byte&gt;.Shared.Rent(4096)</c> + <c>Return</c> (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void ArrayPoolRent()
    {
        var pool = ArrayPool<byte>.Shared;
        for (int i = 0; i < Pairs; i++)
        {
            byte[] a = pool.Rent(Size);
            a[0] = 1;
            pool.Return(a);
        }
    }

    /// <summary><c>NativeMemory.AlignedAlloc(4096, 4096)</c> + <c>AlignedFree</c> (glibc).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void NativeAlignedAlloc()
    {
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)NativeMemory.AlignedAlloc(Size, Machine.PageSize);
            *p = 1;
            NativeMemory.AlignedFree(p);
        }
    }

    /// <summary><c>mi_malloc_aligned(4096, 4096)</c> + <c>mi_free</c>; returns at once without mimalloc.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void MimallocAligned()
    {
        if (!Mimalloc.IsAvailable) return;
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)Mimalloc.MallocAligned(Size, Machine.PageSize);
            if (p == null) Fail.NoMemory("mi_malloc_aligned");
            *p = 1;
            Mimalloc.Free(p);
        }
    }
}
