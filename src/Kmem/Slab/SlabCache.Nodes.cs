// SLUB per node: kmem_cache_alloc_node() (its fast path with node_match(), the slow path's node checks are in
// SlabCache.Slow.cs), get_partial() from the asked node and get_any_partial() across the zonelist's nodes under
// remote_node_defrag_ratio, and the per-node figures the sysfs attributes print (show_slab_objects()). Rules from
// Linux 6.6 mm/slub.c; a one-node machine has node 0 only and never reaches the cross-node code.
// Locks: one node's ListLock at a time, under the calling thread's slab lock (docs/architecture.md, "Lock order").
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Slab;

namespace Kmem;

public sealed unsafe partial class SlabCache
{
    /// <summary>Statistics: ALLOC_NODE_MISMATCH, CPU slabs given up because a request asked for another node.</summary>
    internal long NodeMismatches;

    /// <summary>Statistics: slabs taken from another node's partial list by get_any_partial().</summary>
    internal long RemotePartialTaken;

    /// <summary><c>s->remote_node_defrag_ratio</c> (0..1000; kmem_cache_open() sets 1000).</summary>
    private int _defragRatio = 1000;

    /// <summary>
    /// <c>/sys/kernel/slab/NAME/remote_node_defrag_ratio</c> (CONFIG_NUMA): 0..100, how readily an allocation without a
    /// node takes partial slabs of other nodes before it allocates a new slab (100 by default: almost always; 0: never).
    /// The kernel keeps ten times the value and compares it with <c>get_cycles() % 1024</c>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Above 100 (the store's -ERANGE) or negative.</exception>
    public int RemoteNodeDefragRatio
    {
        get => _pa.Life.Live(Volatile.Read(ref _root._defragRatio) / 10);
        set
        {
            _pa.Life.ThrowIfDead();
            if ((uint)value > 100)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"{Name}: remote_node_defrag_ratio {value} is above 100 (-ERANGE)");
            Volatile.Write(ref _root._defragRatio, value * 10);
        }
    }

    /// <summary>
    /// Allocates an object from node <paramref name="node"/>'s slabs (<c>kmem_cache_alloc_node()</c>), or as
    /// <see cref="Alloc"/> with <see cref="Machine.NumaNoNode"/>. A node without memory is no constraint; when the node
    /// has no memory left the page allocator may fall back to another node, as the kernel's does. 0 when no memory
    /// could be found.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The node is neither NUMA_NO_NODE nor online.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint AllocNode(Gfp gfp, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if ((uint)node < (uint)_nodes.Length && !FailArmed)
        {
            nint obj = AllocFastNode(_slot, gfp, node);
            if (obj != 0) return obj;
        }
        return AllocNodeSlow(gfp, node, new CallSite(caller, file, line));
    }

    /// <summary>kmem_cache_alloc_node() past the fast path: the node's check, failslab, then ___slab_alloc() for the node.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private nint AllocNodeSlow(Gfp gfp, int node, CallSite site)
    {
        if ((uint)node >= (uint)_nodes.Length)
        {
            if (node == PageAllocator.NumaNoNode) return Alloc(gfp, site.Member, site.File, site.Line);
            _pa.Life.ThrowIfDead();
            throw _sa.BadNode(node, "kmem_cache_alloc_node");
        }
        if (FailArmed && _sa.ShouldFailslab(this, gfp)) return 0;
        return AllocSlow(gfp, site, node);
    }

    /// <summary>True when this cache is one of <paramref name="sa"/>'s.</summary>
    internal bool BelongsTo(SlabAllocator sa) => ReferenceEquals(_sa, sa);

    /// <summary>kmem_cache_alloc_node() for callers that validated the node (kmalloc_node()).</summary>
    internal nint AllocNodeFor(Gfp gfp, int node, CallSite site)
    {
        nint obj = AllocFastNode(_slot, gfp, node);
        return obj != 0 ? obj : AllocSlow(gfp, site, node);
    }

    /// <summary>
    /// slab_alloc_node()'s fast path with a node: the calling thread's CPU freelist when its CPU slab is of
    /// <paramref name="node"/> (node_match()), else 0 and the slow path decides. Sheaves are not used (their objects may
    /// be of any node).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nint AllocFastNode(int slot, Gfp gfp, int node)
    {
        if ((uint)slot < (uint)SlabThread.t_len)
        {
            nint* t = SlabThread.t_table;
            OwnerDrainHandshake* hs = SlabThread.Handshake(t);
            if (hs->OwnerEnter())
            {
                var c = (KmemCacheCpu*)t[slot];
                if (c != null && c->Page >= 0 && c->Node == node)
                {
                    nint obj = PopCpuFreelist(c);
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

    /// <summary>
    /// get_partial() (6.6): node <paramref name="node"/>'s partial list, or with NUMA_NO_NODE the list of numa_mem_id()
    /// (the thread's node, or the nearest node with memory when it has none) and then get_any_partial(). A request for
    /// a specific node never takes another node's partial slabs: a new slab on that node follows.
    /// </summary>
    private bool GetPartial(KmemCacheCpu* c, Gfp gfp, int node)
    {
        int search = node < 0 ? (_numa ? _sa.NumaMemId() : 0) : node;
        if (GetPartialNode(c, _nodes[search])) return true;
        if (node >= 0 || !_numa) return false;
        return GetAnyPartial(c, gfp);
    }

    /// <summary>
    /// get_any_partial() (6.6, CONFIG_NUMA): unless remote_node_defrag_ratio says no this time
    /// (<c>get_cycles() % 1024 &gt; ratio</c>, the time stamp counter standing for get_cycles()), walks the zonelist of
    /// mempolicy_slab_node() (numa_mem_id() under the default policy) for the request's zones and takes partial slabs of
    /// the first node that has more than min_partial of them.
    /// </summary>
    private bool GetAnyPartial(KmemCacheCpu* c, Gfp gfp)
    {
        int ratio = Volatile.Read(ref _defragRatio);
        if (ratio == 0 || (ulong)Stopwatch.GetTimestamp() % 1024 > (ulong)ratio) return false;
        var zonelist = _pa.ZonelistFor(_sa.NumaMemId(), gfp & ~Gfp.ThisNode);
        for (int i = 0; i < zonelist.Count; i++)
        {
            var n = _nodes[zonelist[i].Node];
            if (Volatile.Read(ref n.NrPartial) > MinPartial && GetPartialNode(c, n))
            {
                Interlocked.Increment(ref RemotePartialTaken);
                return true;
            }
        }
        return false;
    }

    // ================================================================== per-node figures

    /// <summary>The nodes of the cache's kmem_cache_node array (the machine's node count).</summary>
    internal int NodeCount => _nodes.Length;

    /// <summary><c>nr_partial</c> of one node.</summary>
    internal long NodePartial(int node) => Volatile.Read(ref _root._nodes[node].NrPartial);

    /// <summary><c>node_nr_slabs()</c> of one node.</summary>
    internal long NodeSlabs(int node) => Volatile.Read(ref _root._nodes[node].NrSlabs);

    /// <summary><c>node_nr_objs()</c> of one node.</summary>
    internal long NodeTotalObjects(int node) => Volatile.Read(ref _root._nodes[node].TotalObjects);

    /// <summary>
    /// count_partial() of one node: the free objects (<paramref name="inuse"/> false) or the objects in use
    /// (<paramref name="inuse"/> true) of the slabs on its partial list, under its list lock.
    /// </summary>
    internal long NodeCountPartial(int node, bool inuse, bool total = false)
    {
        var n = _root._nodes[node];
        long x = 0;
        LockOrder.Enter(LockRank.SlabNode, n.ListLock);
        lock (n.ListLock)
            for (int idx = n.PartialHead; idx >= 0; idx = _frames[idx].Next)
            {
                long w = Word(idx);
                x += total ? SlabWord.Objects(w) : inuse ? SlabWord.Inuse(w) : SlabWord.Objects(w) - SlabWord.Inuse(w);
            }
        return x;
    }

    /// <summary>
    /// show_slab_objects(SO_CPU) per node: each thread structure's CPU slab counts 1 on its node, its CPU partial list
    /// the slabs it holds (<c>slab->slabs</c> of the list head) on the head's node.
    /// </summary>
    internal long[] CpuSlabsPerNode()
    {
        var s = _root;
        var nodes = new long[s._nodes.Length];
        s.ForEachCpu((_, cp) =>
        {
            var c = (KmemCacheCpu*)cp;
            if (c->Page >= 0) nodes[s.SlabNid(c->Page)]++;
            if (c->Partial >= 0) nodes[s.SlabNid(c->Partial)] += c->PartialPages;
        });
        return nodes;
    }

    /// <summary>Sum of a per-node counter over the nodes.</summary>
    private long SumNodes(Func<KmemCacheNode, long> f)
    {
        long x = 0;
        foreach (var n in _root._nodes) x += f(n);
        return x;
    }
}
