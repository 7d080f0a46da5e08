// A GEM object (struct drm_gem_object with rockchip_gem_object's backing): its size, reference and handle
// counts, flink name and mmap offset; memory as rockchip_gem_alloc_buf chooses it (one physically contiguous
// dma_alloc buffer when the display has no IOMMU, separate pages mapped at an address of the driver's IOMMU
// space otherwise), or a dma-buf imported through PRIME. The object is also the exporter of its PRIME dma-buf.
using Kmem.Core;
using Kmem.Dma;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem;

/// <summary>Where a <see cref="GemObject"/>'s memory comes from.</summary>
public enum GemBacking
{
    /// <summary>One physically contiguous DMA buffer (rockchip_gem_alloc_dma: the display has no IOMMU).</summary>
    Contiguous,
    /// <summary>Separate pages, mapped at one range of the driver's IOMMU space (rockchip_gem_alloc_iommu).</summary>
    IommuPages,
    /// <summary>A dma-buf of another exporter, imported through PRIME (rockchip_gem_prime_import_sg_table).</summary>
    Imported,
}

/// <summary>
/// A GEM buffer object of a <see cref="DrmDevice"/>. Objects live while a handle, a PRIME dma-buf or a caller's
/// reference holds them; user space reaches them through <see cref="DrmFile"/> handles.
/// </summary>
public sealed unsafe class GemObject
{
    private readonly DrmDevice _drm;
    private int _refs = 1;                 // kref: the creator's reference
    private (int Frame, int Order)[] _blocks = [];
    private nint _cpu;                     // the kernel mapping of a contiguous buffer
    private ulong _dmaHandle;              // dma_alloc's handle
    private nint _vmap;                    // vmap of separate pages (taken on first CPU access)
    private ulong _iovaPages;              // IOVA node in the driver's drm_mm, in pages (0: none)
    private SgTable? _importTable;

    internal GemObject(DrmDevice drm, long size, GemBacking backing)
    {
        _drm = drm;
        Size = size;
        Backing = backing;
    }

    /// <summary>The object's size in bytes (a whole number of pages).</summary>
    public long Size { get; }

    /// <summary>How the memory was obtained.</summary>
    public GemBacking Backing { get; }

    private ulong _dmaAddress, _mmapOffset;
    private int _name, _handleCount;
    private DmaBuf? _exportedDmaBuf;
    private DmaBufAttachment? _importAttach;

    /// <summary>The device address the display uses: the DMA handle, or the IOVA in the driver's IOMMU space.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Size"/> and <see cref="Backing"/>).</exception>
    public ulong DmaAddress { get { Live(); return _dmaAddress; } private set => _dmaAddress = value; }

    /// <summary>The flink name (<c>DRM_IOCTL_GEM_FLINK</c>), 0 when unnamed.</summary>
    public int Name { get { Live(); return _name; } internal set => _name = value; }

    /// <summary>handle_count: handles on the object in every file.</summary>
    public int HandleCount { get { Live(); return _handleCount; } internal set => _handleCount = value; }

    /// <summary>The object's references (kref).</summary>
    public int RefCount { get { Live(); return Volatile.Read(ref _refs); } }

    /// <summary>The PRIME dma-buf the object keeps while it has handles (<c>obj->dma_buf</c>), or null.</summary>
    public DmaBuf? ExportedDmaBuf { get { Live(); return _exportedDmaBuf; } internal set => _exportedDmaBuf = value; }

    /// <summary>For an imported object: the attachment to the foreign dma-buf (<c>obj->import_attach</c>).</summary>
    public DmaBufAttachment? ImportAttach { get { Live(); return _importAttach; } private set => _importAttach = value; }

    /// <summary>The fake offset user space passes to mmap (<c>drm_vma_node_offset_addr</c>), 0 until <see cref="DrmFile.MapDumbOffset"/>.</summary>
    public ulong MmapOffset { get { Live(); return _mmapOffset; } internal set => _mmapOffset = value; }

    /// <summary>True once the last reference has gone and the memory is back.</summary>
    public bool Freed { get { Live(); return IsFreed; } }

    private bool IsFreed => Volatile.Read(ref _refs) <= 0;

    private void Live() => _drm.Life.ThrowIfDead();

