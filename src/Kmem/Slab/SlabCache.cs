// A SLUB slab cache (struct kmem_cache): its layout, its counters and the two fast paths. Alloc
// takes the first object of the calling thread's CPU freelist; Free pushes an object of the
// thread's CPU slab back on it. Both touch only the thread's own structure (no lock, no atomic,
// no managed allocation); everything else is in SlabCache.Slow.cs and, for caches with debug
// flags, SlabCache.Debug.cs.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem;

/// <summary>
/// A cache of equal-sized objects in slabs of pages (<c>struct kmem_cache</c>). Create one with
/// <see cref="Machine.KmemCacheCreate"/>; objects are addresses in the machine's memory.
/// </summary>
public sealed unsafe partial class SlabCache
{
    private readonly SlabAllocator _sa;
    internal bool FailArmed;                 // failslab is armed (copied from the allocator)
    private readonly PageAllocator _pa;
    private readonly PageFrame* _frames;
    private readonly nint _linear;
    private readonly nuint _linearBytes;
    /// <summary>Index in every thread's table; <see cref="SlabThread.DeadSlot"/> once destroyed.</summary>
    private int _slot;
    /// <summary>The number stored in each slab's page descriptor (<c>page->slab_cache</c>).</summary>
    private readonly int _id;
    private readonly int _size, _offset, _redLeftPad;
    private int _objectSize;
    /// <summary>Reciprocal for object index checks: index = (offset * magic) >> 44 (0: divide).</summary>
    private readonly ulong _magic;
    /// <summary><c>s->random</c>: the freelist hardening key.</summary>
    private readonly uint _random;
    /// <summary>Bytes of a slab of the preferred order (the largest link a free pointer may hold).</summary>
    private readonly uint _slabBytes;
    private readonly bool _debug;
    private readonly SlabGeometry _g;
    private readonly Action<nint>? _ctor;
    private readonly SlabCache _root;

    internal SlabCache(SlabAllocator sa, int id, string name, SlabGeometry g, SlabFlags flags, Action<nint>? ctor, int usersize, bool kmalloc, int sheafCapacity = 0)
    {
        _sa = sa;
        FailArmed = sa.Failslab.Armed;
        _pa = sa.Pages;
        _frames = _pa.Frames.Base;
        _linear = _pa.IdxToVirt(0);
        _linearBytes = (nuint)_pa.Frames.Count << PhysicalMemory.PageShift;
        _id = id;
        _slot = id; // the id in the slabs' descriptors is the slot, so kfree finds the thread structure from the page
        Name = name;
        _g = g;
        _size = g.Size;
        _objectSize = g.ObjectSize;
        _offset = g.Offset;
        _redLeftPad = g.RedLeftPad;
        Flags = g.Flags;
        _debug = (g.Flags & SlabFlags.DebugFlags) != 0;
        _sheafCapacity = _debug ? 0 : sheafCapacity; // as the kernel, no sheaves for a cache with debug flags
        _ctor = ctor;
        Usersize = usersize;
        IsKmalloc = kmalloc;
        _magic = g.SlabBytes <= (1 << 20) ? ((1UL << 44) + (ulong)g.Size - 1) / (ulong)g.Size : 0;
        _random = (uint)Random.Shared.Next() | 1u;
        _slabBytes = (uint)g.SlabBytes;
        _root = this;
        _zoneNode = sa.ZoneNode;
        _nodes = new KmemCacheNode[sa.NodeCount];
        for (int n = 0; n < _nodes.Length; n++) _nodes[n] = new KmemCacheNode(n);
        _numa = _nodes.Length > 1;
        RefCount = 1;
        AllocFlags = (g.Order > 0 ? Gfp.Comp : 0)
            | ((flags & SlabFlags.CacheDma) != 0 ? Gfp.Dma : 0)
            | ((flags & SlabFlags.CacheDma32) != 0 ? Gfp.Dma32 : 0)
            | ((flags & SlabFlags.ReclaimAccount) != 0 ? Gfp.Reclaimable : 0);
    }

