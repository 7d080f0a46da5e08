// A CMA heap buffer: the exporter of one contiguous CMA run.
using Kmem.Physical;

namespace Kmem.DmaHeaps;

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
    /// <summary>
    /// The run's linear address, or 0 for a run of a HighMem CMA area, which dma-buf then vmaps (the CMA heap's
    /// vmap maps its pages with vmap() whatever their zone, drivers/dma-buf/heaps/cma_heap.c).
    /// </summary>
    public override nint ContiguousAddress() => _core.Pages.LinearAddress(First, Pages);

    /// <summary>sg_alloc_table_from_pages(): the run is contiguous, so one entry.</summary>
    public override SgTable TableForAttachment() => new([(_core.PageOf(First), 0, Pages << PhysicalMemory.PageShift)]);

    public override void Release(DmaBuf buf)
    {
        _area.Release(First, (ulong)Pages);
        Released?.Invoke(this);
    }
}
