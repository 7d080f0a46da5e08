// The allocation slow path (__alloc_pages_slowpath): the min watermark with the caller's reserve
// rights, the memalloc reserve, direct reclaim through the shrinkers, draining the per-CPU lists,
// bounded waits for frees (should_reclaim_retry: give up at once when reclaim cannot help),
// NoRetry / RetryMayFail / NoFail, and a background kswapd.
// Locks (docs/architecture.md, "Lock order"): _shrinkersLock and the free-wait monitor are leaves (shrinkers
// run with no allocator lock held); zone->lock is taken alone, to unreserve HighAtomic blocks.
using System.Diagnostics;
using Kmem.Core;

namespace Kmem.Paging;

internal sealed partial class PageAllocator
{
    /// <summary>MAX_RECLAIM_RETRIES: reclaim rounds without progress before giving up.</summary>
    public const int MaxReclaimRetries = 16;

    /// <summary>PAGE_ALLOC_COSTLY_ORDER.</summary>
    public const int CostlyOrder = 3;

    private const int ShrinkBatch = 128;
    private const int DefPriority = 12;
    private const int SwapClusterMax = 32;

    private readonly Lock _shrinkersLock = new();
    private readonly List<Shrinker> _shrinkers = [];
    private readonly object _freeWait = new();
    private int _waiters;

    /// <summary>Times the allocator had to enter the slow path, ran reclaim, or failed (for metrics).</summary>
    public long SlowPathCount, ReclaimCount, FailureCount, KswapdWakeups;

    /// <summary>Reclaim rounds that were retried after a wait, and blocking allocations that gave up at once because
    /// even every reclaimable page could not lift a zone above its min watermark (for metrics and tests).</summary>
    public long ReclaimRetries, ReclaimHopeless;

    // ---------------------------------------------------------------- shrinkers

    public void RegisterShrinker(Shrinker s)
    {
        lock (_shrinkersLock)
        {
            if (_shrinkers.Contains(s)) throw new InvalidOperationException($"shrinker {s.Name} is already registered");
            _shrinkers.Add(s);
        }
    }

    public bool UnregisterShrinker(Shrinker s)
    {
        lock (_shrinkersLock) return _shrinkers.Remove(s);
    }

    public Shrinker[] Shrinkers { get { lock (_shrinkersLock) return _shrinkers.ToArray(); } }

    /// <summary>shrink_slab(): ask every shrinker at one priority; returns the objects freed. <paramref name="kswapd"/> is
    /// what current_is_kswapd() tells the shrinkers.</summary>
    public long ShrinkSlab(Gfp gfp, int priority, bool kswapd = false, int nid = 0)
    {
        long freed = 0;
        foreach (var s in Shrinkers) freed += DoShrinkSlab(s, gfp, priority, kswapd, s.NumaAware ? nid : 0);
        return freed;
    }

    /// <summary>do_shrink_slab(). A shrinker that throws is reported and unregistered (<see cref="ShrinkerThrew"/>).</summary>
    private long DoShrinkSlab(Shrinker s, Gfp gfp, int priority, bool kswapd, int nid)
    {
        var sc = new ShrinkControl { GfpMask = gfp, Kswapd = kswapd, Nid = nid };
        // shrinker->nr_deferred[nid]: a NUMA-aware shrinker defers work per node (the others under node 0).
        ref long deferred = ref s.Deferred(nid);
        long freeable;
        try
        {
            freeable = s.CountObjects(sc);
        }
        catch (Exception e) when (!_disposed)
        {
            ShrinkerThrew(s, "count_objects", e);
            return 0;
        }
        if (freeable <= 0) return 0;
        long batch = s.Batch > 0 ? s.Batch : ShrinkBatch;
        long nr = Interlocked.Exchange(ref deferred, 0);
        long delta = s.Seeks > 0 ? (freeable >> priority) * 4 / s.Seeks : freeable / 2;
        long totalScan = nr + delta;
        if (totalScan > freeable * 2) totalScan = freeable * 2;
        long freed = 0, scanned = 0;
        while (totalScan >= batch || totalScan >= freeable)
        {
            long toScan = Math.Min(batch, totalScan);
            sc.NrToScan = toScan;
            sc.NrScanned = toScan;
            long ret;
            try
            {
                ret = s.ScanObjects(sc);
            }
            catch (Exception e) when (!_disposed)
            {
                ShrinkerThrew(s, "scan_objects", e);
                break;
            }
            if (ret == Shrinker.ShrinkStop) break;
            freed += Math.Max(0, ret);
            totalScan -= sc.NrScanned;
            scanned += sc.NrScanned;
            if (sc.NrScanned <= 0) break;
        }
        long nextDeferred = Math.Max(0, nr + delta - scanned);
        if (nextDeferred > 0) Interlocked.Add(ref deferred, Math.Min(nextDeferred, freeable));
        KmemEventSource.Log.ShrinkerRun(s.Name, scanned, freed);
        return freed;
    }

