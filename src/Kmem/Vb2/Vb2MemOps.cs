// The videobuf2 memory-operations interface (struct vb2_mem_ops): how a queue's planes get memory (MMAP alloc,
// USERPTR pinning of caller pages, DMABUF import), how they are exported, mapped for the CPU and synced around
// DMA. The three allocators of drivers/media/common/videobuf2 implement it: dma-contig, dma-sg, vmalloc.
using Kmem.Core;
using Kmem.Kernel;
using Kmem.Physical;

namespace Kmem;

/// <summary>A plane's device view: the DMA address (dma-contig), the mapped table (dma-sg), or neither (vmalloc).</summary>
public readonly record struct Vb2Cookie(ulong DmaAddress, SgTable? Table);

/// <summary>The private state of one plane's memory (<c>buf_priv</c>); what it holds depends on the allocator.</summary>
public abstract class Vb2MemBuffer
{
    private int _refs = 1;

    internal Vb2MemBuffer(Vb2MemOps ops, Device? dev, long size, DmaDirection dir)
    {
        Ops = ops;
        Device = dev;
        Size = size;
        Direction = dir;
    }

    /// <summary>The allocator.</summary>
    public Vb2MemOps Ops { get; }

    /// <summary>The device that does DMA to the plane (none for vmalloc).</summary>
    public Device? Device { get; }

    /// <summary>The plane's size in bytes.</summary>
    public long Size { get; }

    /// <summary>The queue's DMA direction.</summary>
    public DmaDirection Direction { get; }

    private DmaBuf? _dmaBuf;
    private DmaBufAttachment? _attachment;
    private bool _dmabufMapped;

    /// <summary>For an imported plane: the dma-buf.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for <see cref="Attachment"/> and <see cref="DmabufMapped"/>).</exception>
    public DmaBuf? DmaBuf { get { Ops.Life.ThrowIfDead(); return _dmaBuf; } internal set => _dmaBuf = value; }

    /// <summary>For an imported plane: the device's attachment to it (none for vmalloc).</summary>
    public DmaBufAttachment? Attachment { get { Ops.Life.ThrowIfDead(); return _attachment; } internal set => _attachment = value; }

    /// <summary>True while an imported plane is mapped (<c>dbuf_mapped</c>).</summary>
    public bool DmabufMapped { get { Ops.Life.ThrowIfDead(); return _dmabufMapped; } internal set => _dmabufMapped = value; }

    /// <summary>The page blocks behind the plane (frame, order), for export and checks.</summary>
    internal abstract IReadOnlyList<(int Frame, int Order)> Blocks { get; }

    internal int Refs => Volatile.Read(ref _refs);
    internal void Get() => Interlocked.Increment(ref _refs);
    internal bool Release() => Interlocked.Decrement(ref _refs) == 0;
}

/// <summary>
/// struct vb2_mem_ops: a queue's allocator. Instances belong to a machine (<see cref="Machine.Vb2DmaContig"/>,
/// <see cref="Machine.Vb2DmaSg"/>, <see cref="Machine.Vb2Vmalloc"/>). Failures raise <see cref="Vb2Exception"/>
/// with the errno the kernel's allocator returns, except <see cref="Alloc"/>, which returns null as the kernel does.
/// </summary>
public abstract class Vb2MemOps
{
    private protected Vb2MemOps(KernelContext k) => Kernel = k;

    /// <summary>The kernel the allocator takes memory from.</summary>
    internal KernelContext Kernel { get; }

    /// <summary>The allocator's module name (the exp_name of the dma-bufs it exports).</summary>
    public abstract string Name { get; }

    /// <summary>The machine's life: every member but <see cref="Name"/> throws <see cref="ObjectDisposedException"/> once it is dead.</summary>
    internal KernelLife Life => Kernel.Life;

