// The three videobuf2 allocators (Linux 5.10): dma-contig (one DMA-coherent buffer per plane; imports and user
// pages must map as one contiguous device range), dma-sg (pages gathered largest-order first and split, one
// mapped scatter table), vmalloc (a vmalloc_user area, no device mapping; imports are vmapped).
using Kmem.Core;
using Kmem.Kernel;
using Kmem.Physical;
using Kmem.Vb2;

namespace Kmem;

/// <summary>videobuf2-dma-contig.</summary>
public sealed class Vb2DmaContig : Vb2MemOps
{
    internal Vb2DmaContig(KernelContext k) : base(k) { }

    /// <inheritdoc/>
    public override string Name => "videobuf2_dma_contig";

    private sealed class Buf(Vb2MemOps ops, Device? dev, long size, DmaDirection dir) : Vb2MemBuffer(ops, dev, size, dir)
    {
        public nint Cpu;
        public ulong DmaAddr;
        public (int, int)[] BlockList = [];
        public int[]? UserFrames;
        public SgTable? Sgt;                // a USERPTR table, or an import's mapped table
        public nint Vaddr;                   // an import's dma_buf_vmap
        internal override IReadOnlyList<(int Frame, int Order)> Blocks => UserFrames is { } f ? f.Select(x => (x, 0)).ToArray() : DmaBuf?.Blocks ?? BlockList;
    }

    private Buf Of(Vb2MemBuffer buf) => buf as Buf ?? throw Fail(-22, $"a plane of {buf?.Ops.Name ?? "no allocator"} given to {Name}");

    private Device Need(Device? dev, string fn) => dev ?? throw Fail(-22, $"{fn}: no device");

    /// <summary>vb2_dc_alloc(): dma_alloc_attrs of the page-aligned size.</summary>
    private protected override Vb2MemBuffer? AllocCore(Device? dev, long size, DmaDirection dir, Gfp gfp)
    {
        if (dev is null) { Kernel.Log.Err($"{Name}: vb2_dc_alloc: no device"); return null; }
        long real = (size + PhysicalMemory.PageSize - 1) & ~(long)(PhysicalMemory.PageSize - 1);
        var b = new Buf(this, dev, real, dir);
        b.Cpu = Kernel.Dma.AllocCoherent(dev, (ulong)real, Gfp.Kernel | gfp, out b.DmaAddr, CallSite.Kernel("vb2_dc_alloc"));
        if (b.Cpu == 0)
        {
            Kernel.Log.Err($"{dev.Name}: dma_alloc_coherent of size {real} failed");
            return null;
        }
        b.BlockList = Kernel.Dma.CoherentBlocks(dev, b.DmaAddr)!;
        return b;
    }

