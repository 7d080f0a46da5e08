// A system heap buffer: the exporter of its page blocks, freed through the page pool or deferred free.
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem.DmaHeaps;

/// <summary>A system-heap buffer: its blocks and the table an attachment gets (one entry per block).</summary>
internal sealed class SystemHeapBuffer : DmaBufExporter
{
    private readonly SystemHeap _heap;

    public SystemHeapBuffer(SystemHeap heap, (int Frame, int Order)[] blocks, long size)
    {
        _heap = heap;
        BlockArray = blocks;
        Size = size;
    }

    public (int Frame, int Order)[] BlockArray { get; }
    public long Size { get; }

    public override string Name => _heap.Name;
    public override IReadOnlyList<(int Frame, int Order)> Blocks => BlockArray;
    public override bool Uncached => _heap.Uncached;

    /// <summary>One lowmem block: its linear address. Several blocks, or HighMem ones (GFP_HIGHUSER: no linear address), are vmapped.</summary>
    public override nint ContiguousAddress() => BlockArray.Length == 1 ? _heap.Core.Pages.LinearAddress(BlockArray[0].Frame, 1 << BlockArray[0].Order) : 0;

    public override SgTable TableForAttachment() =>
        new(BlockArray.Select(b => (_heap.Core.PageOf(b.Frame), 0, PhysicalMemory.PageSize << b.Order)));

    public override void Release(DmaBuf buf) => _heap.ReleaseBuffer(this);
}
