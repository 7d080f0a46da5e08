// A DMA-BUF (struct dma_buf): a buffer of page blocks exported by a heap, shared by reference between
// users and devices. Attachments map it into a device's address space through the DMA API (IOMMU-aware),
// vmap gives the CPU one contiguous view, begin/end_cpu_access pass it between CPU and devices. The last
// reference releases it to its exporter. Every misuse is reported and refused with nothing changed.
using Kmem.Core;
using Kmem.Dma;
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem;

/// <summary>A device attached to a <see cref="DmaBuf"/> (<c>struct dma_buf_attachment</c>).</summary>
public sealed class DmaBufAttachment
{
    internal DmaBufAttachment(DmaBuf buf, Device dev, SgTable table)
    {
        Buffer = buf;
        Device = dev;
        Table = table;
    }

    /// <summary>The buffer.</summary>
    public DmaBuf Buffer { get; }

    /// <summary>The attached device.</summary>
    public Device Device { get; }

    /// <summary>The attachment's own copy of the buffer's table (<c>dup_sg_table()</c>), mapped by <see cref="DmaBuf.MapAttachment"/>.</summary>
    internal SgTable Table { get; }

    private DmaDirection? _mappedDirection;

    /// <summary>The direction of the current mapping, or null while unmapped.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed.</exception>
    public DmaDirection? MappedDirection
    {
        get
        {
            Buffer.Life.ThrowIfDead();
            return _mappedDirection;
        }
        internal set => _mappedDirection = value;
    }

    /// <summary>The mapping's direction without the machine check (the buffer's own bookkeeping).</summary>
    internal DmaDirection? Mapped => _mappedDirection;

    internal bool Detached { get; set; }
}

/// <summary>What a <see cref="DmaBufException"/> reports, with the kernel's errno.</summary>
public sealed class DmaBufException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public DmaBufException(int errno, string message) : base(message) => Errno = errno;

    /// <summary>The negative errno the kernel returns for this case (-EINVAL, -EBADF, -EBUSY, -ENOMEM …).</summary>
    public int Errno { get; }
}

/// <summary>
/// A DMA-BUF: <see cref="Size"/> bytes of page blocks exported by a heap (<see cref="ExpName"/>), with a unique
/// inode number and a reference count (its file's count). Hold it through a descriptor of
/// <see cref="Machine.DmaBufFds"/> or a reference taken with <see cref="Get"/>; <see cref="Put"/> drops one.
/// </summary>
public sealed unsafe class DmaBuf
{
    /// <summary>DMA_BUF_NAME_LEN: the longest name.</summary>
    public const int NameMaxLength = 32;

    private readonly DmaBufCore _core;
    private readonly List<DmaBufAttachment> _attachments = [];
    private readonly Lock _lock = new();
    private int _refs = 1;
    private int _vmapCount;
    private bool _spanMapped;
    private nint _vaddr;
    private int _cpuAccess;            // begin_cpu_access calls not yet ended
    private DmaDirection _cpuDirection;
    private string? _name;
    private readonly DmaResv _resv;

    internal DmaBuf(DmaBufCore core, DmaBufExporter exporter, long size, int fdFlags, ulong ino)
    {
        _core = core;
        _resv = new DmaResv(core.Version);
        Exporter = exporter;
        Size = size;
        FFlags = fdFlags & (DmaBufCore.OAccMode | DmaBufCore.ONonBlock);
        Ino = ino;
    }

    internal DmaBufExporter Exporter { get; }

    /// <summary>The machine's life: every member but the fixed identity (size, inode, flags, exporter) throws once it is dead.</summary>
    internal KernelLife Life => _core.Life;

    /// <summary>The size in bytes (a whole number of pages).</summary>
    public long Size { get; }

    /// <summary>The exporter's name (<c>exp_name</c>): the heap's name.</summary>
    public string ExpName => Exporter.Name;

    /// <summary>The inode number of the buffer's file.</summary>
    public ulong Ino { get; }

    /// <summary>The file's flags (<c>f_flags</c>, masked to O_ACCMODE | O_NONBLOCK).</summary>
    public int FFlags { get; }