    /// <summary>An alias of <paramref name="root"/> made by cache merging: it shares every slab of the root.</summary>
    internal SlabCache(SlabCache root, string name)
    {
        _sa = root._sa;
        FailArmed = root._sa.Failslab.Armed;
        _pa = root._pa;
        _frames = root._frames;
        _linear = root._linear;
        _linearBytes = root._linearBytes;
        _id = root._id;
        _slot = root._slot;
        _size = root._size;
        _objectSize = root._objectSize;
        _offset = root._offset;
        _redLeftPad = root._redLeftPad;
        _magic = root._magic;
        _random = root._random;
        _slabBytes = root._slabBytes;
        _debug = root._debug;
        _g = root._g;
        _root = root;
        _nodes = root._nodes;
        _zoneNode = root._zoneNode;
        _numa = root._numa;
        Name = name;
        Flags = root.Flags;
        AllocFlags = root.AllocFlags;
        Usersize = root.Usersize;
    }

    /// <summary>The cache's name (<c>/proc/slabinfo</c>, <c>/sys/kernel/slab/NAME</c>).</summary>
    public string Name { get; }

    /// <summary>The size the caller asked for (<c>object_size</c>).</summary>
    public int ObjectSize => _root._objectSize;

    /// <summary>The stride of objects in a slab, metadata and alignment included (<c>size</c>, slabinfo's objsize).</summary>
    public int Size => _size;

    /// <summary>The object alignment.</summary>
    public int Align => _g.Align;

    /// <summary>The flags in force, slub_debug's included.</summary>
    public SlabFlags Flags { get; }

    /// <summary>Objects in a slab of the preferred order (slabinfo's objperslab).</summary>
    public int ObjectsPerSlab => _g.Objects;

    /// <summary>The preferred slab order (slabinfo's pagesperslab is 1 &lt;&lt; Order).</summary>
    public int Order => _g.Order;

    /// <summary>True when this handle is an alias of another cache it was merged with.</summary>
    public bool IsAlias => !ReferenceEquals(_root, this);

    /// <summary>The cache that really holds the slabs (itself unless merged).</summary>
    public SlabCache Root => _root;

    /// <summary>Slabs of the cache, every node's.</summary>
    public long Slabs => _pa.Life.Live(SumNodes(static n => Volatile.Read(ref n.NrSlabs)));

    /// <summary>Objects in all slabs of every node (slabinfo's num_objs).</summary>
    public long TotalObjects => _pa.Life.Live(SumNodes(static n => Volatile.Read(ref n.TotalObjects)));

    /// <summary>Objects not on a node partial list's freelists (slabinfo's active_objs: objects in CPU slabs count as active).</summary>
    public long ActiveObjects
    {
        get
        {
            using var _ = _pa.Life.Enter();
            return _root.CountActive();
        }
    }

    /// <summary>Objects handed out and not yet freed (exact; flushes no CPU slab).</summary>
    public long ObjectsInUse
    {
        get
        {
            using var _ = _pa.Life.Enter();
            return _root.CountInUse();
        }
    }

    /// <summary>Slabs on the node partial lists, every node's.</summary>
    public long PartialSlabs => _pa.Life.Live(SumNodes(static n => Volatile.Read(ref n.NrPartial)));

    /// <summary>Errors the debug checks have found in this cache.</summary>
    public long DebugErrors => _pa.Life.Live(Volatile.Read(ref _root._debugErrors));


    internal readonly Gfp AllocFlags;
    internal readonly int Usersize;
    internal readonly bool IsKmalloc;
    internal int RefCount;
    internal int Id => _id;
    internal SlabGeometry Geometry => _g;
    internal bool HasCtor => _ctor is not null;
    internal bool Destroyed => _slot == SlabThread.DeadSlot;

    // ================================================================== allocate

