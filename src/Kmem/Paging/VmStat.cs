// Node counters that the upper layers feed and the views read (a subset of the kernel's node_stat_item): slab
// pages, kernel-misc reclaimable pages, per node as pglist_data keeps them (mod_node_page_state() on the page's
// node), their machine-wide figures summed over the nodes on read (global_node_page_state()); vmalloc pages are
// machine-wide (vmalloc_nr_pages).
namespace Kmem.Paging;

/// <summary>Node statistics in pages (the kernel keeps slab counters in bytes; Kmem converts on read).</summary>
internal sealed class VmStat
{
    /// <summary>MAX_NUMNODES of the modelled kernels (NODES_SHIFT 6).</summary>
    private const int MaxNodes = 64;

    private long _vmallocPages;
    private readonly long[] _nodeSlabReclaimableBytes = new long[MaxNodes];
    private readonly long[] _nodeSlabUnreclaimableBytes = new long[MaxNodes];
    private readonly long[] _nodeKernelMiscReclaimable = new long[MaxNodes];

    // The machine-wide figures are summed on read (global_node_page_state()), so an update touches one counter only.
    public long SlabReclaimablePages => Sum(_nodeSlabReclaimableBytes) >> 12;
    public long SlabUnreclaimablePages => Sum(_nodeSlabUnreclaimableBytes) >> 12;
    public long KernelMiscReclaimablePages => Sum(_nodeKernelMiscReclaimable);

    private static long Sum(long[] perNode)
    {
        long n = 0;
        for (int i = 0; i < perNode.Length; i++) n += Volatile.Read(ref perNode[i]);
        return n;
    }

    public long VmallocPages => Volatile.Read(ref _vmallocPages);

    /// <summary>node_page_state(pgdat, NR_SLAB_RECLAIMABLE_B) in pages.</summary>
    public long NodeSlabReclaimablePages(int nid) => Volatile.Read(ref _nodeSlabReclaimableBytes[nid]) >> 12;
    /// <summary>node_page_state(pgdat, NR_SLAB_UNRECLAIMABLE_B) in pages.</summary>
    public long NodeSlabUnreclaimablePages(int nid) => Volatile.Read(ref _nodeSlabUnreclaimableBytes[nid]) >> 12;
    /// <summary>node_page_state(pgdat, NR_KERNEL_MISC_RECLAIMABLE).</summary>
    public long NodeKernelMiscReclaimablePages(int nid) => Volatile.Read(ref _nodeKernelMiscReclaimable[nid]);

    /// <summary>NR_SLAB_RECLAIMABLE_B / NR_SLAB_UNRECLAIMABLE_B of the slab page's node (mod_node_page_state(page_pgdat())).</summary>
    public void ModSlab(bool reclaimable, long bytes, int nid)
    {
        if ((uint)nid >= MaxNodes) throw new ArgumentOutOfRangeException(nameof(nid), nid, "no such node");
        Interlocked.Add(ref (reclaimable ? _nodeSlabReclaimableBytes : _nodeSlabUnreclaimableBytes)[nid], bytes);
    }

    /// <summary>NR_KERNEL_MISC_RECLAIMABLE of the pages' node.</summary>
    public void ModKernelMiscReclaimable(long pages, int nid)
    {
        if ((uint)nid >= MaxNodes) throw new ArgumentOutOfRangeException(nameof(nid), nid, "no such node");
        Interlocked.Add(ref _nodeKernelMiscReclaimable[nid], pages);
    }

    /// <summary>nr_vmalloc_pages.</summary>
    public void ModVmalloc(long pages) => Interlocked.Add(ref _vmallocPages, pages);
}
