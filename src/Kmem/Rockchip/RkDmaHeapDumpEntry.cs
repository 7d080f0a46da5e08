// One buffer of an rk-dma-heap-info dump as the dump reader returns it: a dma-buf (inode number, attached
// devices) or a page run, with its heap, physical range, "Alloc by" name and the line it was read from.
namespace Kmem;

/// <summary>One buffer of a dump: a dma-buf (with inode number and attached devices) or a page run.</summary>
public sealed record RkDmaHeapDumpEntry(string Heap, bool IsDmaBuf, long Ino, string AllocBy, ulong Start, ulong End, IReadOnlyList<string> Devices, int Line)
{
    /// <summary>Bytes (end inclusive).</summary>
    public ulong Size => End - Start + 1;
}
