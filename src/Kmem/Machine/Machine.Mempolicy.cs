// The calling thread's NUMA memory policy (set_mempolicy(2)/get_mempolicy(2), mm/mempolicy.c): the kernel's modes,
// the syscall's checks and errors, and the boot-time interleave numa_policy_init() runs the boot with.
using Kmem.Paging;

namespace Kmem;

/// <summary>A memory-policy call refused with the errno the kernel's syscall returns.</summary>
public sealed class MempolicyException : KmemException
{
    /// <summary>Creates the exception with the negative errno (-EINVAL, -ENOSYS).</summary>
    public MempolicyException(int errno, string message) : base(message) => Errno = errno;

    /// <summary>The negative errno (-EINVAL 22, -ENOSYS 38).</summary>
    public int Errno { get; }
}

public sealed partial class Machine
{
    private const int Einval = 22, Enosys = 38;

    /// <summary>MAX_NUMNODES of the modelled kernels (NODES_SHIFT 6): node numbers from it up are refused outright.</summary>
    private const int MaxNumNodes = 64;

    /// <summary>
    /// <c>set_mempolicy(mode, nodemask)</c> for the calling thread: <see cref="AllocPages"/>, vmalloc and everything that
    /// allocates without a node follow it until it is set again (<see cref="MemPolicyMode.Default"/> ends it). Checked as
    /// 6.6 checks it (mpol_new(), mpol_set_nodemask()): Default and Local take no nodes; Preferred with none is Local and
    /// keeps only its first node; Bind and Interleave need nodes. The given nodes are cut to the nodes with memory; nothing
    /// left is -EINVAL, as is a node number of MAX_NUMNODES (64) or more or a negative one. Without CONFIG_NUMA the call
    /// does not exist (-ENOSYS). A refused call changes nothing.
    /// </summary>
    /// <exception cref="MempolicyException">The kernel would refuse the call; <see cref="MempolicyException.Errno"/> says how.</exception>
    public void SetMempolicy(MemPolicyMode mode, params int[] nodes)
    {
        using var _ = Life.Enter();
        ArgumentNullException.ThrowIfNull(nodes);
        Pages.SetThreadPolicy(NewPolicy(mode, nodes));
    }

    /// <summary>
    /// <c>get_mempolicy()</c> of the calling thread: its mode and node set (<see cref="MemPolicyMode.Default"/> and no
    /// nodes when it has none).
    /// </summary>
    /// <exception cref="MempolicyException">-ENOSYS without CONFIG_NUMA.</exception>
    public (MemPolicyMode Mode, int[] Nodes) GetMempolicy()
    {
        using var _ = Life.Enter();
        if (!Pages.NumaEnabled) throw PolicyError(Enosys, "get_mempolicy", "the kernel has no CONFIG_NUMA");
        var p = Pages.ThreadPolicy;
        return p is null ? (MemPolicyMode.Default, []) : (p.Mode, (int[])p.Nodes.Clone());
    }

    /// <summary>mpol_new() and mpol_set_nodemask(): the policy, null for MPOL_DEFAULT; throws what the syscall returns.</summary>
    private MemPolicy? NewPolicy(MemPolicyMode mode, int[] nodes)
    {
        string what = $"set_mempolicy({mode}, [{string.Join(",", nodes)}])";
        if (!Pages.NumaEnabled) throw PolicyError(Enosys, what, "the kernel has no CONFIG_NUMA");
        if (!Enum.IsDefined(mode)) throw PolicyError(Einval, what, $"mode {(int)mode} is not a policy mode");
        foreach (int n in nodes)
            if ((uint)n >= MaxNumNodes) throw PolicyError(Einval, what, $"node {n} is beyond MAX_NUMNODES ({MaxNumNodes})");
        bool empty = nodes.Length == 0;
        switch (mode)
        {
            case MemPolicyMode.Default:
                if (!empty) throw PolicyError(Einval, what, "MPOL_DEFAULT takes no nodes");
                return null;
            case MemPolicyMode.Preferred when empty:
                mode = MemPolicyMode.Local;
                break;
            case MemPolicyMode.Local:
                if (!empty) throw PolicyError(Einval, what, "MPOL_LOCAL takes no nodes");
                break;
            case MemPolicyMode.Bind or MemPolicyMode.Interleave when empty:
                throw PolicyError(Einval, what, "the node set is empty");
        }
        int slots = Pages.NodeCount * Pages.ZonesPerNode;
        if (mode == MemPolicyMode.Local) return new MemPolicy(mode, [], slots);
        // nodes_and(nodes, cpuset_current_mems_allowed & node_states[N_MEMORY]); an empty result fails the create.
        var usable = nodes.Where(n => n < Pages.NodeCount && Pages.NodeHasMemory(n)).Distinct().Order().ToArray();
        if (usable.Length == 0) throw PolicyError(Einval, what, "no node of the set has memory");
        if (mode == MemPolicyMode.Preferred) usable = [usable[0]];
        return new MemPolicy(mode, usable, slots);
    }

    private MempolicyException PolicyError(int errno, string what, string why)
    {
        string name = errno == Enosys ? "ENOSYS" : "EINVAL";
        Log.Err($"kmem: {what}: -{name}: {why}");
        return new MempolicyException(-errno, $"{what}: -{name}: {why}");
    }

    /// <summary>
    /// numa_policy_init() (mm/mempolicy.c, 2.6.7 on): the boot runs with MPOL_INTERLEAVE over the memory nodes of at least
    /// 16 MiB (the largest node when none is that big), until kernel_init() restores MPOL_DEFAULT
    /// (numa_default_policy()). Only with CONFIG_NUMA.
    /// </summary>
    private void SetBootInterleave()
    {
        if (!Pages.NumaEnabled) return;
        var sizes = Enumerable.Range(0, Pages.NodeCount).Select(n => (Node: n, Present: Pages.NodeZones(n).ToArray().Sum(z => z.Present))).Where(x => x.Present > 0).ToArray();
        if (sizes.Length == 0) return;
        var nodes = sizes.Where(x => x.Present << Physical.PhysicalMemory.PageShift >= 16L << 20).Select(x => x.Node).ToArray();
        if (nodes.Length == 0) nodes = [sizes.MaxBy(x => x.Present).Node];
        Pages.SetThreadPolicy(new MemPolicy(MemPolicyMode.Interleave, nodes, Pages.NodeCount * Pages.ZonesPerNode));
    }

    /// <summary>numa_default_policy(): the booting thread goes back to the default policy.</summary>
    private void EndBootInterleave()
    {
        if (Pages.NumaEnabled) Pages.SetThreadPolicy(null);
    }
}
