// The slab layer's view of the machine's NUMA nodes, read once at boot: nr_node_ids, slab_nodes (the nodes with
// normal memory, which get a kmem_cache_node in every cache), each zone's node (slab_nid() from a page
// descriptor's zone), numa_mem_id() for the calling thread, and the check of a node argument that
// kmalloc_node()/kmem_cache_alloc_node() callers pass.
using Kmem.Paging;

namespace Kmem.Slab;

internal sealed unsafe partial class SlabAllocator
{
    /// <summary><c>nr_node_ids</c>: the machine's nodes (memoryless ones included).</summary>
    public int NodeCount { get; private set; } = 1;

    /// <summary>The node of each zone, by the zone index a page descriptor records.</summary>
    public int[] ZoneNode { get; private set; } = [];

    /// <summary>
    /// <c>slab_nodes</c> (6.6 kmem_cache_init(): the N_NORMAL_MEMORY nodes): nodes with memory in a zone the linear map
    /// covers. Only these have a kmem_cache_node; a request for another node is no constraint (___slab_alloc()).
    /// </summary>
    public bool[] SlabNodes { get; private set; } = [];

    /// <summary><c>local_memory_node()</c> of each node: itself when it has memory, else the first node of its zonelist.</summary>
    private int[] _memNode = [];

    /// <summary>Reads the node facts from the page allocator (before the bootstrap caches are made).</summary>
    private void InitNodes(PageAllocator pa)
    {
        NodeCount = pa.NodeCount;
        ZoneNode = pa.Zones.Select(z => z.Node).ToArray();
        SlabNodes = new bool[NodeCount];
        foreach (var z in pa.Zones)
            if (z.Present > 0 && !pa.IsHighMem(z.StartIdx)) SlabNodes[z.Node] = true;
        _memNode = new int[NodeCount];
        for (int n = 0; n < NodeCount; n++)
        {
            _memNode[n] = n;
            if (SlabNodes[n]) continue;
            var list = pa.ZonelistFor(n, Gfp.Kernel);
            if (list.Count > 0) _memNode[n] = list[0].Node;
        }
    }

    /// <summary><c>numa_mem_id()</c>: the calling thread's node, or the nearest node with memory when it has none.</summary>
    public int NumaMemId() => _memNode[Pages.CurrentNode()];

    /// <summary>The exception for a node argument that is neither NUMA_NO_NODE nor online (nothing was changed).</summary>
    public ArgumentOutOfRangeException BadNode(int node, string fn) =>
        new(nameof(node), node, $"{fn}: node {node} is not online (the machine has {NodeCount} node{(NodeCount == 1 ? "" : "s")}; " +
            $"use 0..{NodeCount - 1} or NUMA_NO_NODE (-1))");

    /// <summary>Throws <see cref="BadNode"/> unless <paramref name="node"/> is NUMA_NO_NODE or an online node.</summary>
    public void CheckNode(int node, string fn)
    {
        if ((uint)node >= (uint)NodeCount && node != PageAllocator.NumaNoNode) throw BadNode(node, fn);
    }
}
