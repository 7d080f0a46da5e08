// The DRM device of a machine's display controller (rockchip-drm's card0) and its open files: dumb buffers
// with rockchip_gem_dumb_create's pitch and size, per-file handle tables (lowest free handle from 1),
// mmap offsets from the device's offset space, flink names, PRIME export and import with drm_prime.c's
// reference rules, and the debugfs views gem_names and mm_dump.
using System.Text;
using Kmem.Core;
using Kmem.Drm;
using Kmem.Kernel;
using Kmem.Physical;

namespace Kmem;

/// <summary>What a <see cref="DrmException"/> reports, with the errno the ioctl returns.</summary>
public sealed class DrmException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public DrmException(int errno, string message) : base(message) => Errno = errno;

    /// <summary>The negative errno (-EINVAL, -ENOENT, -ENOMEM, -EACCES …).</summary>
    public int Errno { get; }
}

/// <summary>DRM_IOCTL_MODE_CREATE_DUMB's answer: the new handle, the line pitch and the size in bytes.</summary>
public readonly record struct DumbBuffer(int Handle, uint Pitch, ulong Size);

/// <summary>
/// The DRM device (<c>/dev/dri/card0</c>) bound to a display controller. A display behind an IOMMU gets buffers of
/// separate pages mapped in the driver's own 32-bit IOMMU space; one without gets physically contiguous buffers.
/// Open files with <see cref="Open"/>.
/// </summary>
public sealed class DrmDevice
{
    /// <summary>DRM_FILE_PAGE_OFFSET_START on 64-bit kernels, in pages.</summary>
    public const ulong FilePageOffsetStart64 = (0xFFFFFFFFUL >> PhysicalMemory.PageShift) + 1;
    /// <summary>DRM_FILE_PAGE_OFFSET_START on 32-bit kernels, in pages.</summary>
    public const ulong FilePageOffsetStart32 = (0xFFFFFFFUL >> PhysicalMemory.PageShift) + 1;

    private readonly List<GemObject> _objects = [];
    private readonly SortedDictionary<int, GemObject> _names = [];     // object_name_idr
    private readonly Dictionary<ulong, GemObject> _byOffset = [];      // the vma offset manager's index: fake offset -> object
    private readonly List<DrmFile> _files = [];
    internal readonly Lock Lock = new();                                // object_name_lock and friends

    internal DrmDevice(KernelContext k, Device display)
    {
        Kernel = k;
        Display = display;
        bool is64 = k.Facts.Is64Bit;
        ulong start = is64 ? FilePageOffsetStart64 : FilePageOffsetStart32;
        ulong size = is64 ? (0xFFFFFFFFUL >> PhysicalMemory.PageShift) * 256 : (0xFFFFFFFUL >> PhysicalMemory.PageShift) * 16;
        OffsetSpace = new DrmMm(start, size);
        // rockchip_drm_init_iommu(): drm_mm over the domain's aperture, here the display's 32-bit (or narrower) mask.
        if (display.HasIommu) IommuSpace = new DrmMm(0, (Math.Min(display.DmaMask, 0xFFFFFFFFUL) + 1) >> PhysicalMemory.PageShift);
        k.Proc.Register("/sys/kernel/debug/dri/0/gem_names", GemNames);
        k.Proc.Register("/sys/kernel/debug/dri/0/mm_dump", () => IommuSpace is null ? "" : MmDump());
        k.Proc.Register("/sys/kernel/debug/dri/0/gem_objects", GemObjects);
    }

    /// <summary>The kernel the device allocates from.</summary>
    internal KernelContext Kernel { get; }

    /// <summary>The machine's life: every member but the fixed identity (display, driver name, IOMMU use) throws once it is dead.</summary>
    internal KernelLife Life => Kernel.Life;

    /// <summary>The display controller the device drives (its DMA, its IOMMU).</summary>
    public Device Display { get; }

    /// <summary>The driver's name.</summary>
    public string DriverName => "rockchip";

    /// <summary>True when buffers are separate pages behind the display's IOMMU.</summary>
    public bool UsesIommu => IommuSpace is not null;

    internal DrmMm OffsetSpace { get; }
    internal DrmMm? IommuSpace { get; }