    /// <summary>The page blocks behind the object (first page and order of each), in order.</summary>
    public IReadOnlyList<(Page Page, int Order)> PageBlocks
    {
        get
        {
            Live();
            return Backing == GemBacking.Imported ? _importAttach!.Buffer.PageBlocks : _blocks.Select(b => (_drm.Kernel.PageOf(b.Frame), b.Order)).ToArray();
        }
    }

    internal IReadOnlyList<(int Frame, int Order)> Blocks => Backing == GemBacking.Imported ? _importAttach!.Buffer.Blocks : _blocks;

    internal DrmDevice Drm => _drm;

    // ================================================================== backing

    /// <summary>rockchip_gem_alloc_buf(): false (nothing held) when the memory cannot be had.</summary>
    internal bool Allocate()
    {
        var k = _drm.Kernel;
        if (Backing == GemBacking.Contiguous)
        {
            // rockchip_gem_alloc_dma(): dma_alloc_attrs(drm->dev, size, GFP_KERNEL, WRITE_COMBINE).
            _cpu = k.Dma.AllocCoherent(_drm.Display, (ulong)Size, Gfp.Kernel, out _dmaHandle, CallSite.Kernel("rockchip_gem_alloc_dma"));
            if (_cpu == 0)
            {
                k.Log.Err($"rockchip-drm display-subsystem: failed to allocate {Size} byte dma buffer");
                return false;
            }
            _blocks = k.Dma.CoherentBlocks(_drm.Display, _dmaHandle)!;
            DmaAddress = _dmaHandle;
            return true;
        }
        // rockchip_gem_alloc_iommu(): drm_gem_get_pages() (zeroed shmem pages), then an IOVA node of the object's size.
        int pages = (int)(Size >> PhysicalMemory.PageShift);
        var blocks = new (int, int)[pages];
        for (int i = 0; i < pages; i++)
        {
            int idx = k.Pages.Alloc(Gfp.HighUserMovable | Gfp.Zero, 0);
            if (idx < 0)
            {
                for (int j = 0; j < i; j++) k.Pages.Free(blocks[j].Item1, 0, "drm_gem_put_pages");
                k.Log.Err($"rockchip-drm display-subsystem: drm_gem_get_pages: out of memory for {Size} bytes");
                return false;
            }
            blocks[i] = (idx, 0);
        }
        _blocks = blocks;
        if (!_drm.IommuSpace!.TryInsert((ulong)pages, 1, out ulong iova))
        {
            k.Log.Err($"rockchip-drm display-subsystem: out of I/O virtual memory: {Size} bytes");
            FreePages();
            return false;
        }
        _iovaPages = (ulong)pages;
        DmaAddress = iova << PhysicalMemory.PageShift;
        return true;
    }

    /// <summary>
    /// drm_gem_prime_import_dev() + rockchip_gem_prime_import_sg_table(): attaches the display to the buffer and maps it;
    /// without an IOMMU the mapping must be one contiguous range of the buffer's size. Returns 0 or -errno with nothing held.
    /// </summary>
    internal int Import(DmaBuf buf)
    {
        var a = buf.Attach(_drm.Display);
        var table = buf.MapAttachment(a, DmaDirection.Bidirectional);
        if (_drm.IommuSpace is null)
        {
            ulong contig = table.ContiguousDmaLength();
            if (contig < (ulong)Size)
            {
                _drm.Kernel.Log.Err("rockchip-drm display-subsystem: failed to map sg_table to contiguous linear address.");
                buf.UnmapAttachment(a, table, DmaDirection.Bidirectional);
                buf.Detach(a);
                return -22;
            }
            DmaAddress = table.Entries[0].DmaAddress;
        }
        else
        {
            ulong pages = (ulong)Size >> PhysicalMemory.PageShift;
            if (!_drm.IommuSpace.TryInsert(pages, 1, out ulong iova))
            {
                buf.UnmapAttachment(a, table, DmaDirection.Bidirectional);
                buf.Detach(a);
                return -12;
            }
            _iovaPages = pages;
            DmaAddress = iova << PhysicalMemory.PageShift;
        }
        buf.Get();                                       // get_dma_buf(): the object holds the buffer
        ImportAttach = a;
        _importTable = table;
        return 0;
    }

