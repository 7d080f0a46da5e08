// alloc_contig_range() and the movable pages it can migrate: pageblock isolation, migration of
// movable blocks out of the range (their owners see the new address), the check that every page of
// the range is free and isolated, taking the range out of the buddy lists as order-0 pages, and
// undoing the isolation. free_contig_range() gives such a range back page by page.
// Locks, outermost first (docs/architecture.md, "Lock order"): a movable block's gate (held by a pin's owner;
// taken here only by try, which cannot deadlock and may go against the order) → _contigLock (cma_mutex: one range
// at a time; migration allocates and frees under it, so per-CPU drains nest in it) → _movableLock (the registry
// of movable blocks) → zone->lock.
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

/// <summary>The outcome of <see cref="PageAllocator.AllocContigRange"/>.</summary>
internal enum ContigResult
{
    /// <summary>The range is allocated.</summary>
    Ok = 0,
    /// <summary>-EBUSY: a page of the range is in use and cannot be migrated (unmovable, pinned, or no target).</summary>
    Busy = -16,
}

internal sealed unsafe partial class PageAllocator
{
    private readonly Lock _contigLock = new();                  // cma_mutex
    private readonly Lock _movableLock = new();
    private readonly Dictionary<int, MovablePage> _movable = [];  // by the frame index of each block's head

    /// <summary>Migrations done by alloc_contig_range (pgmigrate_success).</summary>
    public long PagesMigrated { get; private set; }

    /// <summary>Allocates a movable block whose owner accepts that its content moves (a page-cache-like page).</summary>
    public MovablePage? AllocMovable(Gfp gfp, int order, Func<int, MovablePage> make)
    {
        int idx = Alloc(gfp, order);
        if (idx < 0) return null;
        var h = make(idx);
        LockOrder.Enter(LockRank.Movable, _movableLock);
        lock (_movableLock) _movable.Add(idx, h);
        return h;
    }

    /// <summary>Frees a movable block; the caller holds its gate.</summary>
    public void FreeMovable(MovablePage h, int idx, int order)
    {
        LockOrder.Enter(LockRank.Movable, _movableLock);
        lock (_movableLock) _movable.Remove(idx);
        Free(idx, order, "put_page");
    }

    /// <summary>Movable blocks outstanding.</summary>
    public int MovableCount { get { LockOrder.Enter(LockRank.Movable, _movableLock); lock (_movableLock) return _movable.Count; } }

    /// <summary>
    /// alloc_contig_range(start, end, MIGRATE_CMA): makes every page of [start, end) an allocated order-0 page, migrating
    /// movable blocks out of the way. <paramref name="busyPfn"/> names the page that made it fail.
    /// </summary>
    public ContigResult AllocContigRange(int start, int end, out ulong busyPfn)
    {
        busyPfn = 0;
        var z = ZoneOfIdx(start) ?? throw new ArgumentOutOfRangeException(nameof(start));
        // Isolation covers whole MAX_ORDER blocks and pageblocks, so that no free block straddles its edge.
        int align = Math.Max(MaxOrder - 1, PageblockOrder);
        int outerStart = AlignDownIdx(start, align), outerEnd = AlignUpIdx(end, align);
        if (outerStart < z.StartIdx || outerEnd > z.EndIdx) throw new ArgumentOutOfRangeException(nameof(end), "range outside its zone");
        int blocks = (outerEnd - outerStart) >> PageblockOrder;
        Span<byte> saved = blocks <= 1024 ? stackalloc byte[blocks] : new byte[blocks];
        LockOrder.Enter(LockRank.Contig, _contigLock);
        lock (_contigLock)
        {
            if (!IsolateRange(z, outerStart, saved)) { busyPfn = BasePfn + (ulong)start; return ContigResult.Busy; }
            try
            {
                DrainAllPages();
                var r = MigrateRange(z, start, end, out busyPfn);
                if (r != ContigResult.Ok) return r;
                LockOrder.Enter(LockRank.Zone, z.Lock);
                lock (z.Lock)
                {
                    int bad = FirstNotIsolatedFree(start, end);
                    if (bad >= 0) { busyPfn = BasePfn + (ulong)bad; return ContigResult.Busy; }
                    TakeFreeRange(z, start, end);
                }
                return ContigResult.Ok;
            }
            finally
            {
                UndoIsolateRange(z, outerStart, saved);
            }
        }
    }

