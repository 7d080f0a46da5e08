// Double-free detection without debug flags. Every free object's free pointer slot decodes to a
// valid link (it is on a freelist, or marked free in a sheaf); every allocation overwrites the slot
// with a value that decodes to no link (SlabWord.InUse). So a free whose object's slot does not
// decode to a link cannot be a double free: the fast paths pay one load and a compare. A slot that
// does decode to a link (a double free, or rarely user data that happens to) sends the free to
// IsFree(), which looks the object up in every list a free object can be on, with every thread's
// structures of the cache held: the slab's freelist, each thread's hot object, CPU freelist,
// detached freelist and main sheaf, and the barn's sheaves.
// Locks, outermost first (docs/architecture.md, "Lock order"): s_lookupLock (process-wide: one lookup at a time)
// → a snapshot of _cpusLock → every thread's slab lock of the cache, held at once (safe only because no other path
// holds two) → the slab's node's ListLock, then _barnLock, one after the other.
using System.Text;
using Kmem.Core;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    /// <summary>Serialises lookups: each holds several threads' structures at once, so two must never interleave.</summary>
    private static readonly Lock s_lookupLock = new();

    /// <summary>Marks an object handed out by a slow path as in use (its free pointer decodes to no link).</summary>
    private void MarkInUse(nint obj)
    {
        nint fp = obj + _offset;
        *(uint*)fp = SlabWord.InUse(_random, fp);
    }

    /// <summary>True when the object's free pointer decodes to a valid link: it may be free and must be looked up.</summary>
    private bool MayBeFree(nint obj)
    {
        nint fp = obj + _offset;
        return SlabWord.MayBeFree(*(uint*)fp, _random, fp, _slabBytes);
    }

    /// <summary>
    /// Whether <paramref name="obj"/> (an object slot of slab <paramref name="idx"/>) is free: on the slab's freelist, a
    /// thread's hot object, CPU freelist, detached freelist or sheaf, or a sheaf of the barn. Called on the root cache,
    /// with no slab lock held by the caller. A free racing with this lookup on another thread, without any ordering
    /// between the two, may not be seen (such a program frees one object from two threads at once).
    /// </summary>
    internal bool IsFree(int idx, nint obj)
    {
        LockOrder.Enter(LockRank.SlabLookup, s_lookupLock);
        lock (s_lookupLock)
        {
            (SlabThread St, nint Cpu)[] all;
            LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
            lock (_cpusLock) all = _cpus.ToArray();
            var held = new List<SlabThread>(all.Length);
            try
            {
                foreach (var (st, _) in all)
                    if (!held.Contains(st) && st.EnterExclusive()) held.Add(st);
                var n = NodeOfSlab(idx);                      // the slab's own node's lock
                LockOrder.Enter(LockRank.SlabNode, n.ListLock);
                lock (n.ListLock)
                    if (OnSlabFreelist(idx, obj)) return true;
                foreach (var (st, cp) in all)
                    if (held.Contains(st) && OnCpuLists((KmemCacheCpu*)cp, idx, obj)) return true;
                LockOrder.Enter(LockRank.SlabBarn, _barnLock);
                lock (_barnLock)
                    for (int i = 0; i < _nrFull; i++)
                        if (InSheaf((SlabSheaf*)_barnFull[i], obj)) return true;
                return false;
            }
            finally
            {
                foreach (var st in held) st.ExitExclusive();
            }
        }
    }

    /// <summary>on_freelist() for the slab's own freelist (its head is in the slab's word); stops at a corrupt link.</summary>
    private bool OnSlabFreelist(int idx, nint obj)
    {
        long w = Word(idx);
        return OnChain(SlabBase(idx), SlabWord.Free(w), SlabWord.Objects(w), obj);
    }

    /// <summary>Walks a freelist from a link, at most <paramref name="objects"/> steps, looking for <paramref name="obj"/>.</summary>
    private bool OnChain(nint slabBase, uint link, int objects, nint obj)
    {
        for (int n = 0; link != 0 && n <= objects && ValidLink(link, objects); n++)
        {
            nint p = FromLink(slabBase, link);
            if (p == obj) return true;
            link = GetLink(p);
        }
        return false;
    }

    /// <summary>The lists of one thread structure (held exclusively by the caller).</summary>
    private bool OnCpuLists(KmemCacheCpu* c, int idx, nint obj)
    {
        if (c->Hot == obj) return true;
        int objects = SlabWord.Objects(Word(idx));
        if (c->Page == idx && c->Freelist != 0 && OnChain(c->SlabBase, ToLink(c->SlabBase, c->Freelist), objects, obj)) return true;
        if (c->RemotePage == idx && c->RemoteHead != 0 && OnChain(SlabBase(idx), ToLink(SlabBase(idx), c->RemoteHead), objects, obj)) return true;
        return InSheaf(c->Main, obj);
    }

    private static bool InSheaf(SlabSheaf* sh, nint obj)
    {
        if (sh == null) return false;
        return new ReadOnlySpan<nint>(SlabSheaf.Objects(sh), Math.Clamp(sh->Size, 0, sh->Capacity)).Contains(obj);
    }

    /// <summary>The report of a double free found by the lookup (object_err "Object already free"); the exception to throw.</summary>
    private SlabException ObjectAlreadyFree(int idx, nint obj, CallSite site)
    {
        var sb = new StringBuilder();
        ObjectErr(sb, idx, obj, "Object already free");
        sb.Append($"INFO: freed again from {site}\n");
        _pa.DumpStack(sb);
        SlabFix(sb, $"Object at {P(obj)} not freed");
        _pa.AddTaint(Paging.PageAllocator.TaintBadPage);
        Interlocked.Increment(ref _root._debugErrors);
        Report(sb);
        return new SlabException(SlabError.DoubleFree, Name, obj, $"{Name}: double free of 0x{obj:x} (freed from {site}); nothing was freed");
    }
}
