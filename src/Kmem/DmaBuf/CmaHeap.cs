// The CMA heap (ACK 5.10 / Linux 6.x drivers/dma-buf/heaps/cma_heap.c): one contiguous run per buffer from a
// CMA area, aligned to min(get_order(len), CONFIG_CMA_ALIGNMENT), zeroed, no pool; an attachment's table is
// built from the pages (one entry for the run); release gives the run back with cma_release().
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

/// <summary>A buffer of one contiguous CMA run.</summary>
internal sealed class CmaHeapBuffer : DmaBufExporter
{
    private readonly string _name;
    private readonly DmaBufCore _core;
    private readonly CmaArea _area;
    private readonly (int Frame, int Order)[] _blocks;

    public CmaHeapBuffer(CmaHeap heap, int frame, int pages) : this(heap.Name, heap.Core, heap.Area, frame, pages) { }

    public CmaHeapBuffer(string name, DmaBufCore core, CmaArea area, int frame, int pages)
    {
        _name = name;
        _core = core;
        _area = area;
        First = frame;
        Pages = pages;
        _blocks = Paging.PageAllocator.AlignedBlocks(core.Pages.BasePfn, frame, pages);
    }

    public int First { get; }
    public int Pages { get; }

    /// <summary>Called after the run went back to its area (the RK heap's debug list and total).</summary>
    public Action<CmaHeapBuffer>? Released { get; init; }

    public override string Name => _name;
    public override IReadOnlyList<(int Frame, int Order)> Blocks => _blocks;
    public override nint ContiguousAddress() => _core.Pages.IdxToVirt(First);

    /// <summary>sg_alloc_table_from_pages(): the run is contiguous, so one entry.</summary>
    public override SgTable TableForAttachment() => new([(_core.PageOf(First), 0, Pages << PhysicalMemory.PageShift)]);

    public override void Release(DmaBuf buf)
    {
        _area.Release(First, (ulong)Pages);
        Released?.Invoke(this);
    }
}