    /// <inheritdoc/>
    private protected override void PutCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Release()) Kernel.Dma.FreeCoherent(b.Device!, (ulong)b.Size, b.Cpu, b.DmaAddr, CallSite.Kernel("vb2_dc_put"));
    }

    /// <summary>vb2_dc_get_userptr(): cache-line aligned address and size, pinned pages mapped as one contiguous device range.</summary>
    private protected override Vb2MemBuffer GetUserptrCore(Device? dev, nint vaddr, long size, DmaDirection dir)
    {
        var d = Need(dev, "vb2_dc_get_userptr");
        int align = Kernel.Facts.CacheLineSize;
        if (((vaddr | (nint)size) & (align - 1)) != 0) throw Fail(-22, $"user data must be aligned to {align} bytes");
        var frames = PinUserPages(vaddr, size);
        var b = new Buf(this, d, size, dir) { UserFrames = frames };
        b.Sgt = TableOf(frames, (int)(vaddr & (PhysicalMemory.PageSize - 1)), size);
        if (Kernel.Dma.MapSg(d, b.Sgt, dir, CallSite.Kernel("vb2_dc_get_userptr")) == 0)
        {
            UnpinUserPages(frames);
            throw Fail(-5, "failed to map scatterlist");
        }
        ulong contig = b.Sgt.ContiguousDmaLength();
        if (contig < (ulong)size)
        {
            Kernel.Dma.UnmapSg(d, b.Sgt, dir);
            UnpinUserPages(frames);
            throw Fail(-14, $"contiguous mapping is too small {contig}/{size}");
        }
        b.DmaAddr = b.Sgt.Entries[0].DmaAddress;
        return b;
    }

    /// <inheritdoc/>
    private protected override void PutUserptrCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        Kernel.Dma.UnmapSg(b.Device!, b.Sgt!, b.Direction);
        UnpinUserPages(b.UserFrames!);
    }

    /// <summary>vb2_dc_attach_dmabuf(): -EFAULT for a dma-buf smaller than the plane.</summary>
    private protected override Vb2MemBuffer AttachDmabufCore(Device? dev, DmaBuf dbuf, long size, DmaDirection dir)
    {
        var d = Need(dev, "vb2_dc_attach_dmabuf");
        CheckDmabufSize(dbuf, size);
        return new Buf(this, d, size, dir) { DmaBuf = dbuf, Attachment = dbuf.Attach(d) };
    }

    /// <summary>vb2_dc_map_dmabuf(): the attachment mapped; its DMA range must cover the plane in one piece (-EFAULT).</summary>
    private protected override int MapDmabufCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        int err = MapAttachment(b, b.Sgt is not null, out var mapped);
        if (mapped is null) return err;
        var sgt = mapped;
        ulong contig = sgt.ContiguousDmaLength();
        if (contig < (ulong)b.Size)
        {
            Kernel.Log.Err($"{Name}: contiguous chunk is too small {contig}/{b.Size}");
            b.DmaBuf!.UnmapAttachment(b.Attachment!, sgt, b.Direction);
            return -14;
        }
        b.DmaAddr = sgt.Entries[0].DmaAddress;
        b.Sgt = sgt;
        b.Vaddr = 0;
        b.DmabufMapped = true;
        return 0;
    }

    /// <inheritdoc/>
    private protected override void UnmapDmabufCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Sgt is null) return;
        if (b.Vaddr != 0) { b.DmaBuf!.Vunmap(b.Vaddr); b.Vaddr = 0; }
        b.DmaBuf!.UnmapAttachment(b.Attachment!, b.Sgt, b.Direction);
        b.Sgt = null;
        b.DmaAddr = 0;
        b.DmabufMapped = false;
    }

    /// <summary>vb2_dc_get_dmabuf(): a new dma-buf over the plane, holding a reference on it.</summary>
    private protected override DmaBuf? GetDmabufCore(Vb2MemBuffer buf, int flags)
    {
        var b = Of(buf);
        if (b.UserFrames is not null || b.DmaBuf is not null) return null;
        buf.Get();
        bool contiguous = !b.Device!.HasIommu;
        // vb2_dc_dmabuf_ops_vmap() returns buf->vaddr, what dma_alloc_attrs() gave: the linear address of lowmem, the
        // remap in the vmalloc window of HighMem pages (which have no linear address).
        int pages = (int)(b.Size >> PhysicalMemory.PageShift);
        return Kernel.DmaBufs.Export(new Vb2DmaBufExporter(b, () => !contiguous ? 0
            : Kernel.Pages.LinearAddress(b.BlockList[0].Item1, pages) is var lin && lin != 0 ? lin : b.Cpu), b.Size, flags);
    }

    /// <summary>vb2_dc_vaddr(): the coherent buffer's kernel mapping, an import's vmap (taken on first use), 0 for user pages.</summary>
    private protected override nint VaddrCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Cpu != 0) return b.Cpu;
        if (b.Vaddr == 0 && b.Attachment is not null && b.DmabufMapped) b.Vaddr = b.DmaBuf!.Vmap();
        return b.Vaddr;
    }

    /// <summary>vb2_dc_cookie(): the DMA address.</summary>
    private protected override Vb2Cookie CookieCore(Vb2MemBuffer buf) => new(Of(buf).DmaAddr, Of(buf).Sgt);

    /// <summary>vb2_dc_prepare(): user pages synced for the device (coherent and imported planes need nothing).</summary>
    private protected override void PrepareCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Sgt is null || b.Attachment is not null) return;
        Kernel.Dma.SyncSg(b.Device!, b.Sgt, b.Direction, toCpu: false);
    }

    /// <inheritdoc/>
    private protected override void FinishCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Sgt is null || b.Attachment is not null) return;
        Kernel.Dma.SyncSg(b.Device!, b.Sgt, b.Direction, toCpu: true);
    }
}

/// <summary>videobuf2-dma-sg.</summary>
public sealed class Vb2DmaSg : Vb2MemOps
{
    internal Vb2DmaSg(KernelContext k) : base(k) { }

