// The NUMA memory policy modes a thread can set (set_mempolicy(2)), public for Machine.SetMempolicy.
namespace Kmem;

/// <summary>The memory policy modes of set_mempolicy(2) (<c>MPOL_*</c>, include/uapi/linux/mempolicy.h values).</summary>
public enum MemPolicyMode
{
    /// <summary>MPOL_DEFAULT: no policy of the thread's own; allocate on the thread's node, falling back by distance.</summary>
    Default = 0,
    /// <summary>MPOL_PREFERRED: start from the one given node, falling back as from that node (no node given: local).</summary>
    Preferred = 1,
    /// <summary>MPOL_BIND: only the given nodes (for requests of policy_zone and above), nearest to the thread first.</summary>
    Bind = 2,
    /// <summary>MPOL_INTERLEAVE: each allocation from the next node of the set, round robin.</summary>
    Interleave = 3,
    /// <summary>MPOL_LOCAL: the thread's node, as the default.</summary>
    Local = 4,
}
