// Replays a recorded kmem trace on a machine: every kmalloc/kmem_cache_alloc/mm_page_alloc becomes a Kmem
// allocation of the recorded size, order and GFP mask, remembered under the recorded pointer or PFN, and every
// free frees what the pointer or PFN maps to. What cannot be replayed (frees of memory allocated before the
// trace, allocations that failed on the recorded board, truncated lines, other events) is counted with its
// reason; nothing in a trace can crash the replay. Lines are read one at a time, so any length streams.
namespace Kmem;

/// <summary>Replays kmem traces on one machine (see <see cref="Replay"/>).</summary>
public sealed class TraceReplayer
{
    private enum LiveKind { Kmalloc, Cache }

    private readonly record struct LiveObject(LiveKind Kind, nint Address, SlabCache? Cache, long Bytes);

    private readonly Machine _m;
    private readonly Dictionary<ulong, LiveObject> _objects = [];
    private readonly Dictionary<ulong, (Page Page, int Order)> _pages = [];
    private readonly Dictionary<(long Req, long Recorded), SlabCache> _caches = [];
    private static readonly Gfp s_known = Enum.GetValues<Gfp>().Aggregate(Gfp.None, (a, b) => a | b);

    /// <summary>Creates a replayer; what it allocates stays on the machine until <see cref="ReleaseAll"/>.</summary>
    public TraceReplayer(Machine machine) => _m = machine ?? throw new ArgumentNullException(nameof(machine));

