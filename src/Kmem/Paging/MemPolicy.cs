// A thread's NUMA memory policy (struct mempolicy, mm/mempolicy.c): its mode and node set, and for MPOL_BIND the
// zonelists restricted to those nodes, built on first use per node and highest zone.
namespace Kmem.Paging;

/// <summary>One thread's memory policy: what set_mempolicy() installed (after the node set was cut to the memory nodes).</summary>
internal sealed class MemPolicy
{
    public MemPolicy(MemPolicyMode mode, int[] nodes, int zonelistSlots)
    {
        Mode = mode;
        Nodes = nodes;
        _bind = new Zone[]?[zonelistSlots];
    }

    /// <summary>The mode (never <see cref="MemPolicyMode.Default"/>: the default is no policy at all).</summary>
    public MemPolicyMode Mode { get; }

    /// <summary><c>pol-&gt;nodes</c>, ascending: the memory nodes of the request (MPOL_PREFERRED: the first only; MPOL_LOCAL: none).</summary>
    public int[] Nodes { get; }

    private readonly Zone[]?[] _bind;

    /// <summary>Whether node <paramref name="nid"/> is in the set.</summary>
    public bool Has(int nid) => Array.IndexOf(Nodes, nid) >= 0;

    /// <summary>next_node_in(<paramref name="prev"/>, nodes): the next node of the set after prev, wrapping round.</summary>
    public int NextNodeIn(int prev)
    {
        foreach (int n in Nodes) if (n > prev) return n;
        return Nodes[0];
    }

    /// <summary>
    /// The zonelist <paramref name="full"/> (slot <paramref name="slot"/>) with only the zones of the policy's nodes, what
    /// the allocator's nodemask filter leaves of it (for_next_zone_zonelist_nodemask()).
    /// </summary>
    public Zone[] Filtered(int slot, Zone[] full)
    {
        var l = Volatile.Read(ref _bind[slot]);
        if (l is null)
        {
            l = Array.FindAll(full, z => Has(z.Node));
            Volatile.Write(ref _bind[slot], l);
        }
        return l;
    }
}