    /// <summary>
    /// A shrinker's count or scan threw: the kernel has no exceptions, so Kmem treats it as a broken shrinker. It is
    /// unregistered (never called again unless registered anew) and reported once as a WARN naming it; reclaim goes
    /// on with the other shrinkers and the exception goes no further.
    /// </summary>
    private void ShrinkerThrew(Shrinker s, string what, Exception e)
    {
        bool removed;
        lock (_shrinkersLock) removed = _shrinkers.Remove(s);
        string why = $"{what} threw {e.GetType().Name}: {e.Message}";
        if (!removed)
        {
            // Another reclaimer already reported and removed it (or its owner unregistered it meanwhile).
            _log.Warn($"shrinker {s.Name}: {why} (already unregistered)");
            return;
        }
        Warn($"WARNING: CPU: {CurrentCpu()} PID: {Environment.CurrentManagedThreadId} at mm/vmscan.c do_shrink_slab: shrinker {s.Name}: {why}\n" +
             $"shrinker {s.Name} unregistered: it is not called again unless registered anew");
    }

    /// <summary>
    /// Direct reclaim (try_to_free_pages(), mm/vmscan.c): at falling priority, shrink_zones() visits each node of the
    /// zonelist once (shrink_node(): shrink_slab() with that node's id; a shrinker that is not NUMA-aware is asked with
    /// node 0 on each visit, as do_shrink_slab() does) until enough pages came back in the zonelist's zones. A node
    /// where something came back has its kswapd_failures reset (shrink_node()). <paramref name="list"/> null: every
    /// node's zones (the machine's whole memory). Returns the pages freed in those zones.
    /// </summary>
    public long PerformReclaim(Gfp gfp, int order, Zone[]? list = null)
    {
        Interlocked.Increment(ref ReclaimCount);
        list ??= Zones.Where(z => z.Populated).ToArray();
        long target = Math.Max(SwapClusterMax, 1L << order);
        long before = FreePagesOf(list);
        Span<bool> seen = stackalloc bool[NodeCount];
        for (int prio = DefPriority; prio >= 0; prio--)
        {
            seen.Clear();
            foreach (var z in list)
            {
                if (seen[z.Node]) continue;
                seen[z.Node] = true;
                long nodeBefore = NodeFreePages(z.Node);
                ShrinkSlab(gfp, prio, nid: z.Node);
                if (NodeFreePages(z.Node) > nodeBefore) Volatile.Write(ref _nodes[z.Node].KswapdFailures, 0);
            }
            if (FreePagesOf(list) - before >= target) break;
        }
        return Math.Max(0, FreePagesOf(list) - before);
    }

    /// <summary>Free pages of the zones, those on the per-CPU lists included (a shrinker's order-0 frees land there first).</summary>
    private long FreePagesOf(Zone[] list)
    {
        long n = 0;
        foreach (var z in list) n += Volatile.Read(ref z.FreePages) + (z.Populated ? PcpTotal(z.Index) : 0);
        return n;
    }

    /// <summary>Free pages of one node's zones, per-CPU lists included.</summary>
    private long NodeFreePages(int nid)
    {
        long n = 0;
        foreach (var z in NodeZones(nid)) n += Volatile.Read(ref z.FreePages) + (z.Populated ? PcpTotal(z.Index) : 0);
        return n;
    }