    /// <summary>Reads every line of <paramref name="trace"/> and replays the kmem events in order.</summary>
    public TraceReport Replay(TextReader trace, TraceReplayOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(trace);
        options ??= new TraceReplayOptions();
        var r = new TraceReport { Profile = _m.Profile.Name, RecordedOn = options.RecordedOn };
        double last = double.MinValue;
        var started = System.Diagnostics.Stopwatch.StartNew();
        string? line;
        while ((line = trace.ReadLine()) is not null)
        {
            r.Lines++;
            if ((r.Lines & 0xffff) == 0) options.Progress?.Invoke(r.Lines);
            var kind = KmemTraceParser.Parse(line, out var ev, out string? other);
            switch (kind)
            {
                case KmemTraceLineKind.NotAnEvent: r.NotEvents++; continue;
                case KmemTraceLineKind.OtherEvent: r.Count(r.OtherEvents, other!); continue;
                case KmemTraceLineKind.Truncated: r.Events++; r.Skip("a truncated or unreadable line"); continue;
            }
            r.Events++;
            r.Count(r.EventsByName, ev.EventName);
            if (ev.Cpu is { } cpu) r.Count(r.EventsByCpu, cpu.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (ev.Timestamp is { } ts)
            {
                if (ts < last) r.OutOfOrder++;
                last = Math.Max(last, ts);
            }
            bool isPage = ev.Kind is KmemTraceEventKind.PageAlloc or KmemTraceEventKind.PageFree or KmemTraceEventKind.PageFreeBatched;
            if (isPage ? !options.Pages : !options.Slab) { r.Skip("a kind this replay leaves out"); continue; }
            try { Apply(ev, r); }
            catch (KmemException e)
            {
                r.Skip($"refused by Kmem ({e.GetType().Name})");
                r.Failures.Add($"line {r.Lines}: {ev.EventName}: {e.Message}");
            }
        }
        options.Progress?.Invoke(r.Lines);
        r.Elapsed = started.Elapsed;
        r.Finish(_m, _objects.Count, _pages.Count);
        return r;
    }

    private Gfp GfpOf(KmemTraceEvent ev, Gfp dflt)
    {
        if (ev.GfpText is not { } text) return dflt;
        if (text.StartsWith("0x", StringComparison.Ordinal) || text == "none")
            return GfpFlags.TryParse(text, out var raw) ? raw & s_known : dflt;
        var g = Gfp.None;
        foreach (var part in text.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            // 3.x prints GFP_NOWARN where 5.x prints __GFP_NOWARN.
            if (GfpFlags.TryParse(part, out var one) || GfpFlags.TryParse("__" + part, out one)) g |= one;
        }
        return g == Gfp.None ? dflt : g;
    }

    private void Apply(KmemTraceEvent ev, TraceReport r)
    {
        switch (ev.Kind)
        {
            case KmemTraceEventKind.Kmalloc:
            {
                long req = ev.BytesReq!.Value;
                if (req <= 0 || req > int.MaxValue) { r.Skip("kmalloc of 0 or of more than 2 GiB"); return; }
                DropLive(ev.Ptr!.Value, r);
                nint p = _m.Kmalloc((int)req, GfpOf(ev, Gfp.Kernel) | Gfp.NoWarn);
                if (p == 0) { r.Fail("kmalloc", $"kmalloc({req}) failed"); r.Fidelity(r.KmallocRows, req, ev.BytesAlloc!.Value, null); return; }
                long got = (long)_m.Ksize(p);
                _objects[ev.Ptr.Value] = new LiveObject(LiveKind.Kmalloc, p, null, got);
                r.Fidelity(r.KmallocRows, req, ev.BytesAlloc!.Value, got);
                r.Add(TraceReport.KindKmalloc, got);
                r.Replayed++;
                return;
            }
            case KmemTraceEventKind.CacheAlloc:
            {
                long req = ev.BytesReq!.Value;
                if (req <= 0 || req > 1 << 22) { r.Skip("kmem_cache_alloc of an impossible object size"); return; }
                long recorded = ev.BytesAlloc!.Value;
                if (!_caches.TryGetValue((req, recorded), out var cache))
                    _caches[(req, recorded)] = cache = CacheFor((int)req, recorded, r);
                DropLive(ev.Ptr!.Value, r);
                nint p = cache.Alloc(GfpOf(ev, Gfp.Kernel) | Gfp.NoWarn);
                if (p == 0) { r.Fail("kmem_cache_alloc", $"kmem_cache_alloc({cache.Name}) failed"); r.Fidelity(r.CacheRows, req, ev.BytesAlloc!.Value, null); return; }
                _objects[ev.Ptr.Value] = new LiveObject(LiveKind.Cache, p, cache, cache.Size);
                r.Fidelity(r.CacheRows, req, ev.BytesAlloc!.Value, cache.Size);
                r.Add(TraceReport.KindSlab, cache.Size);
                r.Replayed++;
                return;
            }
            case KmemTraceEventKind.Kfree or KmemTraceEventKind.CacheFree:
            {
                ulong ptr = ev.Ptr!.Value;
                if (ptr == 0) { r.Skip("kfree(NULL): nothing to do"); return; }
                if (!_objects.Remove(ptr, out var o)) { r.Skip("a free of memory allocated before the trace (or freed twice)"); return; }
                FreeObject(o, r);
                r.Replayed++;
                return;
            }
            case KmemTraceEventKind.PageAlloc:
            {
                ulong pfn = ev.Pfn!.Value;
                int order = ev.Order!.Value;
                if (pfn == 0) { r.Skip("an allocation that failed on the recorded board (pfn 0)"); return; }
                if ((uint)order >= (uint)_m.MaxOrder) { r.Skip("an order this machine does not have"); return; }
                if (_pages.Remove(pfn, out var old)) { r.Note("a page allocated again without its free: the old one freed first"); FreePage(old, r); }
                Gfp dflt = ev.Migratetype switch { 1 => Gfp.HighUserMovable, 2 => Gfp.Kernel | Gfp.Reclaimable, _ => Gfp.Kernel };
                var gfp = WithMigratetype(GfpOf(ev, dflt), ev.Migratetype, r, out var want);
                bool ownEmpty = want is { } w && OwnListsEmpty(w, order);
                // mm_page_alloc carries no node, but the PFN does: on a NUMA machine the page is asked of the node that PFN
                // lies in here (alloc_pages_node(), that node's zone of the mask first, falling back as the kernel would).
                int nid = RecordedNode(pfn, r);
                var page = nid >= 0 ? _m.AllocPagesNode(nid, gfp | Gfp.NoWarn, order) : _m.AllocPages(gfp | Gfp.NoWarn, order);
                if (nid >= 0 && !page.IsNull)
                {
                    int got = _m.PageToNid(page);
                    r.Note(got == nid ? $"mm_page_alloc placed on node {nid}, its recorded PFN's node"
                        : $"mm_page_alloc of node {nid} (its recorded PFN's) fell back to node {got}");
                }
                r.PageOrder(order, !page.IsNull);
                if (page.IsNull) { r.Fail("mm_page_alloc", $"order-{order} page allocation failed"); return; }
                if (want is { } mt) CheckMigratetype(page, mt, ownEmpty, r);
                _pages[pfn] = (page, order);
                r.Add(TraceReport.KindPages, 4096L << order);
                r.Replayed++;
                return;
            }
            default:
            {
                ulong pfn = ev.Pfn!.Value;
                if (!_pages.Remove(pfn, out var held)) { r.Skip("a free of a page allocated before the trace (or freed twice)"); return; }
                int order = ev.Kind == KmemTraceEventKind.PageFreeBatched ? 0 : ev.Order ?? held.Order;
                if (order != held.Order) r.Note("a page freed at another order than it was allocated: freed at its own");
                FreePage(held, r);
                r.Replayed++;
                return;
            }
        }
    }

    /// <summary>
    /// The node a recorded PFN lies in on this machine (page_to_nid() of that frame), or -1 on a one-node machine or when
    /// the PFN is outside this machine's zones (the report says so; the page then comes from the replaying thread's node).
    /// </summary>
    private int RecordedNode(ulong pfn, TraceReport r)
    {
        if (_m.NodeCount == 1) return -1;
        var pa = _m.Pages;
        int nid = pfn >= pa.BasePfn && pfn - pa.BasePfn < int.MaxValue ? pa.NodeOfIdx((int)(pfn - pa.BasePfn)) : -1;
        if (nid < 0) r.Note("mm_page_alloc of a PFN outside this machine's memory: its node unknown, the replaying thread's used");
        return nid;
    }

    /// <summary>
    /// The GFP mobility that gives the recorded migratetype (0 unmovable, 1 movable, 2 reclaimable: gfp_migratetype()),
    /// put in place of the mask's own when they differ (a raw mask read with another version's bits, or a tool that
    /// printed it differently). Other migratetypes have no mobility bits; the recorded mask is used and the report says so.
    /// </summary>
    private static Gfp WithMigratetype(Gfp gfp, int? migratetype, TraceReport r, out MigrateType? want)
    {
        want = null;
        if (migratetype is not { } mt) return gfp;
        if (mt is < 0 or > 2)
        {
            r.Note($"mm_page_alloc with migratetype={mt}: no GFP mobility gives it, replayed with the recorded gfp_flags");
            return gfp;
        }
        want = (MigrateType)mt;
        Gfp mobility = mt switch { 1 => Gfp.Movable, 2 => Gfp.Reclaimable, _ => Gfp.None };
        if ((gfp & GfpFlags.MovableMask) == mobility) return gfp;
        r.Note($"mm_page_alloc whose gfp_flags do not give its migratetype={mt}: replayed with {want.Value.KernelName()}'s mobility");
        return (gfp & ~GfpFlags.MovableMask) | mobility;
    }

    /// <summary>
    /// True when no free list of <paramref name="want"/> could serve the order: none of the zones' buddy lists of that
    /// migratetype holds a block of the order or larger, and the per-CPU lists are empty (with pages on them, which
    /// migratetype they are is not looked at, and the answer is false).
    /// </summary>
    private bool OwnListsEmpty(MigrateType want, int order)
    {
        var pa = _m.Pages;
        foreach (var z in pa.Zones)
            for (int o = order; o < pa.MaxOrder; o++)
                if (z.NrFree(o, (int)want) > 0) return false;
        foreach (var z in pa.Zones)
            if (z.Populated && pa.PcpTotal(z.Index) > 0) return false;
        return true;
    }

    /// <summary>
    /// Notes a page that did not come from its migratetype's free lists: they were empty before the allocation (a fallback
    /// that took another migratetype's block, and maybe its whole pageblock), or the page lies in a pageblock of another
    /// migratetype (a fallback that left the pageblock's type as it was). A movable page from a CMA pageblock is its own.
    /// </summary>
    private void CheckMigratetype(Page page, MigrateType want, bool ownEmpty, TraceReport r)
    {
        int idx = (int)(page.Pfn - _m.Pages.BasePfn);
        if (_m.Pages.ZoneOfIdx(idx) is not { } zone) return;
        var got = zone.PageblockType(idx);
        if (ownEmpty)
            r.Note($"a {want.KernelName()} page taken by fallback: none of its own free lists had one (the page's pageblock is now {got.KernelName()})");
        else if (got != want && !(want == MigrateType.Movable && got == MigrateType.Cma))
            r.Note($"a {want.KernelName()} page that came from a {got.KernelName()} pageblock (a fallback)");
    }

    /// <summary>
    /// A cache for objects of <paramref name="req"/> bytes. The trace does not say how the recorded cache was made, so
    /// the flags that give the recorded object size are looked for: none, SLAB_HWCACHE_ALIGN, a constructor (which moves
    /// the free pointer after the object), both, then an explicit alignment of 16 bytes to a page, without and with a
    /// constructor. The layout of each choice is computed first (SLUB's calculate_sizes() on this machine), and only the
    /// cache that matches is created; the cache with no flags is used when none of them matches.
    /// </summary>
    private SlabCache CacheFor(int req, long recorded, TraceReport r)
    {
        string name = $"trace-{req}-{_caches.Count}";
        var arch = _m.Slab.Arch;
        var debug = _m.Slab.Settings.Debug.For(name);
        foreach (var (label, align, flags, ctor) in s_cacheChoices)
        {
            int a = Kmem.Slab.SlabGeometry.CalculateAlignment(flags | debug, align, req, arch);
            var g = Kmem.Slab.SlabGeometry.Compute(req, a, flags | debug, ctor, arch);
            if (g is null || g.Value.Size != recorded) continue;
            var cache = ctor ? _m.KmemCacheCreate(name, req, align, flags, static _ => { }) : _m.KmemCacheCreate(name, req, align, flags);
            if (cache.Size != recorded) { cache.Destroy(); continue; }         // merged into a cache of another size
            r.CacheFlags[(req, recorded)] = label;
            return cache;
        }
        r.CacheFlags[(req, recorded)] = "none (no flags give the recorded size)";
        return _m.KmemCacheCreate(name, req);
    }

    private static readonly (string Label, int Align, SlabFlags Flags, bool Ctor)[] s_cacheChoices = BuildCacheChoices();

    private static (string, int, SlabFlags, bool)[] BuildCacheChoices()
    {
        var list = new List<(string, int, SlabFlags, bool)>
        {
            ("none", 0, SlabFlags.None, false),
            ("SLAB_HWCACHE_ALIGN", 0, SlabFlags.HwcacheAlign, false),
            ("a constructor", 0, SlabFlags.None, true),
            ("SLAB_HWCACHE_ALIGN and a constructor", 0, SlabFlags.HwcacheAlign, true),
        };
        for (int a = 16; a <= 4096; a *= 2) list.Add(($"align {a}", a, SlabFlags.None, false));
        for (int a = 16; a <= 4096; a *= 2) list.Add(($"align {a} and a constructor", a, SlabFlags.None, true));
        return [.. list];
    }

    /// <summary>An allocation under a pointer that is still live: its free was not recorded; free it first.</summary>
    private void DropLive(ulong ptr, TraceReport r)
    {
        if (!_objects.Remove(ptr, out var o)) return;
        r.Note("an object allocated again without its free: the old one freed first");
        FreeObject(o, r);
    }

    private void FreeObject(LiveObject o, TraceReport r)
    {
        if (o.Kind == LiveKind.Cache) { o.Cache!.Free(o.Address); r.Add(TraceReport.KindSlab, -o.Bytes); }
        else { _m.Kfree(o.Address); r.Add(TraceReport.KindKmalloc, -o.Bytes); }
    }

    private void FreePage((Page Page, int Order) p, TraceReport r)
    {
        _m.FreePages(p.Page, p.Order);
        r.Add(TraceReport.KindPages, -(4096L << p.Order));
    }

    /// <summary>Frees everything the replays left allocated, and destroys their caches.</summary>
    public void ReleaseAll()
    {
        foreach (var o in _objects.Values)
            if (o.Kind == LiveKind.Cache) o.Cache!.Free(o.Address); else _m.Kfree(o.Address);
        _objects.Clear();
        foreach (var (p, order) in _pages.Values) _m.FreePages(p, order);
        _pages.Clear();
        foreach (var c in _caches.Values) c.Destroy();
        _caches.Clear();
    }
}
