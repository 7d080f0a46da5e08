// Memory policies (mm/mempolicy.c, 6.6): a thread's policy steers alloc_pages() (the calls without a node) —
// MPOL_PREFERRED starts from its node, MPOL_BIND keeps to its nodes for the zones at or above policy_zone,
// MPOL_INTERLEAVE takes the next node of its set per allocation (il_prev) and counts numa_interleave when the page
// lands there — and the bulk allocator vmalloc uses (alloc_pages_bulk_array_mempolicy(): an interleaved bulk is cut
// into one run per node). A thread without a policy is never slowed: its fast-path row stays its node's.
using Kmem.Core;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    /// <summary>MAX_NUMNODES - 1: what do_set_mempolicy() puts in il_prev so that interleaving starts at the set's first node.</summary>
    private const int IlPrevStart = MaxNumNodes - 1;

    /// <summary>
    /// <c>policy_zone</c>: the highest populated zone type below Movable (check_highest_zone() while the zonelists are
    /// built); MPOL_BIND applies to requests for this zone and above only (apply_policy_zone()).
    /// </summary>
    public int PolicyZone
    {
        get
        {
            int pz = 0;
            foreach (var z in Zones) if (z.Populated && z.Type != ZoneType.Movable && z.ZoneIdx > pz) pz = z.ZoneIdx;
            return pz;
        }
    }

    /// <summary>The calling thread's memory policy, null for the default (local allocation).</summary>
    public MemPolicy? ThreadPolicy => ThreadCache().Policy;

    /// <summary>
    /// do_set_mempolicy() for the calling thread (the caller validated the policy): installs it (null: MPOL_DEFAULT), an
    /// interleave policy starting over at its first node. While a policy is set the thread's order-0 allocations leave
    /// the fast path for <see cref="AllocPolicy"/>.
    /// </summary>
    public void SetThreadPolicy(MemPolicy? pol)
    {
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            c.Policy = pol;
            if (pol?.Mode == MemPolicyMode.Interleave) c.IlPrev = IlPrevStart;
            if (c.Mem != null) PcpThreadCache.SetNode(c.Mem, PcpThreadCache.NodeOf(c.Mem), pol is not null, NodeCount);
        }
    }

    /// <summary>interleave_nodes(): the next node of the policy's set after the thread's last one.</summary>
    private static int InterleaveNodes(PcpThreadCache c, MemPolicy pol)
    {
        int next = pol.NextNodeIn(c.IlPrev);
        c.IlPrev = next;
        return next;
    }

    /// <summary>The zonelist of a non-interleave policy for a request from <paramref name="node"/> (policy_node() + policy_nodemask()).</summary>
    private Zone[] PolicyZonelist(MemPolicy pol, int node, int hz, Gfp gfp) => pol.Mode switch
    {
        MemPolicyMode.Preferred => Zonelist(pol.Nodes[0], hz, gfp),
        MemPolicyMode.Bind when hz >= PolicyZone => pol.Filtered(node * ZonesPerNode + hz, Zonelist(node, hz, gfp)),
        _ => Zonelist(node, hz, gfp),
    };

    /// <summary>alloc_pages() under the calling thread's policy (the thread has one; __GFP_THISNODE was ruled out).</summary>
    private int AllocPolicy(Gfp gfp, int order, int hz, int mt, AllocFlags af)
    {
        var c = ThreadCache();
        var pol = c.Policy;
        int node = PcpThreadCache.NodeOf(c.Mem);
        if (pol is null) return AllocFromList(gfp, order, Zonelist(node, hz, gfp), hz, mt, af);
        if (pol.Mode != MemPolicyMode.Interleave) return AllocFromList(gfp, order, PolicyZonelist(pol, node, hz, gfp), hz, mt, af);
        // alloc_page_interleave(): __alloc_pages() from the next node (falling back as usual); a page that landed on
        // that node counts NUMA_INTERLEAVE_HIT on its zone.
        int nid = InterleaveNodes(c, pol);
        int idx = AllocFromList(gfp, order, Zonelist(nid, hz, gfp), hz, mt, af);
        if (idx >= 0 && ZoneOfIdx(idx) is { } z && z.Node == nid) CountNumaEvent(z, NumaStat.Interleave);
        return idx;
    }

    /// <summary>get_page_from_freelist() over <paramref name="list"/>, then the slow path.</summary>
    private int AllocFromList(Gfp gfp, int order, Zone[] list, int hz, int mt, AllocFlags af)
    {
        int idx = GetPageFromFreelist(gfp, order, af, list, hz, mt);
        if (idx < 0) idx = AllocSlowPath(gfp, order, list, hz, mt);
        return idx;
    }

    /// <summary>
    /// The bulk allocator vmalloc uses for order-0 pages (mm/vmalloc.c vm_area_alloc_pages(), 6.6): with node
    /// <paramref name="nid"/> alloc_pages_bulk_array_node(), with NUMA_NO_NODE alloc_pages_bulk_array_mempolicy() — the
    /// thread's policy: an interleave policy cuts the request into one run per node of its set (the first
    /// <c>nr % nodes</c> runs one page longer), each from the next interleave node, other policies their node and
    /// nodemask. Each run is __alloc_pages_bulk(): pages from the run's zonelist without entering the slow path, stopping
    /// at the first failure, except that a run that got nothing (or asked for one page) takes one page the full way.
    /// Bulk allocations count no numa_interleave. Fills <paramref name="into"/> from its start; returns how many.
    /// </summary>
    public int AllocBulk(Gfp gfp, int nid, Span<int> into)
    {
        if (_disposed) ThrowDisposed();
        if ((uint)nid >= (uint)NodeCount && nid != NumaNoNode)
            throw new ArgumentOutOfRangeException(nameof(nid), nid, $"node {nid} is not online (the machine has {NodeCount} node{(NodeCount == 1 ? "" : "s")})");
        using var _ = Life.Enter();
        int hz = GfpZone(gfp);
        if (hz < 0) return BadGfpZone(gfp);
        gfp &= ~Gfp.NoFail; // "bulk allocator doesn't support nofail req. officially"
        var c = ThreadCache();
        int node = PcpThreadCache.NodeOf(c.Mem);
        var pol = nid < 0 && (gfp & Gfp.ThisNode) == 0 ? c.Policy : null;
        if (pol?.Mode == MemPolicyMode.Interleave)
        {
            int nodes = pol.Nodes.Length, per = into.Length / nodes, delta = into.Length - nodes * per, got = 0;
            for (int i = 0; i < nodes; i++)
            {
                int want = per + (delta > 0 ? 1 : 0);
                if (delta > 0) delta--;
                int run = InterleaveNodes(c, pol);
                got += AllocBulkRun(gfp, Zonelist(run, hz, gfp), hz, into.Slice(got, want));
            }
            return got;
        }
        Zone[] list = nid >= 0 ? Zonelist(nid, hz, gfp) : pol is null ? Zonelist(node, hz, gfp) : PolicyZonelist(pol, node, hz, gfp);
        return AllocBulkRun(gfp, list, hz, into);
    }

    /// <summary>__alloc_pages_bulk() over one zonelist (see <see cref="AllocBulk"/>).</summary>
    private int AllocBulkRun(Gfp gfp, Zone[] list, int hz, Span<int> into)
    {
        if (into.Length == 0) return 0;
        int mt = (int)PageTypes.FromGfp(gfp);
        AllocFlags af = AllocFlags.WmarkLow;
        if (mt == (int)MigrateType.Movable) af |= AllocFlags.Cma;
        int n = 0;
        if (into.Length > 1)
            for (; n < into.Length; n++)
            {
                if (FailPageAllocArmed && ShouldFailAllocPage(gfp, 0)) break;
                int idx = GetPageFromFreelist(gfp, 0, af, list, hz, mt);
                if (idx < 0) break;
                into[n] = idx;
            }
        if (n > 0) return n;
        // "failed:" the single-page allocator, with its slow path.
        if (FailPageAllocArmed && ShouldFailAllocPage(gfp, 0)) return 0;
        int one = AllocFromList(gfp, 0, list, hz, mt, af);
        if (one < 0) return 0;
        into[0] = one;
        return 1;
    }
}
