// The kmalloc family over the kmalloc caches (mm/slab_common.c, include/linux/slab.h, mm/slub.c):
// size classes and size_index per architecture, the release's kinds (kmalloc-rcl-*, kmalloc-cg-*,
// dma-kmalloc-*, see KmallocScheme.cs) created in its order and chosen by GFP, large requests
// straight from the page allocator (compound, counted in SUnreclaim), ksize, krealloc,
// kmalloc_array/kcalloc overflow checks, and kfree with full validation of the pointer.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Slab;

internal sealed unsafe partial class SlabAllocator
{
    /// <summary>KMALLOC_SHIFT_HIGH: the largest kmalloc cache is 2^13 = 8 KiB.</summary>
    public const int ShiftHigh = PhysicalMemory.PageShift + 1;
    /// <summary>KMALLOC_MAX_CACHE_SIZE.</summary>
    public const int MaxCacheSize = 1 << ShiftHigh;
    /// <summary>ZERO_SIZE_PTR.</summary>
    public const nint ZeroSizePtr = 16;
    /// <summary>The kmalloc kinds (<see cref="KmallocKind"/>), each a row of ShiftHigh + 1 caches in the tables.</summary>
    private const int Kinds = 4, Row = ShiftHigh + 1;
    /// <summary>The GFP selectors: (__GFP_DMA, __GFP_RECLAIMABLE, __GFP_ACCOUNT) as three bits.</summary>
    private const int Selectors = 8;

    /// <summary>size_index[]: the cache index for sizes 1..192 in steps of 8.</summary>
    private readonly byte[] _sizeIndex = [3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2];
    /// <summary>kmalloc_caches[kind][index], flattened (kind * 14 + index).</summary>
    private readonly SlabCache?[] _kmalloc = new SlabCache?[Kinds * Row];
    /// <summary>The slots of the same caches (the fast path needs only the slot); a missing cache has the dead slot.</summary>
    private readonly int[] _kmallocSlots = Enumerable.Repeat(SlabThread.DeadSlot, Kinds * Row).ToArray();

    /// <summary>For requests of 1..192 bytes: the slot of the cache, by <see cref="Selector"/> × 24 + (size - 1) / 8.</summary>
    private readonly int[] _smallSlots = GC.AllocateArray<int>(Selectors * 24, pinned: true);

    /// <summary>
    /// The same for requests of 193 bytes to 8 KiB, indexed by (GPF type, fls(size - 1)): the slow path's first try,
    /// before it counts itself in (dead or armed entries as in <see cref="_smallSlots"/>).
    /// </summary>
    private readonly int[] _midSlots = new int[Selectors * Row];

