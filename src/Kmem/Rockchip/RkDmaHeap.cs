// Rockchip's RK-DMA-HEAP (drivers/dma-buf/rk_heaps/, RK 5.10): a CMA heap over rk-dma-heap-cma that hands
// out dma-bufs and plain contiguous page runs ("non dmabuf"), keeps a debug list of each with who asked
// ("Alloc by"), and prints them in /proc/rk_dma_heap/rk-dma-heap-info, with alloc_bitmap beside it.
using System.Text;
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem;

/// <summary>One entry of the heap's debug lists: who allocated it and its physical range (end inclusive).</summary>
public sealed record RkDmaHeapEntry(string AllocBy, ulong Start, ulong End, DmaBuf? Buffer)
{
    /// <summary>Bytes (<c>end - start + 1</c>).</summary>
    public ulong Size => End - Start + 1;
}

/// <summary>
/// An RK-DMA-HEAP CMA heap (<c>struct rk_dma_heap</c> with <c>support_cma</c>): <see cref="BufferAlloc"/> for dma-bufs,
/// <see cref="AllocContigPages"/> for page runs, and the debug lists behind <c>rk-dma-heap-info</c>.
/// </summary>
public sealed class RkDmaHeap
{
    /// <summary>RK_DMA_HEAP_NAME_LEN: the "Alloc by" names are cut to 16 characters.</summary>
    public const int NameLength = 16;

    /// <summary>RK_DMA_HEAP_UNCACHED.</summary>
    public const uint Uncached = 1;

    private readonly DmaBufCore _core;
    private readonly List<RkDmaHeapEntry> _dmabufs = [];       // allocation order
    private readonly List<RkDmaHeapEntry> _contig = [];
    private readonly Lock _lock = new();
    private long _total;

    internal RkDmaHeap(DmaBufCore core, CmaArea area)
    {
        _core = core;
        Area = area;
    }

    /// <summary>The heap's name: the CMA area's (<c>rk-dma-heap-cma</c>).</summary>
    public string Name => Area.Name;

    /// <summary>The CMA area.</summary>
    public CmaArea Area { get; }

    /// <summary>total_size: bytes of every live dma-buf and page run.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Name"/> and <see cref="Area"/>).</exception>
    public long TotalSize
    {
        get
        {
            _core.Life.ThrowIfDead();
            return Interlocked.Read(ref _total);
        }
    }

    /// <summary>The dma-buf entries, in allocation order.</summary>
    public IReadOnlyList<RkDmaHeapEntry> DmaBufEntries
    {
        get
        {
            _core.Life.ThrowIfDead();
            lock (_lock) return [.. _dmabufs];
        }
    }

    /// <summary>The page-run ("non dmabuf") entries, in allocation order.</summary>
    public IReadOnlyList<RkDmaHeapEntry> ContigEntries
    {
        get
        {
            _core.Life.ThrowIfDead();
            lock (_lock) return [.. _contig];
        }
    }

    private ulong Phys(int frame) => (_core.Pages.BasePfn + (ulong)frame) << PhysicalMemory.PageShift;

    /// <summary>The caller's name, else the calling thread's, cut to 16 characters (kstrndup(name ?: current->comm, 16)).</summary>
    private static string AllocBy(string? name)
    {
        string n = name ?? Paging.PageAllocator.TaskName();
        return n.Length > NameLength ? n[..NameLength] : n;
    }

    private DmaBufException Fail(int errno, string what)
    {
        _core.Log.Err($"rk_dma_heap: {what}");
        return new DmaBufException(errno, what);
    }

    private long CheckLen(long len, string fn)
    {
        if (len <= 0 || len > long.MaxValue - PhysicalMemory.PageSize) throw Fail(-22, $"{fn}: length {len}: -EINVAL");
        return (len + PhysicalMemory.PageSize - 1) & ~(long)(PhysicalMemory.PageSize - 1);
    }

    /// <summary>align = get_order(size) capped at CONFIG_DMABUF_HEAPS_ROCKCHIP_CMA_ALIGNMENT (0 on RV1106: back to back).</summary>
    public int CmaAlignmentCap
    {
        get
        {
            _core.Life.ThrowIfDead();
            return _alignmentCap;
        }
        set
        {
            _core.Life.ThrowIfDead();
            _alignmentCap = value;
        }
    }

    private int _alignmentCap;

    private int Align(long size) => Math.Min(CmaArea.HeapAlignment((ulong)size), _alignmentCap);

