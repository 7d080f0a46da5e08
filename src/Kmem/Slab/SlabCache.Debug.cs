// slub_debug for one cache (Linux 5.10 mm/slub.c, include/linux/poison.h): red zones (Z), poisoning
// (P), owner tracking (U), consistency checks (F) and tracing (T). A cache with any of these takes
// every allocation and free under the lock of the slab's node, as the kernel's debug caches do, and reports each
// problem in the kernel's words with the hex dumps, then restores the bytes and keeps working.
using System.Text;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    /// <summary>POISON_INUSE, POISON_FREE, POISON_END, SLUB_RED_INACTIVE, SLUB_RED_ACTIVE.</summary>
    public const byte PoisonInuse = 0x5a, PoisonFree = 0x6b, PoisonEnd = 0xa5, RedInactive = 0xbb, RedActive = 0xcc;

    private const int TrackAlloc = 0, TrackFree = 1;

    private bool Has(SlabFlags f) => (Flags & f) != 0;

    // ================================================================== setup

    /// <summary>setup_page_debug(): a poisoned cache's slab starts filled with POISON_INUSE.</summary>
    private void SetupSlabDebug(nint b, int order)
    {
        if (Has(SlabFlags.Poison)) new Span<byte>((void*)b, PhysicalMemory.PageSize << order).Fill(PoisonInuse);
    }

    /// <summary>setup_object_debug(): red zones inactive, poison, empty tracks.</summary>
    private void SetupObjectDebug(nint p)
    {
        InitObject(p, RedInactive);
        if (_g.TrackOffset >= 0) new Span<byte>((void*)(p + _g.TrackOffset), _g.TrackBytes).Clear();
    }

    /// <summary>init_object().</summary>
    private void InitObject(nint p, byte val)
    {
        if (Has(SlabFlags.RedZone)) new Span<byte>((void*)(p - _redLeftPad), _redLeftPad).Fill(val);
        if (_g.ObjectPoison)
        {
            new Span<byte>((void*)p, _objectSize - 1).Fill(PoisonFree);
            *(byte*)(p + _objectSize - 1) = PoisonEnd;
        }
        if (Has(SlabFlags.RedZone)) new Span<byte>((void*)(p + _objectSize), _g.Inuse - _objectSize).Fill(val);
    }

    // ================================================================== tracks

    private void SetTrack(nint p, int which, CallSite site)
    {
        if (_g.TrackOffset < 0) return;
        byte* t = (byte*)(p + _g.TrackOffset + which * _sa.Arch.TrackSize);
        *(int*)t = _sa.InternCallSite(site);
        *(int*)(t + 4) = _pa.CurrentCpu();
        *(int*)(t + 8) = Environment.CurrentManagedThreadId;
        *(long*)(t + 12) = _sa.Jiffies;
    }

    /// <summary>print_track() for both tracks.</summary>
    private void PrintTracking(StringBuilder sb, nint p)
    {
        if (_g.TrackOffset < 0) return;
        for (int which = 0; which < 2; which++)
        {
            byte* t = (byte*)(p + _g.TrackOffset + which * _sa.Arch.TrackSize);
            int id = *(int*)t;
            if (id == 0) continue;
            sb.Append($"INFO: {(which == TrackAlloc ? "Allocated" : "Freed")} in {_sa.CallSiteName(id)} age={_sa.Jiffies - *(long*)(t + 12)} cpu={*(int*)(t + 4)} pid={*(int*)(t + 8)}\n");
        }
    }

    /// <summary>The recorded allocating caller of an object ("" without StoreUser or before any allocation).</summary>
    internal string AllocCaller(nint p)
    {
        if (_g.TrackOffset < 0) return "";
        int id = *(int*)(p + _g.TrackOffset);
        return id == 0 ? "" : _sa.CallSiteName(id);
    }

    // ================================================================== reports

    private static string P(nint p) => $"0x{p:x16}";

    /// <summary>slab_bug(): the banner.</summary>
    private void SlabBug(StringBuilder sb, string what)
    {
        sb.Append("=============================================================================\n");
        sb.Append($"BUG {Name} ({_pa.PrintTainted()}): {what}\n");
        sb.Append("-----------------------------------------------------------------------------\n\n");
        _pa.AddTaint(PageAllocator.TaintBadPage);
        Interlocked.Increment(ref _debugErrors);
        KmemEventSource.Log.DebugError("slub_debug", $"{Name}: {what}");
    }

    /// <summary>print_page_info().</summary>
    private void PrintPageInfo(StringBuilder sb, int idx)
    {
        long w = Word(idx);
        sb.Append($"INFO: Slab {P(SlabBase(idx))} objects={SlabWord.Objects(w)} used={SlabWord.Inuse(w)} fp={P(FromLink(SlabBase(idx), SlabWord.Free(w)))} flags=0x{(uint)_frames[idx].Flags:x4}\n");
    }

    /// <summary>print_section(): a print_hex_dump() with addresses, 16 bytes a row, ASCII at column 49.</summary>
    internal static void PrintSection(StringBuilder sb, string text, nint addr, int length)
    {
        for (int off = 0; off < length; off += 16)
        {
            int n = Math.Min(16, length - off);
            var b = new ReadOnlySpan<byte>((void*)(addr + off), n);
            sb.Append(text).Append(P(addr + off)).Append(": ");
            int col = 0;
            for (int i = 0; i < n; i++)
            {
                if (i > 0) { sb.Append(' '); col++; }
                sb.Append(b[i].ToString("x2"));
                col += 2;
            }
            sb.Append(' ', 49 - col);
            foreach (byte c in b) sb.Append(c >= 0x20 && c < 0x7f ? (char)c : '.');
            sb.Append('\n');
        }
    }

    /// <summary>print_trailer(): tracks, slab and object lines, the dumps around the object, the stack.</summary>
    private void PrintTrailer(StringBuilder sb, int idx, nint p)
    {
        nint b = SlabBase(idx);
        PrintTracking(sb, p);
        PrintPageInfo(sb, idx);
        sb.Append($"INFO: Object {P(p)} @offset={p - b} fp={P(FromLink(b, GetLink(p)))}\n\n");
        if (Has(SlabFlags.RedZone)) PrintSection(sb, "Redzone ", p - _redLeftPad, _redLeftPad);
        else if (p > b + 16) PrintSection(sb, "Bytes b4 ", p - 16, 16);
        PrintSection(sb, "Object ", p, Math.Min(_objectSize, PhysicalMemory.PageSize));
        if (Has(SlabFlags.RedZone)) PrintSection(sb, "Redzone ", p + _objectSize, _g.Inuse - _objectSize);
        int off = InfoEnd + _g.TrackBytes;
        if (off != SizeFromObject) PrintSection(sb, "Padding ", p + off, SizeFromObject - off);
        _pa.DumpStack(sb);
    }

    /// <summary>get_info_end(): the end of the object's metadata before the tracks.</summary>
    private int InfoEnd => _offset >= _g.Inuse ? _g.Inuse + _sa.Arch.PointerSize : _g.Inuse;

    /// <summary>size_from_object().</summary>
    private int SizeFromObject => Has(SlabFlags.RedZone) ? _size - _redLeftPad : _size;

    private void ObjectErr(StringBuilder sb, int idx, nint p, string reason)
    {
        SlabBug(sb, reason);
        PrintTrailer(sb, idx, p);
    }

    private void SlabErr(StringBuilder sb, int idx, string reason)
    {
        SlabBug(sb, reason);
        PrintPageInfo(sb, idx);
        _pa.DumpStack(sb);
    }

    private void SlabFix(StringBuilder sb, string what) => sb.Append($"FIX {Name}: {what}\n");

    private void Report(StringBuilder sb) => _pa.Log.Err(sb.ToString().TrimEnd('\n'));

    /// <summary>check_bytes_and_report(): reports and restores the first run of wrong bytes.</summary>
    private bool CheckBytes(StringBuilder sb, int idx, nint obj, string what, nint start, byte value, int bytes, ref SlabError? kind, SlabError errorKind)
    {
        var span = new Span<byte>((void*)start, bytes);
        int at = span.IndexOfAnyExcept(value);
        if (at < 0) return true;
        nint fault = start + at, end = start + bytes;
        while (end > fault && *(byte*)(end - 1) == value) end--;
        SlabBug(sb, $"{what} overwritten");
        sb.Append($"INFO: {P(fault)}-{P(end - 1)} @offset={fault - SlabBase(idx)}. First byte 0x{*(byte*)fault:x} instead of 0x{value:x}\n");
        PrintTrailer(sb, idx, obj);
        SlabFix(sb, $"Restoring {what} {P(fault)}-{P(end - 1)}=0x{value:x}");
        new Span<byte>((void*)fault, (int)(end - fault)).Fill(value);
        kind ??= errorKind;
        return false;
    }

    /// <summary>check_object().</summary>
    private bool CheckObject(StringBuilder sb, int idx, nint p, byte val, ref SlabError? kind)
    {
        if (Has(SlabFlags.RedZone))
        {
            if (!CheckBytes(sb, idx, p, "Redzone", p - _redLeftPad, val, _redLeftPad, ref kind, SlabError.RedzoneOverwritten)) return false;
            if (!CheckBytes(sb, idx, p, "Redzone", p + _objectSize, val, _g.Inuse - _objectSize, ref kind, SlabError.RedzoneOverwritten)) return false;
        }
        else if (Has(SlabFlags.Poison) && _objectSize < _g.Inuse)
        {
            CheckBytes(sb, idx, p, "Alignment padding", p + _objectSize, PoisonInuse, _g.Inuse - _objectSize, ref kind, SlabError.PaddingOverwritten);
        }
        if (Has(SlabFlags.Poison))
        {
            if (val != RedActive && _g.ObjectPoison &&
                (!CheckBytes(sb, idx, p, "Poison", p, PoisonFree, _objectSize - 1, ref kind, SlabError.PoisonOverwritten) ||
                 !CheckBytes(sb, idx, p, "Poison", p + _objectSize - 1, PoisonEnd, 1, ref kind, SlabError.PoisonOverwritten)))
                return false;
            int off = InfoEnd + _g.TrackBytes;
            if (off != SizeFromObject)
                CheckBytes(sb, idx, p, "Object padding", p + off, PoisonInuse, SizeFromObject - off, ref kind, SlabError.PaddingOverwritten);
        }
        if (_offset < _g.Inuse && val == RedActive) return true; // the free pointer overlaps the live object
        if (!ValidLink(GetLink(p), SlabWord.Objects(Word(idx))))
        {
            ObjectErr(sb, idx, p, "Freepointer corrupt");
            SetLink(p, 0);
            kind ??= SlabError.FreelistCorrupt;
            return false;
        }
        return true;
    }

    /// <summary>check_slab().</summary>
    private bool CheckSlab(StringBuilder sb, int idx, ref SlabError? kind)
    {
        long w = Word(idx);
        int max = SlabGeometry.OrderObjects(_frames[idx].Order, _size);
        if (SlabWord.Objects(w) > max) { SlabErr(sb, idx, $"objects {SlabWord.Objects(w)} > max {max}"); kind ??= SlabError.FreelistCorrupt; return false; }
        if (SlabWord.Inuse(w) > SlabWord.Objects(w)) { SlabErr(sb, idx, $"inuse {SlabWord.Inuse(w)} > max {SlabWord.Objects(w)}"); kind ??= SlabError.FreelistCorrupt; return false; }
        SlabPadCheck(sb, idx, ref kind);
        return true;
    }

    /// <summary>slab_pad_check(): the bytes after the last object keep POISON_INUSE.</summary>
    private bool SlabPadCheck(StringBuilder sb, int idx, ref SlabError? kind)
    {
        if (!Has(SlabFlags.Poison)) return true;
        int length = PhysicalMemory.PageSize << _frames[idx].Order;
        int remainder = length % _size;
        if (remainder == 0) return true;
        nint start = SlabBase(idx), pad = start + length - remainder, end = start + length;
        var span = new Span<byte>((void*)pad, remainder);
        int at = span.IndexOfAnyExcept(PoisonInuse);
        if (at < 0) return true;
        nint fault = pad + at;
        while (end > fault && *(byte*)(end - 1) == PoisonInuse) end--;
        SlabErr(sb, idx, $"Padding overwritten. {P(fault)}-{P(end - 1)} @offset={fault - start}");
        PrintSection(sb, "Padding ", pad, remainder);
        SlabFix(sb, $"Restoring slab padding {P(fault)}-{P(end - 1)}=0x{PoisonInuse:x}");
        new Span<byte>((void*)fault, (int)(end - fault)).Fill(PoisonInuse);
        kind ??= SlabError.PaddingOverwritten;
        return false;
    }

    private void SlabPadCheck(int idx)
    {
        var sb = new StringBuilder();
        SlabError? kind = null;
        if (!SlabPadCheck(sb, idx, ref kind)) Report(sb);
    }

    /// <summary>on_freelist(): true when <paramref name="search"/> is on the slab's freelist; repairs a corrupt chain.</summary>
    private bool OnFreelist(StringBuilder sb, int idx, nint search, ref SlabError? kind)
    {
        nint b = SlabBase(idx);
        long w = Word(idx);
        int objects = SlabWord.Objects(w), nr = 0;
        uint link = SlabWord.Free(w);
        nint prev = 0;
        while (link != 0 && nr <= objects)
        {
            nint fp = FromLink(b, link);
            if (fp == search) return true;
            if (!ValidLink(link, objects))
            {
                if (prev != 0)
                {
                    ObjectErr(sb, idx, prev, "Freechain corrupt");
                    SetLink(prev, 0);
                }
                else
                {
                    SlabErr(sb, idx, "Freepointer corrupt");
                    Word(idx) = SlabWord.Make(0, objects, objects, SlabWord.Frozen(w));
                    SlabFix(sb, "Freelist cleared");
                    kind ??= SlabError.FreelistCorrupt;
                    return false;
                }
                kind ??= SlabError.FreelistCorrupt;
                break;
            }
            prev = fp;
            link = GetLink(fp);
            nr++;
        }
        w = Word(idx);
        if (SlabWord.Inuse(w) != objects - nr)
        {
            SlabErr(sb, idx, $"Wrong object count. Counter is {SlabWord.Inuse(w)} but counted were {objects - nr}");
            Word(idx) = SlabWord.Make(SlabWord.Free(w), objects - nr, objects, SlabWord.Frozen(w));
            SlabFix(sb, "Object count adjusted.");
            kind ??= SlabError.FreelistCorrupt;
        }
        return search == 0;
    }

    private void Trace(nint obj, int idx, bool alloc)
    {
        if (!Has(SlabFlags.Trace)) return;
        var sb = new StringBuilder();
        long w = Word(idx);
        sb.Append($"TRACE {Name} {(alloc ? "alloc" : "free")} {P(obj)} inuse={SlabWord.Inuse(w)} fp={P(FromLink(SlabBase(idx), SlabWord.Free(w)))}\n");
        if (!alloc) PrintSection(sb, "Object ", obj, _objectSize);
        _pa.DumpStack(sb);
        _pa.Log.Info(sb.ToString().TrimEnd('\n'));
    }

    // ================================================================== debug alloc and free (under the node lock)

    /// <summary>
    /// A debug cache's allocation (6.6: get_partial() with alloc_single_from_partial(), else alloc_single_from_new_slab()):
    /// the first object of the asked node's partial list (numa_mem_id()'s for NUMA_NO_NODE, then get_any_partial()'s
    /// nodes), else a new slab on that node.
    /// </summary>
    private nint DebugAlloc(Gfp gfp, CallSite site, int node)
    {
        while (true)
        {
            int search = node < 0 ? (_numa ? _sa.NumaMemId() : 0) : node;
            nint obj = DebugFromNode(_nodes[search], site, out bool retry);
            if (obj == 0 && !retry && node < 0 && _numa)
            {
                int ratio = Volatile.Read(ref _defragRatio);
                if (ratio != 0 && (ulong)System.Diagnostics.Stopwatch.GetTimestamp() % 1024 <= (ulong)ratio)
                    foreach (var z in _pa.ZonelistFor(_sa.NumaMemId(), gfp & ~Gfp.ThisNode))
                        if (Volatile.Read(ref _nodes[z.Node].NrPartial) > MinPartial &&
                            ((obj = DebugFromNode(_nodes[z.Node], site, out retry)) != 0 || retry)) break;
            }
            if (retry) continue;
            if (obj == 0)
            {
                int page = NewSlab(gfp, node);
                if (page < 0)
                {
                    if ((gfp & Gfp.NoWarn) == 0) SlabOutOfMemory(gfp, node);
                    return 0;
                }
                // alloc_single_from_new_slab(): the object comes from the new slab itself, which joins the list of the
                // node that holds it (a full node's request falls back to another node's memory; searching the asked
                // node again would make a new slab every round).
                var n = NodeOfSlab(page);
                LockOrder.Enter(LockRank.SlabNode, n.ListLock);
                lock (n.ListLock)
                {
                    AddPartial(n, page, toHead: true);
                    obj = DebugTakeObject(n, page, site);
                }
                if (obj == 0) continue;                       // the new slab failed its checks and was isolated
            }
            if ((gfp & Gfp.Zero) != 0) new Span<byte>((void*)obj, _objectSize).Clear();
            return obj;
        }
    }

    /// <summary>The first object of node <paramref name="n"/>'s first partial slab; 0 with <paramref name="retry"/> when that slab had to be isolated.</summary>
    private nint DebugFromNode(KmemCacheNode n, CallSite site, out bool retry)
    {
        retry = false;
        LockOrder.Enter(LockRank.SlabNode, n.ListLock);
        lock (n.ListLock)
        {
            int idx = n.PartialHead;
            if (idx < 0) return 0;
            nint obj = DebugTakeObject(n, idx, site);
            retry = obj == 0;
            return obj;
        }
    }

    /// <summary>alloc_debug_processing() on the first free object of a partial slab; 0 when the slab had to be isolated.</summary>
    private nint DebugTakeObject(KmemCacheNode n, int idx, CallSite site)
    {
        long w = Word(idx);
        nint b = SlabBase(idx);
        int objects = SlabWord.Objects(w);
        nint obj = FromLink(b, SlabWord.Free(w));
        var sb = new StringBuilder();
        SlabError? kind = null;
        bool ok = true;
        if (Has(SlabFlags.ConsistencyChecks))
        {
            if (!CheckSlab(sb, idx, ref kind)) ok = false;
            else if (!ValidLink(SlabWord.Free(w), objects)) { ObjectErr(sb, idx, obj, "Freelist Pointer check fails"); ok = false; }
            else if (!CheckObject(sb, idx, obj, RedInactive, ref kind)) ok = false;
        }
        uint next = ok ? GetLink(obj) : 0;
        if (ok && !ValidLink(next, objects))
        {
            ObjectErr(sb, idx, obj, "Freepointer corrupt");
            ok = false;
        }
        if (!ok)
        {
            // The kernel's answer to a corrupt slab: mark every object used, so nothing in it is handed out again.
            SlabFix(sb, "Marking all objects used");
            Report(sb);
            Word(idx) = SlabWord.Make(0, objects, objects, frozen: false);
            RemovePartial(n, idx);
            _frames[idx].SlabListState = OnFull;
            return 0;
        }
        if (sb.Length > 0) Report(sb); // padding problems are reported and restored without refusing the object
        Word(idx) = SlabWord.Make(next, SlabWord.Inuse(w) + 1, objects, frozen: false);
        if (next == 0)
        {
            RemovePartial(n, idx);
            _frames[idx].SlabListState = OnFull;
        }
        SetTrack(obj, TrackAlloc, site);
        Trace(obj, idx, alloc: true);
        InitObject(obj, RedActive);
        return obj;
    }

    /// <summary>free_debug_processing() and the free itself; on a failed check nothing is freed.</summary>
    private void DebugFree(int idx, nint obj, CallSite site)
    {
        int discard = -1;
        var n = NodeOfSlab(idx);                              // the slab's own node, whichever node frees it
        LockOrder.Enter(LockRank.SlabNode, n.ListLock);
        lock (n.ListLock)
        {
            var sb = new StringBuilder();
            SlabError? kind = null;
            long w = Word(idx);
            bool ok = true;
            if (Has(SlabFlags.ConsistencyChecks))
            {
                if (!CheckSlab(sb, idx, ref kind)) ok = false;
                else if (ObjectIndex(idx, obj) < 0) { SlabErr(sb, idx, $"Invalid object pointer {P(obj)}"); kind = SlabError.InvalidPointer; ok = false; }
                else if (OnFreelist(sb, idx, obj, ref kind)) { ObjectErr(sb, idx, obj, "Object already free"); kind = SlabError.DoubleFree; ok = false; }
                else if (!CheckObject(sb, idx, obj, RedActive, ref kind)) ok = false;
            }
            else if (ObjectIndex(idx, obj) < 0) { SlabErr(sb, idx, $"Invalid object pointer {P(obj)}"); kind = SlabError.InvalidPointer; ok = false; }
            else if (SlabWord.Inuse(w) == 0 || OnSlabFreelist(idx, obj))
            {
                // Without F the kernel would catch only the naive case; Kmem always looks the object up.
                throw ObjectAlreadyFree(idx, obj, site);
            }
            if (!ok)
            {
                SlabFix(sb, $"Object at {P(obj)} not freed");
                Report(sb);
                throw new SlabException(kind ?? SlabError.FreelistCorrupt, Name, obj,
                    $"{Name}: {Describe(kind ?? SlabError.FreelistCorrupt)} at 0x{obj:x} (freed from {site}); the object was not freed");
            }
            if (sb.Length > 0) Report(sb); // padding problems are reported and restored; the free goes on
            SetTrack(obj, TrackFree, site);
            Trace(obj, idx, alloc: false);
            InitObject(obj, RedInactive);
            w = Word(idx);
            SetLink(obj, SlabWord.Free(w));
            int inuse = SlabWord.Inuse(w) - 1;
            Word(idx) = SlabWord.Make(ToLink(SlabBase(idx), obj), inuse, SlabWord.Objects(w), frozen: false);
            bool wasFull = _frames[idx].SlabListState == OnFull;
            if (inuse == 0 && n.NrPartial >= MinPartial)
            {
                if (!wasFull) RemovePartial(n, idx);
                _frames[idx].SlabListState = 0;
                discard = idx;
            }
            else if (wasFull) AddPartial(n, idx, toHead: false);
        }
        if (discard >= 0) DiscardSlab(discard);
    }

    private static string Describe(SlabError e) => e switch
    {
        SlabError.DoubleFree => "double free",
        SlabError.InvalidPointer => "invalid object pointer",
        SlabError.WrongCache => "object of another cache",
        SlabError.RedzoneOverwritten => "red zone overwritten",
        SlabError.PoisonOverwritten => "poison overwritten (write after free)",
        SlabError.PaddingOverwritten => "padding overwritten",
        SlabError.FreelistCorrupt => "freelist corrupt",
        SlabError.CacheInUse => "cache still has objects",
        _ => "misuse",
    };

    /// <summary>
    /// Checks every slab of a debug cache (<c>/sys/kernel/slab/NAME/validate</c>): free objects must keep
    /// their poison and red zones, live objects their red zones. Returns the errors found (each reported).
    /// </summary>
    public int Validate()
    {
        var s = _root;
        if (s.Destroyed) ThrowDestroyed();
        if (!s._debug) return 0;
        long before = Volatile.Read(ref s._debugErrors);
        var slabs = s._sa.SlabsOf(s._id);
        foreach (var n in s._nodes)                           // validate_slab_node() of every node, under its lock
        {
            LockOrder.Enter(LockRank.SlabNode, n.ListLock);
            lock (n.ListLock)
            {
                foreach (int idx in slabs)
                {
                    if (s.SlabNid(idx) != n.Id) continue;
                    var sb = new StringBuilder();
                    SlabError? kind = null;
                    s.CheckSlab(sb, idx, ref kind);
                    s.OnFreelist(sb, idx, 0, ref kind);
                    var free = s.FreeSet(idx);
                    int objects = SlabWord.Objects(s.Word(idx));
                    for (int i = 0; i < objects; i++)
                    {
                        nint p = s.SlabBase(idx) + s._redLeftPad + (nint)i * s._size;
                        s.CheckObject(sb, idx, p, free.Contains(p) ? RedInactive : RedActive, ref kind);
                    }
                    if (sb.Length > 0) s.Report(sb);
                }
            }
        }
        return (int)(Volatile.Read(ref s._debugErrors) - before);
    }

    /// <summary>The objects on a slab's freelist (the caller makes sure no thread holds the slab as CPU slab).</summary>
    private HashSet<nint> FreeSet(int idx)
    {
        var set = new HashSet<nint>();
        nint b = SlabBase(idx);
        long w = Word(idx);
        int objects = SlabWord.Objects(w);
        for (uint link = SlabWord.Free(w); link != 0 && set.Count <= objects && ValidLink(link, objects);)
        {
            nint p = FromLink(b, link);
            if (!set.Add(p)) break;
            link = GetLink(p);
        }
        return set;
    }

    // ================================================================== reports of the non-debug paths

    private SlabException InvalidObjectPointer(int idx, nint obj, CallSite site) =>
        RefusedFree(idx, obj, $"Invalid object pointer {P(obj)}", SlabError.InvalidPointer, $"0x{obj:x} is not the start of an object (freed from {site})");

    private SlabException InvalidFree(int idx, nint obj, CallSite site) =>
        RefusedFree(idx, obj, $"Object {P(obj)} freed to a slab with no object in use", SlabError.DoubleFree, $"0x{obj:x} is already free (freed from {site})");

    /// <summary>slab_err() and "Object … not freed" for a free that is refused; the exception to throw.</summary>
    private SlabException RefusedFree(int idx, nint obj, string reason, SlabError error, string message)
    {
        var sb = new StringBuilder();
        SlabErr(sb, idx, reason);
        SlabFix(sb, $"Object at {P(obj)} not freed");
        Report(sb);
        return new SlabException(error, Name, obj, $"{Name}: {message}; nothing was freed");
    }

    private SlabException NaiveDoubleFree(int idx, nint obj, CallSite site, bool inSheaf = false)
    {
        var sb = new StringBuilder();
        sb.Append("------------[ cut here ]------------\n");
        if (inSheaf)
        {
            sb.Append($"BUG {Name}: free_to_pcs: object {P(obj)} is already the last object of the thread's sheaf (double free)\n");
        }
        else
        {
            sb.Append("kernel BUG at mm/slub.c:287!\n");
            sb.Append($"BUG {Name}: set_freepointer: object {P(obj)} is already the head of its slab's freelist (double free)\n");
        }
        _pa.AddTaint(PageAllocator.TaintBadPage);
        Interlocked.Increment(ref _debugErrors);
        PrintPageInfo(sb, idx);
        _pa.DumpStack(sb);
        Report(sb);
        return new SlabException(SlabError.DoubleFree, Name, obj, $"{Name}: double free of 0x{obj:x} (freed from {site}); nothing was freed");
    }

    private void FreelistCorrupt(int idx, nint obj, uint link)
    {
        var sb = new StringBuilder();
        ObjectErr(sb, idx, obj, "Freepointer corrupt");
        sb.Append($"INFO: stored link 0x{link:x} points outside the slab (written after free?)\n");
        SlabFix(sb, "Isolate corrupt freechain");
        Report(sb);
    }

    /// <summary>slab_out_of_memory() (6.6), rate-limited like the kernel's: the node asked for, then one line per node.</summary>
    private void SlabOutOfMemory(Gfp gfp, int node)
    {
        if (!_sa.OomRateLimit()) return;
        var sb = new StringBuilder();
        sb.Append($"SLUB: Unable to allocate memory on node {node}, gfp=0x{(uint)gfp:x}({GfpFlags.Format(gfp)})\n");
        sb.Append($"  cache: {Name}, object size: {_objectSize}, buffer size: {_size}, default order: {_g.Order}, min order: {_g.MinOrder}");
        for (int n = 0; n < _nodes.Length; n++)
        {
            if (!_sa.SlabNodes[n]) continue;                  // for_each_kmem_cache_node(): nodes with a kmem_cache_node
            sb.Append($"\n  node {n}: slabs: {NodeSlabs(n)}, objs: {NodeTotalObjects(n)}, free: {NodeCountPartial(n, inuse: false)}");
        }
        _pa.Log.Warn(sb.ToString());
    }
}
