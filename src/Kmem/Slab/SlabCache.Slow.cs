// SLUB's allocation slow path and slab lists (Linux 5.10 mm/slub.c, with 6.6's NUMA rules): the per-node
// partial lists (struct kmem_cache_node, one per node), new_slab()/discard_slab() on a node,
// ___slab_alloc() with the CPU and node partial lists and its node checks, get_partial()/get_any_partial(),
// get_freelist(), put_cpu_partial()/unfreeze_partials() and deactivate_slab(). Frees and flushing are in
// SlabCache.Free.cs. Locks, outermost first (docs/architecture.md, "Lock order"): the calling thread's slab lock
// (SlabThread.Lock) → the cache's thread list (_cpusLock, when the thread's structure is created) → one node's list
// lock (KmemCacheNode.ListLock; never two at once). A new slab is allocated with none of them held: reclaim may run
// shrinkers that flush this very thread.
using System.Runtime.InteropServices;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    // ---- struct kmem_cache_node, one per node (s->node[]); aliases share the root's
    private readonly KmemCacheNode[] _nodes;
    /// <summary>The node of each zone (by the zone index a page descriptor records), for slab_nid().</summary>
    private readonly int[] _zoneNode;
    /// <summary>More than one node: false keeps every list path on node 0 without reading a page's zone.</summary>
    private readonly bool _numa;
    private long _debugErrors;
    /// <summary>Every thread structure of this cache, for flush_all().</summary>
    private readonly List<(SlabThread St, nint Cpu)> _cpus = [];
    private readonly Lock _cpusLock = new();

    private const byte OnNodePartial = 1, OnFull = 2;

    private int MinPartial => _g.MinPartial;
    private int CpuPartial => _g.CpuPartial;

    // ================================================================== helpers

    private nint SlabBase(int idx) => _linear + ((nint)idx << PhysicalMemory.PageShift);

    /// <summary>slab_nid(): the node whose memory holds slab <paramref name="idx"/> (0 on a one-node machine).</summary>
    private int SlabNid(int idx) => _numa ? _zoneNode[_frames[idx].Zone] : 0;

    /// <summary>get_node(s, slab_nid(slab)): the node structure whose lists the slab belongs on.</summary>
    private KmemCacheNode NodeOfSlab(int idx) => _numa ? _nodes[_zoneNode[_frames[idx].Zone]] : _nodes[0];

    /// <summary>The object a link (offset in the slab plus one) designates, or 0.</summary>
    private static nint FromLink(nint slabBase, uint link) => link == 0 ? 0 : slabBase + (nint)link - 1;

    private static uint ToLink(nint slabBase, nint obj) => obj == 0 ? 0 : (uint)(obj - slabBase + 1);

    /// <summary>get_freepointer(): the raw link stored in a free object.</summary>
    internal uint GetLink(nint obj)
    {
        nint fp = obj + _offset;
        return SlabWord.Encode(*(uint*)fp, _random, fp);
    }

    /// <summary>set_freepointer().</summary>
    internal void SetLink(nint obj, uint link)
    {
        nint fp = obj + _offset;
        *(uint*)fp = SlabWord.Encode(link, _random, fp);
    }

    /// <summary>check_valid_pointer(): a link designates an object slot of the slab (or is 0).</summary>
    private bool ValidLink(uint link, int objects)
    {
        if (link == 0) return true;
        long o = (long)link - 1 - _redLeftPad;
        return o >= 0 && o % _size == 0 && o / _size < objects;
    }

    /// <summary>The slot index of an object, or -1 when the address does not start a slot.</summary>
    internal int ObjectIndex(int idx, nint obj)
    {
        long o = obj - SlabBase(idx) - _redLeftPad;
        int objects = SlabWord.Objects(_frames[idx].SlabCounters);
        if (o < 0 || o % _size != 0 || o / _size >= objects) return -1;
        return (int)(o / _size);
    }

    private ref long Word(int idx) => ref _frames[idx].SlabCounters;

    private bool Cas(int idx, long old, long @new) => Interlocked.CompareExchange(ref _frames[idx].SlabCounters, @new, old) == old;

    private KmemCacheCpu* CpuOf(SlabThread st)
    {
        int slot = _slot;
        if (slot == SlabThread.DeadSlot) ThrowDestroyed();
        var c = st.Get(slot);
        if (c != null) return c;
        c = (KmemCacheCpu*)NativeMemory.AlignedAlloc((nuint)sizeof(KmemCacheCpu), 64);
        *c = new KmemCacheCpu
        {
            Page = -1, Partial = -1, RemotePage = -1, Magic = _magic, Offset = _offset, Random = _random, SlabBytes = _slabBytes,
            Size = _size, ZeroBytes = _objectSize,
        };
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock)
        {
            if (_slot != slot)
            {
                // Destroyed meanwhile: the slot may already belong to another cache.
                NativeMemory.AlignedFree(c);
                ThrowDestroyed();
            }
            st.Set(slot, c);
            _cpus.Add((st, (nint)c));
        }
        return c;
    }

    /// <summary>Links the hot object in front of the freelist, so that slow paths see one plain freelist.</summary>
    private void SpillHot(KmemCacheCpu* c)
    {
        nint hot = c->Hot;
        if (hot == 0) return;
        SetLink(hot, ToLink(c->SlabBase, c->Freelist));
        c->Freelist = hot;
        c->Hot = 0;
    }

    /// <summary>Makes <paramref name="idx"/> the thread's CPU slab (its freelist is set by the caller).</summary>
    private void SetCpuSlab(KmemCacheCpu* c, int idx)
    {
        c->Page = idx;
        c->LastAlloc = 0;
        c->SlabBase = SlabBase(idx);
        c->ObjStart = c->SlabBase + _redLeftPad;
        c->ObjBytes = (nuint)SlabWord.Objects(Word(idx)) * (nuint)_size;
        c->Node = SlabNid(idx);
    }

    private static void ClearCpuSlab(KmemCacheCpu* c)
    {
        c->Page = -1;
        c->LastAlloc = 0;
        c->ObjBytes = 0;
    }

    // ================================================================== node lists (under the node's ListLock)

    /// <summary>add_partial(): the slab goes on node <paramref name="n"/>'s partial list (its own node's).</summary>
    private void AddPartial(KmemCacheNode n, int idx, bool toHead)
    {
        ref PageFrame f = ref _frames[idx];
        f.SlabListState = OnNodePartial;
        if (n.PartialHead < 0)
        {
            f.Next = f.Prev = -1;
            n.PartialHead = n.PartialTail = idx;
        }
        else if (toHead)
        {
            f.Prev = -1;
            f.Next = n.PartialHead;
            _frames[n.PartialHead].Prev = idx;
            n.PartialHead = idx;
        }
        else
        {
            f.Next = -1;
            f.Prev = n.PartialTail;
            _frames[n.PartialTail].Next = idx;
            n.PartialTail = idx;
        }
        n.NrPartial++;
    }

    /// <summary>remove_partial().</summary>
    private void RemovePartial(KmemCacheNode n, int idx)
    {
        ref PageFrame f = ref _frames[idx];
        if (f.Prev >= 0) _frames[f.Prev].Next = f.Next; else n.PartialHead = f.Next;
        if (f.Next >= 0) _frames[f.Next].Prev = f.Prev; else n.PartialTail = f.Prev;
        f.Next = f.Prev = -1;
        f.SlabListState = 0;
        n.NrPartial--;
    }

    // ================================================================== new and discarded slabs

    private const Gfp ReclaimMask = Gfp.Reclaim | Gfp.High | Gfp.Io | Gfp.Fs | Gfp.NoWarn | Gfp.RetryMayFail | Gfp.NoFail |
                                    Gfp.NoRetry | Gfp.Memalloc | Gfp.NoMemalloc;
    private const Gfp ConstraintMask = Gfp.Hardwall | Gfp.ThisNode;

    /// <summary>
    /// kmalloc_fix_flags() (mm/slab_common.c; open-coded in new_slab()/cache_grow_begin() before 5.9): a slab may not ask
    /// for the zones of GFP_SLAB_BUG_MASK (HighMem pages have no linear address, where objects must live): the bits are
    /// dropped with the kernel's warning and stack, and the allocation goes on in lowmem (a warning since 4.11's
    /// "slab: do not panic on invalid gfp_mask", no longer a BUG).
    /// </summary>
    internal static Gfp FixFlags(PageAllocator pa, Gfp gfp)
    {
        Gfp fixedUp = gfp & ~GfpFlags.SlabBugMask;
        var sb = new System.Text.StringBuilder();
        sb.Append($"Unexpected gfp: 0x{(uint)(gfp & GfpFlags.SlabBugMask):x} ({GfpFlags.Format(gfp & GfpFlags.SlabBugMask)}). Fixing up to gfp: 0x{(uint)fixedUp:x} ({GfpFlags.Format(fixedUp)}). Fix your code!\n");
        pa.DumpStack(sb);
        pa.Log.Warn(sb.ToString());
        return fixedUp;
    }

    /// <summary>new_slab(): pages from the page allocator, objects initialised and linked in address order.
    /// The slab is returned unfrozen, on no list, with every object free. -1 when no memory.</summary>
    /// <remarks>
    /// alloc_slab_page() (6.6 mm/slub.c): NUMA_NO_NODE takes alloc_pages() (the calling thread's node under the default
    /// local policy), a node takes __alloc_pages_node(node, …) without __GFP_THISNODE, so the page allocator may still
    /// fall back to another node when that one is full. The slab is counted on the node it landed on
    /// (inc_slabs_node(s, slab_nid(slab), …)).
    /// </remarks>
    private int NewSlab(Gfp gfp, int node = PageAllocator.NumaNoNode)
    {
        if ((gfp & GfpFlags.SlabBugMask) != 0 && (AllocFlags & Gfp.Dma32) == 0) gfp = FixFlags(_pa, gfp);
        Gfp flags = (gfp & (ReclaimMask | ConstraintMask)) | AllocFlags;
        Gfp first = (flags | Gfp.NoWarn | Gfp.NoRetry) & ~Gfp.NoFail;
        if ((first & Gfp.DirectReclaim) != 0 && _g.Order > _g.MinOrder)
            first = (first | Gfp.NoMemalloc) & ~(Gfp.Reclaim | Gfp.NoFail);
        int order = _g.Order;
        int idx = node < 0 ? _pa.Alloc(first, order) : _pa.AllocNode(node, first, order);
        if (idx < 0)
        {
            order = _g.MinOrder;
            Gfp minFlags = order > 0 ? flags : flags & ~Gfp.Comp;
            idx = node < 0 ? _pa.Alloc(minFlags, order) : _pa.AllocNode(node, minFlags, order);
            if (idx < 0) return -1;
            Interlocked.Increment(ref OrderFallbacks);
        }
        int objects = order == _g.Order ? _g.Objects : _g.MinObjects;
        ref PageFrame f = ref _frames[idx];
        f.Flags |= PageFlags.Slab;
        f.SlabCacheSlot = _id;
        f.Next = f.Prev = -1;
        f.SlabListState = 0;
        nint b = SlabBase(idx);
        if (_debug || _ctor is not null) SetupObjects(idx, order, b, objects);
        else LinkObjects(b, objects);
        f.SlabCounters = SlabWord.Make(ToLink(b, b + _redLeftPad), 0, objects, frozen: false);
        _pa.Stat.ModSlab((Flags & SlabFlags.ReclaimAccount) != 0, (long)PhysicalMemory.PageSize << order, _pa.NodeOfFrame(idx));
        var n = NodeOfSlab(idx);
        Interlocked.Increment(ref n.NrSlabs);
        Interlocked.Add(ref n.TotalObjects, objects);
        return idx;
    }

    /// <summary>
    /// The new slab's freelist in address order, for a cache without debugging or constructor: one store an object, in a
    /// loop that keeps everything in registers (the stores miss when another thread last wrote the page's lines, and
    /// nothing else in the loop should wait behind them).
    /// </summary>
    private void LinkObjects(nint b, int objects)
    {
        int size = _size, offset = _offset;
        uint key = _random;
        nint p = b + _redLeftPad, last = p + (nint)(objects - 1) * size;
        uint next = (uint)(p - b) + 1;                              // the link of object 0 (offset in the slab plus one)
        for (; p < last; p += size)
        {
            next += (uint)size;
            nint fp = p + offset;
            *(uint*)fp = SlabWord.Encode(next, key, fp);
        }
        *(uint*)(last + offset) = SlabWord.Encode(0, key, last + offset);
    }

    /// <summary>
    /// The new slab's objects with slub_debug's layout or the cache's constructor, then the freelist; a constructor that
    /// throws gives the slab back (<see cref="UnwindNewSlab"/>) and the exception goes on to the caller.
    /// </summary>
    private void SetupObjects(int idx, int order, nint b, int objects)
    {
        if (_debug) SetupSlabDebug(b, order);
        int done = 0;
        try
        {
            for (; done < objects; done++)
            {
                nint p = b + _redLeftPad + (nint)done * _size;
                if (_debug) SetupObjectDebug(p);
                _ctor?.Invoke(p);
                SetLink(p, done + 1 < objects ? ToLink(b, p + _size) : 0);
            }
        }
        catch (Exception e)
        {
            UnwindNewSlab(idx, order, done, e);
            throw;
        }
    }

    /// <summary>
    /// The constructor threw while a new slab was set up: nothing of the slab has been counted or listed yet, so
    /// its pages go straight back to the page allocator, and the log says which object's constructor failed.
    /// </summary>
    private void UnwindNewSlab(int idx, int order, int objectIndex, Exception e)
    {
        ref PageFrame f = ref _frames[idx];
        f.Flags &= ~PageFlags.Slab;
        f.MapCount = 0;
        f.Private = 0;
        f.Next = f.Prev = -1;
        f.Spare = 0;
        _pa.Free(idx, order, "new_slab");
        _pa.Log.Err($"{Name}: constructor of object {objectIndex} of a new slab threw {e.GetType().Name}: {e.Message}; " +
                    $"the slab (order {order}) was given back");
    }

    /// <summary>Statistics: slabs that had to be allocated at the minimum order (ORDER_FALLBACK).</summary>
    internal long OrderFallbacks;

    /// <summary>discard_slab(): the pages go back to the page allocator.</summary>
    private void DiscardSlab(int idx)
    {
        ref PageFrame f = ref _frames[idx];
        int order = f.Order;
        int objects = SlabWord.Objects(f.SlabCounters);
        if (_debug) SlabPadCheck(idx);
        f.Flags &= ~PageFlags.Slab;
        f.MapCount = 0;
        f.Private = 0;
        f.Next = f.Prev = -1;
        f.Spare = 0;
        _pa.Stat.ModSlab((Flags & SlabFlags.ReclaimAccount) != 0, -((long)PhysicalMemory.PageSize << order), _pa.NodeOfFrame(idx));
        var n = NodeOfSlab(idx);                              // dec_slabs_node(s, slab_nid(slab), …)
        Interlocked.Decrement(ref n.NrSlabs);
        Interlocked.Add(ref n.TotalObjects, -objects);
        _pa.Free(idx, order, "discard_slab");
    }

    private void DiscardChain(int head)
    {
        while (head >= 0)
        {
            int next = _frames[head].Next;
            DiscardSlab(head);
            head = next;
        }
    }

    // ================================================================== allocation slow path

    /// <summary>
    /// ___slab_alloc() and new_slab() for the calling thread; <paramref name="node"/> is the node the caller asked for
    /// (kmem_cache_alloc_node()) or NUMA_NO_NODE.
    /// </summary>
    private nint AllocSlow(Gfp gfp, CallSite site, int node = PageAllocator.NumaNoNode)
    {
        using var _ = _pa.Life.Enter();
        if (Destroyed) ThrowDestroyed();
        if (!ReferenceEquals(_root, this)) return _root.AllocSlow(gfp, site, node); // an alias: the root owns the lists
        // ___slab_alloc() (6.6): a node that is not in slab_nodes (no normal memory) is no constraint at all.
        if (node >= 0 && !_sa.SlabNodes[node]) node = PageAllocator.NumaNoNode;
        if (_debug) return DebugAlloc(gfp, site, node);
        nint obj;
        // The sheaves hold objects of any node: only a request without a node may take from them.
        if (_sheafCapacity != 0 && node < 0 && (obj = AllocFromSheaf(gfp)) != 0) return obj;
        var st = SlabThread.Current;
        LockOrder.Enter(LockRank.SlabThread, st.Lock);
        st.Lock.Enter();
        try
        {
            var c = CpuOf(st);
            if (c->RemotePage >= 0) FlushRemote(c); // objects this thread freed to other slabs become allocatable
            obj = AllocFromCpu(c, gfp, node);
        }
        finally
        {
            st.Lock.Exit();
        }
        if (obj == 0)
        {
            // new_slab() outside the thread's lock: reclaim may run shrinkers that flush this very thread.
            int page = NewSlab(gfp, node);
            if (page < 0)
            {
                if ((gfp & Gfp.NoWarn) == 0) SlabOutOfMemory(gfp, node);
                return 0;
            }
            LockOrder.Enter(LockRank.SlabThread, st.Lock);
            st.Lock.Enter();
            try
            {
                if (Destroyed)
                {
                    DiscardSlab(page);
                    ThrowDestroyed();
                }
                var c = CpuOf(st);
                if (c->Page >= 0) DeactivateSlab(c);
                long w = Word(page);
                Word(page) = SlabWord.Make(0, SlabWord.Objects(w), SlabWord.Objects(w), frozen: true);
                SetCpuSlab(c, page);
                c->Freelist = FromLink(c->SlabBase, SlabWord.Free(w));
                obj = PopCpu(c);
            }
            finally
            {
                st.Lock.Exit();
            }
        }
        MarkInUse(obj);
        if ((gfp & Gfp.Zero) != 0) new Span<byte>((void*)obj, _objectSize).Clear();
        return obj;
    }

    /// <summary>
    /// ___slab_alloc() without new_slab(): the CPU slab (deactivated first when it is not of the node asked for:
    /// ALLOC_NODE_MISMATCH), its remote frees, the CPU partial list (each slab taken from it is checked the same way,
    /// as the kernel's "goto redo" does), then get_partial().
    /// </summary>
    private nint AllocFromCpu(KmemCacheCpu* c, Gfp gfp, int node)
    {
        SpillHot(c);
        while (true)
        {
            if (c->Page >= 0)
            {
                if (node >= 0 && c->Node != node)
                {
                    // node_match() failed: the CPU slab goes back to its node, and the search starts again.
                    Interlocked.Increment(ref NodeMismatches);
                    DeactivateSlab(c);
                    continue;
                }
                if (c->Freelist != 0)
                {
                    nint obj = PopCpu(c);
                    if (obj != 0) return obj;
                    continue;
                }
                // get_freelist(): take the frees other threads made to the CPU slab; none unfreezes it (full).
                int page = c->Page;
                long old, nw;
                do
                {
                    old = Word(page);
                    uint free = SlabWord.Free(old);
                    nw = SlabWord.Make(0, SlabWord.Objects(old), SlabWord.Objects(old), frozen: free != 0);
                } while (!Cas(page, old, nw));
                if (SlabWord.Free(old) != 0)
                {
                    c->Freelist = FromLink(c->SlabBase, SlabWord.Free(old));
                    continue;
                }
                ClearCpuSlab(c);
            }
            if (c->Partial >= 0)
            {
                int page = c->Partial;
                c->Partial = _frames[page].Next;
                _frames[page].Next = -1;
                if (c->Partial < 0) c->PartialPages = c->PartialObjects = 0;
                SetCpuSlab(c, page);
                c->Freelist = 0;
                continue;
            }
            if (!GetPartial(c, gfp, node)) return 0;
        }
    }

    /// <summary>Takes the first object of the CPU freelist, checking its link; a corrupt link isolates the rest.</summary>
    private nint PopCpu(KmemCacheCpu* c)
    {
        nint obj = c->Freelist;
        uint link = GetLink(obj);
        if (!ValidLink(link, SlabWord.Objects(Word(c->Page))))
        {
            FreelistCorrupt(c->Page, obj, link);
            c->Freelist = 0; // the object and the objects after it are lost, as in the kernel; counters stay exact
            return 0;
        }
        c->Freelist = FromLink(c->SlabBase, link);
        return obj;
    }

    /// <summary>get_partial_node(): freeze slabs of node <paramref name="n"/>'s partial list for this thread, the first as CPU slab.</summary>
    private bool GetPartialNode(KmemCacheCpu* c, KmemCacheNode n)
    {
        if (Volatile.Read(ref n.NrPartial) == 0) return false; // the kernel's racy check: a miss only costs a new slab
        bool got = false;
        int available = 0;
        LockOrder.Enter(LockRank.SlabNode, n.ListLock);
        lock (n.ListLock)
        {
            int idx = n.PartialHead;
            while (idx >= 0)
            {
                int next = _frames[idx].Next;
                long old, nw;
                do
                {
                    old = Word(idx);
                    nw = !got
                        ? SlabWord.Make(0, SlabWord.Objects(old), SlabWord.Objects(old), frozen: true)
                        : SlabWord.Make(SlabWord.Free(old), SlabWord.Inuse(old), SlabWord.Objects(old), frozen: true);
                } while (!Cas(idx, old, nw));
                RemovePartial(n, idx);
                available += SlabWord.Objects(old) - SlabWord.Inuse(old);
                if (!got)
                {
                    got = true;
                    SetCpuSlab(c, idx);
                    c->Freelist = FromLink(c->SlabBase, SlabWord.Free(old));
                }
                else
                {
                    PutCpuPartialLocked(c, idx, SlabWord.Objects(old) - SlabWord.Inuse(old));
                }
                if (available > CpuPartial / 2) break;
                idx = next;
            }
        }
        return got;
    }

    /// <summary>put_cpu_partial() without the drain (the caller holds the node lock and the CPU list is small).</summary>
    private void PutCpuPartialLocked(KmemCacheCpu* c, int idx, int free)
    {
        _frames[idx].Next = c->Partial;
        c->Partial = idx;
        c->PartialPages++;
        c->PartialObjects += free;
    }

    /// <summary>put_cpu_partial(): a slab this thread froze goes on its CPU partial list, draining the list when it is over cpu_partial.</summary>
    private void PutCpuPartial(KmemCacheCpu* c, int idx)
    {
        if (c->Partial >= 0 && c->PartialObjects > CpuPartial) UnfreezePartials(c);
        long w = Word(idx);
        _frames[idx].Next = c->Partial;
        c->Partial = idx;
        c->PartialPages++;
        c->PartialObjects += SlabWord.Objects(w) - SlabWord.Inuse(w);
    }

    /// <summary>
    /// unfreeze_partials() (6.6 __unfreeze_partials()): each slab of the CPU partial list goes to its own node's list,
    /// the node lock switched when the node changes; empty slabs beyond min_partial are discarded.
    /// </summary>
    private void UnfreezePartials(KmemCacheCpu* c)
    {
        int discard = -1;
        KmemCacheNode? n = null;
        try
        {
            int idx = c->Partial;
            while (idx >= 0)
            {
                int next = _frames[idx].Next;
                var n2 = NodeOfSlab(idx);
                if (n2 != n)
                {
                    n?.ListLock.Exit();
                    n = null;
                    LockOrder.Enter(LockRank.SlabNode, n2.ListLock);
                    n2.ListLock.Enter();
                    n = n2;
                }
                long old, nw;
                do
                {
                    old = Word(idx);
                    nw = SlabWord.Make(SlabWord.Free(old), SlabWord.Inuse(old), SlabWord.Objects(old), frozen: false);
                } while (!Cas(idx, old, nw));
                if (SlabWord.Inuse(nw) == 0 && n.NrPartial >= MinPartial)
                {
                    _frames[idx].Next = discard;
                    discard = idx;
                }
                else
                {
                    AddPartial(n, idx, toHead: false);
                }
                idx = next;
            }
        }
        finally
        {
            n?.ListLock.Exit();
        }
        c->Partial = -1;
        c->PartialPages = c->PartialObjects = 0;
        DiscardChain(discard);
    }

    /// <summary>deactivate_slab(): the CPU freelist goes back into the slab, which is unfrozen onto its node's list.</summary>
    private void DeactivateSlab(KmemCacheCpu* c)
    {
        SpillHot(c);
        int page = c->Page;
        nint b = c->SlabBase;
        nint head = c->Freelist;
        ClearCpuSlab(c);
        c->Freelist = 0;
        int objects = SlabWord.Objects(Word(page));
        // Count the CPU freelist and find its tail (a corrupt link cuts the list there).
        int n = 0;
        nint tail = 0;
        for (nint p = head; p != 0;)
        {
            tail = p;
            n++;
            uint link = GetLink(p);
            if (!ValidLink(link, objects) || n > objects)
            {
                FreelistCorrupt(page, p, link);
                SetLink(p, 0);
                break;
            }
            p = FromLink(b, link);
        }
        bool discard = false;
        var node = NodeOfSlab(page);
        LockOrder.Enter(LockRank.SlabNode, node.ListLock);
        lock (node.ListLock)
        {
            long old, nw;
            do
            {
                old = Word(page);
                uint free = SlabWord.Free(old);
                if (n > 0) SetLink(tail, free);
                nw = SlabWord.Make(n > 0 ? ToLink(b, head) : free, SlabWord.Inuse(old) - n, objects, frozen: false);
            } while (!Cas(page, old, nw));
            if (SlabWord.Inuse(nw) == 0 && node.NrPartial >= MinPartial) discard = true;
            else if (SlabWord.Free(nw) != 0) AddPartial(node, page, toHead: n > 0);
        }
        if (discard) DiscardSlab(page);
    }

    private static void ThrowDestroyed() => throw new ObjectDisposedException(nameof(SlabCache), "the slab cache has been destroyed");
}