    /// <summary>
    /// rk_dma_heap_buffer_alloc(): a zeroed dma-buf of <paramref name="len"/> bytes from the CMA area, named
    /// <paramref name="name"/> (else the calling thread's name). Null when the area has no room (-ENOMEM).
    /// </summary>
    /// <exception cref="DmaBufException">-EINVAL: length 0, fd flags outside O_CLOEXEC | O_ACCMODE, heap flags other than RK_DMA_HEAP_UNCACHED.</exception>
    public DmaBuf? BufferAlloc(long len, string? name = null, int fdFlags = DmaHeap.ORdWr | DmaHeap.OCloexec, uint heapFlags = 0)
    {
        using var life = _core.Life.Enter();            // CMA allocation and zeroing: shutdown waits for it
        if ((fdFlags & ~DmaHeap.ValidFdFlags) != 0) throw Fail(-22, $"rk_dma_heap_buffer_alloc: fd_flags 0x{fdFlags:x}: -EINVAL");
        if ((heapFlags & ~Uncached) != 0) throw Fail(-22, $"rk_dma_heap_buffer_alloc: heap_flags 0x{heapFlags:x}: -EINVAL");
        long size = CheckLen(len, "rk_dma_heap_buffer_alloc");
        int pages = (int)(size >> PhysicalMemory.PageShift);
        int idx = Area.Alloc((ulong)pages, Align(size), Gfp.Kernel);
        if (idx < 0) return null;
        _core.ZeroFrames(idx, pages);
        RkDmaHeapEntry? entry = null;
        var exporter = new CmaHeapBuffer(Name, _core, Area, idx, pages)
        {
            Released = _ =>
            {
                lock (_lock) _dmabufs.Remove(entry!);
                TotalDec(size);
            },
        };
        var buf = _core.Export(exporter, size, fdFlags);
        string by = AllocBy(name);
        buf.SetNameInternal(by);
        entry = new RkDmaHeapEntry(by, Phys(idx), Phys(idx) + (ulong)size - 1, buf);
        lock (_lock) _dmabufs.Add(entry);
        Interlocked.Add(ref _total, size);
        return buf;
    }

    /// <summary>rk_dma_heap_bufferfd_alloc(): the same, installed in <see cref="Machine.DmaBufFds"/>; the descriptor or -ENOMEM.</summary>
    public int BufferFdAlloc(long len, string? name = null, int fdFlags = DmaHeap.ORdWr | DmaHeap.OCloexec, uint heapFlags = 0)
    {
        using var life = _core.Life.Enter();
        var b = BufferAlloc(len, name, fdFlags, heapFlags);
        return b is null ? -12 : _core.Fds.Install(b);
    }

    /// <summary>rk_dma_heap_buffer_free(): dma_buf_put(); the memory goes when the last reference does.</summary>
    public void BufferFree(DmaBuf buf)
    {
        using var life = _core.Life.Enter();
        ArgumentNullException.ThrowIfNull(buf);
        if (buf.ExpName != Name) throw Fail(-22, $"rk_dma_heap_buffer_free: ino {buf.Ino} was exported by {buf.ExpName}, not {Name}");
        buf.Put();
    }

    /// <summary>
    /// rk_dma_heap_alloc_contig_pages(): <paramref name="len"/> bytes of contiguous pages (not zeroed, no dma-buf), listed
    /// as "non dmabuf" under <paramref name="name"/> (else the thread's name). The null page when the area has no room.
    /// </summary>
    public Page AllocContigPages(long len, string? name = null)
    {
        using var life = _core.Life.Enter();
        long size = CheckLen(len, "rk_dma_heap_alloc_contig_pages");
        int pages = (int)(size >> PhysicalMemory.PageShift);
        int idx = Area.Alloc((ulong)pages, Align(size), Gfp.Kernel);
        if (idx < 0) return Page.Null;
        var entry = new RkDmaHeapEntry(AllocBy(name), Phys(idx), Phys(idx) + (ulong)size - 1, null);
        lock (_lock) _contig.Add(entry);
        Interlocked.Add(ref _total, size);
        return _core.PageOf(idx);
    }