    /// <summary>pgdat->kswapd_failures &gt;= MAX_RECLAIM_RETRIES: the node is "unreclaimable" (zoneinfo's node_unreclaimable).</summary>
    public bool NodeUnreclaimable(int nid) => Volatile.Read(ref _nodes[nid].KswapdFailures) >= MaxReclaimRetries;

    // ---------------------------------------------------------------- waiting for frees

    private void SignalFree()
    {
        if (Volatile.Read(ref _waiters) == 0) return;
        lock (_freeWait) Monitor.PulseAll(_freeWait);
    }

    private void WaitForFree(TimeSpan timeout)
    {
        Interlocked.Increment(ref _waiters);
        try
        {
            lock (_freeWait) Monitor.Wait(_freeWait, timeout);
        }
        finally
        {
            Interlocked.Decrement(ref _waiters);
        }
    }

    // ---------------------------------------------------------------- kswapd

    /// <summary>wake_all_kswapds(): the kswapd of every node the zonelist reaches, once each.</summary>
    private void WakeAllKswapds(Zone[] list)
    {
        int last = -1;
        foreach (var z in list)
        {
            if (z.Node == last) continue;
            last = z.Node;
            WakeKswapd(z.Node);
        }
    }

    /// <summary>
    /// wakeup_kswapd(): background reclaim on one node until each of its zones is above its high watermark. A hopeless
    /// node (kswapd_failures &gt;= MAX_RECLAIM_RETRIES) is left alone until something is reclaimed there again.
    /// </summary>
    private void WakeKswapd(int nid)
    {
        // "mm: fix 100% CPU kswapd busyloop on unreclaimable nodes" (4.11) brought pgdat->kswapd_failures:
        // from then on a node kswapd gave up on is not woken until reclaim makes progress there.
        if (_settings.Version.IsAtLeast(4, 11) && NodeUnreclaimable(nid)) return;
        if (Interlocked.CompareExchange(ref _kswapdQueued[nid], 1, 0) != 0) return;
        if (NodeBalanced(nid)) { Volatile.Write(ref _kswapdQueued[nid], 0); return; }
        Interlocked.Increment(ref KswapdWakeups);
        Interlocked.Increment(ref _nodes[nid].KswapdWakeups);
        ThreadPool.UnsafeQueueUserWorkItem(static a => a.Owner.KswapdRun(a.Nid), (Owner: this, Nid: nid), preferLocal: false);
    }

    private void KswapdRun(int nid)
    {
        try
        {
            using var _ = Life.Enter();   // the machine's shutdown waits for a running kswapd
            long reclaimed = 0;
            for (int prio = DefPriority; prio >= 0 && !_disposed; prio--)
            {
                if (NodeBalanced(nid)) break;
                // shrink_slab(): a shrinker that is not NUMA-aware is asked with nid 0 whichever node reclaims.
                long before = NodeFreePages(nid);
                ShrinkSlab(Gfp.Kernel, prio, kswapd: true, nid: nid);
                reclaimed += Math.Max(0, NodeFreePages(nid) - before);
            }
            // balance_pgdat() (6.6): a run that reclaimed nothing counts a failure; shrink_node() resets the count when
            // anything was reclaimed on the node.
            if (reclaimed == 0 && !NodeBalanced(nid)) Interlocked.Increment(ref _nodes[nid].KswapdFailures);
            else if (reclaimed > 0) Volatile.Write(ref _nodes[nid].KswapdFailures, 0);
        }
        catch (ObjectDisposedException)
        {
            // The machine went away: kswapd stops.
        }
        catch (Exception e)
        {
            _log.Err($"kswapd{nid}: reclaim failed: {e.Message}");
        }
        finally
        {
            Volatile.Write(ref _kswapdQueued[nid], 0);
        }
    }