    /// <summary>
    /// __cma_alloc() with Rockchip's CONFIG_CMA_INACTIVE (mm/cma.c): the pages of the bitmap range are handed out as they
    /// are, reserved since boot; nothing is isolated or migrated. Kmem marks each an allocated order-0 page with one
    /// reference and keeps PG_reserved as the kernel does, so a stray free to the buddy allocator is a bad page state.
    /// Every frame must be a page of the area that is back in it (PG_reserved alone, the boot reference, unmapped): the
    /// kernel takes them unchecked, but a frame in any other state means the bitmap and the pages disagree, and taking it
    /// would hide that. Then the first such frame gets the bad-page report that check_new_page() gives a page in a wrong
    /// state at allocation (mm/page_alloc.c, 5.10), <paramref name="bad"/> names it, no frame changes, and false returns.
    /// </summary>
    public bool TakeInactiveCmaRange(int start, int count, string caller, out int bad)
    {
        byte zone = (byte)(ZoneOfIdx(start) ?? throw new ArgumentOutOfRangeException(nameof(start))).Index;
        for (bad = start; bad < start + count; bad++)
        {
            ref PageFrame f = ref _f[bad];
            string? reason = (f.Flags & (PageFlags.Buddy | PageFlags.Pcp)) != 0 ? "a free page of the buddy allocator, not of the inactive CMA area"
                : (f.Flags & PageFlags.Reserved) == 0 ? "not a reserved page of the inactive CMA area"
                : f.Flags != PageFlags.Reserved ? "PAGE_FLAGS_CHECK_AT_PREP flag(s) set: already handed out by cma_alloc()"
                : f.RefCount != 1 ? $"_refcount {f.RefCount}, not the reference a reserved page keeps from boot"
                : f.MapCount != 0 ? "nonzero mapcount"
                : null;
            if (reason is not null)
            {
                BadPage(bad, reason, caller);
                return false;
            }
        }
        bad = -1;
        for (int i = start; i < start + count; i++)
        {
            ref PageFrame f = ref _f[i];
            f.Flags = PageFlags.Reserved | PageFlags.Allocated;
            f.RefCount = 1;
            f.MapCount = 0;
            f.Order = 0;
            f.Zone = zone;
            f.Private = 0;
            f.Next = f.Prev = -1;
        }
        return true;
    }

    /// <summary>
    /// cma_release() with CONFIG_CMA_INACTIVE: no free_contig_range(), the pages only go back to the area (reserved, as at
    /// boot). A page that is not one the area handed out, or that someone still holds a reference on, is a bad page state.
    /// </summary>
    /// <exception cref="BadPageStateException">A page of the range is not an allocated area page with one reference.</exception>
    public void ReturnInactiveCmaRange(int start, int count, string caller)
    {
        for (int i = start; i < start + count; i++)
        {
            ref PageFrame f = ref _f[i];
            if (f.Flags != (PageFlags.Reserved | PageFlags.Allocated) || f.RefCount != 1)
                throw BadPage(i, f.RefCount > 1 ? "page still referenced" : "not a page cma_alloc() handed out", caller);
        }
        for (int i = start; i < start + count; i++)
        {
            ref PageFrame f = ref _f[i];
            f.Flags = PageFlags.Reserved;
            f.MapCount = 0;
            f.Private = 0;
        }
    }

    /// <summary>True when the frame is a CMA page of an inactive area that cma_alloc() has not handed out (reserved only).</summary>
    public bool IsReservedOnly(int idx) => _f[idx].Flags == PageFlags.Reserved;

    /// <summary>free_contig_range(): frees each page of a range taken by <see cref="AllocContigRange"/>.</summary>
    public void FreeContigRange(int start, int count)
    {
        for (int i = 0; i < count; i++) Free(start + i, 0, "free_contig_range");
    }

    private int AlignDownIdx(int idx, int order) => (int)((long)(((BasePfn + (ulong)idx) >> order) << order) - (long)BasePfn);

    private int AlignUpIdx(int idx, int order) =>
        (int)((long)((((BasePfn + (ulong)idx) + (1UL << order) - 1) >> order) << order) - (long)BasePfn);

