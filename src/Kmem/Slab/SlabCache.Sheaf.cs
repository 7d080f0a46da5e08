// Per-thread sheaves and the cache's barn (Linux 6.18's opt-in percpu sheaves, kmem_cache_args
// .sheaf_capacity). A free of an object outside the thread's CPU slab stores its address in the
// thread's main sheaf instead of linking it into a freelist (its free pointer only gets the mark of a
// free object, which double-free detection reads); a full sheaf is exchanged in the barn for an empty one. An allocation that finds
// the CPU freelist empty takes objects from the thread's main sheaf, then swaps it in the barn for
// a full one, before SLUB's slow path. Objects in sheaves count as in use in their slabs until a
// flush (shrink, memory pressure, destroy, or a barn already holding MaxFullSheaves) frees them.
// Locks (docs/architecture.md, "Lock order"): the thread's slab lock, _cpusLock and _barnLock, in that order when
// nested; the barn's lock takes nothing else.
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    /// <summary>Full sheaves the barn keeps (MAX_FULL_SHEAVES); a thread with one more flushes it to the slabs.</summary>
    internal const int MaxFullSheaves = 10;
    /// <summary>Empty sheaves the barn keeps (MAX_EMPTY_SHEAVES); more are freed.</summary>
    internal const int MaxEmptySheaves = 10;
    /// <summary>The largest sheaf capacity Kmem accepts.</summary>
    public const int MaxSheafCapacity = 1024;

    /// <summary>Objects a sheaf holds; 0 when the cache has no sheaves.</summary>
    private readonly int _sheafCapacity;
    private readonly Lock _barnLock = new();
    private readonly nint[] _barnFull = new nint[MaxFullSheaves];
    private readonly nint[] _barnEmpty = new nint[MaxEmptySheaves];
    private int _nrFull, _nrEmpty;

    /// <summary>
    /// Objects a per-thread sheaf holds (<c>sheaf_capacity</c>); 0 when the cache has none (the default, and
    /// always for caches with debug flags).
    /// </summary>
    public int SheafCapacity => _root._sheafCapacity;

    /// <summary>Full sheaves waiting in the barn.</summary>
    public int BarnFullSheaves
    {
        get
        {
            _pa.Life.ThrowIfDead();
            LockOrder.Enter(LockRank.SlabBarn, _root._barnLock);
            lock (_root._barnLock) return _root._nrFull;
        }
    }

    // ================================================================== allocate

    /// <summary>
    /// alloc_from_pcs(): an object from the thread's main sheaf, swapping an empty main sheaf for a full one of
    /// the barn; 0 when neither has one (SLUB's slow path follows).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private nint AllocFromSheaf(Gfp gfp)
    {
        int slot = _slot;
        if ((uint)slot >= (uint)SlabThread.t_len) return 0;
        nint* t = SlabThread.t_table;
        OwnerDrainHandshake* hs = SlabThread.Handshake(t);
        nint obj = 0;
        KmemCacheCpu* c;
        if (hs->OwnerEnter() && (c = (KmemCacheCpu*)t[slot]) != null)
        {
            SlabSheaf* sh = c->Main;
            if (sh == null || sh->Size == 0) sh = BarnReplaceEmpty(c);
            if (sh != null) obj = TakeFromMain(c, out _);
        }
        hs->OwnerExit();
        if (obj != 0) MarkInUse(obj);
        if (obj != 0 && (gfp & Gfp.Zero) != 0) new Span<byte>((void*)obj, _objectSize).Clear();
        return obj;
    }

    /// <summary>barn_replace_empty_sheaf(): the thread's empty main sheaf for a full one of the barn; null when the barn has none.</summary>
    private SlabSheaf* BarnReplaceEmpty(KmemCacheCpu* c)
    {
        SlabSheaf* old = c->Main, full;
        LockOrder.Enter(LockRank.SlabBarn, _barnLock);
        lock (_barnLock)
        {
            if (_nrFull == 0) return null;
            full = (SlabSheaf*)_barnFull[--_nrFull];
            if (old != null && _nrEmpty < MaxEmptySheaves)
            {
                _barnEmpty[_nrEmpty++] = (nint)old;
                old = null;
            }
        }
        if (old != null) SlabSheaf.Free(old);
        c->Main = full;
        return full;
    }

    // ================================================================== free

    /// <summary>
    /// Takes the last object of the thread's main sheaf (which is not empty), leaving <paramref name="left"/> in it.
    /// The sheaf's free fast path ends here: the object that set it may be this one (KmemCacheCpu.SheafObjBytes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nint TakeFromMain(KmemCacheCpu* c, out int left)
    {
        SlabSheaf* sh = c->Main;
        left = --sh->Size;
        c->SheafObjBytes = 0;
        return SlabSheaf.Objects(sh)[left];
    }

    /// <summary>
    /// free_to_pcs(): stores a validated object of another slab in the thread's main sheaf. False (nothing
    /// done) when it is the object freed last into that sheaf: a naive double free for the slow path to report.
    /// The caller holds the thread's structure (Busy or its lock).
    /// </summary>
    private bool FreeToSheaf(KmemCacheCpu* c, nint obj, int idx, int objects)
    {
        SlabSheaf* sh = c->Main;
        if (sh == null) c->Main = sh = SlabSheaf.New(_sheafCapacity);
        else if (sh->Size > 0 && SlabSheaf.Objects(sh)[sh->Size - 1] == obj) return false;
        if (sh->Size == sh->Capacity) sh = BarnReplaceFull(c);
        SetLink(obj, 0); // marked free (a valid link), so that a second free of it is looked up
        SlabSheaf.Objects(sh)[sh->Size++] = obj;
        // While this object stays in the sheaf its slab is this cache's: frees of the slab's other objects take the fast path.
        c->SheafObjStart = SlabBase(idx) + _redLeftPad;
        c->SheafObjBytes = (nuint)objects * (nuint)_size;
        return true;
    }

    /// <summary>
    /// barn_replace_full_sheaf(): the thread's full main sheaf goes to the barn for an empty one (or a new one);
    /// when the barn already holds <see cref="MaxFullSheaves"/> the objects go back to their slabs instead.
    /// </summary>
    private SlabSheaf* BarnReplaceFull(KmemCacheCpu* c)
    {
        SlabSheaf* full = c->Main, empty = null;
        bool put = false;
        LockOrder.Enter(LockRank.SlabBarn, _barnLock);
        lock (_barnLock)
        {
            if (_nrFull < MaxFullSheaves)
            {
                _barnFull[_nrFull++] = (nint)full;
                put = true;
                if (_nrEmpty > 0) empty = (SlabSheaf*)_barnEmpty[--_nrEmpty];
            }
        }
        if (!put)
        {
            SheafFlush(c, full);
            return full;
        }
        c->Main = empty != null ? empty : SlabSheaf.New(_sheafCapacity);
        return c->Main;
    }

    /// <summary>A sheaf free for a thread that has no structure for the cache yet: made under the thread's lock.</summary>
    private bool FreeToSheafLocked(nint obj, int idx, int objects)
    {
        var st = SlabThread.Current;
        LockOrder.Enter(LockRank.SlabThread, st.Lock);
        st.Lock.Enter();
        try
        {
            var c = CpuOf(st);
            return c->Page != idx && FreeToSheaf(c, obj, idx, objects); // an object of the thread's own CPU slab: the slow path decides
        }
        finally
        {
            st.Lock.Exit();
        }
    }

    /// <summary>
    /// The calling thread's free fast-path spans for this cache (for tests): the bytes of the detached freelist's slab
    /// and of the slab the main sheaf's fast path is set on (0: none), the objects in its main sheaf and on its detached list.
    /// </summary>
    internal (nuint Remote, nuint Sheaf, int InSheaf, int Detached) FreeFastPathState()
    {
        var c = SlabThread.Current.Get(_slot);
        return c == null ? default : (c->RemoteObjBytes, c->SheafObjBytes, c->Main == null ? 0 : c->Main->Size, c->RemoteCount);
    }

    /// <summary>True when <paramref name="obj"/> is the object freed last into the thread's main sheaf (a naive double free).</summary>
    private static bool OnSheafTop(KmemCacheCpu* c, nint obj)
        => c != null && c->Main != null && c->Main->Size > 0 && SlabSheaf.Objects(c->Main)[c->Main->Size - 1] == obj;

    // ================================================================== flush

    /// <summary>
    /// sheaf_flush(): frees every object of a sheaf to its slab. The addresses are sorted first, so each slab's
    /// objects go with one compare-and-swap and an object freed twice into the sheaf sits next to itself: it is
    /// reported and freed once. With <paramref name="c"/> a slab this frees out of the full state goes on that
    /// thread's CPU partial list; without, on the node list.
    /// </summary>
    private void SheafFlush(KmemCacheCpu* c, SlabSheaf* sh)
    {
        nint* objs = SlabSheaf.Objects(sh);
        int n = sh->Size;
        sh->Size = 0;
        new Span<nint>(objs, n).Sort();
        int run = -1, count = 0;
        nint head = 0, tail = 0;
        for (int i = 0; i <= n; i++)
        {
            nint obj = i < n ? objs[i] : 0;
            if (obj != 0 && obj == head)
            {
                SheafDoubleFree(obj);
                continue;
            }
            int idx = obj == 0 ? -1 : SlabHeadOf(obj);
            if (idx == run && obj != 0)
            {
                SetLink(obj, ToLink(SlabBase(idx), head));
                head = obj;
                count++;
                continue;
            }
            if (run >= 0) FreeChain(c, run, head, tail, count, "Sheaf");
            run = idx;
            head = tail = obj;
            count = 1;
        }
    }

    /// <summary>An object found twice in a sheaf: freed twice by its users. Reported; the flush frees it once.</summary>
    private void SheafDoubleFree(nint obj)
    {
        int idx = SlabHeadOf(obj);
        var sb = new System.Text.StringBuilder();
        SlabErr(sb, idx, $"Object {P(obj)} freed twice: found twice in a sheaf");
        SlabFix(sb, "Object freed once");
        Report(sb);
    }

    /// <summary>The head frame of the slab holding a validated object.</summary>
    private int SlabHeadOf(nint obj)
    {
        int idx = (int)((nuint)(obj - _linear) >> PhysicalMemory.PageShift);
        return (_frames[idx].Flags & PageFlags.Tail) != 0 ? _frames[idx].CompoundHead : idx;
    }

    /// <summary>Flushes the thread structure's main sheaf (part of __flush_cpu_slab()); the caller has exclusive use.</summary>
    private void FlushMainSheaf(KmemCacheCpu* c, bool release)
    {
        SlabSheaf* sh = c->Main;
        if (sh == null) return;
        c->SheafObjBytes = 0;
        if (sh->Size > 0) SheafFlush(c, sh);
        if (release)
        {
            c->Main = null;
            SlabSheaf.Free(sh);
        }
    }

    /// <summary>Frees the barn's sheaves without freeing the objects in them (the machine's shutdown).</summary>
    private void FreeBarn()
    {
        LockOrder.Enter(LockRank.SlabBarn, _barnLock);
        lock (_barnLock)
        {
            for (int i = 0; i < _nrFull; i++) SlabSheaf.Free((SlabSheaf*)_barnFull[i]);
            for (int i = 0; i < _nrEmpty; i++) SlabSheaf.Free((SlabSheaf*)_barnEmpty[i]);
            _nrFull = _nrEmpty = 0;
        }
    }

    /// <summary>barn_shrink(): every full sheaf of the barn goes back to the slabs; every sheaf is freed.</summary>
    private void FlushBarn()
    {
        if (_sheafCapacity == 0) return;
        int nf, ne;
        var full = new nint[MaxFullSheaves];
        var empty = new nint[MaxEmptySheaves];
        LockOrder.Enter(LockRank.SlabBarn, _barnLock);
        lock (_barnLock)
        {
            nf = _nrFull;
            ne = _nrEmpty;
            Array.Copy(_barnFull, full, nf);
            Array.Copy(_barnEmpty, empty, ne);
            _nrFull = _nrEmpty = 0;
        }
        for (int i = 0; i < nf; i++)
        {
            SheafFlush(null, (SlabSheaf*)full[i]);
            SlabSheaf.Free((SlabSheaf*)full[i]);
        }
        for (int i = 0; i < ne; i++) SlabSheaf.Free((SlabSheaf*)empty[i]);
    }

    // ================================================================== counters and checks

    /// <summary>Objects waiting in the barn's full sheaves.</summary>
    private long BarnObjects()
    {
        long n = 0;
        LockOrder.Enter(LockRank.SlabBarn, _barnLock);
        lock (_barnLock)
            for (int i = 0; i < _nrFull; i++) n += ((SlabSheaf*)_barnFull[i])->Size;
        return n;
    }

    /// <summary>
    /// Every object in a sheaf (the threads' main sheaves and the barn's) must be an object of this cache that its
    /// slab counts in use, and be there once. The machine must be quiet.
    /// </summary>
    private void CheckSheaves(List<string> errors)
    {
        if (_sheafCapacity == 0) return;
        var seen = new HashSet<nint>();
        var freeSets = new Dictionary<int, HashSet<nint>>();
        void Check(SlabSheaf* sh, string where)
        {
            if (sh == null) return;
            if (sh->Size < 0 || sh->Size > sh->Capacity) errors.Add($"{Name}: {where} holds {sh->Size} objects, capacity {sh->Capacity}");
            for (int i = 0; i < sh->Size && i < sh->Capacity; i++)
            {
                nint obj = SlabSheaf.Objects(sh)[i];
                if (!seen.Add(obj)) errors.Add($"{Name}: object {P(obj)} is in the sheaves twice");
                nuint off = (nuint)(obj - _linear);
                int idx = off < _linearBytes ? SlabHeadOf(obj) : -1;
                if (idx < 0 || (_frames[idx].Flags & PageFlags.Slab) == 0 || _frames[idx].SlabCacheSlot != _id || ObjectIndex(idx, obj) < 0)
                {
                    errors.Add($"{Name}: {where} holds {P(obj)}, not an object of the cache");
                    continue;
                }
                if (!freeSets.TryGetValue(idx, out var free)) freeSets[idx] = free = FreeSet(idx);
                if (free.Contains(obj)) errors.Add($"{Name}: {where} holds {P(obj)}, which is also on its slab's freelist");
            }
        }
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock) foreach (var (_, cp) in _cpus) Check(((KmemCacheCpu*)cp)->Main, "a thread's main sheaf");
        LockOrder.Enter(LockRank.SlabBarn, _barnLock);
        lock (_barnLock)
        {
            for (int i = 0; i < _nrFull; i++) Check((SlabSheaf*)_barnFull[i], "a full sheaf of the barn");
            for (int i = 0; i < _nrEmpty; i++)
                if (((SlabSheaf*)_barnEmpty[i])->Size != 0) errors.Add($"{Name}: an empty sheaf of the barn holds {((SlabSheaf*)_barnEmpty[i])->Size} objects");
        }
    }
}