    /// <inheritdoc/>
    public override string Name => "videobuf2_dma_sg";

    private sealed class Buf(Vb2MemOps ops, Device? dev, long size, DmaDirection dir) : Vb2MemBuffer(ops, dev, size, dir)
    {
        public int[] Frames = [];
        public bool UserPages;
        public int Offset;
        public SgTable? Sgt;
        public nint Vaddr;
        internal override IReadOnlyList<(int Frame, int Order)> Blocks => DmaBuf?.Blocks ?? Frames.Select(f => (f, 0)).ToArray();
    }

    private Buf Of(Vb2MemBuffer buf) => buf as Buf ?? throw Fail(-22, $"a plane of {buf?.Ops.Name ?? "no allocator"} given to {Name}");

    /// <summary>vb2_dma_sg_alloc(): pages of the largest order that fits what is left, stepping down on failure, split to single pages, mapped.</summary>
    private protected override Vb2MemBuffer? AllocCore(Device? dev, long size, DmaDirection dir, Gfp gfp)
    {
        if (dev is null) { Kernel.Log.Err($"{Name}: vb2_dma_sg_alloc: no device"); return null; }
        long real = (size + PhysicalMemory.PageSize - 1) & ~(long)(PhysicalMemory.PageSize - 1);
        var frames = new List<int>();
        long left = real;
        var pa = Kernel.Pages;
        while (left > 0)
        {
            int order = Paging.PageAllocator.GetOrder((ulong)left);
            if ((PhysicalMemory.PageSize << order) > left) order--;
            int idx;
            while ((idx = pa.Alloc(Gfp.Kernel | Gfp.Zero | Gfp.NoWarn | gfp, order)) < 0)
            {
                if (order == 0)
                {
                    foreach (var f in frames) pa.Free(f, 0, "vb2_dma_sg_alloc");
                    Kernel.Log.Err($"{dev.Name}: vb2_dma_sg_alloc: out of memory for {real} bytes");
                    return null;
                }
                order--;
            }
            if (order > 0) pa.SplitPage(idx, order, "vb2_dma_sg_alloc_compacted");
            for (int i = 0; i < 1 << order; i++) frames.Add(idx + i);
            left -= PhysicalMemory.PageSize << order;
        }
        var b = new Buf(this, dev, real, dir) { Frames = [.. frames] };
        b.Sgt = TableOf(b.Frames, 0, real);
        if (Kernel.Dma.MapSg(dev, b.Sgt, dir, CallSite.Kernel("vb2_dma_sg_alloc")) == 0)
        {
            foreach (var f in b.Frames) pa.Free(f, 0, "vb2_dma_sg_alloc");
            return null;
        }
        return b;
    }

