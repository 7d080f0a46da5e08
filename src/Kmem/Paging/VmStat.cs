// Node-wide counters that the upper layers feed and the views read (a subset of the kernel's
// node_stat_item): slab pages, kernel-misc reclaimable pages, vmalloc pages.
namespace Kmem.Paging;

/// <summary>Node statistics in pages (the kernel keeps slab counters in bytes; Kmem converts on read).</summary>
internal sealed class VmStat
{
    private long _slabReclaimableBytes;
    private long _slabUnreclaimableBytes;
    private long _kernelMiscReclaimable;
    private long _vmallocPages;

    public long SlabReclaimablePages => Volatile.Read(ref _slabReclaimableBytes) >> 12;
    public long SlabUnreclaimablePages => Volatile.Read(ref _slabUnreclaimableBytes) >> 12;
    public long KernelMiscReclaimablePages => Volatile.Read(ref _kernelMiscReclaimable);
    public long VmallocPages => Volatile.Read(ref _vmallocPages);

    /// <summary>NR_SLAB_RECLAIMABLE_B / NR_SLAB_UNRECLAIMABLE_B.</summary>
    public void ModSlab(bool reclaimable, long bytes)
    {
        if (reclaimable) Interlocked.Add(ref _slabReclaimableBytes, bytes);
        else Interlocked.Add(ref _slabUnreclaimableBytes, bytes);
    }

    /// <summary>NR_KERNEL_MISC_RECLAIMABLE (page pools and similar caches).</summary>
    public void ModKernelMiscReclaimable(long pages) => Interlocked.Add(ref _kernelMiscReclaimable, pages);

    /// <summary>nr_vmalloc_pages.</summary>
    public void ModVmalloc(long pages) => Interlocked.Add(ref _vmallocPages, pages);
}
