// An open DRM file (struct drm_file): its GEM handle table and its PRIME table (dma-buf ↔ handle, each entry
// holding a dma-buf reference), and the ioctls that work on them: MODE_CREATE_DUMB, MODE_MAP_DUMB + mmap,
// GEM_CLOSE, GEM_FLINK / GEM_OPEN, PRIME_HANDLE_TO_FD / PRIME_FD_TO_HANDLE. Errors carry the ioctl's errno.
// Locks, outermost first (docs/architecture.md, "Lock order"): a GEM object's monitor → the device's lock
// (DrmDevice.Lock, which also guards this file's handles and PRIME table) → the dma-buf descriptor table and list.
using Kmem.Core;
using Kmem.Drm;
using Kmem.Physical;

namespace Kmem;

/// <summary>A file open on a <see cref="DrmDevice"/>. <see cref="Close"/> releases every handle it holds.</summary>
public sealed class DrmFile
{
    /// <summary>DRM_CLOEXEC (O_CLOEXEC) for <see cref="PrimeHandleToFd"/>.</summary>
    public const int Cloexec = 0x80000;
    /// <summary>DRM_RDWR (O_RDWR) for <see cref="PrimeHandleToFd"/>.</summary>
    public const int RdWr = 2;

    private readonly DrmDevice _drm;
    private readonly SortedDictionary<int, GemObject> _handles = [];          // object_idr
    private readonly Dictionary<GemObject, int> _handleCounts = [];          // the vma nodes' allow lists: handles per object
    private readonly Dictionary<DmaBuf, int> _prime = [];                     // prime.dmabufs
    private bool _closed;

    internal DrmFile(DrmDevice drm) => _drm = drm;

    /// <summary>The device.</summary>
    public DrmDevice Device => _drm;

    /// <summary>The handles and their objects, lowest first.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Device"/>).</exception>
    public IReadOnlyList<(int Handle, GemObject Object)> Handles
    {
        get
        {
            _drm.Life.ThrowIfDead();
            LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
            lock (_drm.Lock) return _handles.Select(kv => (kv.Key, kv.Value)).ToArray();
        }
    }