    /// <summary>The CPU view: the linear map of a contiguous buffer, a vmap of separate pages, the dma-buf's view of an import.</summary>
    public Span<byte> Span
    {
        get
        {
            using var life = _drm.Life.Enter();
            if (IsFreed) throw new DrmException(-22, $"GEM object of {Size} bytes has been freed");
            if (Backing == GemBacking.Imported) return _importAttach!.Buffer.Span;
            return new Span<byte>((void*)CpuAddress(), checked((int)Size));
        }
    }

    /// <summary>
    /// A contiguous object's kernel address: the linear map of lowmem pages, else rk_obj->kvaddr, the address
    /// dma_alloc_attrs() gave (a HighMem buffer has no linear address: 32-bit arm remaps it into the vmalloc window,
    /// arch/arm/mm/dma-mapping.c __alloc_from_contiguous()/__dma_alloc_remap()).
    /// </summary>
    internal nint ContiguousAddress() =>
        _drm.Kernel.Pages.LinearAddress(_blocks[0].Frame, (int)(Size >> PhysicalMemory.PageShift)) is var lin && lin != 0 ? lin : _cpu;

    /// <summary>The kernel virtual address of the object's bytes (mapping separate pages on first use).</summary>
    internal nint CpuAddress()
    {
        if (Backing == GemBacking.Contiguous) return ContiguousAddress();
        if (Backing == GemBacking.Imported) return _importAttach!.Buffer.Vmap();
        LockOrder.Enter(LockRank.GemBlocks, _blocks);
        lock (_blocks)
        {
            if (_vmap != 0) return _vmap;
            var vm = _drm.Kernel.VmallocSpaceOrNull ?? throw NoRemap.Refuse(_drm.Kernel.Log, $"the CPU view (vmap) of a {Size}-byte GEM object of {_blocks.Length} separate pages");
            var frames = _blocks.Select(b => b.Frame).ToArray();
            _vmap = vm.Vmap(frames, VmFlags.Map, CallSite.Kernel("rockchip_gem_alloc_iommu"));
            if (_vmap == 0) throw new DrmException(-12, $"vmap of a {Size}-byte GEM object failed");
            return _vmap;
        }
    }

    // ================================================================== references

    /// <summary>drm_gem_object_get().</summary>
    internal void Get()
    {
        if (Interlocked.Increment(ref _refs) <= 1) throw new InvalidOperationException("drm_gem_object_get on a freed object");
    }

    /// <summary>drm_gem_object_put(): the last reference frees the object.</summary>
    internal void Put()
    {
        int r = Interlocked.Decrement(ref _refs);
        if (r > 0) return;
        if (r < 0) throw new InvalidOperationException("drm_gem_object_put on a freed object");
        Free();
    }

    /// <summary>rockchip_gem_free_object(): the memory back, the IOVA and mmap offset nodes removed, an import let go.</summary>
    private void Free()
    {
        var k = _drm.Kernel;
        _drm.ObjectFreed(this);
        if (_iovaPages != 0) _drm.IommuSpace!.Remove(_dmaAddress >> PhysicalMemory.PageShift);
        if (Backing == GemBacking.Imported)
        {
            // drm_prime_gem_destroy(): unmap, detach, put.
            var a = _importAttach!;
            a.Buffer.UnmapAttachment(a, _importTable!, DmaDirection.Bidirectional);
            a.Buffer.Detach(a);
            a.Buffer.Put();
            return;
        }
        if (Backing == GemBacking.Contiguous)
        {
            k.Dma.FreeCoherent(_drm.Display, (ulong)Size, _cpu, _dmaHandle, CallSite.Kernel("rockchip_gem_free_dma"));
            return;
        }
        FreePages();
    }

    private void FreePages()
    {
        var k = _drm.Kernel;
        if (_vmap != 0) { k.VmallocSpaceOrNull!.Free(_vmap, freePages: false, CallSite.Kernel("rockchip_gem_free_iommu")); _vmap = 0; }
        foreach (var (f, _) in _blocks) k.Pages.Free(f, 0, "drm_gem_put_pages");
        _blocks = [];
    }

    /// <inheritdoc/>
    public override string ToString() => $"GEM object {Size} bytes ({Backing}, dma 0x{_dmaAddress:x}, {_handleCount} handles, {Volatile.Read(ref _refs)} refs)";
}
