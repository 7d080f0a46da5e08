// The machine's slab entry points: kmem_cache_create() and the kmalloc family, with the caller
// attributes that slub_debug's owner tracking (U) records.
using System.Runtime.CompilerServices;
using Kmem.Slab;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>ZERO_SIZE_PTR: what <see cref="Kmalloc(nuint, Gfp, string, string, int)"/> returns for 0 bytes (never dereference it; Kfree accepts it).</summary>
    public const nint ZeroSizePtr = SlabAllocator.ZeroSizePtr;

    /// <summary>KMALLOC_MAX_SIZE: the largest kmalloc (and slab object) for this machine's MAX_ORDER.</summary>
    public long KmallocMaxSize => Life.Live(Slab.KmallocMaxSize);

    /// <summary>The slab caches, newest first, as /proc/slabinfo lists them (merged aliases are not listed).</summary>
    public IReadOnlyList<SlabCache> SlabCaches => Life.Live(Slab.Caches);

    /// <summary>A cache (or alias) by name, or null.</summary>
    public SlabCache? FindSlabCache(string name) => Life.Live(Slab.Find(name));

    /// <summary>
    /// Creates a slab cache (<c>kmem_cache_create()</c>). <paramref name="align"/> 0 means the architecture's
    /// minimum; <paramref name="ctor"/> runs once for each object when its slab is made. A compatible existing
    /// cache may be reused (merged) unless flags, a constructor, sheaves or <see cref="SlabFlags.NoMerge"/> forbid it.
    /// <paramref name="sheafCapacity"/> above 0 gives the cache per-thread sheaves of that many objects (Linux 6.18's
    /// <c>kmem_cache_args.sheaf_capacity</c>): frees of objects outside the thread's CPU slab, the allocate-here,
    /// free-there pattern above all, then cost no write to the object; ignored when debug flags are in force.
    /// </summary>
    /// <exception cref="SlabException">Empty or duplicate name, size 0 or above <see cref="KmallocMaxSize"/>, bad alignment, flags or sheaf capacity.</exception>
    public SlabCache KmemCacheCreate(string name, int size, int align = 0, SlabFlags flags = SlabFlags.None, Action<nint>? ctor = null, int sheafCapacity = 0)
    {
        using var _ = Life.Enter();
        return Slab.Create(name, size, align, flags, ctor, sheafCapacity);
    }

    /// <summary>Creates a typed slab cache for <typeparamref name="T"/> (size and alignment from the type).</summary>
    public SlabCache<T> KmemCacheCreate<T>(string name, SlabFlags flags = SlabFlags.None, SlabCtor<T>? ctor = null, int sheafCapacity = 0) where T : unmanaged
    {
        using var _ = Life.Enter();
        return SlabCache<T>.Create(Slab, name, flags, ctor, sheafCapacity);
    }

    /// <summary>
    /// kmalloc(): <paramref name="size"/> bytes from the kmalloc cache of that size class (or from the page
    /// allocator above 8 KiB). Returns 0 on failure, <see cref="ZeroSizePtr"/> for 0 bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe nint Kmalloc(nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        nint obj = SlabAllocator.KmallocFast(_kmallocSmallSlots, size, gfp);
        return obj != 0 ? obj : Slab.KmallocSlow(size, gfp, new CallSite(caller, file, line));
    }

    /// <summary>
    /// kmalloc_node(): <paramref name="size"/> bytes from node <paramref name="node"/>'s slabs of the kmalloc cache of that
    /// size class (its pages, from the page allocator, above 8 KiB); <see cref="NumaNoNode"/> is <c>kmalloc()</c>. When
    /// the node has no memory left the allocation may come from another node, as in the kernel (no <c>__GFP_THISNODE</c>).
    /// Returns 0 on failure, <see cref="ZeroSizePtr"/> for 0 bytes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The node is neither <see cref="NumaNoNode"/> nor online.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe nint KmallocNode(nuint size, Gfp gfp, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        // As kmalloc's: the thread's CPU slab of the size's cache when it is of that node (a dead machine's table misses).
        // A node that is not online never matches a CPU slab's node: the out-of-line path checks it.
        nint obj = SlabAllocator.KmallocFastNode(_kmallocSmallSlots, size, gfp, node);
        return obj != 0 ? obj : Slab.KmallocNode(size, gfp, node, new CallSite(caller, file, line));
    }

    /// <summary>kmalloc_node() with an <see cref="int"/> size.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative size, or a node that is neither <see cref="NumaNoNode"/> nor online.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint KmallocNode(int size, Gfp gfp, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        return KmallocNode((nuint)size, gfp, node, caller, file, line);
    }

    /// <summary>kzalloc_node(): kmalloc_node with <see cref="Gfp.Zero"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The node is neither <see cref="NumaNoNode"/> nor online.</exception>
    public nint KzallocNode(nuint size, Gfp gfp, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Slab.KmallocNode(size, gfp | Gfp.Zero, node, new CallSite(caller, file, line));

    /// <summary>
    /// kmem_cache_alloc_node(): an object of <paramref name="cache"/> from node <paramref name="node"/>'s slabs
    /// (<see cref="SlabCache.AllocNode"/>); <see cref="NumaNoNode"/> is <c>kmem_cache_alloc()</c>. 0 when no memory could be found.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="cache"/> is null.</exception>
    /// <exception cref="ArgumentException">The cache belongs to another machine.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The node is neither <see cref="NumaNoNode"/> nor online.</exception>
    public nint KmemCacheAllocNode(SlabCache cache, Gfp gfp, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        ArgumentNullException.ThrowIfNull(cache);
        if (!cache.BelongsTo(Slab)) throw new ArgumentException($"the slab cache {cache.Name} belongs to another machine", nameof(cache));
        return cache.AllocNode(gfp, node, caller, file, line);
    }

    /// <summary>kmalloc() with an <see cref="int"/> size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint Kmalloc(int size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        return Kmalloc((nuint)size, gfp, caller, file, line);
    }

    /// <summary>kzalloc(): kmalloc with <see cref="Gfp.Zero"/>.</summary>
    public nint Kzalloc(nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Slab.Kmalloc(size, gfp | Gfp.Zero, new CallSite(caller, file, line));

    /// <summary>kmalloc_array(): <paramref name="n"/> × <paramref name="size"/> bytes; 0 without allocating when the product overflows.</summary>
    public nint KmallocArray(nuint n, nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (size != 0 && n > nuint.MaxValue / size) return 0; // check_mul_overflow()
        return Slab.Kmalloc(n * size, gfp, new CallSite(caller, file, line));
    }

    /// <summary>kcalloc(): a zeroed array; 0 without allocating when the product overflows.</summary>
    public nint Kcalloc(nuint n, nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => KmallocArray(n, size, gfp | Gfp.Zero, caller, file, line);

    /// <summary>
    /// krealloc(): the same buffer when it is already big enough, else a new one with the old contents
    /// (and the old one freed); 0 bytes frees and returns <see cref="ZeroSizePtr"/>; on failure returns 0 and keeps the old buffer.
    /// </summary>
    public nint Krealloc(nint p, nuint newSize, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Slab.Krealloc(p, newSize, gfp, new CallSite(caller, file, line));

    /// <summary>ksize(): the usable size of a kmalloc'd buffer (the kernel's bytes_alloc).</summary>
    public nuint Ksize(nint p, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Slab.Ksize(p, new CallSite(caller, file, line));

    /// <summary>
    /// kfree(): frees a kmalloc'd buffer; 0 and <see cref="ZeroSizePtr"/> are accepted. A pointer Kmem never
    /// handed out, an interior pointer or a double free (as far as the checks in force can tell) is reported
    /// and raises <see cref="SlabException"/> or <see cref="InvalidAddressException"/>; nothing is freed then.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe void Kfree(nint p, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        // Only a pointer into this machine's memory may try the thread's fast path: its hint is a process-wide
        // slab slot, which may name another machine's cache.
        var slab = Slab;
        if ((nuint)(p - slab.Linear) < slab.LinearBytes)
        {
            if (!SlabAllocator.KfreeFast(p, out nint* t, out int len, out int hint)) slab.KfreeByPage(p, t, len, hint, new CallSite(caller, file, line));
        }
        else slab.KfreeOutside(p, new CallSite(caller, file, line));
    }

    /// <summary>kmemdup(): a kmalloc'd copy of <paramref name="src"/>; 0 on failure.</summary>
    public unsafe nint Kmemdup(ReadOnlySpan<byte> src, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        nint p = Slab.Kmalloc((nuint)src.Length, gfp, new CallSite(caller, file, line));
        if (p != 0 && p != ZeroSizePtr) src.CopyTo(new Span<byte>((void*)p, src.Length));
        return p;
    }

    /// <summary>kmemdup() of <paramref name="len"/> bytes at <paramref name="src"/>.</summary>
    public unsafe nint Kmemdup(nint src, nuint len, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        nint p = Slab.Kmalloc(len, gfp, new CallSite(caller, file, line));
        if (p != 0 && p != ZeroSizePtr) Buffer.MemoryCopy((void*)src, (void*)p, (long)len, (long)len);
        return p;
    }

    /// <summary>Shrinks every slab cache (what memory pressure does through the slab shrinker); returns the objects freed.</summary>
    public long ShrinkSlabs()
    {
        using var _ = Life.Enter();
        return Slab.ShrinkAll();
    }
}
