// The dma-buf core of one machine: the exporter interface heaps implement, the global list of buffers
// (newest first, as dma_buf_export() adds them), inode numbers, the descriptor table user space holds
// buffers through, and /sys/kernel/debug/dma_buf/bufinfo in Linux 5.10's format (the fence lines in the
// machine's release: DmaResv.cs).
using System.Text;
using Kmem.Core;
using Kmem.Dma;
using Kmem.Paging;
using Kmem.Vmalloc;

namespace Kmem.DmaHeaps;

/// <summary>The machine's dma-buf list, inode numbers and descriptor table.</summary>
internal sealed class DmaBufCore
{
    public const int OAccMode = 3, ORdWr = 2, ONonBlock = 0x800, OCloexec = 0x80000;

    private readonly LinkedList<DmaBuf> _list = [];            // newest first
    private readonly Lock _lock = new();
    private long _nextIno;

    public DmaBufCore(PageAllocator pa, DmaMapper dma, VmallocSpace? vmalloc, int machineId, ulong firstIno)
    {
        Pages = pa;
        Dma = dma;
        Vmalloc = vmalloc;
        MachineId = machineId;
        _nextIno = (long)firstIno;
        Fds = new DmaBufFdTable(pa.Log, pa.Life);
    }

    public PageAllocator Pages { get; }
    public DmaMapper Dma { get; }
    public VmallocSpace? Vmalloc { get; }
    public int MachineId { get; }
    public KernelLog Log => Pages.Log;
    public KernelLife Life => Pages.Life;
    public DmaBufFdTable Fds { get; }

    /// <summary>The kernel release: the fence rules of every buffer's reservation object and their bufinfo lines.</summary>
    public KernelVersion Version { get; init; } = KernelVersion.Default;

    public Page PageOf(int frame) => new(Pages.BasePfn + (ulong)frame, MachineId, frame);

    /// <summary>A table of one entry per page block (drm_prime_pages_to_sg and the vb2 exporters' tables).</summary>
    public SgTable TableOfBlocks(IEnumerable<(int Frame, int Order)> blocks) =>
        new(blocks.Select(b => (PageOf(b.Frame), 0, Physical.PhysicalMemory.PageSize << b.Order)));

    /// <summary>
    /// Zeroes a run of pages a page at a time, through the host's view of each frame: the kernel's CMA heap clears
    /// HighMem pages with kmap_atomic() + memset one page at a time (drivers/dma-buf/heaps/cma_heap.c, 5.6-5.10), lowmem
    /// with one memset of page_address(); the bytes are the same. The address is used here only.
    /// </summary>
    public unsafe void ZeroFrames(int first, int pages)
    {
        for (int i = 0; i < pages; i++) new Span<byte>((void*)Pages.IdxToVirt(first + i), Physical.PhysicalMemory.PageSize).Clear();
    }

    /// <summary>get_next_ino(): the next inode number (other pseudo files take numbers too: <see cref="SkipInodes"/>).</summary>
    public ulong NextIno() => (ulong)Interlocked.Increment(ref _nextIno) - 1;

    /// <summary>Inode numbers taken by other files (pipes, sockets, …) between two buffers.</summary>
    public void SkipInodes(long n) => Interlocked.Add(ref _nextIno, n);

    /// <summary>The inode number the next buffer will get.</summary>
    public ulong PeekIno => (ulong)Interlocked.Read(ref _nextIno);

    /// <summary>Sets the next inode number (a replayed dump's numbering).</summary>
    public void SetNextIno(ulong ino) => Interlocked.Exchange(ref _nextIno, (long)ino);

    /// <summary>dma_buf_export(): a new buffer with one reference, at the head of the list.</summary>
    public DmaBuf Export(DmaBufExporter exporter, long size, int fdFlags)
    {
        var b = new DmaBuf(this, exporter, size, fdFlags, NextIno());
        LockOrder.Enter(LockRank.DmaBufList, _lock);
        lock (_lock) _list.AddFirst(b);
        return b;
    }

    public void Remove(DmaBuf b)
    {
        LockOrder.Enter(LockRank.DmaBufList, _lock);
        lock (_lock) _list.Remove(b);
    }

    /// <summary>The buffers, newest first.</summary>
    public DmaBuf[] Buffers() { LockOrder.Enter(LockRank.DmaBufList, _lock); lock (_lock) return [.. _list]; }

    /// <summary>dma_buf_debug_show() (Linux 5.10): the header without a name column, each buffer newest first.</summary>
    public string Bufinfo()
    {
        var sb = new StringBuilder();
        sb.Append("\nDma-buf Objects:\n");
        sb.Append($"{"size",-8}\t{"flags",-8}\t{"mode",-8}\t{"count",-8}\texp_name\t{"ino",-8}\n");
        long total = 0;
        int n = 0;
        foreach (var b in Buffers())
        {
            sb.Append($"{b.Size:D8}\t{b.FFlags:x8}\t{b.FMode:x8}\t{b.RefCount:D8}\t{b.ExpName}\t{b.Ino:D8}\t{b.Name ?? ""}\n");
            b.DescribeFences(sb);
            sb.Append("\tAttached Devices:\n");
            var atts = b.Attachments;
            foreach (var a in atts) sb.Append('\t').Append(a.Device.Name).Append('\n');
            sb.Append($"Total {atts.Count} devices attached\n\n");
            total += b.Size;
            n++;
        }
        sb.Append($"\nTotal {n} objects, {total} bytes\n");
        return sb.ToString();
    }
}