    /// <summary>
    /// <see cref="_smallSlots"/> as a pointer (the array is pinned for the allocator's life), which the machine keeps
    /// so that its inlined kmalloc reaches the table with one load.
    /// </summary>
    internal int* SmallSlots => (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_smallSlots));

    /// <summary>The first index in <see cref="_kmalloc"/> of the kind each GFP selector goes to (kmalloc_type() of the release, worked out at boot).</summary>
    private int[] _typeOffset = [];

    /// <summary>
    /// The GFP selector, without a branch: __GFP_DMA (bit 0) → 1, __GFP_RECLAIMABLE (bit 4) → 2, __GFP_ACCOUNT
    /// (bit 22) → 4. The release's kmalloc_type() is in the tables the selector indexes, not in code.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Selector(Gfp gfp) => (int)((uint)gfp & 1) | (int)(((uint)gfp >> 3) & 2) | (int)(((uint)gfp >> 20) & 4);

    /// <summary>KMALLOC_MAX_SIZE.</summary>
    public long KmallocMaxSize => 1L << Settings.KmallocShiftMax;

    /// <summary>KMALLOC_SHIFT_LOW.</summary>
    private int ShiftLow => System.Numerics.BitOperations.Log2((uint)Settings.KmallocMinSize);

    private static readonly int[] s_sizes = [0, 96, 192, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

    /// <summary>
    /// setup_kmalloc_cache_index_table() and create_kmalloc_caches() of the modelled release
    /// (<see cref="SlabSettings.Kmalloc"/>): every kind the release has is created at boot, in its order.
    /// </summary>
    private void CreateKmallocCaches()
    {
        int min = Settings.KmallocMinSize;
        for (int i = 8; i < min; i += 8)
        {
            int elem = (i - 1) / 8;
            if (elem >= _sizeIndex.Length) break;
            _sizeIndex[elem] = (byte)ShiftLow;
        }
        if (min >= 64) for (int i = 64 + 8; i <= 96; i += 8) _sizeIndex[(i - 1) / 8] = 7;
        if (min >= 128) for (int i = 128 + 8; i <= 192; i += 8) _sizeIndex[(i - 1) / 8] = 8;

        var scheme = Settings.Kmalloc;
        bool dmaLast = scheme.Order == KmallocCreationOrder.DmaByIndexLast;
        foreach (var kind in scheme.KindOrder)
        {
            if (kind == KmallocKind.Dma && (dmaLast || !Settings.HasZoneDma)) continue;
            if (scheme.Order == KmallocCreationOrder.OddSizesFirst)
            {
                if (min <= 32) NewKmallocCache(1, kind);
                if (min <= 64) NewKmallocCache(2, kind);
                for (int i = ShiftLow; i <= ShiftHigh; i++) NewKmallocCache(i, kind);
                continue;
            }
            for (int i = ShiftLow; i <= ShiftHigh; i++)
            {
                NewKmallocCache(i, kind);
                if (min <= 32 && i == 6) NewKmallocCache(1, kind);
                if (min <= 64 && i == 7) NewKmallocCache(2, kind);
            }
        }
        // Up to 5.18 the DMA caches come last, one for each normal cache in kmalloc_info[] order (96, 192, 8, 16 …).
        if (dmaLast && Settings.HasZoneDma)
            for (int i = 0; i <= ShiftHigh; i++)
                if (_kmalloc[(int)KmallocKind.Normal * Row + i] is not null) NewKmallocCache(i, KmallocKind.Dma);

        _typeOffset = new int[Selectors];
        for (int sel = 0; sel < Selectors; sel++)
            _typeOffset[sel] = (int)scheme.KindFor((sel & 1) != 0, (sel & 2) != 0, (sel & 4) != 0, Settings.HasZoneDma) * Row;
        FillSmallSlots(armed: false);
    }

    /// <summary>
    /// The small-request table: each entry the slot of its kmalloc cache, or, while failslab is armed, the dead slot,
    /// so that the inlined fast path misses and every small kmalloc goes through the slow path's failslab check
    /// (the fast path itself pays nothing for fault injection).
    /// </summary>
    private void FillSmallSlots(bool armed)
    {
        for (int sel = 0; sel < Selectors; sel++)
            for (int e = 0; e < 24; e++)
                Volatile.Write(ref _smallSlots[sel * 24 + e], armed || _dead ? SlabThread.DeadSlot : _kmallocSlots[_typeOffset[sel] + _sizeIndex[e]]);
        for (int sel = 0; sel < Selectors; sel++)
            for (int i = 0; i < Row; i++)
                Volatile.Write(ref _midSlots[sel * Row + i], armed || _dead ? SlabThread.DeadSlot : _kmallocSlots[_typeOffset[sel] + i]);
    }

    private void ArmSmallSlots(bool armed) => FillSmallSlots(armed);

    private void NewKmallocCache(int idx, KmallocKind kind)
    {
        ref var slot = ref _kmalloc[(int)kind * Row + idx];
        if (slot is not null) return;
        int size = s_sizes[idx];
        string name = KmallocScheme.Prefix(kind) + Settings.Kmalloc.SizeName(size);
        SlabFlags flags = KmallocScheme.FlagsOf(kind);
        int align = Math.Max(Settings.KmallocMinSize > 8 ? Settings.KmallocMinSize : 8, 8);
        if ((size & (size - 1)) == 0) align = Math.Max(align, size);
        slot = CreateCore(name, size, align, flags, null, usersize: size, kmalloc: true)
            ?? throw new InvalidOperationException($"cannot create {name}");
        _kmallocSlots[(int)kind * Row + idx] = slot.Id;
        AllocDescriptor(slot);
    }

    /// <summary>The kmalloc caches that exist, kind by kind (for tests and views).</summary>
    public IEnumerable<SlabCache> KmallocCaches => _kmalloc.Where(c => c is not null)!;

    /// <summary>kmalloc_slab(): the cache for a request of 1..8192 bytes.</summary>
    public SlabCache KmallocSlab(nuint size, Gfp gfp) => _kmalloc[KmallocIndex(size, gfp)]!;

    /// <summary>The index in the kmalloc tables of the cache for a request of 1..8192 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int KmallocIndex(nuint size, Gfp gfp)
    {
        int index = size <= 192
            ? Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_sizeIndex), (int)((size - 1) >> 3))
            : 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)size - 1);
        // kmalloc_type(): a table of the eight GFP cases, filled at boot for the release.
        int type = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_typeOffset), Selector(gfp));
        return type + index;
    }

    /// <summary>kmalloc(): the address, <see cref="ZeroSizePtr"/> for 0 bytes, or 0 on failure.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint Kmalloc(nuint size, Gfp gfp, CallSite site)
    {
        nint obj = KmallocFast(SmallSlots, size, gfp);
        return obj != 0 ? obj : KmallocSlow(size, gfp, site);
    }

    /// <summary>
    /// kmalloc's fast path for requests of 1..192 bytes: one table from (GFP type, size / 8) straight to the
    /// cache's slot, then that cache's per-thread fast path. 0 when the request is of another size or the fast
    /// path has nothing: <see cref="KmallocSlow"/> decides then.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nint KmallocFast(int* smallSlots, nuint size, Gfp gfp)
    {
        if (size - 1 >= 192) return 0;
        int e = Selector(gfp) * 24 + (int)((size - 1) >> 3);
        return SlabCache.AllocFast(smallSlots[e], gfp);
    }

    /// <summary>kmalloc_node()'s fast path for requests of 1..192 bytes: as <see cref="KmallocFast"/>, when the CPU slab is of <paramref name="node"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nint KmallocFastNode(int* smallSlots, nuint size, Gfp gfp, int node)
    {
        if (size - 1 >= 192) return 0;
        int e = Selector(gfp) * 24 + (int)((size - 1) >> 3);
        return SlabCache.AllocFastNode(smallSlots[e], gfp, node);
    }

    /// <summary>
    /// Everything kmalloc's inlined part leaves: the slow path of a small request, requests of 193 bytes to
    /// 8 KiB (their fast path is tried here), 0 bytes and large requests. Kept out of line so that the code a
    /// caller's loop inlines stays small.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal nint KmallocSlow(nuint size, Gfp gfp, CallSite site)
    {
        if (size - 193 < MaxCacheSize - 192)
        {
            // 193 bytes to 8 KiB: the cache's per-thread fast path first, which needs no count of the call (as the
            // inlined small sizes, a dead or failslab-armed machine's entries miss on their own).
            int i = 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)size - 1);
            nint obj = SlabCache.AllocFast(Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_midSlots), Selector(gfp) * Row + i), gfp);
            if (obj != 0) return obj;
        }
        using var _ = Pages.Life.Enter();
        if (size - 1 < MaxCacheSize)
        {
            int k = KmallocIndex(size, gfp);
            if (_kmalloc[k]!.FailArmed && ShouldFailslab(_kmalloc[k]!, gfp)) return 0;
            if (size > 192)
            {
                nint obj = SlabCache.AllocFast(Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_kmallocSlots), k), gfp);
                if (obj != 0) return obj;
            }
            return _kmalloc[k]!.AllocSlowFor(gfp, site);
        }
        return size == 0 ? ZeroSizePtr : KmallocLarge(size, gfp);
    }

    /// <summary>
    /// kmalloc_node() (6.6 __do_kmalloc_node()): the kmalloc cache's kmem_cache_alloc_node(), or kmalloc_large_node() above
    /// 8 KiB. <paramref name="node"/> NUMA_NO_NODE is kmalloc(); any other node must be online (checked before anything).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public nint KmallocNode(nuint size, Gfp gfp, int node, CallSite site)
    {
        using var _ = Pages.Life.Enter();
        CheckNode(node, "kmalloc_node");
        if (node < 0) return Kmalloc(size, gfp, site);
        if (size - 1 < MaxCacheSize)
        {
            var s = _kmalloc[KmallocIndex(size, gfp)]!;
            if (s.FailArmed && ShouldFailslab(s, gfp)) return 0;
            return s.AllocNodeFor(gfp, node, site);
        }
        return size == 0 ? ZeroSizePtr : KmallocLarge(size, gfp, node);
    }

    /// <summary>
    /// kmalloc_large() / kmalloc_large_node(): compound pages from the page allocator (alloc_pages_node(node, …) for a
    /// node, which may fall back to other nodes; the thread's node for NUMA_NO_NODE), counted as unreclaimable slab.
    /// </summary>
    private nint KmallocLarge(nuint size, Gfp gfp, int node = PageAllocator.NumaNoNode)
    {
        if (size > (nuint)KmallocMaxSize)
        {
            // The page allocator's WARN_ON_ONCE on too large an order unless __GFP_NOWARN, in the release's words.
            if ((gfp & Gfp.NoWarn) == 0)
                Pages.WarnOnce("kmalloc_large:order", $"WARNING: CPU: {Pages.CurrentCpu()} PID: {Environment.CurrentManagedThreadId} at mm/page_alloc.c {Pages.Pcp.AllocFunction}\n" +
                    $"kmalloc: {size} bytes is above KMALLOC_MAX_SIZE ({KmallocMaxSize}): {Pages.Pcp.OrderCheck(SlabArch.GetOrder((long)Math.Min((ulong)size, (ulong)long.MaxValue)), Pages.MaxOrder)}");
            return 0;
        }
        int order = SlabArch.GetOrder((long)size);
        // kmalloc_order(): from 5.9 ("mm, slab: check GFP_SLAB_BUG_MASK before alloc_pages in kmalloc_order",
        // 444050990db4) the zone bits a slab may not use are reported and dropped here too. Before, they went to
        // alloc_pages(): a HighMem block came back, page_address() was NULL, kmalloc() returned NULL and the pages were
        // lost (the bug that commit fixed). Kmem returns NULL too, but reports it and gives the block back.
        if ((gfp & GfpFlags.SlabBugMask) != 0 && _largeChecksFlags) gfp = SlabCache.FixFlags(Pages, gfp);
        int idx = node < 0 ? Pages.Alloc(gfp | Gfp.Comp, order) : Pages.AllocNode(node, gfp | Gfp.Comp, order);
        if (idx < 0) return 0;
        if (Pages.IsHighMem(idx))
        {
            Pages.Free(idx, order, "kmalloc_order");
            Pages.Log.Err($"kmalloc_order: {size} bytes with {GfpFlags.Format(gfp & GfpFlags.SlabBugMask)}: alloc_pages() gave a HighMem block, " +
                "which has no address (page_address() is NULL): kmalloc() returns NULL; this kernel would lose the pages, Kmem frees them");
            return 0;
        }
        _frames[idx].KmallocMark = LargeKmallocMark;
        Pages.Stat.ModSlab(false, (long)PhysicalMemory.PageSize << order, Pages.NodeOfFrame(idx));
        return Pages.LinearAddress(idx);
    }

    /// <summary>Marks the head page of a large kmalloc (<see cref="PageFrame.KmallocMark"/>) so that kfree knows it.</summary>
    private const byte LargeKmallocMark = 0x4b;

    /// <summary>kfree(): accepts 0 and ZERO_SIZE_PTR; anything not handed out by kmalloc is reported and rejected.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Kfree(nint p, CallSite site)
    {
        if ((nuint)(p - Linear) >= LinearBytes) KfreeOutside(p, site);
        else if (!KfreeFast(p, out nint* t, out int len, out int hint)) KfreeByPage(p, t, len, hint, site);
    }

    /// <summary>
    /// kfree() of a pointer outside this machine's linear map: 0 and ZERO_SIZE_PTR are accepted, anything else
    /// (another machine's object included) is reported and rejected. Throws when the machine is disposed.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal void KfreeOutside(nint p, CallSite site)
    {
        Pages.Life.ThrowIfDead();
        if ((nuint)p > (nuint)ZeroSizePtr) KfreeSlow(p, site);
    }

    /// <summary>
    /// kfree's fast path: true when <paramref name="p"/> is 0 or ZERO_SIZE_PTR, or an object of the CPU slab of the
    /// cache this thread freed to last (no page descriptor needed then). Otherwise false, with the thread's table
    /// and the hint's slot for <see cref="KfreeByPage"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool KfreeFast(nint p, out nint* t, out int len, out int hint)
    {
        if ((nuint)p <= (nuint)ZeroSizePtr)
        {
            t = null;
            len = 0;
            hint = SlabThread.DeadSlot;
            return true;
        }
        t = SlabThread.t_table;
        len = SlabThread.t_len;
        // The hint is stored as slot ^ 1, so that a thread's initial 0 names the dead slot, whose entry is always null.
        hint = SlabThread.t_kfreeHint ^ 1;
        return SlabCache.FreeFast(t, len, hint, p);
    }

    /// <summary>
    /// kfree() past the hint: the cache from the page descriptor, then its fast, remote or slow free (out of line).
    /// <paramref name="hint"/> is the slot the fast path tried: its fast free is not tried twice, nor the hint rewritten.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal void KfreeByPage(nint p, nint* t, int len, int hint, CallSite site)
    {
        Pages.Life.ThrowIfDead();
        nuint off = (nuint)(p - Linear);
        if (off < LinearBytes)
        {
            PageFrame* f = _frames + (off >> PhysicalMemory.PageShift);
            if ((f->Flags & PageFlags.Tail) != 0) f = _frames + f->CompoundHead;
            // A slab's id is its cache's slot: the thread's structure for that cache decides without the cache object.
            if ((f->Flags & PageFlags.Slab) != 0)
            {
                int slot = f->SlabCacheSlot;
                if (slot != hint)
                {
                    SlabThread.t_kfreeHint = slot ^ 1;
                    if (SlabCache.FreeFast(t, len, slot, p)) return;
                }
                if (Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_byId), slot)!.FreeRemote(p, t, len)) return;
            }
        }
        KfreeSlow(p, site);
    }

    /// <summary>The cache of the slab holding <paramref name="p"/>, or null (no check that p starts an object).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public SlabCache? SlabCacheOf(nint p)
    {
        nuint off = (nuint)(p - Linear);
        if (off >= LinearBytes) return null;
        PageFrame* f = _frames + (off >> PhysicalMemory.PageShift);
        if ((f->Flags & PageFlags.Tail) != 0) f = _frames + f->CompoundHead;
        // A slab page's id is always a live cache's (its slabs are freed before the cache goes).
        return (f->Flags & PageFlags.Slab) != 0 ? Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_byId), f->SlabCacheSlot) : null;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void KfreeSlow(nint p, CallSite site)
    {
        using var _ = Pages.Life.Enter();
        int large = LargeHead(p, site, "kfree");
        if (large < 0)
        {
            int idx = CheckSlabObject(p, null, site, out var cache);
            cache.FreeToSlab(idx, p, site);
            return;
        }
        int order = _frames[large].Order;
        _frames[large].KmallocMark = 0;
        Pages.Stat.ModSlab(false, -((long)PhysicalMemory.PageSize << order), Pages.NodeOfFrame(large));
        Pages.Free(large, order, "kfree");
    }

    /// <summary>
    /// The head frame when <paramref name="p"/> is a large kmalloc, -1 when it is in a slab; reports and
    /// throws when it is neither (outside memory, a page not from kmalloc, or not the start of the buffer).
    /// </summary>
    private int LargeHead(nint p, CallSite site, string fn)
    {
        nuint off = (nuint)(p - Linear);
        if (off >= LinearBytes) return -1; // CheckSlabObject reports it
        int idx = (int)(off >> PhysicalMemory.PageShift);
        if ((_frames[idx].Flags & PageFlags.Tail) != 0) idx = _frames[idx].CompoundHead;
        ref PageFrame f = ref _frames[idx];
        if ((f.Flags & PageFlags.Slab) != 0) return -1;
        string? problem = null;
        if (f.KmallocMark != LargeKmallocMark || (f.Flags & PageFlags.Allocated) == 0)
            problem = "is not in a slab and was not allocated by kmalloc (kernel BUG at mm/slub.c:4125: BUG_ON(!PageCompound(page)))";
        else if (p != Pages.IdxToVirt(idx))
            problem = $"is inside a {PhysicalMemory.PageSize << f.Order}-byte kmalloc buffer at 0x{Pages.IdxToVirt(idx):x16}, not its start";
        if (problem is null) return idx;
        var sb = new StringBuilder();
        sb.Append($"{fn}: 0x{p:x16} {problem} (called from {site})\n");
        Pages.DumpPage(sb, idx, "invalid kfree");
        Pages.DumpStack(sb);
        Pages.Log.Err(sb.ToString().TrimEnd('\n'));
        throw new InvalidAddressException($"{fn}: 0x{p:x} {problem}; nothing was freed");
    }

    /// <summary>ksize(): the usable size of a kmalloc'd buffer (0 for 0 and ZERO_SIZE_PTR).</summary>
    public nuint Ksize(nint p, CallSite site)
    {
        using var _ = Pages.Life.Enter();
        if ((nuint)p <= (nuint)ZeroSizePtr) return 0;
        int large = LargeHead(p, site, "ksize");
        if (large >= 0) return (nuint)PhysicalMemory.PageSize << _frames[large].Order;
        int idx = CheckSlabObject(p, null, site, out var cache);
        if (cache.ObjectIndex(idx, p) < 0)
        {
            Pages.Log.Err($"ksize: 0x{p:x16} is not the start of an object of {cache.Name} (called from {site})");
            throw new SlabException(SlabError.InvalidPointer, cache.Name, p, $"ksize: 0x{p:x} is not the start of an object of {cache.Name}");
        }
        return (nuint)cache.SlabKsize;
    }

    /// <summary>krealloc() (5.10 __do_krealloc()).</summary>
    public nint Krealloc(nint p, nuint newSize, Gfp gfp, CallSite site)
    {
        if (newSize == 0)
        {
            Kfree(p, site);
            return ZeroSizePtr;
        }
        nuint ks = Ksize(p, site);
        if (ks >= newSize) return p;
        nint ret = Kmalloc(newSize, gfp, site);
        if (ret == 0) return 0;
        if ((nuint)p > (nuint)ZeroSizePtr)
        {
            Buffer.MemoryCopy((void*)p, (void*)ret, (long)newSize, (long)ks);
            Kfree(p, site);
        }
        return ret;
    }
}