    /// <summary>pgdat_balanced(): every populated zone of the node passes the high watermark for an order-0 request of its
    /// own zone (free CMA pages do not count, as they cannot serve every caller).</summary>
    private bool NodeBalanced(int nid)
    {
        for (int i = nid * ZonesPerNode; i < (nid + 1) * ZonesPerNode; i++)
        {
            var z = Zones[i];
            if (z.Populated && !ZoneWatermarkOk(z, 0, z.WmarkHigh, z.ZoneIdx, AllocFlags.WmarkMin, Volatile.Read(ref z.FreePages))) return false;
        }
        return true;
    }

    // ---------------------------------------------------------------- slow path

    /// <summary>gfp_to_alloc_flags().</summary>
    private static AllocFlags GfpToAllocFlags(Gfp gfp, int mt)
    {
        AllocFlags af = AllocFlags.WmarkMin | AllocFlags.Cpuset;
        if ((gfp & Gfp.High) != 0) af |= AllocFlags.High;
        if ((gfp & Gfp.AtomicFlag) != 0)
        {
            if ((gfp & Gfp.NoMemalloc) == 0) af |= AllocFlags.Harder;
            af &= ~AllocFlags.Cpuset;
        }
        if (mt == (int)MigrateType.Movable) af |= AllocFlags.Cma;
        return af;
    }

    private int AllocSlowPath(Gfp gfp, int order, Zone[] list, int hz, int mt)
    {
        Interlocked.Increment(ref SlowPathCount);
        bool canReclaim = (gfp & Gfp.DirectReclaim) != 0;
        bool costly = order > CostlyOrder;
        if ((gfp & (Gfp.AtomicFlag | Gfp.DirectReclaim)) == (Gfp.AtomicFlag | Gfp.DirectReclaim))
            gfp &= ~Gfp.AtomicFlag; // a sleeping caller is not atomic (the kernel's sanity fix-up)
        AllocFlags af = GfpToAllocFlags(gfp, mt);
        if ((gfp & Gfp.KswapdReclaim) != 0) WakeAllKswapds(list);

        int idx = GetPageFromFreelist(gfp, order, af, list, hz, mt);
        if (idx >= 0) return idx;

        bool noWatermarks = (gfp & (Gfp.Memalloc | Gfp.NoMemalloc)) == Gfp.Memalloc;
        if (noWatermarks)
        {
            idx = GetPageFromFreelist(gfp, order, af | AllocFlags.NoWatermarks, list, hz, mt);
            if (idx >= 0) return idx;
        }

        if ((gfp & Gfp.NoFail) != 0 && !canReclaim)
            WarnOnce("nofail without reclaim", "WARNING: __alloc_pages_slowpath: __GFP_NOFAIL without __GFP_DIRECT_RECLAIM");
        if (!canReclaim) return Fail(gfp, order);

        int noProgress = 0;
        bool drained = false;
        var started = Stopwatch.StartNew();
        while (true)
        {
            long progress = PerformReclaim(gfp, order, list);
            idx = GetPageFromFreelist(gfp, order, af, list, hz, mt);
            if (idx < 0 && !drained)
            {
                foreach (var z in list)
                {
                    LockOrder.Enter(LockRank.Zone, z.Lock);
                    lock (z.Lock) z.UnreserveHighatomicPageblock(mt, force: false);
                }
                DrainAllPages();
                drained = true;
                idx = GetPageFromFreelist(gfp, order, af, list, hz, mt);
            }
            if (idx >= 0) return idx;
            if (_disposed) ThrowDisposed();
            // While the machine boots there is no process the OOM killer could choose: an allocation the kernel would not
            // let fail ends in its panic (out_of_memory(): "Out of memory and no killable processes...", then "System is
            // deadlocked on memory"). A board too small for its own boot is refused rather than left waiting.
            if (Booting && ((gfp & Gfp.NoFail) != 0 || (!costly && (gfp & (Gfp.NoRetry | Gfp.RetryMayFail)) == 0)))
                BootOutOfMemory(gfp, order);

            if ((gfp & Gfp.NoFail) != 0)
            {
                // __GFP_NOFAIL: try with the harder reserve, then wait for memory and go round again.
                idx = GetPageFromFreelist(gfp, order, af | AllocFlags.Harder, list, hz, mt);
                if (idx >= 0) return idx;
                if (started.Elapsed > TimeSpan.FromSeconds(10) && noProgress++ % 64 == 0)
                    _log.Warn($"{TaskName()}: page allocation stalls for {started.ElapsedMilliseconds}ms, order:{order}, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null)");
                WaitForFree(ReclaimRetryWait);
                drained = false;
                continue;
            }
            if ((gfp & Gfp.NoRetry) != 0) return Fail(gfp, order);
            if (costly && (gfp & Gfp.RetryMayFail) == 0) return Fail(gfp, order);
            if (!ShouldReclaimRetry(gfp, order, af, list, hz, progress, ref noProgress)) return Fail(gfp, order);
            Interlocked.Increment(ref ReclaimRetries);
            WaitForFree(ReclaimRetryWait);
            drained = false;
        }
    }

