// A cache's end of life and its self-checks: the shutdown test of kmem_cache_destroy() with the
// kernel's list of remaining objects, the release of every thread structure, cache merging's
// object-size growth, and the invariant check used by Machine.VerifyIntegrity().
// Locks: _cpusLock and each node's ListLock, each taken alone here; the flush that precedes them takes each thread's slab lock
// and then _cpusLock (docs/architecture.md, "Lock order"). This file also frees the cache's slot: see Release.
using System.Text;
using Kmem.Core;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    /// <summary>Destroys the cache (<c>kmem_cache_destroy()</c>). A cache that still has objects is reported and stays usable.</summary>
    /// <exception cref="SlabException">Objects are still allocated (<see cref="SlabError.CacheInUse"/>).</exception>
    public void Destroy()
    {
        using var _ = _pa.Life.Enter();
        _sa.Destroy(this);
    }

    /// <summary>A merged alias with a bigger object: __GFP_ZERO must clear the bigger size in every thread structure too.</summary>
    internal void GrowObjectSize(int size)
    {
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock)
        {
            if (size <= _objectSize) return;
            _objectSize = size;
            foreach (var (_, cp) in _cpus) Volatile.Write(ref ((KmemCacheCpu*)cp)->ZeroBytes, size);
        }
    }

    internal void MarkAliasDestroyed() => _slot = SlabThread.DeadSlot;

    /// <summary>The alias handles merged into this cache (they die with it).</summary>
    private readonly List<SlabCache> _aliases = [];

    internal void AddAlias(SlabCache alias)
    {
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock) _aliases.Add(alias);
    }

    /// <summary>failslab was armed or disarmed: this cache and every alias merged into it follow (caller holds the cache list's lock).</summary>
    internal void SetFailArmed(bool armed)
    {
        FailArmed = armed;
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock) foreach (var a in _aliases) a.FailArmed = armed;
    }

    /// <summary>
    /// __kmem_cache_shutdown(): flush every thread, free the empty slabs; null when nothing is left, else the
    /// report listing the remaining objects (with their allocating callers under StoreUser).
    /// </summary>
    internal string? ShutdownCheck()
    {
        FlushAll();
        FlushBarn();
        int discard = -1;
        foreach (var n in _nodes)                             // free_partial() of every node
        {
            LockOrder.Enter(LockRank.SlabNode, n.ListLock);
            lock (n.ListLock)
            {
                for (int idx = n.PartialHead; idx >= 0;)
                {
                    int next = _frames[idx].Next;
                    if (SlabWord.Inuse(Word(idx)) == 0)
                    {
                        RemovePartial(n, idx);
                        _frames[idx].Next = discard;
                        discard = idx;
                    }
                    idx = next;
                }
            }
        }
        DiscardChain(discard);
        var slabs = _sa.SlabsOf(_id);
        if (slabs.Count == 0) return null;
        var sb = new StringBuilder();
        foreach (int idx in slabs)
        {
            SlabErr(sb, idx, $"Objects remaining in {Name} on __kmem_cache_shutdown()");
            var free = FreeSet(idx);
            int objects = SlabWord.Objects(Word(idx));
            nint b = SlabBase(idx);
            for (int i = 0; i < objects; i++)
            {
                nint p = b + _redLeftPad + (nint)i * _size;
                if (free.Contains(p)) continue;
                sb.Append($"INFO: Object {P(p)} @offset={p - b}\n");
                PrintTracking(sb, p);
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// Frees every thread structure and the slot; the cache can no longer be used. With <paramref name="flush"/> false
    /// (the machine's shutdown) nothing goes back to the slabs or the page allocator: only the threads' own memory goes.
    /// </summary>
    /// <remarks>
    /// The slot registry's recycling rule (slots are process-wide; docs/architecture.md, "The slab slot registry"):
    /// a slot is given back only after (1) the cache and its aliases name the dead slot, so new fast paths miss and
    /// slow paths throw, and (2) every thread's structure for it is flushed or dropped and its table entry cleared,
    /// each under the owner/drainer handshake. A cache that takes the slot next, of any machine, finds every table
    /// empty there. Stale copies of the number (a thread's kfree hint) cannot reach the new owner's structure for a
    /// pointer of this machine: Machine.Kfree tries the fast path only inside its own linear map, where the new
    /// owner's CPU slab (in another machine's memory) never matches.
    /// </remarks>
    internal void Release(bool flush = true)
    {
        int slot;
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock)
        {
            slot = _slot;
            if (slot == SlabThread.DeadSlot) return;
            _slot = SlabThread.DeadSlot; // fast paths now fail and slow paths throw
        }
        FlushAll(release: true, slot, flush);
        if (flush) FlushBarn();
        else FreeBarn();
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock) foreach (var a in _aliases) a.MarkAliasDestroyed();
        SlabThread.FreeSlot(slot);
    }

    /// <summary>Checks the cache's slabs, lists and counters (the machine must be quiet).</summary>
    internal void CheckInvariants(List<string> errors)
    {
        var slabs = _sa.SlabsOf(_id);
        long objects = 0;
        var onPartial = new HashSet<int>();
        var cpuSlabs = new HashSet<int>();
        LockOrder.Enter(LockRank.SlabCpus, _cpusLock);
        lock (_cpusLock)
            foreach (var (_, cp) in _cpus)
            {
                var c = (KmemCacheCpu*)cp;
                if (c->Page >= 0) cpuSlabs.Add(c->Page);
                for (int p = c->Partial; p >= 0; p = _frames[p].Next) cpuSlabs.Add(p);
            }
        foreach (var n in _nodes)
        {
            LockOrder.Enter(LockRank.SlabNode, n.ListLock);
            lock (n.ListLock)
            {
                string where = _numa ? $" of node {n.Id}" : "";
                int count = 0, prev = -1;
                for (int idx = n.PartialHead; idx >= 0; idx = _frames[idx].Next)
                {
                    if (!onPartial.Add(idx) || count++ > slabs.Count) { errors.Add($"{Name}: node partial list{where} loops"); break; }
                    if (_frames[idx].Prev != prev) errors.Add($"{Name}: partial list{where} back link broken at pfn {Pfn(idx)}");
                    long w = Word(idx);
                    if (SlabWord.Frozen(w)) errors.Add($"{Name}: frozen slab pfn {Pfn(idx)} on the node partial list{where}");
                    if (SlabWord.Free(w) == 0) errors.Add($"{Name}: slab pfn {Pfn(idx)} on the partial list{where} has no free object");
                    if (SlabNid(idx) != n.Id) errors.Add($"{Name}: slab pfn {Pfn(idx)} of node {SlabNid(idx)} on the partial list of node {n.Id}");
                    prev = idx;
                }
                if (count != n.NrPartial) errors.Add($"{Name}: nr_partial{where} {n.NrPartial} but {count} slabs on the list");
                if (n.PartialTail != prev) errors.Add($"{Name}: partial list{where} tail is pfn {Pfn(n.PartialTail)}, last slab is pfn {Pfn(prev)}");
            }
        }
        var perNode = new long[_nodes.Length * 2];
        foreach (int idx in slabs)
        {
            perNode[SlabNid(idx) * 2]++;
            perNode[SlabNid(idx) * 2 + 1] += SlabWord.Objects(Word(idx));
            long w = Word(idx);
            int n = SlabWord.Objects(w);
            objects += n;
            if (n != SlabGeometry.OrderObjects(_frames[idx].Order, _size)) errors.Add($"{Name}: slab pfn {Pfn(idx)} holds {n} objects, its order holds {SlabGeometry.OrderObjects(_frames[idx].Order, _size)}");
            int free = FreeSet(idx).Count;
            if (free != n - SlabWord.Inuse(w)) errors.Add($"{Name}: slab pfn {Pfn(idx)} has {free} objects on its freelist but inuse {SlabWord.Inuse(w)} of {n}");
            if (SlabWord.Frozen(w) != cpuSlabs.Contains(idx)) errors.Add($"{Name}: slab pfn {Pfn(idx)} frozen={SlabWord.Frozen(w)} but {(cpuSlabs.Contains(idx) ? "" : "not ")}held by a thread");
            if (!SlabWord.Frozen(w) && !_debug && SlabWord.Inuse(w) < n && !onPartial.Contains(idx))
                errors.Add($"{Name}: unfrozen slab pfn {Pfn(idx)} with free objects is not on the partial list");
        }
        for (int n = 0; n < _nodes.Length; n++)
            if (perNode[n * 2] != _nodes[n].NrSlabs || perNode[n * 2 + 1] != _nodes[n].TotalObjects)
                errors.Add($"{Name}: node {n} counts {_nodes[n].NrSlabs} slabs / {_nodes[n].TotalObjects} objects, its memory holds {perNode[n * 2]} / {perNode[n * 2 + 1]}");
        CheckSheaves(errors);
        if (slabs.Count != Slabs) errors.Add($"{Name}: {Slabs} slabs counted, {slabs.Count} found");
        if (objects != TotalObjects) errors.Add($"{Name}: {TotalObjects} objects counted, {objects} found");
    }

    private ulong Pfn(int idx) => idx < 0 ? 0 : _pa.BasePfn + (ulong)idx;
}
