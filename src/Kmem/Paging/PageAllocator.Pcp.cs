// The order-0 fast path: per-thread lists (see PerCpuPages.cs for the handshake), their refill from
// and flush to the buddy lists in batches, and drain_all_pages(). From 5.14 the lists also hold orders
// 1..PAGE_ALLOC_COSTLY_ORDER and the THP order ("mm/page_alloc: allow high-order pages to be stored on the
// per-cpu lists"); those go through the same lists on slower, non-inlined paths.
// Locks (docs/architecture.md, "Lock order"): a thread list's DrainLock, then zone->lock for a batch's refill
// or flush; _cachesLock (the list of thread lists) is a leaf, never held while another is taken.
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    [ThreadStatic] private static PcpThreadCache? t_cache;
    // The fast path's view of the calling thread's block for the allocator it used last: primitive
    // thread statics are read inline, where an object reference needs a runtime helper call.
    [ThreadStatic] private static int t_pcpOwner;
    [ThreadStatic] private static nint t_pcpMem;
    private static int s_nextAllocatorId;
    private readonly int _allocatorId = Interlocked.Increment(ref s_nextAllocatorId);

    /// <summary>The calling thread's per-CPU block for this allocator (created on first use).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int* ThreadBlock() => t_pcpOwner == _allocatorId ? (int*)t_pcpMem : ThreadCacheSlow().Mem;

    /// <summary>The calling thread's block, for tests that inspect or damage its header.</summary>
    internal int* CallerBlock => ThreadBlock();

    /// <summary>
    /// The calling thread's block for this allocator, or null when it has none yet or a gate closes the fast paths
    /// (shutdown, fault injection: see <see cref="_fastOwnerId"/>). Inlined: no call but the thread-local read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int* FastThreadBlock()
    {
        int id = _fastOwnerId;   // read first: it is the null check of this, so no separate test before the thread-local read
        return t_pcpOwner == id ? (int*)t_pcpMem : null;
    }

    private readonly Lock _cachesLock = new();
    private readonly List<PcpThreadCache> _caches = [];

    /// <summary>The calling thread's lists for this allocator (created on first use).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private PcpThreadCache ThreadCache()
    {
        var c = t_cache;
        if (c is not null && c.OwnerId == _allocatorId) return c;
        return ThreadCacheSlow();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private PcpThreadCache ThreadCacheSlow()
    {
        // Walk this thread's chain (one cache per allocator it has used), dropping dead allocators'.
        PcpThreadCache? prev = null, cur = t_cache, found = null;
        while (cur is not null)
        {
            var next = cur.NextInThread;
            if (cur.Dead)
            {
                if (prev is null) t_cache = next; else prev.NextInThread = next;
                cur.NextInThread = null;
            }
            else
            {
                if (cur.OwnerId == _allocatorId) { found = cur; break; }
                prev = cur;
            }
            cur = next;
        }
        if (found is not null)
        {
            if (prev is not null)
            {
                prev.NextInThread = found.NextInThread;
                found.NextInThread = t_cache;
                t_cache = found;
            }
            t_pcpOwner = _allocatorId;
            t_pcpMem = (nint)found.Mem;
            return found;
        }
        if (_disposed) ThrowDisposed();
        var created = new PcpThreadCache(this, _allocatorId, Thread.CurrentThread, CurrentCpu());
        lock (_cachesLock)
        {
            if (_disposed) ThrowDisposed();
            _caches.Add(created);
        }
        created.NextInThread = t_cache;
        t_cache = created;
        t_pcpOwner = _allocatorId;
        t_pcpMem = (nint)created.Mem;
        return created;
    }

    /// <summary>
    /// The CPU of the profile the calling thread is accounted to: its per-CPU block's (see <see cref="MigrateCurrentThread"/>),
    /// or, before it has one, the host processor it runs on modulo the CPU count (what the block will take).
    /// </summary>
    public int CurrentCpu()
    {
        for (var c = t_cache; c is not null; c = c.NextInThread)
            if (c.OwnerId == _allocatorId && !c.Dead) return c.Cpu;
        return Thread.GetCurrentProcessorId() % Cpus;
    }

    // ---------------------------------------------------------------- allocate

    /// <summary>rmqueue_pcplist(): order 0 from the thread's list, refilled by a batch when empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int RmqueuePcp(Zone z, int mt, AllocFlags af) => RmqueuePcp(ThreadBlock(), z, mt, af);

    /// <summary>rmqueue_pcplist() on the calling thread's block <paramref name="mem"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int RmqueuePcp(int* mem, Zone z, int mt, AllocFlags af)
    {
        var hs = PcpThreadCache.Handshake(mem);
        if (hs->OwnerEnter())                            // no drainer: the lists are ours
        {
            int idx = RmqueuePcpOwned(new PerCpuPages(mem + z.PcpOffset, z.PcpCap, z), mt, af);
            hs->OwnerExit();
            return idx;
        }
        hs->OwnerExit();
        return RmqueuePcpWhileDraining(z, mt, af);
    }

    /// <summary>A drainer holds the lists: wait for it under the drain lock, then take a page.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int RmqueuePcpWhileDraining(Zone z, int mt, AllocFlags af)
    {
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            if (c.Dead) ThrowDisposed();
            return RmqueuePcpOwned(c.For(z), mt, af);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int RmqueuePcpOwned(PerCpuPages pcp, int mt, AllocFlags af)
    {
        int idx = pcp.PopHot(mt);
        return idx >= 0 ? idx : RefillPcp(pcp, mt, af);
    }

    /// <summary>rmqueue_bulk(): move up to a batch of order-0 pages from the buddy lists to the list, take the first.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int RefillPcp(PerCpuPages pcp, int mt, AllocFlags af)
    {
        var z = pcp.Zone;
        Span<int> got = stackalloc int[Math.Min(z.PcpBatch, 1024)];
        int n = 0;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            for (; n < got.Length; n++)
            {
                int idx = z.Rmqueue(0, mt, af, out int fromMt);
                if (idx < 0) break;
                ref PageFrame f = ref _f[idx];
                f.Flags = PageFlags.Pcp;
                f.Order = 0;
                f.Migratetype = (byte)fromMt;
                got[n] = idx;
            }
        }
        if (n == 0) return -1;
        // The kernel appends the batch at the list tail and takes the head: the first page taken goes out now,
        // the rest stay in the order they came (lowest first on the hot end).
        for (int i = n - 1; i >= 1; i--) pcp.PushHot(mt, got[i]);
        return got[0];
    }

    /// <summary>rmqueue_pcplist() for a block of order 1..PAGE_ALLOC_COSTLY_ORDER or the THP order (5.14 on).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int RmqueuePcpHigh(Zone z, int order, int mt, AllocFlags af) => RmqueuePcpHigh(ThreadBlock(), z, order, mt, af);

    /// <summary>
    /// rmqueue_pcplist() of a high order on the calling thread's block <paramref name="mem"/>: the hot block of the
    /// order's list, inline; an empty list is refilled out of line (<see cref="RefillPcpHigh"/>), still in the owner's
    /// section, as the order-0 path does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int RmqueuePcpHigh(int* mem, Zone z, int order, int mt, AllocFlags af)
    {
        var hs = PcpThreadCache.Handshake(mem);
        if (hs->OwnerEnter())
        {
            int idx = RmqueuePcpHighOwned(new PerCpuPages(mem + z.PcpOffset, z.PcpCap, z), order, mt, af);
            hs->OwnerExit();
            return idx;
        }
        hs->OwnerExit();
        return RmqueuePcpHighWhileDraining(z, order, mt, af);
    }

    /// <summary>A drainer holds the lists: wait for it under the drain lock, then take a block.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int RmqueuePcpHighWhileDraining(Zone z, int order, int mt, AllocFlags af)
    {
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            if (c.Dead) ThrowDisposed();
            return RmqueuePcpHighOwned(c.For(z), order, mt, af);
        }
    }

    /// <summary>__rmqueue_pcplist() of a high order: the hot block of the order's list, else a refill (out of line).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int RmqueuePcpHighOwned(PerCpuPages pcp, int order, int mt, AllocFlags af)
    {
        int list = _pcp.Index(mt, order);
        int idx = pcp.PopHot(list, order);
        return idx >= 0 ? idx : RefillPcpHigh(pcp, list, order, mt, af);
    }

    /// <summary>
    /// __rmqueue_pcplist()'s refill of an empty list: rmqueue_bulk() of batch blocks scaled to the order
    /// (max(batch &gt;&gt; order, 2) when batch &gt; 1: a batch of 1 keeps nothing on the lists), the first returned.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int RefillPcpHigh(PerCpuPages pcp, int list, int order, int mt, AllocFlags af)
    {
        var z = pcp.Zone;
        int batch = z.PcpBatch;
        if (batch > 1) batch = Math.Max(batch >> order, 2);
        Span<int> got = stackalloc int[Math.Min(batch, 1024)];
        int n = 0, idx;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            for (; n < got.Length; n++)
            {
                idx = z.Rmqueue(order, mt, af, out int fromMt);
                if (idx < 0) break;
                ref PageFrame f = ref _f[idx];
                f.Flags = PageFlags.Pcp;
                f.Order = (byte)order;
                f.Migratetype = (byte)fromMt;
                got[n] = idx;
            }
        }
        if (n == 0) return -1;
        for (int i = n - 1; i >= 1; i--) pcp.PushHot(list, order, got[i]);
        return got[0];
    }
    // ---------------------------------------------------------------- free

    /// <summary>free_unref_page(): an order-0 page goes to the head of the thread's list for its pageblock type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FreeUnrefPage(Zone z, int idx)
    {
        int mt = (int)z.PageblockType(idx);
        if (mt == (int)MigrateType.Isolate)
        {
            FreeIsolatedPage(z, idx);
            return;
        }
        ref PageFrame f = ref _f[idx];
        f.Flags = PageFlags.Pcp;
        f.Migratetype = (byte)mt; // set_pcppage_migratetype()
        int list = mt < PageTypes.PcpTypes ? mt : (int)MigrateType.Movable; // HighAtomic and CMA wait on the movable list
        int* mem = ThreadBlock();
        var hs = PcpThreadCache.Handshake(mem);
        if (hs->OwnerEnter())                            // no drainer: the lists are ours
        {
            FreeUnrefPageOwned(new PerCpuPages(mem + z.PcpOffset, z.PcpCap, z), list, idx);
            hs->OwnerExit();
            return;
        }
        hs->OwnerExit();
        FreeUnrefPageWhileDraining(z, list, idx);
    }

    /// <summary>A drainer holds the lists: wait for it under the drain lock, then add the page.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeUnrefPageWhileDraining(Zone z, int list, int idx)
    {
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            if (c.Dead) ThrowDisposed();
            FreeUnrefPageOwned(c.For(z), list, idx);
        }
    }

    /// <summary>Pages of isolated pageblocks bypass the per-CPU lists.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeIsolatedPage(Zone z, int idx, int order = 0)
    {
        _f[idx].Flags = 0;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock) z.FreeOnePage(idx, order, (int)MigrateType.Isolate);
        SignalFree();
    }

    /// <summary>
    /// The fast free left the thread's list of <paramref name="z"/> at or above high: free_pcppages_bulk() of the
    /// release's count, in the owner's section again (a drainer may have emptied the list in between).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreePcpOverHigh(Zone z)
    {
        int* mem = ThreadBlock();
        var hs = PcpThreadCache.Handshake(mem);
        if (hs->OwnerEnter())
        {
            var pcp = new PerCpuPages(mem + z.PcpOffset, z.PcpCap, z);
            if (pcp.Count >= z.PcpHigh) FreePcppagesBulk(pcp, z.PcpFreeCount);
            hs->OwnerExit();
            return;
        }
        hs->OwnerExit();
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            if (c.Dead) ThrowDisposed();
            var pcp = c.For(z);
            if (pcp.Count >= z.PcpHigh) FreePcppagesBulk(pcp, z.PcpFreeCount);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FreeUnrefPageOwned(PerCpuPages pcp, int mt, int idx)
    {
        if (pcp.PushHot(mt, idx) >= pcp.Zone.PcpHigh) FreePcppagesBulk(pcp, pcp.Zone.PcpFreeCount);
    }

    /// <summary>
    /// free_unref_page() of a block of order 1.._pcpFastOrder whose sole owner frees it on a thread that has its block
    /// (the caller checked the descriptor). The common case is written out as the order-0 free's is, with the zone's
    /// list places found from the descriptor's zone byte: a block of a per-CPU type's pageblock to lists no drainer holds,
    /// which stay below high. Everything else ends in a tail call.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreePcpHighOrder(int* mem, int idx, int order)
    {
        ref PageFrame f = ref _f[(uint)idx];
        int zone = f.Zone;                              // read before the block is on a list: another thread may own it after
        int mt = UsemapType(idx);
        if (mt < PageTypes.PcpTypes)
        {
            ref PcpPlace place = ref _pcpPlacesPtr[(uint)zone];
            var hs = PcpThreadCache.Handshake(mem);
            if (hs->OwnerEnter())
            {
                Unsafe.As<PageFrame, ulong>(ref f) = (ulong)PageFlags.Pcp;   // Flags=Pcp, RefCount=0: one store
                f.Migratetype = (byte)mt;               // the Order byte already holds the order
                int count = PerCpuPages.PushHot(mem + (uint)place.Offset, place.Cap, PageTypes.PcpTypes * order + mt, order, idx);
                hs->OwnerExit();
                if (count >= place.High) FreePcpOverHigh(Zones[zone]);
                return;
            }
            hs->OwnerExit();
        }
        f.RefCount = 0;
        FreeUnrefPageHighGeneral(Zones[zone], idx, order, mem);
    }

    /// <summary>
    /// free_unref_page() for a block of order 1..PAGE_ALLOC_COSTLY_ORDER or the THP order (5.14 on), from the slow free
    /// paths (the caller dropped the last reference). A block of the fast orders whose descriptor names
    /// <paramref name="z"/> takes <see cref="FreePcpHighOrder"/>; the THP order and anything else take
    /// <see cref="FreeUnrefPageHighGeneral"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeUnrefPageHigh(Zone z, int idx, int order)
    {
        ref PageFrame f = ref _f[(uint)idx];
        if (order <= _pcpFastOrder && f.Zone == z.Index)
        {
            f.Order = (byte)order;
            FreePcpHighOrder(ThreadBlock(), idx, order);
            return;
        }
        FreeUnrefPageHighGeneral(z, idx, order, ThreadBlock());
    }

    /// <summary><see cref="FreePcpHighOrder"/> for every case: shared, isolated, CMA and highatomic blocks, the THP order, a drainer.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeUnrefPageHighGeneral(Zone z, int idx, int order, int* mem)
    {
        // The usemap, as on the order-0 free; a block two zones share is the zone's own to tell.
        int mt = UsemapType(idx);
        if (mt == PageblockUsemap.Shared) mt = (int)z.PageblockType(idx);
        if (mt == (int)MigrateType.Isolate)
        {
            FreeIsolatedPage(z, idx, order);
            return;
        }
        ref PageFrame f = ref _f[idx];
        f.Flags = PageFlags.Pcp;
        f.Order = (byte)order;
        f.Migratetype = (byte)mt;
        int list = _pcp.Index(mt < PageTypes.PcpTypes ? mt : (int)MigrateType.Movable, order);
        var hs = PcpThreadCache.Handshake(mem);
        if (hs->OwnerEnter())
        {
            FreeUnrefPageHighOwned(new PerCpuPages(mem + z.PcpOffset, z.PcpCap, z), list, order, idx);
            hs->OwnerExit();
            return;
        }
        hs->OwnerExit();
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            if (c.Dead) ThrowDisposed();
            FreeUnrefPageHighOwned(c.For(z), list, order, idx);
        }
    }

    private void FreeUnrefPageHighOwned(PerCpuPages pcp, int list, int order, int idx)
    {
        if (pcp.PushHot(list, order, idx) >= pcp.Zone.PcpHigh) FreePcppagesBulk(pcp, pcp.Zone.PcpFreeCount);
    }

    /// <summary>
    /// free_pcppages_bulk(): return <paramref name="count"/> pages, the coldest blocks first, round-robin over the lists
    /// (a list of order n gives blocks of 2^n pages, so the last block may overshoot the count, as the kernel's does).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreePcppagesBulk(PerCpuPages pcp, int count)
    {
        var z = pcp.Zone;
        if (count > pcp.Count) count = pcp.Count;
        if (count <= 0) return;
        int lists = z.PcpLists;
        Span<int> taken = count <= 1024 ? stackalloc int[count] : new int[count];
        Span<byte> orders = count <= 1024 ? stackalloc byte[count] : new byte[count];
        int got = 0, pindex = 0, batchFree = 0;
        while (count > 0)
        {
            do
            {
                batchFree++;
                if (++pindex == lists) pindex = 0;
            } while (pcp.Length(pindex) == 0);
            if (batchFree == lists) batchFree = count; // only one list has pages
            int order = lists == PageTypes.PcpTypes ? 0 : _pcp.OrderOf(pindex);
            int n = pcp.TakeCold(pindex, taken[got..], Math.Min(batchFree, (count + (1 << order) - 1) >> order), order);
            orders.Slice(got, n).Fill((byte)order);
            got += n;
            count -= n << order;
            batchFree -= n;
        }
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            for (int i = 0; i < got; i++)
            {
                int idx = taken[i];
                ref PageFrame f = ref _f[idx];
                int pageMt = f.Migratetype;
                // A page whose pageblock was isolated while it waited here goes to the isolate list.
                if (z.NrIsolatePageblock > 0 && z.PageblockType(idx) == MigrateType.Isolate) pageMt = (int)MigrateType.Isolate;
                f.Flags = 0;
                z.FreeOnePage(idx, orders[i], pageMt);
            }
        }
        SignalFree();
    }

    // ---------------------------------------------------------------- drain

    /// <summary>drain_all_pages(NULL): every thread's lists go back to the buddy lists.</summary>
    public void DrainAllPages()
    {
        PcpThreadCache[] all;
        lock (_cachesLock) all = _caches.ToArray();
        List<PcpThreadCache>? dead = null;
        foreach (var c in all)
        {
            // Whether the thread is gone is read before the drain: a thread still alive during the drain may free
            // pages into its lists and then end, and releasing its lists then would lose those pages.
            bool gone = !c.Thread.IsAlive;
            DrainCache(c);
            if (gone) (dead ??= []).Add(c);
        }
        if (dead is not null)
        {
            ReleaseDeadCaches(dead);                    // their threads are gone: nobody can reach the lists any more
        }
    }

    /// <summary>Drains only the calling thread's lists (drain_local_pages()).</summary>
    public void DrainLocalPages()
    {
        var c = t_cache;
        while (c is not null && c.OwnerId != _allocatorId) c = c.NextInThread;
        if (c is not null) DrainCache(c);
    }

    private void DrainCache(PcpThreadCache c)
    {
        lock (c.DrainLock)
        {
            if (c.Mem == null) return; // released: its thread is gone and its pages were returned
            bool self = ReferenceEquals(c.Thread, Thread.CurrentThread);
            if (!self) c.Hs->DrainerEnter();
            foreach (var z in Zones)
            {
                if (!z.Populated) continue;
                var pcp = c.For(z);
                if (pcp.Count > 0) FreePcppagesBulk(pcp, pcp.Count);
            }
            if (!self) c.Hs->DrainerExit();
        }
    }

    /// <summary>Per-CPU list counts reported per profile CPU and zone (the zoneinfo "pagesets").</summary>
    public int PcpCount(int zoneIndex, int cpu)
    {
        int n = 0;
        lock (_cachesLock)
            foreach (var c in _caches)
                if (c.Cpu == cpu && Zones[zoneIndex].Populated) n += c.For(Zones[zoneIndex]).Count;
        return n;
    }

    /// <summary>Whether any thread accounted to profile CPU <paramref name="cpu"/> has per-CPU lists of this allocator.</summary>
    public bool PcpUsed(int cpu)
    {
        lock (_cachesLock)
            foreach (var c in _caches)
                if (c.Cpu == cpu) return true;
        return false;
    }

    /// <summary>Pages on all per-CPU lists of a zone.</summary>
    public long PcpTotal(int zoneIndex)
    {
        long n = 0;
        lock (_cachesLock)
            foreach (var c in _caches)
                if (Zones[zoneIndex].Populated) n += c.For(Zones[zoneIndex]).Count;
        return n;
    }

    /// <summary>Threads that currently own per-CPU lists of this allocator.</summary>
    public int ThreadCacheCount { get { lock (_cachesLock) return _caches.Count; } }

    /// <summary>
    /// At dispose: every thread's lists are held for good (DrainRequested stays raised, so an owner in flight leaves
    /// its fast path for the locked one, which throws) once no owner is inside them. The blocks are not freed here:
    /// an owner may still hold one's address in its thread statics; each goes when its thread lets go of it.
    /// </summary>
    private void DisposeThreadCaches()
    {
        PcpThreadCache[] all;
        lock (_cachesLock)
        {
            all = _caches.ToArray();
            _caches.Clear();
        }
        foreach (var c in all)
            lock (c.DrainLock)
            {
                c.Dead = true;
                if (c.Mem != null) c.Hs->RequestDrain();
            }
        OwnerDrainHandshake.Fence();
        foreach (var c in all)
        {
            var spin = new SpinWait();
            while (c.Mem != null && c.Hs->OwnerInside) spin.SpinOnce();
        }
        if (t_cache is { } mine && mine.OwnerId == _allocatorId) t_cache = mine.NextInThread;
        if (t_pcpOwner == _allocatorId)
        {
            t_pcpOwner = 0;
            t_pcpMem = 0;
        }
    }
}