    /// <summary>True until the machine has booted (set by the machine): see <see cref="BootOutOfMemory"/>.</summary>
    internal bool Booting { get; set; }

    private void BootOutOfMemory(Gfp gfp, int order)
    {
        WarnAlloc(gfp, order);
        _log.Err("Out of memory and no killable processes...");
        _log.Printk(LogLevel.Emerg, "Kernel panic - not syncing: System is deadlocked on memory");
        throw new ProfileException("dram", $"out of memory while booting: an order-{order} {GfpFlags.Format(gfp)} allocation could not be met " +
            $"({Zones.Sum(z => Volatile.Read(ref z.FreePages)) * 4} kB free); Linux panics here: give the board more RAM or reserve less");
    }

    /// <summary>
    /// should_reclaim_retry(): counts rounds without progress (progress on a costly order does not count), gives up
    /// after <see cref="MaxReclaimRetries"/> of them, and gives up at once when no zone of the zonelist could pass
    /// its min watermark even if everything reclaimable came back. Kmem has no LRU lists: what is reclaimable is
    /// what the shrinkers count, in pages (the slab shrinker converts its objects into whole slabs' pages), plus the
    /// pages on the per-CPU lists. Shrinkers are not per zone, so each zone is credited with all of it: an
    /// over-estimate that errs towards retrying.
    /// </summary>
    private bool ShouldReclaimRetry(Gfp gfp, int order, AllocFlags af, Zone[] list, int hz, long progress, ref int noProgress)
    {
        if (progress > 0 && order <= CostlyOrder) noProgress = 0;
        else noProgress++;
        if (noProgress > MaxReclaimRetries) return false;
        long[] reclaimable = new long[NodeCount];
        Array.Fill(reclaimable, -1);
        foreach (var z in list)
        {
            if (!z.Populated) continue;
            if (reclaimable[z.Node] < 0) reclaimable[z.Node] = ReclaimablePages(gfp, z.Node);
            long available = Volatile.Read(ref z.FreePages) + reclaimable[z.Node] + PcpTotal(z.Index);
            if (ZoneWatermarkOk(z, order, z.WmarkMin, hz, af, available)) return true;
        }
        Interlocked.Increment(ref ReclaimHopeless);
        return false;
    }

    /// <summary>
    /// What the registered shrinkers report they could free now on node <paramref name="nid"/> (their count_objects, in
    /// pages), summed; a shrinker that is not NUMA-aware counts everything it holds (asked with node 0).
    /// </summary>
    private long ReclaimablePages(Gfp gfp, int nid)
    {
        long n = 0;
        foreach (var s in Shrinkers)
        {
            var sc = new ShrinkControl { GfpMask = gfp, Nid = s.NumaAware ? nid : 0 };
            long c;
            try { c = s.CountPages(sc); }
            catch (Exception) { c = 0; } // a failing shrinker is reported where reclaim scans it; it frees nothing
            if (c > 0) n += c;
        }
        return n;
    }

    private int Fail(Gfp gfp, int order)
    {
        Interlocked.Increment(ref FailureCount);
        if (KmemEventSource.Log.IsEnabled()) KmemEventSource.Log.AllocationFailure(order, GfpFlags.Format(gfp));
        if ((gfp & Gfp.NoWarn) == 0) WarnAlloc(gfp, order);
        return -1;
    }
}