    /// <summary>alloc: memory for an MMAP plane of <paramref name="size"/> bytes (rounded up to pages), or null.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Name"/>).</exception>
    public Vb2MemBuffer? Alloc(Device? dev, long size, DmaDirection dir, Gfp gfp)
    {
        using var life = Life.Enter();
        return AllocCore(dev, size, dir, gfp);
    }

    /// <summary>put: drops the plane's reference; the memory goes when exports and mappings are gone too.</summary>
    public void Put(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        PutCore(buf);
    }

    /// <summary>get_userptr: pins the caller's pages at <paramref name="vaddr"/> (a linear-map or vmalloc address of the machine).</summary>
    public Vb2MemBuffer GetUserptr(Device? dev, nint vaddr, long size, DmaDirection dir)
    {
        using var life = Life.Enter();
        return GetUserptrCore(dev, vaddr, size, dir);
    }

    /// <summary>put_userptr: unmaps and unpins.</summary>
    public void PutUserptr(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        PutUserptrCore(buf);
    }

    /// <summary>attach_dmabuf: attaches the device to a dma-buf of at least <paramref name="size"/> bytes (-EFAULT when smaller).</summary>
    public Vb2MemBuffer AttachDmabuf(Device? dev, DmaBuf dbuf, long size, DmaDirection dir)
    {
        using var life = Life.Enter();
        return AttachDmabufCore(dev, dbuf, size, dir);
    }

    /// <summary>detach_dmabuf: unmaps if needed and detaches the device (vmalloc attached none).</summary>
    public void DetachDmabuf(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        ArgumentNullException.ThrowIfNull(buf);
        if (buf.DmabufMapped) UnmapDmabuf(buf);
        if (buf.Attachment is { } a) buf.DmaBuf!.Detach(a);
    }

    /// <summary>map_dmabuf: pins the attached buffer for DMA; 0 or -errno.</summary>
    public int MapDmabuf(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        return MapDmabufCore(buf);
    }

    /// <summary>unmap_dmabuf.</summary>
    public void UnmapDmabuf(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        UnmapDmabufCore(buf);
    }

    /// <summary>get_dmabuf: exports an MMAP plane as a new dma-buf that holds the plane (null when the allocator cannot).</summary>
    public DmaBuf? GetDmabuf(Vb2MemBuffer buf, int flags)
    {
        using var life = Life.Enter();
        return GetDmabufCore(buf, flags);
    }

    /// <summary>vaddr: the kernel virtual address of the plane (mapping it on first use), or 0.</summary>
    public nint Vaddr(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        return VaddrCore(buf);
    }

    /// <summary>cookie: the plane's device view.</summary>
    public Vb2Cookie Cookie(Vb2MemBuffer buf)
    {
        Life.ThrowIfDead();
        return CookieCore(buf);
    }

    /// <summary>num_users: the plane's references (the queue's, each export's, each mapping's).</summary>
    public int NumUsers(Vb2MemBuffer buf)
    {
        Life.ThrowIfDead();
        ArgumentNullException.ThrowIfNull(buf);
        return buf.Refs;
    }

    /// <summary>prepare: caches synced for the device before DMA (none for an imported plane: its exporter does it).</summary>
    public void Prepare(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        PrepareCore(buf);
    }

    /// <summary>finish: caches synced for the CPU after DMA.</summary>
    public void Finish(Vb2MemBuffer buf)
    {
        using var life = Life.Enter();
        FinishCore(buf);
    }

    private protected abstract Vb2MemBuffer? AllocCore(Device? dev, long size, DmaDirection dir, Gfp gfp);
    private protected abstract void PutCore(Vb2MemBuffer buf);
    private protected abstract Vb2MemBuffer GetUserptrCore(Device? dev, nint vaddr, long size, DmaDirection dir);
    private protected abstract void PutUserptrCore(Vb2MemBuffer buf);
    private protected abstract Vb2MemBuffer AttachDmabufCore(Device? dev, DmaBuf dbuf, long size, DmaDirection dir);
    private protected abstract int MapDmabufCore(Vb2MemBuffer buf);
    private protected abstract void UnmapDmabufCore(Vb2MemBuffer buf);
    private protected abstract DmaBuf? GetDmabufCore(Vb2MemBuffer buf, int flags);
    private protected abstract nint VaddrCore(Vb2MemBuffer buf);
    private protected abstract Vb2Cookie CookieCore(Vb2MemBuffer buf);
    private protected abstract void PrepareCore(Vb2MemBuffer buf);
    private protected abstract void FinishCore(Vb2MemBuffer buf);

