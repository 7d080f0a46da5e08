// The CMA heap (ACK 5.10 / Linux 6.x drivers/dma-buf/heaps/cma_heap.c): one contiguous run per buffer from a
// CMA area, aligned to min(get_order(len), CONFIG_CMA_ALIGNMENT), zeroed, no pool; an attachment's table is
// built from the pages (one entry for the run); release gives the run back with cma_release().
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem;

/// <summary>A CMA heap over one CMA area (the default area: named after it, e.g. <c>reserved</c>).</summary>
public sealed class CmaHeap : DmaHeap
{
    internal CmaHeap(DmaBufCore core, CmaArea area) : base(area.Name, core) => Area = area;

    /// <summary>The CMA area.</summary>
    public CmaArea Area { get; }

    /// <summary>cma_heap_allocate().</summary>
    private protected override DmaBuf? DoAllocate(long size, int fdFlags, ulong heapFlags)
    {
        int pages = (int)(size >> PhysicalMemory.PageShift);
        int idx = Area.Alloc((ulong)pages, CmaArea.HeapAlignment((ulong)size), Gfp.Kernel);
        if (idx < 0) return null;
        Core.ZeroFrames(idx, pages);
        return Core.Export(new CmaHeapBuffer(this, idx, pages), size, fdFlags);
    }
}