    /// <summary>
    /// rk_dma_heap_free_contig_pages(): removes the first entry that starts at the page and releases the run.
    /// <paramref name="len"/> must be the page-aligned length given at allocation.
    /// </summary>
    /// <exception cref="DmaBufException">-EINVAL: no run of this heap starts at the page, or the length differs.</exception>
    public void FreeContigPages(Page pages, long len, string? name = null)
    {
        using var life = _core.Life.Enter();
        if (pages.IsNull || pages.MachineId != _core.MachineId) throw Fail(-22, "rk_dma_heap_free_contig_pages: not a page of this machine");
        ulong start = pages.Pfn << PhysicalMemory.PageShift;
        RkDmaHeapEntry? e;
        lock (_lock)
        {
            e = _contig.FirstOrDefault(x => x.Start == start);
            if (e is null) throw Fail(-22, $"rk_dma_heap_free_contig_pages: no page run of {Name} starts at 0x{start:x}");
            if ((ulong)len != e.Size) throw Fail(-22, $"rk_dma_heap_free_contig_pages: 0x{start:x} holds {e.Size} bytes, not {len}");
            _contig.Remove(e);
        }
        Area.Release((int)(pages.Pfn - _core.Pages.BasePfn), e.Size >> PhysicalMemory.PageShift);
        TotalDec((long)e.Size);
    }

    /// <summary>rk_dma_heap_total_dec(): WARN and clamp at 0 on underflow.</summary>
    private void TotalDec(long size)
    {
        long now = Interlocked.Add(ref _total, -size);
        if (now < 0)
        {
            _core.Pages.Warn($"rk_dma_heap_total_dec: {Name}: total {now + size} below {size}");
            Interlocked.Exchange(ref _total, 0);
        }
    }

    /// <summary>rk_dma_heap_set_dev(): gives the device a 64-bit DMA mask.</summary>
    public void SetDev(Device dev)
    {
        _core.Life.ThrowIfDead();
        if (dev is null) throw Fail(-22, "rk_dma_heap_set_dev: no device: -EINVAL");
        dev.DmaMaskBits = 64;
    }

    // ================================================================== views

    /// <summary>%pa: 0x and the physical address in 2*sizeof(phys_addr_t) lowercase digits.</summary>
    private static string Pa(ulong v, int digits) => "0x" + v.ToString($"x{digits}");

    /// <summary>
    /// This heap's part of rk_dma_heap_proc_show(): the dma-buf entries (newest dma-buf first), then the page runs. The
    /// file ends with the total over every heap (<see cref="Kmem.Diagnostics.DmaBufViews"/>).
    /// </summary>
    internal string Entries(int paDigits)
    {
        var sb = new StringBuilder();
        List<RkDmaHeapEntry> bufs, contig;
        lock (_lock) { bufs = [.. _dmabufs]; contig = [.. _contig]; }
        foreach (var b in _core.Buffers())
        {
            if (b.ExpName != Name) continue;
            sb.Append($"dma-heap:<{Name}> -dmabuf");
            foreach (var e in bufs)
            {
                if (e.Buffer is null || e.Buffer.Ino != b.Ino) continue;
                sb.Append($"\ti_ino = {b.Ino}\n");
                sb.Append($"\tAlloc by ({b.Name ?? "(null)",-20})\t[{Pa(e.Start, paDigits)}-{Pa(e.End, paDigits)}]\t{Pa(e.Size, paDigits)} ({e.Size >> 10} KiB)\n");
                sb.Append("\t\tAttached Devices:\n");
                var atts = b.Attachments;
                foreach (var a in atts) sb.Append("\t\t").Append(a.Device.Name).Append('\n');
                sb.Append($"Total {atts.Count} devices attached\n\n");
            }
        }
        foreach (var e in contig)
        {
            sb.Append($"dma-heap:<{Name}> -non dmabuf\n");
            sb.Append($"\tAlloc by ({e.AllocBy,-20})\t[{Pa(e.Start, paDigits)}-{Pa(e.End, paDigits)}]\t{Pa(e.Size, paDigits)} ({e.Size >> 10} KiB)\n");
        }
        return sb.ToString();
    }

    /// <summary>cma_procfs_show(): totals in KiB, then the bitmap as %08X words, eight a line.</summary>
    internal string AllocBitmap()
    {
        var sb = new StringBuilder();
        sb.Append($"Total: {Area.Count << 2} KiB\n");
        sb.Append($" Used: {Area.Used << 2} KiB\n\n");
        var words = Area.Bitmap();
        for (int i = 0; i < words.Length; i++)
        {
            sb.Append(words[i].ToString("X8"));
            sb.Append((i % 8 == 7 || i == words.Length - 1) ? '\n' : ' ');
        }
        return sb.ToString();
    }
}