    /// <summary>attach_dmabuf's size rule: a dma-buf smaller than the plane is -EFAULT.</summary>
    private protected void CheckDmabufSize(DmaBuf dbuf, long size)
    {
        if (dbuf.Size < size) throw Fail(-14, $"dma-buf ino {dbuf.Ino} has {dbuf.Size} bytes, the plane needs {size}");
    }

    /// <summary>
    /// map_dmabuf's common part: the attached buffer mapped for the plane's direction. Returns 0 with the table, or the
    /// errno with a null table (already pinned: 0 and null, as the kernel's warning path).
    /// </summary>
    private protected int MapAttachment(Vb2MemBuffer b, bool pinned, out SgTable? table)
    {
        table = null;
        if (b.Attachment is null) { Kernel.Log.Err($"{Name}: trying to pin a non attached buffer"); return -22; }
        if (pinned) { Kernel.Log.Err($"{Name}: dmabuf buffer is already pinned"); return 0; }
        try { table = b.DmaBuf!.MapAttachment(b.Attachment, b.Direction); return 0; }
        catch (DmaBufException) { Kernel.Log.Err($"{Name}: Error getting dmabuf scatterlist"); return -22; }
    }

    private protected Vb2Exception Fail(int errno, string what)
    {
        Kernel.Log.Err($"{Name}: {what}");
        return new Vb2Exception(errno, what);
    }

    /// <summary>
    /// get_user_pages()/frame_vector for a caller's range: the frames of every page it touches, from the linear map or the
    /// vmalloc space; -EFAULT for an address that is neither.
    /// </summary>
    private protected int[] PinUserPages(nint vaddr, long size)
    {
        if (size <= 0) throw Fail(-22, "size is zero");
        nint first = vaddr & ~(nint)(PhysicalMemory.PageSize - 1);
        int count = (int)(((long)(vaddr - first) + size + PhysicalMemory.PageSize - 1) >> PhysicalMemory.PageShift);
        var frames = new int[count];
        var k = Kernel;
        for (int i = 0; i < count; i++)
        {
            nint a = first + (nint)((long)i << PhysicalMemory.PageShift);
            int idx = k.UserFrameAt(a);
            if (idx < 0) throw Fail(-14, $"failed to get user pages at 0x{a:x}");
            frames[i] = idx;
        }
        foreach (var f in frames) k.Pages.GetPage(f, "get_user_pages");
        return frames;
    }

    private protected void UnpinUserPages(int[] frames)
    {
        foreach (var f in frames) Kernel.Pages.PutPage(f, "put_user_pages");
    }

    /// <summary>A table of single pages (sg_alloc_table_from_pages merges the neighbours): one entry per run of frames.</summary>
    private protected SgTable TableOf(IReadOnlyList<int> frames, int offset, long size)
    {
        var entries = new List<(Page, int, int)>();
        long left = size;
        int i = 0;
        int off = offset;
        while (left > 0)
        {
            int start = i;
            long bytes = Math.Min(left, PhysicalMemory.PageSize - off);
            i++;
            while (left - bytes > 0 && i < frames.Count && frames[i] == frames[i - 1] + 1)
            {
                bytes += Math.Min(left - bytes, PhysicalMemory.PageSize);
                i++;
            }
            entries.Add((Kernel.PageOf(frames[start]), off, (int)bytes));
            left -= bytes;
            off = 0;
        }
        return new SgTable(entries);
    }
}