    /// <summary>
    /// start_isolate_page_range(): every pageblock from <paramref name="outerStart"/> becomes MIGRATE_ISOLATE and its free
    /// blocks move to the isolate lists; <paramref name="saved"/> receives each block's type.
    /// </summary>
    private bool IsolateRange(Zone z, int outerStart, Span<byte> saved)
    {
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            for (int b = 0; b < saved.Length; b++)
            {
                int idx = outerStart + (b << PageblockOrder);
                var mt = z.PageblockType(idx);
                if (mt == MigrateType.Isolate)
                {
                    // Someone else isolates it (cannot happen under the contig lock, but never undo a foreign isolation).
                    for (int u = 0; u < b; u++) RestoreBlock(z, outerStart + (u << PageblockOrder), (MigrateType)saved[u]);
                    return false;
                }
                saved[b] = (byte)mt;
                z.SetPageblockType(idx, MigrateType.Isolate);
                z.MoveFreepagesBlock(idx, (int)MigrateType.Isolate, out _);
                z.NrIsolatePageblock++;
            }
        }
        return true;
    }

    private void UndoIsolateRange(Zone z, int outerStart, ReadOnlySpan<byte> saved)
    {
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
            for (int b = 0; b < saved.Length; b++) RestoreBlock(z, outerStart + (b << PageblockOrder), (MigrateType)saved[b]);
        SignalFree();
    }

    private static void RestoreBlock(Zone z, int idx, MigrateType mt)
    {
        z.SetPageblockType(idx, mt);
        z.MoveFreepagesBlock(idx, (int)mt, out _);
        z.NrIsolatePageblock--;
        // Free blocks on either side of the pageblock edge may merge again now that the types agree.
        z.RemergeBlock(idx);
    }

    /// <summary>
    /// __alloc_contig_migrate_range(): every allocated block of [start, end) must be a movable block that is not
    /// pinned; its content moves to a new block outside the isolated range and its owner is updated.
    /// </summary>
    private ContigResult MigrateRange(Zone z, int start, int end, out ulong busyPfn)
    {
        busyPfn = 0;
        for (int i = start; i < end;)
        {
            BlockAt(i, out int head, out int order, out bool free);
            if (free)
            {
                i = head + (1 << order);
                continue;
            }
            MovablePage? h;
            LockOrder.Enter(LockRank.Movable, _movableLock);
            lock (_movableLock) _movable.TryGetValue(head, out h);
            if (h is null || !Migrate(h, head))
            {
                busyPfn = BasePfn + (ulong)i;
                return ContigResult.Busy;
            }
            i = head + (1 << order);
        }
        return ContigResult.Ok;
    }

    /// <summary>migrate_pages() for one movable block: false when it is pinned or no target block can be had.</summary>
    private bool Migrate(MovablePage h, int head)
    {
        if (!Monitor.TryEnter(h.Gate)) return false;         // pinned or being freed: the kernel's -EBUSY/-EAGAIN
        LockOrder.Entered(LockRank.MovablePin, h.Gate);      // a try: it cannot deadlock, so it may go against the order
        try
        {
            if (h.FrameIndex != head || h.Freed || h.PinCount > 0) return false;
            int order = h.Order;
            int target = Alloc(h.Gfp | Gfp.NoWarn | Gfp.RetryMayFail, order);
            if (target < 0) return false;
            // migrate_page_copy() copies with copy_highpage() (kmap_atomic() of both pages); here through the frames' own view.
            Buffer.MemoryCopy((void*)IdxToVirt(head), (void*)IdxToVirt(target), PhysicalMemory.PageSize << order, PhysicalMemory.PageSize << order);
            LockOrder.Enter(LockRank.Movable, _movableLock);
            lock (_movableLock)
            {
                _movable.Remove(head);
                _movable.Add(target, h);
            }
            h.MovedTo(target);
            Free(head, order, "migrate_pages");                 // to the isolate list: its pageblock is isolated
            PagesMigrated += 1L << order;
            return true;
        }
        finally
        {
            Monitor.Exit(h.Gate);
        }
    }

    /// <summary>
    /// The block holding <paramref name="idx"/>: a free buddy block (head, order) or an allocated block (head, order;
    /// order 0 for a page of the per-CPU lists or an unknown page).
    /// </summary>
    private void BlockAt(int idx, out int head, out int order, out bool free)
    {
        ref PageFrame f = ref _f[idx];
        if ((f.Flags & PageFlags.Tail) != 0)
        {
            head = f.CompoundHead;
            order = _f[head].Order;
            free = false;
            return;
        }
        ulong pfn = BasePfn + (ulong)idx;
        for (int o = 0; o < MaxOrder; o++)
        {
            int h = (int)((long)(pfn & ~((1UL << o) - 1)) - (long)BasePfn);
            ref PageFrame hf = ref _f[h];
            if ((hf.Flags & PageFlags.Buddy) != 0 && hf.Order >= o)
            {
                head = h; order = hf.Order; free = true;
                return;
            }
            if ((hf.Flags & PageFlags.Allocated) != 0 && (h == idx || hf.Order >= o))
            {
                head = h; order = hf.Order; free = false;
                return;
            }
        }
        head = idx;
        order = 0;
        free = false;
    }

    /// <summary>True when the page is on a buddy free list (in any block) or on a per-CPU list.</summary>
    public bool IsFreeOrPcp(int idx)
    {
        if ((_f[idx].Flags & PageFlags.Pcp) != 0) return true;
        // From 5.14 a per-CPU list may hold a block of order 1..3 or the THP order: only its head carries PG_pcp.
        for (int o = 1; o <= Math.Max(_pcp.HighestOrder, _pcp.ThpOrder); o++)
        {
            if (!_pcp.Allowed(o)) continue;
            int head = (int)((long)((BasePfn + (ulong)idx) & ~((1UL << o) - 1)) - (long)BasePfn);
            if (head >= 0 && (_f[head].Flags & PageFlags.Pcp) != 0 && _f[head].Order == o) return true;
        }
        BlockAt(idx, out _, out _, out bool free);
        return free;
    }

    /// <summary>test_pages_isolated(): the first page of [start, end) that is not free on an isolate list, or -1.</summary>
    private int FirstNotIsolatedFree(int start, int end)
    {
        for (int i = start; i < end;)
        {
            BlockAt(i, out int head, out int order, out bool free);
            if (!free || _f[head].Migratetype != (int)MigrateType.Isolate) return i;
            i = head + (1 << order);
        }
        return -1;
    }

    /// <summary>isolate_freepages_range(): takes the free blocks covering [start, end); pages outside go back free.</summary>
    private void TakeFreeRange(Zone z, int start, int end)
    {
        for (int i = start; i < end;)
        {
            BlockAt(i, out int head, out int order, out _);
            z.DelFromFreeList(head, order, (int)MigrateType.Isolate);
            int n = 1 << order;
            int from = Math.Max(head, start), to = Math.Min(head + n, end);
            for (int p = from; p < to; p++)
            {
                ref PageFrame f = ref _f[p];
                f.Flags = PageFlags.Allocated;
                f.RefCount = 1;
                f.MapCount = 0;
                f.Order = 0;
                f.Migratetype = (byte)MigrateType.Cma;
                f.Zone = (byte)z.Index;
                f.Private = 0;
                f.Next = f.Prev = -1;
            }
            // The parts of the block outside the range go back as the largest aligned blocks they hold.
            FreeAsBlocks(z, head, from);
            FreeAsBlocks(z, to, head + n);
            i = head + n;
        }
    }

    /// <summary>Frees [from, to) onto the isolate lists in the largest naturally aligned blocks.</summary>
    private void FreeAsBlocks(Zone z, int from, int to)
    {
        while (from < to)
        {
            int order = AlignedBlockOrder(BasePfn, from, to, MaxOrder - 1);
            _f[from].Flags = 0;
            z.FreeOnePage(from, order, (int)MigrateType.Isolate);
            from += 1 << order;
        }
    }

    /// <summary>A run of frames as the fewest naturally aligned power-of-two blocks (a 1 MiB run on a 1 MiB boundary is one block).</summary>
    public static (int Frame, int Order)[] AlignedBlocks(ulong basePfn, int frame, int pages)
    {
        var list = new List<(int, int)>();
        int end = frame + pages;
        while (frame < end)
        {
            int order = AlignedBlockOrder(basePfn, frame, end, 30);
            list.Add((frame, order));
            frame += 1 << order;
        }
        return [.. list];
    }

    /// <summary>
    /// The order of the largest naturally aligned block (by PFN) that starts at frame <paramref name="from"/>, fits before
    /// <paramref name="to"/> and is at most <paramref name="maxOrder"/>: walking a range with it splits the range into the
    /// fewest buddy-shaped blocks.
    /// </summary>
    public static int AlignedBlockOrder(ulong basePfn, int from, int to, int maxOrder)
    {
        ulong pfn = basePfn + (ulong)from;
        int order = Math.Min(System.Numerics.BitOperations.TrailingZeroCount(pfn | (1UL << maxOrder)), maxOrder);
        while ((1 << order) > to - from) order--;
        return order;
    }
}
