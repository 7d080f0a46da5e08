// Slab groups: 64-byte objects from a slab cache and from kmalloc, as alloc+free pairs on one thread and allocated on one thread, freed on another, next to ArrayPool, glibc, mimalloc and (cross-thread) a hand-written two-list reference scheme.
using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// Alloc+free pairs of 64-byte objects: each operation allocates one object, writes one byte into it and
/// frees it. Kmem's pair is SLUB's fast path both ways: the object comes off the thread's CPU freelist
/// and goes back on it (no lock, no atomic). Figures are per pair.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public unsafe class SlabPairBenchmarks
{
    private const int Pairs = 1024;
    private const int Size = 64;

    private Machine _machine = null!;
    private SlabCache _cache = null!;

    /// <summary>Boots one x86_64 machine and creates the unmerged 64-byte cache <c>bench64</c>.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("x86_64");
        _cache = _machine.KmemCacheCreate("bench64", Size, 0, SlabFlags.NoMerge);
    }

    /// <summary>Destroys the cache and shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Destroy();
        _machine.Dispose();
    }

    /// <summary>Kmem <c>kmem_cache_alloc(bench64, GFP_KERNEL)</c> + <c>kmem_cache_free</c> (<see cref="SlabCache.Alloc"/>/<see cref="SlabCache.Free"/>).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmemCacheAllocFree()
    {
        var c = _cache;
        for (int i = 0; i < Pairs; i++)
        {
            nint o = c.Alloc(Gfp.Kernel);
            if (o == 0) Fail.NoMemory("KmemCacheAlloc");
            *(byte*)o = 1;
            c.Free(o);
        }
    }

    /// <summary>Kmem <c>kmalloc(64, GFP_KERNEL)</c> + <c>kfree</c> (the kmalloc-64 cache, found by size and by the slab's page).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void KmemKmallocKfree()
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

    /// <summary><c>ArrayPool&lt;byte&gt;.Shared.Rent(64)</c> + <c>Return</c> (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void ArrayPoolRentReturn()
    {
        var pool = ArrayPool<byte>.Shared;
        for (int i = 0; i < Pairs; i++)
        {
            byte[] a = pool.Rent(Size);
            a[0] = 1;
            pool.Return(a);
        }
    }

    /// <summary><c>NativeMemory.Alloc(64)</c> + <c>Free</c> (glibc <c>malloc</c>/<c>free</c>).</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void NativeMalloc()
    {
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)NativeMemory.Alloc(Size);
            *p = 1;
            NativeMemory.Free(p);
        }
    }

    /// <summary><c>mi_malloc(64)</c> + <c>mi_free</c>; returns at once without mimalloc.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void MimallocMalloc()
    {
        if (!Mimalloc.IsAvailable) return;
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)Mimalloc.Malloc(Size);
            if (p == null) Fail.NoMemory("mi_malloc");
            *p = 1;
            Mimalloc.Free(p);
        }
    }
}