    /// <summary>Every live GEM object, oldest first.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for <see cref="Files"/> and <see cref="Open"/>).</exception>
    public IReadOnlyList<GemObject> Objects
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DrmDevice, Lock);
            lock (Lock) return [.. _objects];
        }
    }

    /// <summary>The open files.</summary>
    public IReadOnlyList<DrmFile> Files
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DrmDevice, Lock);
            lock (Lock) return [.. _files];
        }
    }

    /// <summary>open("/dev/dri/card0"): a new file with its own handle table.</summary>
    public DrmFile Open()
    {
        Life.ThrowIfDead();
        var f = new DrmFile(this);
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock) _files.Add(f);
        return f;
    }

    internal void FileClosed(DrmFile f)
    {
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock) _files.Remove(f);
    }

    internal DrmException Fail(int errno, string what)
    {
        Kernel.Log.Err($"[drm:{what}");
        return new DrmException(errno, what);
    }

    /// <summary>rockchip_gem_create_object(): an object of <paramref name="size"/> bytes rounded up to pages, or null.</summary>
    internal GemObject? CreateObject(ulong size)
    {
        size = (size + PhysicalMemory.PageSize - 1) & ~(ulong)(PhysicalMemory.PageSize - 1);
        var obj = new GemObject(this, (long)size, UsesIommu ? GemBacking.IommuPages : GemBacking.Contiguous);
        if (!obj.Allocate()) return null;
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock) _objects.Add(obj);
        return obj;
    }

    /// <summary>A GEM object over a foreign dma-buf (the caller holds a reference on <paramref name="buf"/>); throws with the errno.</summary>
    internal GemObject ImportObject(DmaBuf buf)
    {
        var obj = new GemObject(this, buf.Size, GemBacking.Imported);
        int err = obj.Import(buf);
        if (err != 0) throw new DrmException(err, $"rockchip_gem_prime_import_sg_table: cannot import dma-buf ino {buf.Ino} ({buf.ExpName}) for {Display.Name}");
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock) _objects.Add(obj);
        return obj;
    }

    /// <summary>drm_vma_offset_add's index: the object now answers mmap at its fake offset.</summary>
    internal void OffsetCreated(GemObject obj)
    {
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock) _byOffset.Add(obj.MmapOffset, obj);
    }

    /// <summary>drm_vma_offset_exact_lookup_locked(): the object whose fake offset starts at <paramref name="offset"/>; the caller holds <see cref="Lock"/>.</summary>
    internal GemObject? ObjectAtOffsetLocked(ulong offset) => _byOffset.GetValueOrDefault(offset);

    internal void ObjectFreed(GemObject obj)
    {
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock)
        {
            _objects.Remove(obj);
            if (obj.Name != 0) { _names.Remove(obj.Name); obj.Name = 0; }
            if (obj.MmapOffset != 0) _byOffset.Remove(obj.MmapOffset);
        }
        if (obj.MmapOffset != 0) OffsetSpace.Remove(obj.MmapOffset >> PhysicalMemory.PageShift);
    }

    /// <summary>drm_gem_flink_ioctl's name: the object's name, or the lowest free one from 1.</summary>
    internal int NameOf(GemObject obj)
    {
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock)
        {
            if (obj.Name != 0) return obj.Name;
            int n = 1;
            while (_names.ContainsKey(n)) n++;
            _names.Add(n, obj);
            obj.Name = n;
            return n;
        }
    }

    internal GemObject? ByName(int name)
    {
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock) return _names.GetValueOrDefault(name);
    }

    /// <summary>drm_gem_object_handle_free(): the last handle went, so the name goes too.</summary>
    internal void DropName(GemObject obj)
    {
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock)
            if (obj.Name != 0) { _names.Remove(obj.Name); obj.Name = 0; }
    }

    /// <summary>The GEM object behind a dma-buf this device exported, or null.</summary>
    internal GemObject? OwnObjectOf(DmaBuf buf) =>
        buf.Exporter is GemDmaBufExporter g && g.Object.Drm == this ? g.Object : null;

    // ================================================================== views

    /// <summary>gem_names (drm_info.c's format): each named object's name, size, handle count and references.</summary>
    private string GemNames()
    {
        var sb = new StringBuilder("  name     size handles refcount\n");
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock)
            foreach (var (name, o) in _names)
                sb.Append($"{name,6} {o.Size,8} {o.HandleCount,7} {o.RefCount,8}\n");
        return sb.ToString();
    }

    /// <summary>rockchip_drm_mm_dump(): drm_mm_print of the IOMMU space, in bytes.</summary>
    private string MmDump() => IommuSpace!.Print(PhysicalMemory.PageShift);

    /// <summary>Kmem's own listing: every object with its backing, device address, handles, references and PRIME state.</summary>
    private string GemObjects()
    {
        var sb = new StringBuilder("    size  backing      dma_addr            handles refs name prime\n");
        LockOrder.Enter(LockRank.DrmDevice, Lock);
        lock (Lock)
            foreach (var o in _objects)
            {
                string prime = o.ImportAttach is { } a ? $"imported ino {a.Buffer.Ino} ({a.Buffer.ExpName})" : o.ExportedDmaBuf is { } b ? $"exported ino {b.Ino}" : "-";
                sb.Append($"{o.Size,8}  {o.Backing,-11}  0x{o.DmaAddress:x16} {o.HandleCount,7} {o.RefCount,4} {o.Name,4} {prime}\n");
            }
        return sb.ToString();
    }
}