    /// <summary>The file's mode (<c>f_mode</c>): FMODE_OPENED | FMODE_LSEEK and read/write from the access mode.</summary>
    public int FMode => 0x80004 | ((FFlags & DmaBufCore.OAccMode) + 1 & 3);

    /// <summary>The buffer's name (<c>DMA_BUF_SET_NAME</c>), or null.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Size"/>, <see cref="ExpName"/>, <see cref="Ino"/>, <see cref="FFlags"/> and <see cref="FMode"/>).</exception>
    public string? Name
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DmaBuf, _lock);
            lock (_lock) return _name;
        }
    }

    /// <summary>References (<c>file_count()</c>).</summary>
    public int RefCount
    {
        get
        {
            Life.ThrowIfDead();
            return Volatile.Read(ref _refs);
        }
    }

    /// <summary>True once the last reference has gone.</summary>
    public bool Released
    {
        get
        {
            Life.ThrowIfDead();
            return IsReleased;
        }
    }

    private bool IsReleased => Volatile.Read(ref _refs) <= 0;

    /// <summary>The attachments, oldest first.</summary>
    public IReadOnlyList<DmaBufAttachment> Attachments
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DmaBuf, _lock);
            lock (_lock) return [.. _attachments];
        }
    }

    /// <summary>The page blocks behind the buffer, in order (frame, order).</summary>
    internal IReadOnlyList<(int Frame, int Order)> Blocks => Exporter.Blocks;

    /// <summary>The buffer's pages as <see cref="Page"/> handles of each block's first page, with their orders.</summary>
    public IReadOnlyList<(Page Page, int Order)> PageBlocks
    {
        get
        {
            Life.ThrowIfDead();
            return Exporter.Blocks.Select(b => (_core.PageOf(b.Frame), b.Order)).ToArray();
        }
    }

    private void CheckLive(string what)
    {
        Life.ThrowIfDead();
        if (IsReleased) Fail(-22, $"{what}: the dma-buf (ino {Ino}) has been released");
    }

    private void Fail(int errno, string what)
    {
        _core.Log.Err($"dma-buf: {what}");
        throw new DmaBufException(errno, what);
    }

    // ================================================================== references

    /// <summary>get_dma_buf(): one more reference.</summary>
    public DmaBuf Get()
    {
        Life.ThrowIfDead();
        while (true)
        {
            int r = Volatile.Read(ref _refs);
            if (r <= 0) Fail(-22, $"get_dma_buf: the dma-buf (ino {Ino}) has been released");
            if (Interlocked.CompareExchange(ref _refs, r + 1, r) == r) return this;
        }
    }

    /// <summary>dma_buf_put(): drops a reference; the last one releases the buffer to its exporter.</summary>
    public void Put()
    {
        using var life = Life.Enter();                    // the last reference frees the memory: shutdown waits for it
        while (true)
        {
            int r = Volatile.Read(ref _refs);
            if (r <= 0) Fail(-22, $"dma_buf_put: the dma-buf (ino {Ino}) has no reference left (put after release)");
            if (Interlocked.CompareExchange(ref _refs, r - 1, r) != r) continue;
            if (r == 1) Release();
            return;
        }
    }

    private void Release()
    {
        // dma_buf_release(): attachments and vmaps should be gone; what is left is cleaned up and reported.
        List<DmaBufAttachment> left;
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) { left = [.. _attachments]; _attachments.Clear(); }
        foreach (var a in left)
        {
            _core.Log.Warn($"dma-buf: ino {Ino} released with {a.Device.Name} still attached");
            if (a.Mapped is { } d) _core.Dma.UnmapSg(a.Device, a.Table, d);
            a.Detached = true;
        }
        if (_vaddr != 0)
        {
            _core.Vmalloc?.Free(_vaddr, freePages: false, CallSite.Kernel("dma_buf_release"));
            _vaddr = 0;
        }
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) _resv.Clear();                      // dma_resv_fini() puts every fence
        _core.Remove(this);
        try
        {
            Exporter.Release(this);
        }
        catch (Exception e)
        {
            // dma_buf_release() cannot fail: the buffer is gone from every list either way; the exporter's failure is
            // reported and goes no further (a put runs inside descriptor closes, queue releases and frees).
            _core.Pages.Warn($"WARNING: dma_buf_release: exporter {ExpName}: release of ino {Ino} threw {e.GetType().Name}: {e.Message}");
        }
    }

    // ================================================================== name

    /// <summary>
    /// DMA_BUF_SET_NAME: at most <see cref="NameMaxLength"/> bytes (-EINVAL beyond); refused with -EBUSY while
    /// devices are attached, as 5.10 does.
    /// </summary>
    public void SetName(string name)
    {
        Life.ThrowIfDead();
        ArgumentNullException.ThrowIfNull(name);
        CheckLive("DMA_BUF_SET_NAME");
        if (System.Text.Encoding.UTF8.GetByteCount(name) > NameMaxLength) Fail(-22, $"DMA_BUF_SET_NAME: '{name}' is longer than {NameMaxLength} bytes");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            if (_attachments.Count > 0) Fail(-16, $"DMA_BUF_SET_NAME: ino {Ino} has devices attached");
            _name = name;
        }
    }

    /// <summary>Sets the name without the attachment rule (the exporter's default name at export).</summary>
    internal void SetNameInternal(string? name)
    {
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) _name = name;
    }

    // ================================================================== fences

    /// <summary>
    /// dma_resv_add_fence() (dma_resv_add_excl_fence()/dma_resv_add_shared_fence() before 5.19): attaches a fence to the
    /// buffer's reservation object. Before 5.19 a <see cref="DmaResvUsage.Write"/> fence becomes the exclusive fence and
    /// drops the shared ones, and <see cref="DmaResvUsage.Read"/> adds a shared fence; a fence of the same context, or a
    /// signalled one, is replaced in place (from 5.19 only by one of no stronger usage).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="fence"/> is null.</exception>
    /// <exception cref="DmaBufException">The buffer is released, or the usage does not exist in this release (-EINVAL);
    /// reported in the log, nothing attached.</exception>
    public void AddFence(DmaFence fence, DmaResvUsage usage)
    {
        Life.ThrowIfDead();
        ArgumentNullException.ThrowIfNull(fence);
        CheckLive("dma_resv_add_fence");
        if (!Enum.IsDefined(usage)) Fail(-22, $"dma_resv_add_fence: {(int)usage} is not a dma_resv_usage");
        if (!_resv.HasUsages && usage is not (DmaResvUsage.Write or DmaResvUsage.Read))
            Fail(-22, $"dma_resv_add_fence: DMA_RESV_USAGE_{usage.ToString().ToUpperInvariant()} came in 5.19; this kernel has only the exclusive (write) and shared (read) fences");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) _resv.Add(fence, usage);
    }

    /// <summary>The buffer's fences in the order bufinfo lists them, with their usage (before 5.19 the exclusive fence
    /// first, as <see cref="DmaResvUsage.Write"/>, then the shared ones as <see cref="DmaResvUsage.Read"/>).</summary>
    public IReadOnlyList<(DmaFence Fence, DmaResvUsage Usage)> Fences
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DmaBuf, _lock);
            lock (_lock) return _resv.Fences();
        }
    }

    /// <summary>dma_resv_test_signaled(): true when every fence of <paramref name="usage"/> or a stronger usage has signalled
    /// (<see cref="DmaResvUsage.Read"/> asks about readers and writers, <see cref="DmaResvUsage.Write"/> about writers).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The usage is not one of <see cref="DmaResvUsage"/>.</exception>
    public bool FencesSignaled(DmaResvUsage usage)
    {
        Life.ThrowIfDead();
        if (!Enum.IsDefined(usage)) throw new ArgumentOutOfRangeException(nameof(usage), usage, "not a dma_resv_usage");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) return _resv.Signaled(usage);
    }

    /// <summary>The buffer's fence lines of bufinfo.</summary>
    internal void DescribeFences(System.Text.StringBuilder sb)
    {
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) _resv.Describe(sb);
    }

    // ================================================================== attachments

    /// <summary>dma_buf_attach(): attaches a device; the buffer is mapped for it by <see cref="MapAttachment"/>.</summary>
    /// <exception cref="DmaBufException">The buffer is released (-EINVAL), the device removed (-ENODEV) or another
    /// machine's (-EINVAL); reported in the log, nothing attached.</exception>
    public DmaBufAttachment Attach(Device dev)
    {
        Life.ThrowIfDead();
        ArgumentNullException.ThrowIfNull(dev);
        CheckLive("dma_buf_attach");
        if (dev.Removed) Fail(-19, $"dma_buf_attach: {dev.Name} has been removed");
        if (dev.MachineId != _core.MachineId)
            Fail(-22, $"dma_buf_attach: {dev.Driver} {dev.Name} is a device of another machine; ino {Ino} cannot be mapped for it");
        var a = new DmaBufAttachment(this, dev, Exporter.TableForAttachment());
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock) _attachments.Add(a);
        return a;
    }

    /// <summary>dma_buf_detach(): an attachment still mapped is refused (-EBUSY); one not of this buffer, -EINVAL.</summary>
    public void Detach(DmaBufAttachment a)
    {
        Life.ThrowIfDead();
        ArgumentNullException.ThrowIfNull(a);
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            if (a.Buffer != this || a.Detached || !_attachments.Contains(a)) Fail(-22, $"dma_buf_detach: {a.Device.Name} is not attached to ino {Ino}");
            if (a.Mapped is not null) Fail(-16, $"dma_buf_detach: {a.Device.Name} still has ino {Ino} mapped; unmap it first");
            _attachments.Remove(a);
            a.Detached = true;
        }
    }

    /// <summary>
    /// dma_buf_map_attachment(): maps the buffer for the attachment's device (dma_map_sgtable: an IOMMU gives one
    /// range) and returns the table with the device addresses. A second map of a mapped attachment is -EBUSY.
    /// </summary>
    public SgTable MapAttachment(DmaBufAttachment a, DmaDirection dir)
    {
        using var life = Life.Enter();
        ArgumentNullException.ThrowIfNull(a);
        CheckLive("dma_buf_map_attachment");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            if (a.Buffer != this || a.Detached) Fail(-22, $"dma_buf_map_attachment: {a.Device.Name} is not attached to ino {Ino}");
            if (a.Mapped is not null) Fail(-16, $"dma_buf_map_attachment: ino {Ino} is already mapped for {a.Device.Name}");
            if (_core.Dma.MapSg(a.Device, a.Table, dir, CallSite.Kernel("dma_buf_map_attachment")) == 0)
                Fail(-12, $"dma_buf_map_attachment: {a.Device.Name} cannot map ino {Ino}");
            a.MappedDirection = dir;
            return a.Table;
        }
    }

    /// <summary>dma_buf_unmap_attachment(): the table must be the one returned by the map, with the same direction.</summary>
    public void UnmapAttachment(DmaBufAttachment a, SgTable table, DmaDirection dir)
    {
        using var life = Life.Enter();
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(table);
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            if (a.Buffer != this || a.Detached) Fail(-22, $"dma_buf_unmap_attachment: {a.Device.Name} is not attached to ino {Ino}");
            if (a.Mapped is null || table != a.Table) Fail(-22, $"dma_buf_unmap_attachment: ino {Ino} is not mapped for {a.Device.Name} with that table");
            if (a.Mapped != dir) Fail(-22, $"dma_buf_unmap_attachment: ino {Ino} was mapped {a.Mapped} for {a.Device.Name}, not {dir}");
            _core.Dma.UnmapSg(a.Device, a.Table, dir);
            a.MappedDirection = null;
        }
    }

    // ================================================================== CPU access

    /// <summary>dma_buf_vmap(): one virtually contiguous CPU view (counted; the first call maps, through vmalloc).</summary>
    public nint Vmap()
    {
        using var life = Life.Enter();
        CheckLive("dma_buf_vmap");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            nint v = MapLocked();
            _vmapCount++;
            return v;
        }
    }

    /// <summary>The view's address, mapping it first if needed (the linear address of a contiguous buffer).</summary>
    private nint MapLocked()
    {
        nint v = Exporter.ContiguousAddress();
        if (v != 0 || _vaddr != 0) return v != 0 ? v : _vaddr;
        var vm = _core.Vmalloc ?? throw NoRemap.Refuse(_core.Log, $"dma_buf_vmap of ino {Ino} ({Exporter.Blocks.Count} separate blocks)");
        var frames = new int[Size >> PhysicalMemory.PageShift];
        int k = 0;
        foreach (var (f, o) in Exporter.Blocks)
            for (int i = 0; i < 1 << o; i++) frames[k++] = f + i;
        v = vm.Vmap(frames, VmFlags.Map, CallSite.Kernel("dma_buf_vmap"));
        if (v == 0) Fail(-12, $"dma_buf_vmap: no vmalloc space for ino {Ino}");
        _vaddr = v;
        return v;
    }

    /// <summary>dma_buf_vunmap(): the last call removes the view; an address that is not the buffer's view is -EINVAL.</summary>
    public void Vunmap(nint vaddr)
    {
        using var life = Life.Enter();
        CheckLive("dma_buf_vunmap");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            nint mine = _vaddr != 0 ? _vaddr : Exporter.ContiguousAddress();
            if (_vmapCount == 0 || vaddr != mine) Fail(-22, $"dma_buf_vunmap: 0x{vaddr:x} is not a vmap of ino {Ino}");
            if (--_vmapCount > 0 || _spanMapped || _vaddr == 0) return;
            _core.Vmalloc!.Free(_vaddr, freePages: false, CallSite.Kernel("dma_buf_vunmap"));
            _vaddr = 0;
        }
    }

    /// <summary>
    /// The CPU view as a span: the linear map for a physically contiguous buffer, else its vmap (taken here and
    /// kept until the buffer is released, as a driver's long-lived kernel mapping; it does not count as a vmap).
    /// </summary>
    public Span<byte> Span
    {
        get
        {
            using var life = Life.Enter();
            CheckLive("dma-buf CPU view");
            nint v;
            LockOrder.Enter(LockRank.DmaBuf, _lock);
            lock (_lock)
            {
                v = MapLocked();
                if (Exporter.ContiguousAddress() == 0) _spanMapped = true;
            }
            return new Span<byte>((void*)v, checked((int)Size));
        }
    }

    /// <summary>
    /// dma_buf_begin_cpu_access() (DMA_BUF_IOCTL_SYNC START): the CPU may touch the buffer in that direction until
    /// <see cref="EndCpuAccess"/>; the mapped attachments are synced for the CPU.
    /// </summary>
    public void BeginCpuAccess(DmaDirection dir)
    {
        using var life = Life.Enter();
        CheckLive("dma_buf_begin_cpu_access");
        if (dir == DmaDirection.None) Fail(-22, "dma_buf_begin_cpu_access: DMA_NONE is not a direction");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            if (_cpuAccess > 0 && dir != _cpuDirection) Fail(-22, $"dma_buf_begin_cpu_access: ino {Ino} is already open for the CPU as {_cpuDirection}");
            foreach (var a in _attachments)
                if (a.Mapped is { } d && !Exporter.Uncached) _core.Dma.SyncSg(a.Device, a.Table, d, toCpu: true);
            _cpuDirection = dir;
            _cpuAccess++;
        }
    }

    /// <summary>dma_buf_end_cpu_access() (SYNC END): must match a begin with the same direction; the mapped attachments go back to their devices.</summary>
    public void EndCpuAccess(DmaDirection dir)
    {
        using var life = Life.Enter();
        CheckLive("dma_buf_end_cpu_access");
        LockOrder.Enter(LockRank.DmaBuf, _lock);
        lock (_lock)
        {
            if (_cpuAccess == 0) Fail(-22, $"dma_buf_end_cpu_access: ino {Ino} was not opened for the CPU (no begin_cpu_access)");
            if (dir != _cpuDirection) Fail(-22, $"dma_buf_end_cpu_access: ino {Ino} was opened as {_cpuDirection}, ended as {dir}");
            if (--_cpuAccess == 0)
                foreach (var a in _attachments)
                    if (a.Mapped is { } d && !Exporter.Uncached) _core.Dma.SyncSg(a.Device, a.Table, d, toCpu: false);
        }
    }

    /// <summary>True between <see cref="BeginCpuAccess"/> and the matching <see cref="EndCpuAccess"/>.</summary>
    public bool InCpuAccess
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DmaBuf, _lock);
            lock (_lock) return _cpuAccess > 0;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"dmabuf ino {Ino} ({ExpName}, {Size} bytes{(Volatile.Read(ref _name) is { } n ? ", " + n : "")})";
}
