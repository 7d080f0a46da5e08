// The machine's NUMA calls: node-directed page allocation (alloc_pages_node), page_to_nid, the calling
// thread's CPU and node, and moving a thread to another CPU (and so another node).
using Kmem.Paging;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary><c>NUMA_NO_NODE</c>: "no preference", the calling thread's node.</summary>
    public const int NumaNoNode = PageAllocator.NumaNoNode;

    /// <summary><c>nr_online_nodes</c>: 1 unless the profile puts memory or CPUs on several nodes (CONFIG_NUMA).</summary>
    public int NodeCount => Life.Live(Pages.NodeCount);

    /// <summary><c>numa_node_id()</c>: the node of the profile CPU the calling thread runs as.</summary>
    public int NumaNodeId { get { using var _ = Life.Enter(); return Pages.CurrentNode(); } }

    /// <summary>
    /// <c>raw_smp_processor_id()</c>: the profile CPU the calling thread runs as (its per-CPU lists are that CPU's). A thread
    /// starts on the host processor it first allocates from, modulo the profile's CPUs; <see cref="MigrateToCpu"/> moves it.
    /// </summary>
    public int CurrentCpu { get { using var _ = Life.Enter(); return Pages.ThreadCpu(); } }

    /// <summary>
    /// Runs the calling thread as profile CPU <paramref name="cpu"/> from now on (<c>sched_setaffinity()</c> to that one
    /// CPU): its per-CPU page lists are reported under it, and it allocates from <paramref name="cpu"/>'s node.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The profile has no such CPU.</exception>
    public void MigrateToCpu(int cpu)
    {
        using var _ = Life.Enter();
        Pages.MigrateCurrentThread(cpu);
    }

    /// <summary><c>cpu_to_node()</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The profile has no such CPU.</exception>
    public int CpuToNode(int cpu)
    {
        using var _ = Life.Enter();
        if ((uint)cpu >= (uint)Pages.Cpus) throw new ArgumentOutOfRangeException(nameof(cpu), cpu, $"CPU {cpu} is not online (the machine has {Pages.Cpus} CPUs)");
        return Pages.NodeOfCpu(cpu);
    }

    /// <summary><c>node_distance()</c>: 10 within a node, the profile's SLIT entry (20 by default) between nodes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A node is not online.</exception>
    public int NodeDistance(int from, int to)
    {
        using var _ = Life.Enter();
        CheckNode(from, nameof(from));
        CheckNode(to, nameof(to));
        return Pages.Distance(from, to);
    }

    /// <summary>
    /// <c>alloc_pages_node(nid, gfp, order)</c>: 2^order pages from node <paramref name="nid"/> (its zones first, then the
    /// other nodes by distance; only its own with <see cref="Gfp.ThisNode"/>), or the calling thread's node with
    /// <see cref="NumaNoNode"/>. The null page on failure.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The node is not online.</exception>
    public Page AllocPagesNode(int nid, Gfp gfp, int order)
    {
        int idx = Pages.AllocNode(nid, gfp, order);
        return idx < 0 ? default : new Page(_basePfn + (ulong)idx, Id, idx);
    }

    /// <summary><c>page_to_nid(page)</c>: the node whose memory holds the page.</summary>
    /// <exception cref="InvalidAddressException">The page is null or belongs to another machine.</exception>
    public int PageToNid(Page page) => Pages.NodeOfIdx(CheckedIndex(page, nameof(PageToNid)));

    private void CheckNode(int nid, string name)
    {
        if ((uint)nid >= (uint)Pages.NodeCount)
            throw new ArgumentOutOfRangeException(name, nid, $"node {nid} is not online (the machine has {Pages.NodeCount} node{(Pages.NodeCount == 1 ? "" : "s")})");
    }
}
