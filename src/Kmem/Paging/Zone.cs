// A memory zone: its span, sizes, watermarks and the buddy allocator's free areas (one free list per
// order and migratetype), with the kernel's split (expand), merge, fallback and pageblock stealing.
// Every method here expects the caller to hold Lock (the kernel's zone->lock).
using System.Runtime.CompilerServices;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe class Zone
{
    private const int Mt = PageTypes.MigrateTypes;
    private readonly PageFrame* _frames;
    private readonly ulong _basePfn;          // PFN of frame index 0 of the machine
    private readonly int[] _head;             // [order * Mt + mt] first frame index, -1 when empty
    private readonly int[] _tail;
    private readonly long[] _nrFree;          // blocks on each list
    private readonly byte[] _pageblockMt;     // migratetype per pageblock of the zone
    private readonly ulong _firstBlock;       // StartPfn >> PageblockOrder
    private readonly byte* _pageblockByPfnBlock;
    private readonly PageblockUsemap _usemap;  // the machine-wide copy the free fast path reads

    /// <summary>
    /// __rmqueue_fallback()'s steals, as the mm_page_alloc_extfrag event would count them: [requested type × Mt + type
    /// taken]. Written under the zone lock on the fallback (slow) path only; read by the workload runner's step summary.
    /// </summary>
    public readonly long[] FallbackCounts = new long[Mt * Mt];

    public Zone(ZoneType type, int index, ulong startPfn, ulong endPfn, PageFrameTable frames, ulong basePfn,
        int maxOrder, int pageblockOrder, PageblockUsemap usemap)
    {
        Type = type;
        Index = index;
        FrameWordZone = (ulong)(byte)index << 48;
        Name = PageTypes.ZoneNames[(int)type];
        StartPfn = startPfn;
        EndPfn = endPfn;
        StartIdx = (int)(startPfn - basePfn);
        EndIdx = (int)(endPfn - basePfn);
        _frames = frames.Base;
        _basePfn = basePfn;
        MaxOrder = maxOrder;
        PageblockOrder = pageblockOrder;
        _head = new int[maxOrder * Mt];
        _tail = new int[maxOrder * Mt];
        Array.Fill(_head, -1);
        Array.Fill(_tail, -1);
        _nrFree = new long[maxOrder * Mt];
        _firstBlock = startPfn >> pageblockOrder;
        ulong blocks = endPfn > startPfn ? ((endPfn - 1) >> pageblockOrder) - _firstBlock + 1 : 0;
        _pageblockMt = GC.AllocateArray<byte>((int)blocks, pinned: true);
        Array.Fill(_pageblockMt, (byte)MigrateType.Movable); // memmap_init_zone(): every block starts MOVABLE
        // Indexed by (PFN >> pageblock order) directly: the array is pinned for the zone's lifetime.
        _pageblockByPfnBlock = blocks == 0 ? null : (byte*)Unsafe.AsPointer(ref _pageblockMt[0]) - (long)_firstBlock;
        _usemap = usemap;
        usemap.Claim(StartIdx, EndIdx, MigrateType.Movable);
    }

    public ZoneType Type { get; }
    /// <summary>Position in the machine's zone array (node by node): what a page frame records as its zone.</summary>
    public int Index { get; }
    /// <summary>
    /// <see cref="Index"/> where a page descriptor's second word keeps it (the Zone byte), ready for the one store of
    /// that word that an allocation makes.
    /// </summary>
    public readonly ulong FrameWordZone;
    /// <summary>The node the zone belongs to (<c>zone_to_nid()</c>).</summary>
    public int Node { get; init; }
    /// <summary>The zone's NUMA event counts by <see cref="NumaStat"/> (read them through PageAllocator.NumaEventState).</summary>
    public readonly long[] NumaEvents = new long[6];
    /// <summary><c>zone_idx()</c>: the zone's position among its node's zones (the index gfp_zone() and lowmem_reserve use).</summary>
    public int ZoneIdx { get; init; }
    public string Name { get; }
    public ulong StartPfn { get; }
    public ulong EndPfn { get; }
    public int StartIdx { get; }
    public int EndIdx { get; }
    public int MaxOrder { get; }
    public int PageblockOrder { get; }
    public long Spanned => (long)(EndPfn - StartPfn);
    public long Present { get; set; }
    public long Managed { get; set; }
    public long CmaPages { get; set; }
    /// <summary>populated_zone(): the zone has present pages.</summary>
    public bool Populated => Present > 0;

    /// <summary>The zone lock (spinlock_t lock).</summary>
    public readonly Lock Lock = new();

    /// <summary>NR_FREE_PAGES: pages on the buddy lists (not Isolate, not on per-CPU lists).</summary>
    public long FreePages;
    /// <summary>NR_FREE_CMA_PAGES: free pages on the CMA lists.</summary>
    public long FreeCmaPages;
    /// <summary>Pageblocks now MIGRATE_ISOLATE (nr_isolate_pageblock): drained per-CPU pages of those go to the isolate lists.</summary>
    public int NrIsolatePageblock;
    public long NrReservedHighatomic;

    public long WmarkMin, WmarkLow, WmarkHigh;
    public long[] LowmemReserve = [];
    /// <summary>pcp->batch and pcp->high (high_min from 6.7) as the release sets them (<see cref="Watermarks.PcpSizes"/>).</summary>
    public int PcpBatch = 1, PcpHigh = 6;
    /// <summary>pcp->high_max (6.7's auto-tuning bound; equal to <see cref="PcpHigh"/> before).</summary>
    public int PcpHighMax = 6;
    /// <summary>The boot-time pcp->high the lists have room for; a later recalculation never goes above it (0: none yet).</summary>
    public int PcpHighLimit;
    /// <summary>Pages a full list gives back at once: batch, or nr_pcp_free() from 5.14.</summary>
    public int PcpFreeCount = 1;
    /// <summary>Where this zone's lists start in a thread's per-CPU block (ints), each stack's capacity, and NR_PCP_LISTS.</summary>
    public int PcpOffset, PcpCap, PcpLists = PageTypes.PcpTypes;
    /// <summary>Where this zone's NUMA event counts start in a thread's per-CPU block, in bytes (CONFIG_NUMA).</summary>
    public int NumaStatsOffset;

    public long NrFree(int order, int mt) => _nrFree[order * Mt + mt];

    public long AreaFree(int order)
    {
        long n = 0;
        for (int mt = 0; mt < Mt; mt++) n += _nrFree[order * Mt + mt];
        return n;
    }

    public bool ListEmpty(int order, int mt) => _head[order * Mt + mt] < 0;

    /// <summary>
    /// Bit n set while a free list of order n of one of the per-CPU types (unmovable, movable, reclaimable) has a block:
    /// the first question of __zone_watermark_ok()'s free-area walk for a high-order request, answered in one load by
    /// the high-order fast path (written under the zone lock, read without it, as the kernel reads free_area).
    /// </summary>
    public uint PcpTypeOrders;

    public int FirstOnList(int order, int mt) => _head[order * Mt + mt];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(int idx) => idx >= StartIdx && idx < EndIdx;

    // ---------------------------------------------------------------- pageblocks

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public MigrateType PageblockType(int idx) =>
        (MigrateType)_pageblockByPfnBlock[(long)((_basePfn + (ulong)idx) >> PageblockOrder)];

    /// <summary>set_pageblock_migratetype(): the zone's own entry and the machine-wide usemap's.</summary>
    public void SetPageblockType(int idx, MigrateType mt)
    {
        _pageblockMt[((_basePfn + (ulong)idx) >> PageblockOrder) - _firstBlock] = (byte)mt;
        _usemap.Set(idx, mt);
    }

    public int PageblockCount => _pageblockMt.Length;

    public MigrateType PageblockTypeAt(int block) => (MigrateType)_pageblockMt[block];

    /// <summary>First frame index of pageblock number <paramref name="block"/> of the zone (may precede StartIdx).</summary>
    public long PageblockStartIdx(int block) => (long)(((_firstBlock + (ulong)block) << PageblockOrder) - _basePfn);

    // ---------------------------------------------------------------- free lists

    public void AddToFreeList(int idx, int order, int mt, bool toTail)
    {
        ref PageFrame f = ref _frames[idx];
        f.Flags = (f.Flags & ~(PageFlags.Pcp | PageFlags.Allocated | PageFlags.Head)) | PageFlags.Buddy;
        f.Order = (byte)order;
        f.Migratetype = (byte)mt;
        f.RefCount = 0;
        int slot = order * Mt + mt;
        if (_head[slot] < 0)
        {
            f.Next = f.Prev = -1;
            _head[slot] = _tail[slot] = idx;
        }
        else if (toTail)
        {
            int t = _tail[slot];
            _frames[t].Next = idx;
            f.Prev = t;
            f.Next = -1;
            _tail[slot] = idx;
        }
        else
        {
            int h = _head[slot];
            _frames[h].Prev = idx;
            f.Next = h;
            f.Prev = -1;
            _head[slot] = idx;
        }
        _nrFree[slot]++;
        if (mt < PageTypes.PcpTypes) Volatile.Write(ref PcpTypeOrders, PcpTypeOrders | 1u << order);
        if (mt != (int)MigrateType.Isolate) FreePages += 1L << order;
        if (mt == (int)MigrateType.Cma) FreeCmaPages += 1L << order;
    }

    public void DelFromFreeList(int idx, int order, int mt)
    {
        ref PageFrame f = ref _frames[idx];
        int slot = order * Mt + mt;
        if (f.Prev >= 0) _frames[f.Prev].Next = f.Next; else _head[slot] = f.Next;
        if (f.Next >= 0) _frames[f.Next].Prev = f.Prev; else _tail[slot] = f.Prev;
        f.Next = f.Prev = -1;
        f.Flags &= ~PageFlags.Buddy;
        _nrFree[slot]--;
        if (mt < PageTypes.PcpTypes && _head[slot] < 0) ClearPcpTypeOrder(order);
        if (mt != (int)MigrateType.Isolate) FreePages -= 1L << order;
        if (mt == (int)MigrateType.Cma) FreeCmaPages -= 1L << order;
    }

    /// <summary>The last block of a per-CPU type's list of <paramref name="order"/> left it: clear the order's bit if the others are empty too.</summary>
    private void ClearPcpTypeOrder(int order)
    {
        int s = order * Mt;
        if (_head[s] < 0 && _head[s + 1] < 0 && _head[s + 2] < 0) Volatile.Write(ref PcpTypeOrders, PcpTypeOrders & ~(1u << order));
    }

    private void MoveToFreeList(int idx, int order, int newMt)
    {
        int old = _frames[idx].Migratetype;
        DelFromFreeList(idx, order, old);
        AddToFreeList(idx, order, newMt, toTail: true);
    }

    // ---------------------------------------------------------------- free (merge)

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsBuddy(int buddyIdx, int order) =>
        Contains(buddyIdx) && (_frames[buddyIdx].Flags & PageFlags.Buddy) != 0 && _frames[buddyIdx].Order == order;

    /// <summary>__free_one_page(): merge with free buddies as far as possible and put the block on a list.</summary>
    public void FreeOnePage(int idx, int order, int mt)
    {
        ulong pfn = _basePfn + (ulong)idx;
        while (order < MaxOrder - 1)
        {
            ulong buddyPfn = pfn ^ (1UL << order);
            int buddyIdx = (int)((long)buddyPfn - (long)_basePfn);
            if (!IsBuddy(buddyIdx, order)) break;
            int buddyMt = _frames[buddyIdx].Migratetype;
            if (order >= PageblockOrder && buddyMt != mt && !CanMergeAcrossBlocks(mt, buddyMt)) break;
            DelFromFreeList(buddyIdx, order, buddyMt);
            pfn &= buddyPfn;
            order++;
        }
        idx = (int)(pfn - _basePfn);
        AddToFreeList(idx, order, mt, BuddyMergeLikely(pfn, order));
    }

    // Isolated and CMA pageblocks never merge with blocks of another type (the 6.x rule; 5.10 only guarded isolate).
    private static bool CanMergeAcrossBlocks(int a, int b) =>
        a != (int)MigrateType.Isolate && b != (int)MigrateType.Isolate && a != (int)MigrateType.Cma && b != (int)MigrateType.Cma;

    /// <summary>buddy_merge_likely(): put the block at the tail when its buddy's buddy is free one order up.</summary>
    private bool BuddyMergeLikely(ulong pfn, int order)
    {
        if (order >= MaxOrder - 2) return false;
        ulong buddyPfn = pfn ^ (1UL << order);
        ulong combined = buddyPfn & pfn;
        ulong higherBuddy = combined ^ (1UL << (order + 1));
        return IsBuddy((int)((long)higherBuddy - (long)_basePfn), order + 1);
    }

    // ---------------------------------------------------------------- allocate (split)

    /// <summary>__rmqueue_smallest(): the smallest block of the type that fits; split the rest back.</summary>
    public int RmqueueSmallest(int order, int mt)
    {
        for (int o = order; o < MaxOrder; o++)
        {
            int idx = _head[o * Mt + mt];
            if (idx < 0) continue;
            DelFromFreeList(idx, o, mt);
            Expand(idx, order, o, mt);
            return idx;
        }
        return -1;
    }

    /// <summary>expand(): hand back the upper halves of a split block, largest first.</summary>
    private void Expand(int idx, int low, int high, int mt)
    {
        int size = 1 << high;
        while (high > low)
        {
            high--;
            size >>= 1;
            AddToFreeList(idx + size, high, mt, toTail: false);
        }
    }

    /// <summary>__rmqueue(): the requested type, CMA for movable callers, then stealing from fallbacks.</summary>
    public int Rmqueue(int order, int mt, AllocFlags flags, out int fromMt)
    {
        bool cma = (flags & AllocFlags.Cma) != 0;
        while (true)
        {
            if (cma && FreeCmaPages > FreePages / 2)
            {
                int c = RmqueueSmallest(order, (int)MigrateType.Cma);
                if (c >= 0) { fromMt = (int)MigrateType.Cma; return c; }
            }
            int idx = RmqueueSmallest(order, mt);
            if (idx >= 0) { fromMt = mt; return idx; }
            if (cma)
            {
                idx = RmqueueSmallest(order, (int)MigrateType.Cma);
                if (idx >= 0) { fromMt = (int)MigrateType.Cma; return idx; }
            }
            if (mt >= PageTypes.PcpTypes || !RmqueueFallback(order, mt)) { fromMt = mt; return -1; }
        }
    }

    // can_steal_fallback()
    private bool CanStealFallback(int order, int startMt) =>
        order >= PageblockOrder || order >= PageblockOrder / 2
        || startMt == (int)MigrateType.Reclaimable || startMt == (int)MigrateType.Unmovable;

    private int FindSuitableFallback(int order, int startMt, out bool canSteal)
    {
        canSteal = false;
        if (AreaFree(order) == 0) return -1;
        foreach (var fb in PageTypes.Fallbacks[startMt])
        {
            if (ListEmpty(order, (int)fb)) continue;
            canSteal = CanStealFallback(order, startMt);
            return (int)fb;
        }
        return -1;
    }

    /// <summary>__rmqueue_fallback(): steal the largest suitable block of another type.</summary>
    private bool RmqueueFallback(int order, int startMt)
    {
        int fbMt = -1, current = -1;
        bool canSteal = false;
        for (int o = MaxOrder - 1; o >= order; o--)
        {
            fbMt = FindSuitableFallback(o, startMt, out canSteal);
            if (fbMt < 0) continue;
            current = o;
            if (!canSteal && startMt == (int)MigrateType.Movable && o > order)
            {
                // find_smallest: a movable caller takes the smallest block instead of breaking a large one.
                current = -1;
                for (int s = order; s < MaxOrder; s++)
                {
                    fbMt = FindSuitableFallback(s, startMt, out canSteal);
                    if (fbMt >= 0) { current = s; break; }
                }
            }
            break;
        }
        if (current < 0 || fbMt < 0) return false;
        int idx = _head[current * Mt + fbMt];
        FallbackCounts[startMt * Mt + fbMt]++;
        StealSuitableFallback(idx, current, startMt, canSteal);
        return true;
    }

    /// <summary>steal_suitable_fallback(): claim the whole pageblock when enough of it is free or alike.</summary>
    private void StealSuitableFallback(int idx, int currentOrder, int startMt, bool wholeBlock)
    {
        int oldType = (int)PageblockType(idx);
        if (currentOrder >= PageblockOrder)
        {
            // change_pageblock_range()
            int blocks = 1 << (currentOrder - PageblockOrder);
            for (int b = 0; b < blocks; b++) SetPageblockType(idx + (b << PageblockOrder), (MigrateType)startMt);
            MoveToFreeList(idx, currentOrder, startMt);
            return;
        }
        if (wholeBlock)
        {
            int free = MoveFreepagesBlock(idx, startMt, out int movable);
            int alike = startMt == (int)MigrateType.Movable ? movable
                : oldType == (int)MigrateType.Movable ? (1 << PageblockOrder) - (free + movable) : 0;
            if (free > 0)
            {
                if (free + alike >= 1 << (PageblockOrder - 1)) SetPageblockType(idx, (MigrateType)startMt);
                return;
            }
        }
        MoveToFreeList(idx, currentOrder, startMt);
    }

    /// <summary>move_freepages_block(): move every free block of the pageblock to another list.</summary>
    public int MoveFreepagesBlock(int idx, int newMt, out int movable)
    {
        movable = 0;
        long start = (long)((((_basePfn + (ulong)idx) >> PageblockOrder) << PageblockOrder) - _basePfn);
        long end = start + (1L << PageblockOrder);
        if (start < StartIdx) start = StartIdx;
        if (end > EndIdx) end = EndIdx;
        int moved = 0;
        for (long i = start; i < end;)
        {
            ref PageFrame f = ref _frames[i];
            if ((f.Flags & PageFlags.Buddy) != 0)
            {
                int o = f.Order;
                if (f.Migratetype != newMt) MoveToFreeList((int)i, o, newMt);
                moved += 1 << o;
                i += 1L << o;
                continue;
            }
            if ((f.Flags & PageFlags.Allocated) != 0 && f.Migratetype == (int)MigrateType.Movable)
            {
                movable += 1 << f.Order;
                i += 1L << f.Order;
                continue;
            }
            i++;
        }
        return moved;
    }

    /// <summary>
    /// unset_migratetype_isolate()'s remerge: a free block of at least pageblock order at the start of the pageblock
    /// is freed again, so that it merges with its buddy across the pageblock edge now that their types agree.
    /// </summary>
    public void RemergeBlock(int idx)
    {
        long start = (long)((((_basePfn + (ulong)idx) >> PageblockOrder) << PageblockOrder) - _basePfn);
        if (start < StartIdx || start >= EndIdx) return;
        ref PageFrame f = ref _frames[start];
        if ((f.Flags & PageFlags.Buddy) == 0 || f.Order < PageblockOrder || f.Order >= MaxOrder - 1) return;
        int o = f.Order, mt = f.Migratetype;
        DelFromFreeList((int)start, o, mt);
        FreeOnePage((int)start, o, mt);
    }

    // ---------------------------------------------------------------- high-atomic reserve

    /// <summary>reserve_highatomic_pageblock(): keep a pageblock for high-order atomic callers.</summary>
    public void ReserveHighatomicPageblock(int idx)
    {
        long maxManaged = Managed / 100 + (1L << PageblockOrder);
        if (NrReservedHighatomic >= maxManaged) return;
        var mt = PageblockType(idx);
        if (mt is MigrateType.HighAtomic or MigrateType.Isolate or MigrateType.Cma) return;
        NrReservedHighatomic += 1L << PageblockOrder;
        SetPageblockType(idx, MigrateType.HighAtomic);
        MoveFreepagesBlock(idx, (int)MigrateType.HighAtomic, out _);
    }

    /// <summary>unreserve_highatomic_pageblock(): give one reserved block back to <paramref name="mt"/>.</summary>
    public bool UnreserveHighatomicPageblock(int mt, bool force)
    {
        if (!force && NrReservedHighatomic <= 1L << PageblockOrder) return false;
        for (int o = 0; o < MaxOrder; o++)
        {
            int idx = _head[o * Mt + (int)MigrateType.HighAtomic];
            if (idx < 0) continue;
            NrReservedHighatomic -= Math.Min(1L << PageblockOrder, NrReservedHighatomic);
            SetPageblockType(idx, (MigrateType)mt);
            if (MoveFreepagesBlock(idx, mt, out _) > 0) return true;
        }
        return false;
    }
}

/// <summary>ALLOC_* flags of the allocator's internal policy (mm/internal.h).</summary>
[Flags]
internal enum AllocFlags
{
    WmarkMin = 0,
    WmarkLow = 1,
    WmarkHigh = 2,
    NoWatermarks = 4,
    WmarkMask = NoWatermarks - 1,
    Oom = 0x08,
    Harder = 0x10,
    High = 0x20,
    Cpuset = 0x40,
    Cma = 0x80,
}