    /// <summary>The object of a handle (<c>drm_gem_object_lookup</c>); -ENOENT when there is none.</summary>
    public GemObject Lookup(int handle)
    {
        _drm.Life.ThrowIfDead();
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock) return LookupLocked(handle, "drm_gem_object_lookup");
    }

    private GemObject LookupLocked(int handle, string fn)
    {
        CheckOpen(fn);
        return _handles.TryGetValue(handle, out var o) ? o : throw _drm.Fail(-2, $"{fn}] no GEM object for handle {handle}");
    }

    private void CheckOpen(string fn)
    {
        if (_closed) throw _drm.Fail(-9, $"{fn}] the file has been closed");
    }

    /// <summary>drm_gem_handle_create_tail(): the lowest free handle from 1; the first handle of an object takes a reference.</summary>
    private int HandleCreateLocked(GemObject obj)
    {
        if (obj.HandleCount++ == 0) obj.Get();
        int h = 1;
        while (_handles.ContainsKey(h)) h++;
        _handles.Add(h, obj);
        _handleCounts[obj] = _handleCounts.GetValueOrDefault(obj) + 1;
        return h;
    }

    /// <summary>
    /// drm_gem_object_release_handle(): the file's PRIME entries for the object go, then the handle; the last handle of
    /// the object drops its name, its cached dma-buf and the handles' reference. Runs outside the device lock.
    /// </summary>
    private void ReleaseHandle(GemObject obj)
    {
        var puts = new List<DmaBuf>();
        bool last;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock)
        {
            foreach (var b in new[] { obj.ImportAttach?.Buffer, obj.ExportedDmaBuf })
                if (b is not null && _prime.Remove(b)) puts.Add(b);
            last = --obj.HandleCount == 0;
            if (last)
            {
                if (obj.ExportedDmaBuf is { } cached) { puts.Add(cached); obj.ExportedDmaBuf = null; }
            }
        }
        if (last) _drm.DropName(obj);
        foreach (var b in puts) b.Put();
        if (last) obj.Put();
    }

    // ================================================================== dumb buffers

    /// <summary>
    /// DRM_IOCTL_MODE_CREATE_DUMB: drm_mode_create_dumb's checks, then rockchip_gem_dumb_create: pitch = width ×
    /// ⌈bpp/8⌉ aligned to 64 bytes (for the Mali GPU), size = pitch × height, the object rounded up to pages.
    /// </summary>
    /// <exception cref="DrmException">-EINVAL for a zero or overflowing geometry, -ENOMEM when the memory cannot be had.</exception>
    public DumbBuffer CreateDumb(uint width, uint height, uint bpp)
    {
        using var life = _drm.Life.Enter();
        CheckOpen("drm_mode_create_dumb");
        if (width == 0 || height == 0 || bpp == 0) throw _drm.Fail(-22, $"drm_mode_create_dumb] {width}x{height} at {bpp} bpp: zero geometry");
        if (bpp > uint.MaxValue - 8) throw _drm.Fail(-22, $"drm_mode_create_dumb] bpp {bpp} overflows");
        uint cpp = (bpp + 7) / 8;
        if (cpp > uint.MaxValue / width) throw _drm.Fail(-22, $"drm_mode_create_dumb] width {width} × {cpp} bytes overflows");
        uint stride = cpp * width;
        if (height > uint.MaxValue / stride) throw _drm.Fail(-22, $"drm_mode_create_dumb] {height} lines of {stride} bytes overflow");
        ulong size = (ulong)height * stride;
        if (((size + PhysicalMemory.PageSize - 1) & ~(ulong)(PhysicalMemory.PageSize - 1)) == 0 || size > uint.MaxValue)
            throw _drm.Fail(-22, "drm_mode_create_dumb] size wraps around");
        ulong minPitch = (ulong)width * cpp;
        ulong pitch = (minPitch + 63) & ~63UL;
        if (pitch * height > uint.MaxValue) throw _drm.Fail(-22, $"drm_mode_create_dumb] pitch {pitch} × {height} overflows");
        ulong dumbSize = pitch * height;
        var obj = _drm.CreateObject(dumbSize) ?? throw new DrmException(-12, $"rockchip_gem_dumb_create: no memory for {dumbSize} bytes");
        int handle;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock) handle = HandleCreateLocked(obj);
        obj.Put();                                           // the creator's reference: the handle holds the object now
        return new DumbBuffer(handle, (uint)pitch, dumbSize);
    }

    /// <summary>
    /// DRM_IOCTL_MODE_MAP_DUMB (drm_gem_dumb_map_offset): the object's fake mmap offset, created on first use. Imported
    /// objects cannot be mapped (-EINVAL); a handle that is not open is -ENOENT.
    /// </summary>
    public ulong MapDumbOffset(int handle)
    {
        _drm.Life.ThrowIfDead();
        GemObject obj;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock) obj = LookupLocked(handle, "drm_gem_dumb_map_offset");
        if (obj.ImportAttach is not null) throw _drm.Fail(-22, $"drm_gem_dumb_map_offset] handle {handle} is an imported buffer");
        LockOrder.Enter(LockRank.DrmObject, obj);
        lock (obj)
        {
            if (obj.MmapOffset != 0) return obj.MmapOffset;
            if (!_drm.OffsetSpace.TryInsert((ulong)obj.Size >> PhysicalMemory.PageShift, 1, out ulong page))
                throw _drm.Fail(-12, "drm_gem_create_mmap_offset] the offset space is full");
            obj.MmapOffset = page << PhysicalMemory.PageShift;
            _drm.OffsetCreated(obj);
            return obj.MmapOffset;
        }
    }

    /// <summary>
    /// mmap(fd, offset, length) of a dumb buffer (drm_gem_mmap): the object's CPU view. The offset must be one
    /// <see cref="MapDumbOffset"/> returned and the length at most the object's size (-EINVAL); the file must hold a
    /// handle to the object (-EACCES).
    /// </summary>
    public Span<byte> Mmap(ulong offset, long length)
    {
        using var life = _drm.Life.Enter();
        CheckOpen("drm_gem_mmap");
        if (!_drm.OffsetSpace.TryFind(offset >> PhysicalMemory.PageShift, out ulong start, out ulong pages) || start << PhysicalMemory.PageShift != offset)
            throw _drm.Fail(-22, $"drm_gem_mmap] no object at offset 0x{offset:x}");
        GemObject? obj;
        bool allowed;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock)
        {
            obj = _drm.ObjectAtOffsetLocked(offset);
            allowed = obj is not null && _handleCounts.ContainsKey(obj);
        }
        if (obj is null) throw _drm.Fail(-22, $"drm_gem_mmap] no object at offset 0x{offset:x}");
        if (length <= 0 || (ulong)length > pages << PhysicalMemory.PageShift) throw _drm.Fail(-22, $"drm_gem_mmap] {length} bytes do not fit the {obj.Size}-byte object");
        if (!allowed) throw _drm.Fail(-13, $"drm_gem_mmap] the file holds no handle to the object at 0x{offset:x}");
        return obj.Span[..(int)length];
    }

    /// <summary>DRM_IOCTL_GEM_CLOSE: drops the handle (-EINVAL when it is not open).</summary>
    public void GemClose(int handle)
    {
        using var life = _drm.Life.Enter();
        GemObject? obj;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock)
        {
            CheckOpen("drm_gem_handle_delete");
            if (!_handles.Remove(handle, out obj)) throw _drm.Fail(-22, $"drm_gem_handle_delete] handle {handle} is not open");
            if (--_handleCounts[obj] == 0) _handleCounts.Remove(obj);
        }
        ReleaseHandle(obj);
    }

    // ================================================================== names

    /// <summary>DRM_IOCTL_GEM_FLINK: a global name for the object (the same name every time).</summary>
    public int Flink(int handle)
    {
        _drm.Life.ThrowIfDead();
        GemObject obj;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock) obj = LookupLocked(handle, "drm_gem_flink_ioctl");
        return _drm.NameOf(obj);
    }

    /// <summary>DRM_IOCTL_GEM_OPEN: a handle in this file to the object of a global name, with its size (-ENOENT for no such name).</summary>
    public (int Handle, long Size) GemOpen(int name)
    {
        _drm.Life.ThrowIfDead();
        var obj = _drm.ByName(name) ?? throw _drm.Fail(-2, $"drm_gem_open_ioctl] no object named {name}");
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock)
        {
            CheckOpen("drm_gem_open_ioctl");
            return (HandleCreateLocked(obj), obj.Size);
        }
    }

    // ================================================================== PRIME

    /// <summary>
    /// DRM_IOCTL_PRIME_HANDLE_TO_FD: a dma-buf descriptor (in <see cref="Machine.DmaBufFds"/>) for the object: the
    /// same dma-buf every time (the file's PRIME table, then the object's cached one, then a new export "drm"); an
    /// imported object gives back the dma-buf it came from. Flags other than <see cref="Cloexec"/> | <see cref="RdWr"/>
    /// are -EINVAL.
    /// </summary>
    public int PrimeHandleToFd(int handle, int flags = Cloexec | RdWr)
    {
        using var life = _drm.Life.Enter();
        if ((flags & ~(Cloexec | RdWr)) != 0) throw _drm.Fail(-22, $"drm_prime_handle_to_fd_ioctl] flags 0x{flags:x}");
        DmaBuf buf;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock)
        {
            var obj = LookupLocked(handle, "drm_gem_prime_handle_to_fd");
            var known = _prime.FirstOrDefault(kv => kv.Value == handle).Key;
            if (known is not null) buf = known.Get();
            else
            {
                if (obj.ImportAttach is { } a) buf = a.Buffer.Get();
                else if (obj.ExportedDmaBuf is { } cached) buf = cached.Get();
                else
                {
                    // export_and_register_object(): the dma-buf holds the object; the object caches the dma-buf.
                    obj.Get();
                    buf = _drm.Kernel.DmaBufs.Export(new GemDmaBufExporter(obj), obj.Size, flags);
                    obj.ExportedDmaBuf = buf.Get();
                }
                _prime[buf.Get()] = handle;                   // drm_prime_add_buf_handle() takes its own reference
            }
        }
        return _drm.Kernel.DmaBufFds.Install(buf);
    }

    /// <summary>
    /// DRM_IOCTL_PRIME_FD_TO_HANDLE: the handle of the dma-buf behind <paramref name="fd"/>: the one this file already
    /// has for it, the same object when the device exported it itself, or a new object importing the foreign buffer
    /// (-EINVAL when a display without an IOMMU cannot see it as one contiguous range; -EBADF for a bad descriptor).
    /// </summary>
    public int PrimeFdToHandle(int fd)
    {
        using var life = _drm.Life.Enter();
        CheckOpen("drm_gem_prime_fd_to_handle");
        var buf = _drm.Kernel.DmaBufFds.Get(fd);                 // dma_buf_get(): a temporary reference
        try
        {
            LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
            lock (_drm.Lock)
                if (_prime.TryGetValue(buf, out int h)) return h;
            GemObject obj;
            var own = _drm.OwnObjectOf(buf);
            if (own is not null) { own.Get(); obj = own; }
            else
            {
                try { obj = _drm.ImportObject(buf); }
                catch (DrmException e) { _drm.Kernel.Log.Err($"[drm:drm_gem_prime_fd_to_handle] {e.Message}"); throw; }
            }
            int handle;
            LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
            lock (_drm.Lock)
            {
                if (obj.ExportedDmaBuf is null) obj.ExportedDmaBuf = buf.Get();      // obj->dma_buf for an import
                handle = HandleCreateLocked(obj);
                _prime[buf.Get()] = handle;
            }
            obj.Put();
            return handle;
        }
        finally { buf.Put(); }
    }

    /// <summary>close(): releases every handle (drm_gem_release) and the PRIME table; further calls are -EBADF.</summary>
    public void Close()
    {
        using var life = _drm.Life.Enter();
        List<GemObject> objs;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock)
        {
            if (_closed) return;
            objs = [.. _handles.Values];
            _handles.Clear();
            _handleCounts.Clear();
        }
        foreach (var o in objs) ReleaseHandle(o);
        List<DmaBuf> rest;
        LockOrder.Enter(LockRank.DrmDevice, _drm.Lock);
        lock (_drm.Lock) { rest = [.. _prime.Keys]; _prime.Clear(); _closed = true; }
        foreach (var b in rest) b.Put();
        _drm.FileClosed(this);
    }
}
