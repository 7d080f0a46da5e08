// Group C: alloc on one thread, free on another: thread A allocates 4 KiB blocks and hands them to thread B through an SPSC ring.
using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// Producer/consumer pages: the benchmark thread (A) allocates an order-0 block, writes one byte and
/// enqueues it on a 4096-slot ring; a consumer thread (B), alive from global setup to global cleanup,
/// frees it. An invocation ends only when B has freed every block, so the figure is the full cost per
/// page, A's and B's work overlapped. For Kmem the frees land in B's per-thread lists, which spill to
/// the buddy lists in batches, and A refills its own lists from there.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public unsafe class CrossThreadBenchmarks
{
    private const int PagesPerInvoke = 65536;
    private const int RingSlots = 4096;
    private const int Size = Machine.PageSize;

    private Machine? _machine;
    private SpscRing<Page>? _pageRing;
    private Consumer<Page, KmemFreer>? _pageConsumer;
    private SpscRing<nint>? _nativeRing;
    private Consumer<nint, NativeFreer>? _nativeConsumer;
    private Consumer<nint, MimallocFreer>? _mimallocConsumer;
    private SpscRing<byte[]>? _arrayRing;
    private Consumer<byte[], ArrayPoolFreer>? _arrayConsumer;

    private struct KmemFreer(Machine machine) : IFreer<Page>
    {
        public readonly void Free(Page page) => machine.FreePages(page, 0);
    }

    private struct NativeFreer : IFreer<nint>
    {
        public readonly void Free(nint p) => NativeMemory.AlignedFree((void*)p);
    }

    /// <summary>Boots one x86_64 machine and starts the Kmem consumer thread.</summary>
    [GlobalSetup(Target = nameof(KmemAllocPages))]
    public void SetupKmem()
    {
        _machine = Machine.Boot("x86_64");
        _pageRing = new SpscRing<Page>(RingSlots);
        _pageConsumer = new(_pageRing, new KmemFreer(_machine), "kmem-free");
    }

    /// <summary>Starts the glibc consumer thread.</summary>
    [GlobalSetup(Target = nameof(NativeAlignedAlloc))]
    public void SetupNative()
    {
        _nativeRing = new SpscRing<nint>(RingSlots);
        _nativeConsumer = new(_nativeRing, default, "native-free");
    }

    /// <summary>Starts the mimalloc consumer thread (nothing when mimalloc is absent).</summary>
    [GlobalSetup(Target = nameof(MimallocAligned))]
    public void SetupMimalloc()
    {
        if (!Mimalloc.IsAvailable) return;
        _nativeRing = new SpscRing<nint>(RingSlots);
        _mimallocConsumer = new(_nativeRing, default, "mimalloc-free");
    }

    /// <summary>Starts the ArrayPool consumer thread.</summary>
    [GlobalSetup(Target = nameof(ArrayPoolRent))]
    public void SetupArrayPool()
    {
        _arrayRing = new SpscRing<byte[]>(RingSlots);
        _arrayConsumer = new(_arrayRing, default, "arraypool-return");
    }

    /// <summary>Stops whichever consumer thread runs, then shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _pageConsumer?.Stop();
        _nativeConsumer?.Stop();
        _mimallocConsumer?.Stop();
        _arrayConsumer?.Stop();
        _machine?.Dispose();
    }

    /// <summary>Kmem: <c>AllocPages(GFP_KERNEL, 0)</c> on A, <c>FreePages(page, 0)</c> on B.</summary>
    [Benchmark(OperationsPerInvoke = PagesPerInvoke)]
    public void KmemAllocPages()
    {
        var m = _machine!;
        var ring = _pageRing!;
        for (int i = 0; i < PagesPerInvoke; i++)
        {
            Page p = m.AllocPages(Gfp.Kernel, 0);
            if (p.IsNull) Fail.NoMemory("AllocPages");
            *(byte*)m.PageAddress(p) = 1;
            ring.Enqueue(p);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary><c>ArrayPool&lt;byte&gt;.Shared.Rent(4096)</c> on A, <c>Return</c> on B (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = PagesPerInvoke)]
    public void ArrayPoolRent()
    {
        var pool = ArrayPool<byte>.Shared;
        var ring = _arrayRing!;
        for (int i = 0; i < PagesPerInvoke; i++)
        {
            byte[] a = pool.Rent(Size);
            a[0] = 1;
            ring.Enqueue(a);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary><c>NativeMemory.AlignedAlloc(4096, 4096)</c> on A, <c>AlignedFree</c> on B (glibc).</summary>
    [Benchmark(OperationsPerInvoke = PagesPerInvoke)]
    public void NativeAlignedAlloc()
    {
        var ring = _nativeRing!;
        for (int i = 0; i < PagesPerInvoke; i++)
        {
            byte* p = (byte*)NativeMemory.AlignedAlloc(Size, Machine.PageSize);
            *p = 1;
            ring.Enqueue((nint)p);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary><c>mi_malloc_aligned(4096, 4096)</c> on A, <c>mi_free</c> on B; returns at once without mimalloc.</summary>
    [Benchmark(OperationsPerInvoke = PagesPerInvoke)]
    public void MimallocAligned()
    {
        if (!Mimalloc.IsAvailable) return;
        var ring = _nativeRing!;
        for (int i = 0; i < PagesPerInvoke; i++)
        {
            byte* p = (byte*)Mimalloc.MallocAligned(Size, Machine.PageSize);
            if (p == null) Fail.NoMemory("mi_malloc_aligned");
            *p = 1;
            ring.Enqueue((nint)p);
        }
        ring.WaitUntilEmpty();
    }
}