/// <summary>
/// Producer/consumer 64-byte objects: the benchmark thread (A) allocates an object, writes one byte and
/// enqueues it on a 4096-slot ring; a consumer thread (B), alive from global setup to global cleanup,
/// frees it. An invocation ends only when B has freed all 1,000,000 objects, so the figure is the full
/// cost per object, A's and B's work overlapped. For Kmem, B's frees are remote frees (the object is not
/// in B's CPU slab): SLUB's <c>__slab_free()</c>, a compare-and-swap on the slab's freelist word, and A
/// takes those objects back a whole slab freelist at a time when its CPU freelist runs dry.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public unsafe class SlabCrossThreadBenchmarks
{
    /// <summary>Objects each invocation allocates and hands over.</summary>
    public const int ObjectsPerInvoke = 1_000_000;
    private const int RingSlots = 4096;
    private const int Size = 64;

    private Machine? _machine;
    private SlabCache? _cache;
    private SpscRing<nint>? _ring;
    private Consumer<nint, CacheFreer>? _cacheConsumer;
    private Consumer<nint, KfreeFreer>? _kfreeConsumer;
    private Consumer<nint, NativeFreer>? _nativeConsumer;
    private Consumer<nint, MimallocFreer>? _mimallocConsumer;
    private SpscRing<byte[]>? _arrayRing;
    private Consumer<byte[], ArrayPoolFreer>? _arrayConsumer;

    private struct CacheFreer(SlabCache cache) : IFreer<nint>
    {
        public readonly void Free(nint o) => cache.Free(o);
    }

    private struct KfreeFreer(Machine machine) : IFreer<nint>
    {
        public readonly void Free(nint p) => machine.Kfree(p);
    }

    private struct NativeFreer : IFreer<nint>
    {
        public readonly void Free(nint p) => NativeMemory.Free((void*)p);
    }

    /// <summary>The hand-over alone: thread B takes the item and frees nothing.</summary>
    private struct NoFreer : IFreer<nint>
    {
        public readonly void Free(nint p) { }
    }

    private Consumer<nint, NoFreer>? _handOffConsumer;
    private nint _handOffBlock;
    private TwoListPool? _twoList;
    private Consumer<nint, TwoListFreer>? _twoListConsumer;

    /// <summary>
    /// Blocks of the reference scheme's pool: twice the ring, so that blocks come back as soon as they are freed, as a
    /// slab cache's objects do (its slabs in flight are the ring's 4096 objects and a few partial slabs).
    /// </summary>
    public const int TwoListBlocks = 2 * RingSlots;

    /// <summary>Boots one x86_64 machine, creates the unmerged 64-byte cache <c>bench64</c> and starts its consumer thread.</summary>
    [GlobalSetup(Target = nameof(KmemCacheAllocFree))]
    public void SetupCache() => SetupCacheWith(0);

    /// <summary>As <see cref="SetupCache"/> with per-thread sheaves of <see cref="SheafCapacity"/> objects.</summary>
    [GlobalSetup(Target = nameof(KmemSheafCacheAllocFree))]
    public void SetupSheafCache() => SetupCacheWith(SheafCapacity);

    /// <summary>The sheaf capacity of the sheaf rows.</summary>
    public const int SheafCapacity = 128;

    private void SetupCacheWith(int sheafCapacity)
    {
        _machine = Machine.Boot("x86_64");
        _cache = _machine.KmemCacheCreate("bench64", Size, 0, SlabFlags.NoMerge, sheafCapacity: sheafCapacity);
        _ring = new SpscRing<nint>(RingSlots);
        _cacheConsumer = new(_ring, new CacheFreer(_cache), "slab-free");
    }

    /// <summary>Boots one x86_64 machine and starts the kfree consumer thread.</summary>
    [GlobalSetup(Target = nameof(KmemKmallocKfree))]
    public void SetupKmalloc()
    {
        _machine = Machine.Boot("x86_64");
        _ring = new SpscRing<nint>(RingSlots);
        _kfreeConsumer = new(_ring, new KfreeFreer(_machine), "kfree");
    }

    /// <summary>Starts the glibc consumer thread.</summary>
    [GlobalSetup(Target = nameof(NativeMalloc))]
    public void SetupNative()
    {
        _ring = new SpscRing<nint>(RingSlots);
        _nativeConsumer = new(_ring, default, "native-free");
    }

    /// <summary>Starts the mimalloc consumer thread (nothing when mimalloc is absent).</summary>
    [GlobalSetup(Target = nameof(MimallocMalloc))]
    public void SetupMimalloc()
    {
        if (!Mimalloc.IsAvailable) return;
        _ring = new SpscRing<nint>(RingSlots);
        _mimallocConsumer = new(_ring, default, "mimalloc-free");
    }

    /// <summary>Starts the ArrayPool consumer thread.</summary>
    [GlobalSetup(Target = nameof(ArrayPoolRentReturn))]
    public void SetupArrayPool()
    {
        _arrayRing = new SpscRing<byte[]>(RingSlots);
        _arrayConsumer = new(_arrayRing, default, "arraypool-return");
    }

    /// <summary>Starts a consumer thread that frees nothing, for the hand-over-only row.</summary>
    [GlobalSetup(Target = nameof(HandOffOnly))]
    public void SetupHandOff()
    {
        _handOffBlock = (nint)NativeMemory.Alloc(Size);
        _ring = new SpscRing<nint>(RingSlots);
        _handOffConsumer = new(_ring, default, "hand-off");
    }

    /// <summary>Creates the reference scheme's pool and starts its consumer thread.</summary>
    [GlobalSetup(Target = nameof(TwoListReference))]
    public void SetupTwoList()
    {
        _twoList = new TwoListPool(TwoListBlocks);
        _ring = new SpscRing<nint>(RingSlots);
        _twoListConsumer = new(_ring, new TwoListFreer(_twoList), "two-list-free");
    }

    /// <summary>The ring of the nint rows set up last (null before a setup): its wait counters tell which side was slower.</summary>
    internal SpscRing<nint>? Ring => _ring;

    /// <summary>Stops whichever consumer thread runs, destroys the cache and shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _handOffConsumer?.Stop();
        if (_handOffBlock != 0) NativeMemory.Free((void*)_handOffBlock);
        _twoListConsumer?.Stop();
        _twoList?.Dispose();
        _cacheConsumer?.Stop();
        _kfreeConsumer?.Stop();
        _nativeConsumer?.Stop();
        _mimallocConsumer?.Stop();
        _arrayConsumer?.Stop();
        _cache?.Destroy();
        _machine?.Dispose();
    }

    /// <summary>Kmem: <c>kmem_cache_alloc(bench64)</c> on A, <c>kmem_cache_free</c> on B.</summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void KmemCacheAllocFree() => AllocAndHandOver(_cache!);

    /// <summary>The same with a cache that has per-thread sheaves: B's frees store addresses, A takes full sheaves.</summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void KmemSheafCacheAllocFree() => AllocAndHandOver(_cache!);

    private void AllocAndHandOver(SlabCache c)
    {
        var ring = _ring!;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            nint o = c.Alloc(Gfp.Kernel);
            if (o == 0) Fail.NoMemory("KmemCacheAlloc");
            *(byte*)o = 1;
            ring.Enqueue(o);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary>Kmem: <c>kmalloc(64, GFP_KERNEL)</c> on A, <c>kfree</c> on B.</summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void KmemKmallocKfree()
    {
        var m = _machine!;
        var ring = _ring!;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            nint p = m.Kmalloc(Size, Gfp.Kernel);
            if (p == 0) Fail.NoMemory("Kmalloc");
            *(byte*)p = 1;
            ring.Enqueue(p);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary><c>ArrayPool&lt;byte&gt;.Shared.Rent(64)</c> on A, <c>Return</c> on B (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = ObjectsPerInvoke)]
    public void ArrayPoolRentReturn()
    {
        var pool = ArrayPool<byte>.Shared;
        var ring = _arrayRing!;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            byte[] a = pool.Rent(Size);
            a[0] = 1;
            ring.Enqueue(a);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary><c>NativeMemory.Alloc(64)</c> on A, <c>Free</c> on B (glibc <c>malloc</c>/<c>free</c>).</summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void NativeMalloc()
    {
        var ring = _ring!;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            byte* p = (byte*)NativeMemory.Alloc(Size);
            *p = 1;
            ring.Enqueue((nint)p);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary>
    /// The floor of every row: the same block written and handed through the ring 1,000,000 times, thread B
    /// freeing nothing. What a row costs above this is its allocator's.
    /// </summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void HandOffOnly()
    {
        var ring = _ring!;
        nint p = _handOffBlock;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            *(byte*)p = 1;
            ring.Enqueue(p);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary>
    /// The reference scheme (<see cref="TwoListPool"/>): an owner-local freelist on A, 64-block batched pushes from B,
    /// no checks. What a Kmem row costs above it is the slab allocator's bookkeeping and checks.
    /// </summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void TwoListReference()
    {
        var pool = _twoList!;
        var ring = _ring!;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            nint p = pool.Alloc();
            *(byte*)p = 1;
            ring.Enqueue(p);
        }
        ring.WaitUntilEmpty();
    }

    /// <summary><c>mi_malloc(64)</c> on A, <c>mi_free</c> on B; returns at once without mimalloc.</summary>
    [Benchmark(OperationsPerInvoke = ObjectsPerInvoke)]
    public void MimallocMalloc()
    {
        if (!Mimalloc.IsAvailable) return;
        var ring = _ring!;
        for (int i = 0; i < ObjectsPerInvoke; i++)
        {
            byte* p = (byte*)Mimalloc.Malloc(Size);
            if (p == null) Fail.NoMemory("mi_malloc");
            *p = 1;
            ring.Enqueue((nint)p);
        }
        ring.WaitUntilEmpty();
    }
}
