// SLUB's free slow path and flushing (Linux 5.10 mm/slub.c): validation of a freed pointer,
// __slab_free()'s lock-free compare-and-swap with the node lock only when a list changes, flush_all()
// over every thread's structure with the handshake, __kmem_cache_shrink(), and the object counters.
// Every slab is freed to the lists of its own node (slab_nid()), whichever thread or node frees it.
// Locks, outermost first (docs/architecture.md, "Lock order"): a thread's slab lock (the freeing thread's own, or
// each thread's through EnterExclusive for a flush) → _cpusLock → one node's ListLock; snapshots of _cpusLock are
// taken alone.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Core;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    // ================================================================== free slow path

    /// <summary>
    /// Frees an object that the fast path could not take: validates it (reports and throws on misuse), then
    /// pushes it on the thread's CPU slab or frees it to its slab with __slab_free().
    /// </summary>
    internal void FreeSlow(nint obj, CallSite site, SlabCache? expected)
    {
        if (obj == 0) return;
        using var _ = _pa.Life.Enter();
        int idx = _sa.CheckSlabObject(obj, expected, site, out var cache);
        cache.FreeToSlab(idx, obj, site);
    }

    /// <summary>Frees a valid address of a slab of this cache (interior pointers are still rejected here).</summary>
    internal void FreeToSlab(int idx, nint obj, CallSite site)
    {
        if (_debug)
        {
            DebugFree(idx, obj, site);
            return;
        }
        if (ObjectIndex(idx, obj) < 0) throw InvalidObjectPointer(idx, obj, site);
        if (MayBeFree(obj) && _root.IsFree(idx, obj)) throw ObjectAlreadyFree(idx, obj, site);
        var st = SlabThread.Current;
        LockOrder.Enter(LockRank.SlabThread, st.Lock);
        st.Lock.Enter();
        try
        {
            var c = st.Get(_slot);
            if (c != null && c->LastAlloc == obj) c->LastAlloc = 0;
            // A detached freelist may hold this very object: push it first so that the checks below see it.
            if (c != null && c->RemotePage >= 0) FlushRemote(c);
            if (OnSheafTop(c, obj)) throw NaiveDoubleFree(idx, obj, site, inSheaf: true);
            if (c != null && c->Page == idx)
            {
                SpillHot(c);
                if (obj == c->Freelist) throw NaiveDoubleFree(idx, obj, site);
                SetLink(obj, ToLink(c->SlabBase, c->Freelist));
                c->Freelist = obj;
                return;
            }
            SlabFreeRemote(st, idx, obj, site);
        }
        finally
        {
            st.Lock.Exit();
        }
    }

    /// <summary>The slow path's __slab_free(): errors are reported and thrown; a frozen slab goes on this thread's list.</summary>
    private void SlabFreeRemote(SlabThread st, int idx, nint obj, CallSite site)
    {
        switch (SlabFreeCore(idx, obj, obj, 1, out bool froze))
        {
            case RemoteFree.HeadOfFreelist: throw NaiveDoubleFree(idx, obj, site);
            case RemoteFree.SlabAlreadyEmpty: throw InvalidFree(idx, obj, site);
        }
        if (froze) PutCpuPartial(CpuOf(st), idx);
    }

    /// <summary>
    /// Frees an object that is not in the thread's CPU slab without any lock in the common case (the
    /// cross-thread free of the network-buffer pattern). False when the slow path must decide: a pointer that
    /// is not an object of this cache, a debug cache, or a naive double free (which it then reports).
    /// </summary>
    /// <param name="obj">The object.</param>
    /// <param name="t">The calling thread's table of structures (as the caller read it).</param>
    /// <param name="len">Its length (0 when the thread has none yet).</param>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal bool FreeRemote(nint obj, nint* t, int len)
    {
        var s = _root;
        if (s._debug || _slot == SlabThread.DeadSlot) return false;
        nuint off = (nuint)(obj - _linear);
        if (off >= _linearBytes) return false;
        int idx = (int)(off >> PhysicalMemory.PageShift);
        PageFrame* f = _frames + idx;
        if ((f->Flags & PageFlags.Tail) != 0)
        {
            idx = f->CompoundHead;
            f = _frames + idx;
        }
        if (f->SlabCacheSlot != _id || (f->Flags & PageFlags.Slab) == 0) return false;
        ulong o = (ulong)(obj - SlabBase(idx) - _redLeftPad);
        ulong i = _magic != 0 ? (o * _magic) >> 44 : o / (ulong)_size;
        if (i * (ulong)_size != o || i >= (ulong)SlabWord.Objects(f->SlabCounters)) return false;
        // A free object's free pointer decodes to a valid link: the slow path looks it up (a double free, or rarely
        // an object whose contents happen to decode so).
        nint fp = obj + _offset;
        if (SlabWord.MayBeFree(*(uint*)fp, _random, fp, _slabBytes)) return false;
        // An object of the thread's own CPU slab that FreeFast refused goes to the slow path.
        // (Only this thread sets its Page, so a stale read is harmless.)
        int slot = _slot;
        if ((uint)slot < (uint)len && t[slot] is var cp && cp != 0 && ((KmemCacheCpu*)cp)->Page == idx)
            return false;
        if ((uint)slot < (uint)len)
        {
            // Detach: collect frees to one slab on this thread's list, push them with one CAS when the slab changes.
            OwnerDrainHandshake* hs = SlabThread.Handshake(t);
            KmemCacheCpu* c;
            if (hs->OwnerEnter() && (c = (KmemCacheCpu*)t[slot]) != null)
            {
                bool done = true;
                if (s._sheafCapacity != 0)
                {
                    // The address goes into the thread's sheaf; the object only gets the mark of a free object.
                    done = s.FreeToSheaf(c, obj, idx, SlabWord.Objects(f->SlabCounters));
                }
                else if (c->RemotePage == idx)
                {
                    SetLink(obj, ToLink(SlabBase(idx), c->RemoteHead));
                    c->RemoteHead = obj;
                    if (++c->RemoteCount >= RemoteBatch) s.FlushRemote(c);
                }
                else
                {
                    // Flushers wait for Busy to fall and hold no node lock meanwhile, so FlushRemote may take it.
                    if (c->RemotePage >= 0) s.FlushRemote(c);
                    SetLink(obj, 0);
                    c->RemotePage = idx;
                    c->RemoteHead = c->RemoteTail = obj;
                    c->RemoteCount = 1;
                    c->RemoteSlabBase = SlabBase(idx);
                    c->RemoteObjStart = c->RemoteSlabBase + _redLeftPad;
                    c->RemoteObjBytes = (nuint)SlabWord.Objects(f->SlabCounters) * (nuint)_size;
                }
                hs->OwnerExit();
                return done;
            }
            hs->OwnerExit();
        }
        // No structure of this thread for the cache yet (or a flush in progress): a sheaf cache makes one under the lock.
        if (s._sheafCapacity != 0) return s.FreeToSheafLocked(obj, idx, SlabWord.Objects(f->SlabCounters));
        if (s.SlabFreeCore(idx, obj, obj, 1, out bool froze) != RemoteFree.Done) return false;
        if (froze) s.PutCpuPartialOwn(idx);
        return true;
    }

    /// <summary>The most objects a detached freelist collects before it is pushed.</summary>
    internal const int RemoteBatch = 256;

    /// <summary>Pushes the thread's detached freelist to its slab; the caller has exclusive use of the structure.</summary>
    private void FlushRemote(KmemCacheCpu* c)
    {
        int idx = c->RemotePage;
        if (idx < 0) return;
        nint head = c->RemoteHead, tail = c->RemoteTail;
        int count = c->RemoteCount;
        c->RemotePage = -1;
        c->RemoteCount = 0;
        c->RemoteObjBytes = 0;
        c->RemoteHead = c->RemoteTail = 0;
        FreeChain(c, idx, head, tail, count, "Detached freelist");
    }

    /// <summary>
    /// Frees a chain of objects of one slab (linked head to tail) with one __slab_free(). With <paramref name="c"/>
    /// a slab this takes out of the full state goes on that thread's CPU partial list; without, on the node list.
    /// A chain holding an object already free (a double free inside it) is reported and its objects kept out
    /// (leaked, counted in use): nothing already free is freed twice.
    /// </summary>
    private void FreeChain(KmemCacheCpu* c, int idx, nint head, nint tail, int count, string what)
    {
        if (SlabFreeCore(idx, head, tail, count, out bool froze, mayFreeze: c != null) != RemoteFree.Done)
        {
            var sb = new System.Text.StringBuilder();
            SlabErr(sb, idx, $"{what} of {count} objects from {P(head)} holds an object already free");
            SlabFix(sb, "Objects not freed");
            Report(sb);
            return;
        }
        if (froze) PutCpuPartial(c, idx);
    }

    /// <summary>Puts a slab this thread froze on its own CPU partial list: under the Busy handshake, else under its lock.</summary>
    private void PutCpuPartialOwn(int idx)
    {
        int slot = _slot;
        if ((uint)slot < (uint)SlabThread.t_len)
        {
            nint* t = SlabThread.t_table;
            OwnerDrainHandshake* hs = SlabThread.Handshake(t);
            if (hs->OwnerEnter() && t[slot] != 0)
            {
                // Flushers wait for Busy to fall; none of them holds the node lock meanwhile, so taking it here is safe.
                PutCpuPartial((KmemCacheCpu*)t[slot], idx);
                hs->OwnerExit();
                return;
            }
            hs->OwnerExit();
        }
        var st = SlabThread.Current;
        LockOrder.Enter(LockRank.SlabThread, st.Lock);
        st.Lock.Enter();
        try
        {
            PutCpuPartial(CpuOf(st), idx);
        }
        finally
        {
            st.Lock.Exit();
        }
    }

    private enum RemoteFree { Done, HeadOfFreelist, SlabAlreadyEmpty }

    /// <summary>
    /// __slab_free(): a compare-and-swap push on the slab's freelist; the lock of the slab's own node
    /// (get_node(s, slab_nid(slab))) only when a list changes (an unfrozen slab that empties, or a full one when there is
    /// no CPU partial list). <paramref name="froze"/>
    /// tells that this call froze a full slab, which the caller must put on its CPU partial list; a caller without
    /// a thread structure passes <paramref name="mayFreeze"/> false and such a slab goes on the node list.
    /// </summary>
    private RemoteFree SlabFreeCore(int idx, nint head, nint tail, int count, out bool froze, bool mayFreeze = true)
    {
        nint b = SlabBase(idx);
        uint link = ToLink(b, head);
        KmemCacheNode? n = null;
        bool locked = false;
        long old, nw;
        froze = false;
        try
        {
            while (true)
            {
                old = Word(idx);
                uint prior = SlabWord.Free(old);
                if (prior == link) return RemoteFree.HeadOfFreelist;
                if (SlabWord.Inuse(old) < count) return RemoteFree.SlabAlreadyEmpty;
                bool wasFrozen = SlabWord.Frozen(old), frozen = wasFrozen;
                int inuse = SlabWord.Inuse(old) - count;
                if (!wasFrozen && (inuse == 0 || prior == 0))
                {
                    if (mayFreeze && CpuPartial > 0 && prior == 0) frozen = true; // a full slab: this thread takes it
                    else if (!locked)
                    {
                        n ??= NodeOfSlab(idx);
                        LockOrder.Enter(LockRank.SlabNode, n.ListLock);
                        n.ListLock.Enter();
                        locked = true;
                    }
                }
                SetLink(tail, prior);
                nw = SlabWord.Make(link, inuse, SlabWord.Objects(old), frozen);
                if (Cas(idx, old, nw)) break;
                if (locked)
                {
                    n!.ListLock.Exit();
                    locked = false;
                }
            }
            if (!locked)
            {
                froze = SlabWord.Frozen(nw) && !SlabWord.Frozen(old);
                return RemoteFree.Done;
            }
            if (SlabWord.Inuse(nw) == 0 && n!.NrPartial >= MinPartial)
            {
                if (SlabWord.Free(old) != 0) RemovePartial(n, idx);
                n.ListLock.Exit();
                locked = false;
                DiscardSlab(idx);
                return RemoteFree.Done;
            }
            if (SlabWord.Free(old) == 0) AddPartial(n!, idx, toHead: false);
            return RemoteFree.Done;
        }
        finally
        {
            if (locked) n!.ListLock.Exit();
        }
    }

    // ================================================================== flush, shrink

    /// <summary>__flush_cpu_slab() for one thread structure; the caller has exclusive use of it.</summary>
    private void FlushCpu(KmemCacheCpu* c, bool release = false)
    {
        if (c->RemotePage >= 0) FlushRemote(c);
        FlushMainSheaf(c, release);
        if (c->Page >= 0) DeactivateSlab(c);
        if (c->Partial >= 0) UnfreezePartials(c);
    }

    /// <summary>
    /// Takes exclusive use of one of this cache's thread structures; false when it is gone (its thread ended
    /// and another flush released it meanwhile). On true the caller must call <see cref="SlabThread.ExitExclusive"/>.
    /// </summary>
    private bool EnterCpu(SlabThread st, nint cp)
    {
        if (!st.EnterExclusive()) return false;
        bool present;
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock) present = _cpus.Contains((st, cp));
        if (!present) st.ExitExclusive();
        return present;
    }

    /// <summary>Runs <paramref name="body"/> on each thread structure of the cache with exclusive use of it.</summary>
    private void ForEachCpu(Action<SlabThread, nint> body)
    {
        (SlabThread St, nint Cpu)[] all;
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock) all = _cpus.ToArray();
        foreach (var (st, cp) in all)
        {
            if (!EnterCpu(st, cp)) continue;
            try
            {
                body(st, cp);
            }
            finally
            {
                st.ExitExclusive();
            }
        }
    }

    /// <summary>flush_all(): every thread's CPU slab and CPU partial list go back to the node; structures of ended threads are freed.</summary>
    internal void FlushAll(bool release = false, int slot = -1, bool flush = true)
    {
        if (slot < 0) slot = _slot;
        ForEachCpu((st, cp) =>
        {
            var c = (KmemCacheCpu*)cp;
            bool free = release || !st.Thread.IsAlive;
            if (flush) FlushCpu(c, free);
            else if (c->Main != null)
            {
                // The machine is going away: the objects stay where they are, only the thread's own memory goes.
                SlabSheaf.Free(c->Main);
                c->Main = null;
                c->SheafObjBytes = 0;
            }
            if (free)
            {
                if (slot < st.Len) st.Table[slot] = 0;
                LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
                lock (_cpusLock) _cpus.Remove((st, cp));
                NativeMemory.AlignedFree(c);
            }
        });
    }

    /// <summary>
    /// Gives back every slab the cache can spare (<c>kmem_cache_shrink()</c>): flushes all threads' CPU slabs,
    /// frees the empty slabs and orders each node's partial list fullest first. Returns the slabs freed.
    /// </summary>
    public int Shrink()
    {
        using var _ = _pa.Life.Enter();
        var s = _root;
        if (s.Destroyed) ThrowDestroyed();
        return s.ShrinkCore();
    }

    internal int ShrinkCore()
    {
        FlushAll();
        FlushBarn();
        int discard = -1, freed = 0;
        // __kmem_cache_do_shrink(): for_each_kmem_cache_node(), one node's list lock at a time.
        foreach (var n in _nodes)
        {
            LockOrder.Enter(LockRank.SlabNode, n.ListLock);
            lock (n.ListLock)
            {
                var keep = new List<(int Idx, int Inuse)>();
                for (int idx = n.PartialHead; idx >= 0; idx = _frames[idx].Next)
                    keep.Add((idx, SlabWord.Inuse(Word(idx))));
                foreach (var (idx, _) in keep) RemovePartial(n, idx);
                foreach (var (idx, inuse) in keep.OrderByDescending(k => k.Inuse))
                {
                    if (inuse == 0)
                    {
                        _frames[idx].Next = discard;
                        discard = idx;
                        freed++;
                    }
                    else AddPartial(n, idx, toHead: false);
                }
            }
        }
        DiscardChain(discard);
        SlabThread.PruneDead();
        return freed;
    }

    /// <summary>Free objects sitting in empty slabs and CPU structures: what a shrink could give back (approximate).</summary>
    internal long Reclaimable()
    {
        long n = 0;
        foreach (var node in _nodes)
        {
            LockOrder.Enter(LockRank.SlabNode, node.ListLock);
            lock (node.ListLock)
                for (int idx = node.PartialHead; idx >= 0; idx = _frames[idx].Next)
                    if (SlabWord.Inuse(Word(idx)) == 0) n += SlabWord.Objects(Word(idx));
        }
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock)
        {
            n += _cpus.Count;
            foreach (var (_, cp) in _cpus) if (((KmemCacheCpu*)cp)->Main != null) n += ((KmemCacheCpu*)cp)->Main->Size;
        }
        return n + BarnObjects();
    }

    // ================================================================== counters

    /// <summary>slabinfo's active_objs: every node's total_objects minus the free objects on its partial list.</summary>
    private long CountActive()
    {
        long active = 0;
        for (int n = 0; n < _nodes.Length; n++)
            active += Volatile.Read(ref _nodes[n].TotalObjects) - NodeCountPartial(n, inuse: false);
        return active;
    }

    /// <summary>Objects really in use: every slab's inuse minus the objects waiting on threads' CPU freelists and in sheaves.</summary>
    private long CountInUse()
    {
        long inuse = 0;
        foreach (int idx in _sa.SlabsOf(_id)) inuse += SlabWord.Inuse(Word(idx));
        ForEachCpu((_, cp) =>
        {
            var c = (KmemCacheCpu*)cp;
            inuse -= c->RemoteCount + (c->Hot != 0 ? 1 : 0) + (c->Main != null ? c->Main->Size : 0);
            int guard = 0;
            for (nint p = c->Freelist; p != 0 && guard++ < SlabArch.MaxObjsPerPage;)
            {
                inuse--;
                uint link = GetLink(p);
                if (!ValidLink(link, SlabWord.Objects(Word(c->Page)))) break;
                p = FromLink(c->SlabBase, link);
            }
        });
        return inuse - BarnObjects();
    }
}