    /// <summary>
    /// Allocates an object (<c>kmem_cache_alloc()</c>); returns its address, or 0 when no memory could be
    /// found (after the kernel's warning unless <see cref="Gfp.NoWarn"/>). <see cref="Gfp.Zero"/> clears it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint Alloc(Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (FailArmed && _sa.ShouldFailslab(this, gfp)) return 0;
        nint obj = AllocFast(_slot, gfp);
        return obj != 0 ? obj : AllocSlow(gfp, new CallSite(caller, file, line));
    }

    /// <summary>
    /// The object freed last (the hot slot), else the head of the CPU freelist, marked in use; 0 when both are empty or
    /// the freelist's link points outside the slab (a corrupt free pointer, which then stays for the slow path to report).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nint PopCpuFreelist(KmemCacheCpu* c)
    {
        nint obj = c->Hot;
        if (obj != 0)
        {
            c->Hot = 0;                                        // the object freed last comes back first (LIFO)
            c->LastAlloc = obj;
            nint hp = obj + c->Offset;
            *(uint*)hp = SlabWord.InUse(c->Random, hp);        // in use: its free pointer decodes outside any slab
            return obj;
        }
        if ((obj = c->Freelist) == 0) return 0;
        nint fp = obj + c->Offset;
        uint raw = *(uint*)fp;
        uint link = SlabWord.Decode(raw, c->Random, fp);
        if (link > c->SlabBytes) return 0;                     // a link outside the slab: the slow path reports it
        nint next = link == 0 ? 0 : c->SlabBase + (nint)link - 1;
        c->Freelist = next;
        c->LastAlloc = obj;
        *(uint*)fp = SlabWord.InUseAfterPop(raw);
        // prefetch_freepointer(): the next allocation reads the next object's free pointer, which a free on another
        // thread may have written last; start bringing its line in now (a hint: nothing waits for it).
        if (Sse.IsSupported && next != 0) Sse.Prefetch0((void*)(next + c->Offset));
        return obj;
    }

    /// <summary>
    /// Takes the first object of the calling thread's CPU freelist of the cache in <paramref name="slot"/>, or when
    /// that is empty the last object of its main sheaf (clearing it for <see cref="Gfp.Zero"/>), or returns 0 and
    /// the slow path decides.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nint AllocFast(int slot, Gfp gfp)
    {
        if ((uint)slot < (uint)SlabThread.t_len)
        {
            nint* t = SlabThread.t_table;
            OwnerDrainHandshake* hs = SlabThread.Handshake(t);
            if (hs->OwnerEnter())                             // no flusher: the structure is ours
            {
                var c = (KmemCacheCpu*)t[slot];
                if (c != null)
                {
                    nint obj = PopCpuFreelist(c);
                    if (obj == 0 && c->Freelist == 0 && c->Main != null && c->Main->Size > 0)
                    {
                        // A cache with sheaves: the thread's main sheaf comes after its CPU freelist.
                        obj = TakeFromMain(c, out int left);
                        nint sp = obj + c->Offset;
                        *(uint*)sp = SlabWord.InUse(c->Random, sp);
                        // Kmem's own hint, in the spirit of prefetch_freepointer(): the next object of the sheaf was
                        // last written by the thread that freed it; start bringing its line in for the next allocation.
                        if (Sse.IsSupported && left != 0) Sse.Prefetch0((void*)(SlabSheaf.Objects(c->Main)[left - 1] + c->Offset));
                    }
                    // The one exit of every case (0: the slow path decides). ZeroBytes is read before Busy falls,
                    // since a flusher may free the structure after.
                    int zero = (gfp & Gfp.Zero) != 0 ? c->ZeroBytes : 0;
                    hs->OwnerExit();
                    if (zero != 0 && obj != 0) new Span<byte>((void*)obj, zero).Clear();
                    return obj;
                }
            }
            hs->OwnerExit();
        }
        return 0;
    }

    /// <summary>The slow path for callers that tried <see cref="AllocFast"/> themselves (kmalloc).</summary>
    internal nint AllocSlowFor(Gfp gfp, CallSite site) => AllocSlow(gfp, site);

    /// <summary>slab_ksize(): what ksize() reports for an object of this cache.</summary>
    internal int SlabKsize => (Flags & (SlabFlags.RedZone | SlabFlags.Poison)) != 0 ? ObjectSize
        : (Flags & (SlabFlags.TypesafeByRcu | SlabFlags.StoreUser)) != 0 ? _g.Inuse : _size;

    // ================================================================== free

    /// <summary>
    /// Frees an object of this cache (<c>kmem_cache_free()</c>). Freeing 0 does nothing. A pointer that is
    /// not an object of this cache, or an object already free (as far as the cache's checks can tell), is
    /// reported in the log and raises <see cref="SlabException"/>; nothing is freed then.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Free(nint obj, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        nint* t = SlabThread.t_table;
        int len = SlabThread.t_len;
        if (!FreeFast(t, len, _slot, obj) && !FreeRemote(obj, t, len)) FreeSlow(obj, new CallSite(caller, file, line), expected: this);
    }

    /// <summary>
    /// Pushes an object of the thread's CPU slab on its freelist (as the hot object): the address must fall on an
    /// object slot of that slab (so it is ours and not interior) and its free pointer must not decode to a valid link
    /// (every free object's does: such an object may be free already, and the slow path looks it up).
    /// False sends the caller to <see cref="FreeRemote"/> or the slow path. No page descriptor is read.
    /// <paramref name="t"/> and <paramref name="len"/> are the calling thread's table and its length (read once by
    /// the caller, so that the slower paths after it need no second thread-local access).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool FreeFast(nint* t, int len, int slot, nint obj)
    {
        if ((uint)slot >= (uint)len) return false;
        OwnerDrainHandshake* hs = SlabThread.Handshake(t);
        if (hs->OwnerEnter())                                  // no flusher: the structure is ours
        {
            var c = (KmemCacheCpu*)t[slot];
            if (c != null)
            {
                bool slotOk;
                if (obj == c->LastAlloc && obj != 0)
                {
                    // The object handed out last: known to start an object of the CPU slab.
                    slotOk = true;
                }
                else
                {
                    ulong o = (ulong)(obj - c->ObjStart);
                    slotOk = o < c->ObjBytes && IsSlot(c, o);
                }
                if (slotOk)
                {
                    nint fp = obj + c->Offset;
                    if (!SlabWord.MayBeFree(*(uint*)fp, c->Random, fp, c->SlabBytes))
                    {
                        c->LastAlloc = 0;
                        PushHot(c, obj, fp);
                        hs->OwnerExit();
                        return true;
                    }
                }
                else
                {
                    // Another slab's object: it joins the detached freelist when that is the slab the list collects.
                    ulong r = (ulong)(obj - c->RemoteObjStart);
                    if (r < c->RemoteObjBytes && c->RemoteCount < RemoteBatch - 1 && IsSlot(c, r))
                    {
                        nint fp = obj + c->Offset;
                        if (!SlabWord.MayBeFree(*(uint*)fp, c->Random, fp, c->SlabBytes))
                        {
                            *(uint*)fp = SlabWord.Encode((uint)(c->RemoteHead - c->RemoteSlabBase + 1), c->Random, fp);
                            c->RemoteHead = obj;
                            c->RemoteCount++;
                            hs->OwnerExit();
                            return true;
                        }
                    }
                    // A cache with sheaves: an object of the slab the main sheaf last took one of goes into the sheaf.
                    r = (ulong)(obj - c->SheafObjStart);
                    SlabSheaf* sh = c->Main;
                    if (r < c->SheafObjBytes && sh->Size < sh->Capacity && IsSlot(c, r))
                    {
                        nint fp = obj + c->Offset;
                        if (!SlabWord.MayBeFree(*(uint*)fp, c->Random, fp, c->SlabBytes))
                        {
                            *(uint*)fp = SlabWord.Encode(0, c->Random, fp); // marked free, as FreeToSheaf marks it
                            SlabSheaf.Objects(sh)[sh->Size++] = obj;
                            hs->OwnerExit();
                            return true;
                        }
                    }
                }
            }
        }
        hs->OwnerExit();
        return false;
    }

    /// <summary>True when byte offset <paramref name="o"/> from a slab's first object starts an object slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsSlot(KmemCacheCpu* c, ulong o)
    {
        ulong size = (ulong)c->Size;
        ulong i = c->Magic != 0 ? (o * c->Magic) >> 44 : o / size;
        return i * size == o;
    }

    /// <summary>
    /// Makes a validated object of the CPU slab the hot object, writing its free pointer (to the previous hot object,
    /// else the freelist's head) so that it is marked free; the previous hot object becomes the freelist's head.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PushHot(KmemCacheCpu* c, nint obj, nint fp)
    {
        nint hot = c->Hot;
        nint next = c->Freelist;
        if (hot != 0)
        {
            next = hot;
            c->Freelist = hot;
        }
        uint link = next == 0 ? 0 : (uint)(next - c->SlabBase + 1);
        *(uint*)fp = SlabWord.Encode(link, c->Random, fp);
        c->Hot = obj;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} (object {ObjectSize} B, stride {Size} B, {ObjectsPerSlab}/slab, order {Order})";
}