    /// <inheritdoc/>
    private protected override void PutCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (!b.Release()) return;
        if (b.Vaddr != 0) Kernel.VmallocSpaceOrNull!.Free(b.Vaddr, freePages: false, CallSite.Kernel("vm_unmap_ram"));
        Kernel.Dma.UnmapSg(b.Device!, b.Sgt!, b.Direction);
        foreach (var f in b.Frames) Kernel.Pages.Free(f, 0, "vb2_dma_sg_put");
    }

    /// <summary>vb2_dma_sg_get_userptr(): the pinned pages in one table, mapped (no contiguity needed).</summary>
    private protected override Vb2MemBuffer GetUserptrCore(Device? dev, nint vaddr, long size, DmaDirection dir)
    {
        var d = dev ?? throw Fail(-22, "vb2_dma_sg_get_userptr: no device");
        var frames = PinUserPages(vaddr, size);
        var b = new Buf(this, d, size, dir) { Frames = frames, UserPages = true, Offset = (int)(vaddr & (PhysicalMemory.PageSize - 1)) };
        b.Sgt = TableOf(frames, b.Offset, size);
        if (Kernel.Dma.MapSg(d, b.Sgt, dir, CallSite.Kernel("vb2_dma_sg_get_userptr")) == 0)
        {
            UnpinUserPages(frames);
            throw Fail(-5, "failed to map scatterlist");
        }
        return b;
    }

    /// <inheritdoc/>
    private protected override void PutUserptrCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Vaddr != 0) { Kernel.VmallocSpaceOrNull!.Free(b.Vaddr, freePages: false, CallSite.Kernel("vm_unmap_ram")); b.Vaddr = 0; }
        Kernel.Dma.UnmapSg(b.Device!, b.Sgt!, b.Direction);
        UnpinUserPages(b.Frames);
    }

    /// <inheritdoc/>
    private protected override Vb2MemBuffer AttachDmabufCore(Device? dev, DmaBuf dbuf, long size, DmaDirection dir)
    {
        var d = dev ?? throw Fail(-22, "vb2_dma_sg_attach_dmabuf: no device");
        CheckDmabufSize(dbuf, size);
        return new Buf(this, d, size, dir) { DmaBuf = dbuf, Attachment = dbuf.Attach(d) };
    }

    /// <summary>vb2_dma_sg_map_dmabuf(): the attachment's table.</summary>
    private protected override int MapDmabufCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        int err = MapAttachment(b, b.Sgt is not null, out var mapped);
        if (mapped is null) return err;
        b.Sgt = mapped;
        b.Vaddr = 0;
        b.DmabufMapped = true;
        return 0;
    }

    /// <inheritdoc/>
    private protected override void UnmapDmabufCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Sgt is null) return;
        if (b.Vaddr != 0) { b.DmaBuf!.Vunmap(b.Vaddr); b.Vaddr = 0; }
        b.DmaBuf!.UnmapAttachment(b.Attachment!, b.Sgt, b.Direction);
        b.Sgt = null;
        b.DmabufMapped = false;
    }

    /// <summary>vb2_dma_sg_get_dmabuf().</summary>
    private protected override DmaBuf? GetDmabufCore(Vb2MemBuffer buf, int flags)
    {
        var b = Of(buf);
        if (b.UserPages || b.DmaBuf is not null) return null;
        buf.Get();
        return Kernel.DmaBufs.Export(new Vb2DmaBufExporter(b, () => 0), b.Size, flags);
    }

    /// <summary>vb2_dma_sg_vaddr(): vm_map_ram of the pages (or the import's vmap), taken on first use.</summary>
    private protected override nint VaddrCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Vaddr != 0) return b.Vaddr;
        if (b.DmaBuf is not null) return b.DmabufMapped ? b.Vaddr = b.DmaBuf.Vmap() : 0;
        var vm = Kernel.VmallocSpaceOrNull;
        if (vm is null) return 0;
        nint v = vm.Vmap(b.Frames, VmFlags.Map, CallSite.Kernel("vm_map_ram"));
        return v == 0 ? 0 : b.Vaddr = v + b.Offset;
    }

    /// <summary>vb2_dma_sg_cookie(): the mapped table.</summary>
    private protected override Vb2Cookie CookieCore(Vb2MemBuffer buf)
    {
        var t = Of(buf).Sgt;
        return new(t is { Nents: > 0 } ? t.Entries[0].DmaAddress : 0, t);
    }

    /// <summary>vb2_dma_sg_prepare(): the table synced for the device (an import's exporter syncs for itself).</summary>
    private protected override void PrepareCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Attachment is null && b.Sgt is not null) Kernel.Dma.SyncSg(b.Device!, b.Sgt, b.Direction, toCpu: false);
    }

    /// <inheritdoc/>
    private protected override void FinishCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Attachment is null && b.Sgt is not null) Kernel.Dma.SyncSg(b.Device!, b.Sgt, b.Direction, toCpu: true);
    }
}

/// <summary>videobuf2-vmalloc.</summary>
public sealed class Vb2Vmalloc : Vb2MemOps
{
    internal Vb2Vmalloc(KernelContext k) : base(k) { }

    /// <inheritdoc/>
    public override string Name => "videobuf2_vmalloc";

    private sealed class Buf(Vb2MemOps ops, long size, DmaDirection dir) : Vb2MemBuffer(ops, null, size, dir)
    {
        public nint Vaddr;
        public bool Owned;                  // a vmalloc_user area (MMAP)
        public int[]? UserFrames;
        public nint UserMap;                // vm_map_ram of user pages
        internal Func<IReadOnlyList<(int Frame, int Order)>> BlocksOf = () => [];
        internal override IReadOnlyList<(int Frame, int Order)> Blocks => BlocksOf();
    }

    private Buf Of(Vb2MemBuffer buf) => buf as Buf ?? throw Fail(-22, $"a plane of {buf?.Ops.Name ?? "no allocator"} given to {Name}");

    /// <summary>vb2_vmalloc_alloc(): vmalloc_user of the page-aligned size.</summary>
    private protected override Vb2MemBuffer? AllocCore(Device? dev, long size, DmaDirection dir, Gfp gfp)
    {
        long real = (size + PhysicalMemory.PageSize - 1) & ~(long)(PhysicalMemory.PageSize - 1);
        nint v = Kernel.VmallocUser((nuint)real, "vb2_vmalloc_alloc");
        if (v == 0) { Kernel.Log.Err($"{Name}: vmalloc of size {real} failed"); return null; }
        var b = new Buf(this, real, dir) { Vaddr = v, Owned = true };
        int pages = (int)(real >> PhysicalMemory.PageShift);
        b.BlocksOf = () => Enumerable.Range(0, pages).Select(i => (Kernel.VmallocSpaceOrNull!.FrameAt(v + ((nint)i << PhysicalMemory.PageShift)), 0)).ToArray();
        return b;
    }

    /// <inheritdoc/>
    private protected override void PutCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (b.Release()) Kernel.Vfree(b.Vaddr, "vb2_vmalloc_put");
    }

    /// <summary>vb2_vmalloc_get_userptr(): the pinned pages mapped together with vm_map_ram.</summary>
    private protected override Vb2MemBuffer GetUserptrCore(Device? dev, nint vaddr, long size, DmaDirection dir)
    {
        var vm = Kernel.VmallocSpaceOrNull ?? throw NoRemap.Refuse(Kernel.Log, "vb2_vmalloc_get_userptr (vm_map_ram)");
        var frames = PinUserPages(vaddr, size);
        nint map = vm.Vmap(frames, VmFlags.Map, CallSite.Kernel("vm_map_ram"));
        if (map == 0) { UnpinUserPages(frames); throw Fail(-12, "vm_map_ram failed"); }
        var b = new Buf(this, size, dir) { UserFrames = frames, UserMap = map, Vaddr = map + (nint)(vaddr & (PhysicalMemory.PageSize - 1)) };
        b.BlocksOf = () => frames.Select(f => (f, 0)).ToArray();
        return b;
    }

    /// <inheritdoc/>
    private protected override void PutUserptrCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        Kernel.VmallocSpaceOrNull!.Free(b.UserMap, freePages: false, CallSite.Kernel("vm_unmap_ram"));
        UnpinUserPages(b.UserFrames!);
    }

    /// <summary>vb2_vmalloc_attach_dmabuf(): no device is attached; the buffer is vmapped at map time.</summary>
    private protected override Vb2MemBuffer AttachDmabufCore(Device? dev, DmaBuf dbuf, long size, DmaDirection dir)
    {
        CheckDmabufSize(dbuf, size);
        var b = new Buf(this, size, dir) { DmaBuf = dbuf };
        b.BlocksOf = () => dbuf.Blocks;
        return b;
    }

    /// <summary>vb2_vmalloc_map_dmabuf(): dma_buf_vmap; -EFAULT when it fails.</summary>
    private protected override int MapDmabufCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        try { b.Vaddr = b.DmaBuf!.Vmap(); }
        catch (DmaBufException) { return -14; }
        b.DmabufMapped = true;
        return 0;
    }

    /// <inheritdoc/>
    private protected override void UnmapDmabufCore(Vb2MemBuffer buf)
    {
        var b = Of(buf);
        if (!b.DmabufMapped) return;
        b.DmaBuf!.Vunmap(b.Vaddr);
        b.Vaddr = 0;
        b.DmabufMapped = false;
    }

    /// <summary>vb2_vmalloc_get_dmabuf().</summary>
    private protected override DmaBuf? GetDmabufCore(Vb2MemBuffer buf, int flags)
    {
        var b = Of(buf);
        if (!b.Owned) return null;
        buf.Get();
        return Kernel.DmaBufs.Export(new Vb2DmaBufExporter(b, () => 0), b.Size, flags);
    }

    /// <inheritdoc/>
    private protected override nint VaddrCore(Vb2MemBuffer buf) => Of(buf).Vaddr;

    /// <summary>vmalloc planes have no device view.</summary>
    private protected override Vb2Cookie CookieCore(Vb2MemBuffer buf) => default;

    /// <summary>Nothing to sync: the CPU is the only user.</summary>
    private protected override void PrepareCore(Vb2MemBuffer buf) { }

    /// <inheritdoc/>
    private protected override void FinishCore(Vb2MemBuffer buf) { }
}
