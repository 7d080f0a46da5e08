// A videobuf2 queue (Linux 5.10 videobuf2-core with the V4L2 ioctl checks): REQBUFS for MMAP, USERPTR and DMABUF
// memory, QBUF/DQBUF through the buffer states, EXPBUF, STREAMON/OFF, and the driver's side (the buffers it owns,
// vb2_buffer_done). Calls return 0 or the ioctl's -errno, and log the reason as the queue's dprintk would.
// DMABUF planes stay attached and mapped across frames until another buffer is queued in their place (5.8+).
using Kmem.DmaHeaps;
using Kmem.Kernel;

namespace Kmem;

/// <summary>
/// A videobuf2 queue of one device and allocator. Create it with <see cref="Machine.Vb2QueueInit"/>. Not thread safe
/// for concurrent ioctls (the kernel serialises them with the queue's lock); the driver side may run on another thread.
/// </summary>
public sealed class Vb2Queue
{
    /// <summary>VB2_MAX_FRAME.</summary>
    public const int MaxFrame = 32;

    private readonly KernelContext _k;
    private readonly Vb2Buffer?[] _bufs = new Vb2Buffer?[MaxFrame];
    private readonly List<Vb2Buffer> _queued = new(MaxFrame);
    private readonly Queue<Vb2Buffer> _done = new(MaxFrame);
    private readonly Queue<Vb2Buffer> _driver = new(MaxFrame);       // the driver's list, filled by buf_queue
    private readonly object _doneLock = new();                       // done_lock, and done_wq through Monitor
    private long[] _planeSizes;
    private bool _startStreamingCalled;
    private uint _sequence;

    internal Vb2Queue(KernelContext k, string name, Device? dev, Vb2MemOps ops, Vb2IoModes ioModes, bool isOutput, long[] planeSizes, int minBuffersNeeded)
    {
        _k = k;
        Name = name;
        Device = dev;
        Ops = ops;
        IoModes = ioModes;
        IsOutput = isOutput;
        _planeSizes = [.. planeSizes];
        MinBuffersNeeded = minBuffersNeeded;
    }

    /// <summary>The queue's name (for the log).</summary>
    public string Name { get; }
    /// <summary>The device that does the DMA (<c>q->dev</c>).</summary>
    public Device? Device { get; }
    /// <summary>The allocator.</summary>
    public Vb2MemOps Ops { get; }
    /// <summary>The memory types the queue accepts.</summary>
    public Vb2IoModes IoModes { get; }
    /// <summary>True for an output queue (the device reads: DMA_TO_DEVICE); else capture (DMA_FROM_DEVICE).</summary>
    public bool IsOutput { get; }
    /// <summary>min_buffers_needed: buffers that must be queued before streaming starts.</summary>
    public int MinBuffersNeeded { get; }
    /// <summary>The memory type of the current buffers.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but the queue's fixed set-up: <see cref="Name"/>, <see cref="Device"/>, <see cref="Ops"/>, <see cref="IoModes"/>, <see cref="IsOutput"/>, <see cref="MinBuffersNeeded"/>).</exception>
    public Vb2Memory Memory { get { Live(); return field; } private set; }
    /// <summary>The buffers allocated.</summary>
    public int NumBuffers { get { Live(); return field; } private set; }
    /// <summary>Buffers queued (QUEUED, ACTIVE or DONE, not yet dequeued).</summary>
    public int QueuedCount { get { Live(); return _queued.Count; } }
    /// <summary>True between STREAMON and STREAMOFF.</summary>
    public bool Streaming { get { Live(); return field; } private set; }
    /// <summary>Buffers with the driver (owned_by_drv_count).</summary>
    public int OwnedByDriver { get { Live(); return field; } private set; }
    /// <summary>The plane sizes queue_setup reports (the format).</summary>
    public IReadOnlyList<long> PlaneSizes { get { Live(); return _planeSizes; } }

    private void Live() => _k.Life.ThrowIfDead();

    private DmaDirection Dir => IsOutput ? DmaDirection.ToDevice : DmaDirection.FromDevice;

    /// <summary>The buffer at an index (null past <see cref="NumBuffers"/>).</summary>
    public Vb2Buffer? this[int index]
    {
        get
        {
            Live();
            return (uint)index < (uint)NumBuffers ? _bufs[index] : null;
        }
    }

    private int Fail(int errno, string fn, string what)
    {
        _k.Log.Err($"vb2: [{Name}] {fn}: {what}");
        return errno;
    }

    /// <summary>S_FMT: new plane sizes; -EBUSY while buffers are allocated (vb2_is_busy).</summary>
    public int SetFormat(params long[] planeSizes)
    {
        Live();
        ArgumentNullException.ThrowIfNull(planeSizes);
        if (NumBuffers > 0) return Fail(-16, "vb2_is_busy", "buffers are allocated");
        if (planeSizes.Length is 0 or > 8 || planeSizes.Any(s => s <= 0)) return Fail(-22, "queue_setup", "1 to 8 planes of positive size");
        _planeSizes = [.. planeSizes];
        return 0;
    }

    private int VerifyMemoryType(Vb2Memory memory, string fn)
    {
        if (memory is not (Vb2Memory.Mmap or Vb2Memory.Userptr or Vb2Memory.Dmabuf)) return Fail(-22, fn, "unsupported memory type");
        if (memory == Vb2Memory.Mmap && (IoModes & Vb2IoModes.Mmap) == 0) return Fail(-22, fn, "MMAP for current setup unsupported");
        if (memory == Vb2Memory.Userptr && (IoModes & Vb2IoModes.Userptr) == 0) return Fail(-22, fn, "USERPTR for current setup unsupported");
        if (memory == Vb2Memory.Dmabuf && (IoModes & Vb2IoModes.Dmabuf) == 0) return Fail(-22, fn, "DMABUF for current setup unsupported");
        return 0;
    }

    // ================================================================== REQBUFS

    /// <summary>
    /// VIDIOC_REQBUFS (vb2_core_reqbufs): -EBUSY while streaming; frees the current buffers (exported MMAP planes are
    /// orphaned: their dma-bufs keep them), then allocates max(count, min_buffers_needed) up to 32; MMAP memory comes
    /// from the allocator now. <paramref name="count"/> gets the number allocated; -ENOMEM when none (or fewer than
    /// min_buffers_needed) could be.
    /// </summary>
    public int ReqBufs(Vb2Memory memory, ref int count)
    {
        using var life = _k.Life.Enter();              // allocates and frees buffers: shutdown waits for it
        const string fn = "vb2_core_reqbufs";
        int err = VerifyMemoryType(memory, fn);
        if (err != 0) return err;
        if (count < 0) return Fail(-22, fn, "negative count");
        if (Streaming) return Fail(-16, fn, "streaming active");
        if (count == 0 || NumBuffers != 0 || (Memory != Vb2Memory.Unknown && Memory != memory))
        {
            if (Memory == Vb2Memory.Mmap && InUse()) _k.Log.Info($"vb2: [{Name}] {fn}: memory in use, orphaning buffers");
            Cancel();
            FreeBuffers();
            if (count == 0) return 0;
        }
        int n = Math.Min(Math.Max(count, MinBuffersNeeded), MaxFrame);
        Memory = memory;
        int allocated = Alloc(memory, n);
        if (allocated == 0)
        {
            Memory = Vb2Memory.Unknown;
            count = 0;
            return Fail(-12, fn, "memory allocation failed");
        }
        count = allocated;
        if (allocated < MinBuffersNeeded) return Fail(-12, fn, $"{allocated} buffers allocated, {MinBuffersNeeded} needed");
        return 0;
    }

    private bool InUse()
    {
        for (int i = 0; i < NumBuffers; i++)
            foreach (var p in _bufs[i]!.PlaneArray)
                if (p.Mem is { } mem && Ops.NumUsers(mem) > 1) return true;
        return false;
    }

    /// <summary>__vb2_queue_alloc(): the buffers, with MMAP memory and offsets; stops at the first allocation that fails.</summary>
    private int Alloc(Vb2Memory memory, int n)
    {
        int made = 0;
        for (; made < n; made++)
        {
            var vb = new Vb2Buffer(NumBuffers, memory, _planeSizes, _k.Life);
            if (memory == Vb2Memory.Mmap)
            {
                bool ok = true;
                foreach (var p in vb.PlaneArray)
                {
                    p.Mem = Ops.Alloc(Device, p.Length, Dir, 0);
                    if (p.Mem is null) { ok = false; break; }
                }
                if (!ok)
                {
                    foreach (var p in vb.PlaneArray) if (p.Mem is { } mm) { Ops.Put(mm); p.Mem = null; }
                    _k.Log.Info($"vb2: [{Name}] __vb2_queue_alloc: failed allocating memory for buffer {made}");
                    break;
                }
                // __setup_offsets(): page-aligned offsets following the previous buffer's last plane.
                long off = 0;
                if (vb.Index > 0) { var last = _bufs[vb.Index - 1]!.PlaneArray[^1]; off = PageAlign(last.MemOffset + last.Length); }
                foreach (var p in vb.PlaneArray) { p.MemOffset = off; off = PageAlign(off + p.Length); }
            }
            _bufs[NumBuffers++] = vb;
        }
        return made;
    }

    private static long PageAlign(long v) => (v + Physical.PhysicalMemory.PageSize - 1) & ~(long)(Physical.PhysicalMemory.PageSize - 1);

    /// <summary>__vb2_queue_free(): every buffer's memory released (MMAP put, USERPTR unpinned, DMABUF detached and put).</summary>
    private void FreeBuffers()
    {
        for (int i = 0; i < NumBuffers; i++)
        {
            var vb = _bufs[i]!;
            foreach (var p in vb.PlaneArray) PutPlane(vb, p);
            _bufs[i] = null;
        }
        NumBuffers = 0;
        Memory = Vb2Memory.Unknown;
        _queued.Clear();
    }

    private void PutPlane(Vb2Buffer vb, Vb2Plane p)
    {
        if (p.Mem is not { } mem) return;
        switch (vb.Memory)
        {
            case Vb2Memory.Mmap: Ops.Put(mem); break;
            case Vb2Memory.Userptr: Ops.PutUserptr(mem); break;
            case Vb2Memory.Dmabuf:
                // __vb2_plane_dmabuf_put(): unmap, detach, dma_buf_put.
                if (mem.DmabufMapped) Ops.UnmapDmabuf(mem);
                Ops.DetachDmabuf(mem);
                p.DmaBuf!.Put();
                p.DmaBuf = null;
                break;
        }
        p.Mem = null;
    }

    // ================================================================== QBUF

    /// <summary>VIDIOC_QBUF of an MMAP buffer.</summary>
    public int QBuf(int index) => QBuf(index, Vb2Memory.Mmap, []);


    /// <summary>VIDIOC_QBUF of a single-plane USERPTR buffer.</summary>
    public int QBufUserptr(int index, nint userptr, long length)
    {
        Span<Vb2PlaneArg> a = [new Vb2PlaneArg(length, userptr)];
        return QBuf(index, Vb2Memory.Userptr, a);
    }

    /// <summary>VIDIOC_QBUF of a single-plane DMABUF buffer (length 0: the dma-buf's size).</summary>
    public int QBufDmabuf(int index, int fd, long length = 0)
    {
        Span<Vb2PlaneArg> a = [new Vb2PlaneArg(length, 0, fd)];
        return QBuf(index, Vb2Memory.Dmabuf, a);
    }

    /// <summary>
    /// VIDIOC_QBUF (vb2_queue_or_prepare_buf + vb2_core_qbuf): index and memory type checked (-EINVAL); a DEQUEUED buffer
    /// is prepared (USERPTR pages pinned, DMABUF planes attached and mapped, reusing what was there for the same
    /// address or dma-buf; caches synced for the device) and queued; handed to the driver at once while streaming.
    /// </summary>
    public int QBuf(int index, Vb2Memory memory, ReadOnlySpan<Vb2PlaneArg> planes)
    {
        using var life = _k.Life.Enter();              // pins, attaches, maps and syncs
        const string fn = "vb2_core_qbuf";
        if ((uint)index >= (uint)NumBuffers) return Fail(-22, fn, "buffer index out of range");
        if (memory != Memory) return Fail(-22, fn, "invalid memory type");
        var vb = _bufs[index]!;
        if (memory != Vb2Memory.Mmap && planes.Length != vb.PlaneArray.Length) return Fail(-22, fn, $"{planes.Length} planes given, the buffer has {vb.PlaneArray.Length}");
        switch (vb.State)
        {
            case Vb2BufferState.Dequeued:
                if (!vb.Prepared)
                {
                    int err = Prepare(vb, planes);
                    if (err != 0) return err;
                }
                break;
            case Vb2BufferState.Preparing:
                return Fail(-22, fn, $"buffer {index} still being prepared");
            default:
                return Fail(-22, fn, $"invalid buffer state {StateName(vb.State)} for buffer {index}");
        }
        _queued.Add(vb);
        vb.State = Vb2BufferState.Queued;
        if (_startStreamingCalled) EnqueueInDriver(vb);
        else if (Streaming && _queued.Count >= MinBuffersNeeded) StartStreaming();
        return 0;
    }

    /// <summary>vb2_state_name().</summary>
    public static string StateName(Vb2BufferState s) => s switch
    {
        Vb2BufferState.Dequeued => "dequeued", Vb2BufferState.InRequest => "in request", Vb2BufferState.Preparing => "preparing",
        Vb2BufferState.Queued => "queued", Vb2BufferState.Active => "active", Vb2BufferState.Done => "done", _ => "error",
    };

    /// <summary>__buf_prepare().</summary>
    private int Prepare(Vb2Buffer vb, ReadOnlySpan<Vb2PlaneArg> planes)
    {
        var orig = vb.State;
        vb.State = Vb2BufferState.Preparing;
        int err;
        try
        {
            err = vb.Memory switch
            {
                Vb2Memory.Userptr => PrepareUserptr(vb, planes),
                Vb2Memory.Dmabuf => PrepareDmabuf(vb, planes),
                _ => 0,
            };
        }
        finally
        {
            vb.State = orig;                     // an exception of an allocator or exporter leaves the buffer with the user
        }
        if (err != 0) return err;
        if (!vb.Synced)
        {
            foreach (var p in vb.PlaneArray) Ops.Prepare(p.Mem!);
            vb.Synced = true;
        }
        vb.Prepared = true;
        return 0;
    }

    /// <summary>__prepare_userptr(): planes at the same address and length are kept; others re-pinned.</summary>
    private int PrepareUserptr(Vb2Buffer vb, ReadOnlySpan<Vb2PlaneArg> planes)
    {
        const string fn = "__prepare_userptr";
        for (int i = 0; i < planes.Length; i++)
        {
            var p = vb.PlaneArray[i];
            var a = planes[i];
            if (a.Userptr != 0 && p.Mem is not null && p.Userptr == a.Userptr && p.Length == a.Length) continue;
            if (a.Length < p.MinLength) return Fail(-22, fn, $"provided buffer size {a.Length} is less than setup size {p.MinLength} for plane {i}");
            PutPlane(vb, p);
            try { p.Mem = Ops.GetUserptr(Device, a.Userptr, a.Length, Dir); }
            catch (Vb2Exception e)
            {
                _k.Log.Info($"vb2: [{Name}] {fn}: failed acquiring userspace memory for plane {i}");
                return e.Errno;
            }
            p.Userptr = a.Userptr;
            p.Length = a.Length;
            p.BytesUsed = a.BytesUsed;
        }
        return 0;
    }

    /// <summary>__prepare_dmabuf(): the same dma-buf at the same length is kept attached and mapped; others re-attached; all mapped.</summary>
    private int PrepareDmabuf(Vb2Buffer vb, ReadOnlySpan<Vb2PlaneArg> planes)
    {
        const string fn = "__prepare_dmabuf";
        for (int i = 0; i < planes.Length; i++)
        {
            var p = vb.PlaneArray[i];
            var a = planes[i];
            DmaBuf dbuf;
            try { dbuf = _k.DmaBufFds.Get(a.Fd); }
            catch (DmaBufException) { FreeDmabufPlanes(vb); return Fail(-22, fn, $"invalid dmabuf fd for plane {i}"); }
            long length = a.Length == 0 ? dbuf.Size : a.Length;
            if (length < p.MinLength)
            {
                dbuf.Put();
                FreeDmabufPlanes(vb);
                return Fail(-22, fn, $"invalid dmabuf length {length} for plane {i}, minimum length {p.MinLength}");
            }
            if (dbuf == p.DmaBuf && p.Length == length)
            {
                dbuf.Put();
                p.Fd = a.Fd;
                p.BytesUsed = a.BytesUsed;
                continue;
            }
            PutPlane(vb, p);
            try { p.Mem = Ops.AttachDmabuf(Device, dbuf, length, Dir); }
            catch (Vb2Exception e)
            {
                dbuf.Put();
                FreeDmabufPlanes(vb);
                _k.Log.Info($"vb2: [{Name}] {fn}: failed to attach dmabuf");
                return e.Errno;
            }
            catch (Exception e)
            {
                // Any other failure of the attach (the exporter's, the dma-buf's checks): the same unwinding, and the
                // exception reaches the caller.
                dbuf.Put();
                FreeDmabufPlanes(vb);
                _k.Log.Info($"vb2: [{Name}] {fn}: failed to attach dmabuf: {e.GetType().Name}: {e.Message}");
                throw;
            }
            p.DmaBuf = dbuf;
            p.Length = length;
            p.Fd = a.Fd;
            p.BytesUsed = a.BytesUsed;
        }
        for (int i = 0; i < vb.PlaneArray.Length; i++)
        {
            var mem = vb.PlaneArray[i].Mem!;
            if (mem.DmabufMapped) continue;
            int err = Ops.MapDmabuf(mem);
            if (err != 0)
            {
                FreeDmabufPlanes(vb);
                return Fail(err, fn, $"failed to map dmabuf for plane {i}");
            }
        }
        return 0;
    }

    private void FreeDmabufPlanes(Vb2Buffer vb)
    {
        foreach (var p in vb.PlaneArray) PutPlane(vb, p);
    }

    private void EnqueueInDriver(Vb2Buffer vb)
    {
        vb.State = Vb2BufferState.Active;
        lock (_doneLock)
        {
            OwnedByDriver++;
            _driver.Enqueue(vb);
        }
    }

    private void StartStreaming()
    {
        foreach (var vb in _queued) EnqueueInDriver(vb);
        _startStreamingCalled = true;
    }

    // ================================================================== the driver's side

    /// <summary>The driver takes the next buffer it was given (buf_queue order); null when it has none.</summary>
    public Vb2Buffer? DriverNext()
    {
        Live();
        lock (_doneLock) return _driver.TryDequeue(out var vb) ? vb : null;
    }

    /// <summary>
    /// vb2_buffer_done(): the driver is finished with an ACTIVE buffer (DONE or ERROR; QUEUED gives it back to the
    /// driver). Caches are synced for the CPU. A buffer that is not ACTIVE is a WARN, and nothing changes.
    /// </summary>
    public void BufferDone(Vb2Buffer vb, Vb2BufferState state = Vb2BufferState.Done)
    {
        using var life = _k.Life.Enter();              // syncs the planes for the CPU
        ArgumentNullException.ThrowIfNull(vb);
        if (vb.State != Vb2BufferState.Active || (uint)vb.Index >= (uint)NumBuffers || _bufs[vb.Index] != vb)
        {
            _k.Log.Warn($"WARNING: vb2_buffer_done: [{Name}] buffer {vb.Index} is {StateName(vb.State)}, not active");
            return;
        }
        if (state is not (Vb2BufferState.Done or Vb2BufferState.Error or Vb2BufferState.Queued)) state = Vb2BufferState.Error;
        if (state != Vb2BufferState.Queued) Finish(vb);
        lock (_doneLock)
        {
            OwnedByDriver--;
            if (state == Vb2BufferState.Queued)
            {
                vb.State = Vb2BufferState.Queued;
                if (_startStreamingCalled) { vb.State = Vb2BufferState.Active; OwnedByDriver++; _driver.Enqueue(vb); }
                return;
            }
            vb.Sequence = _sequence++;
            vb.State = state;
            _done.Enqueue(vb);
            Monitor.PulseAll(_doneLock);
        }
    }

    private void Finish(Vb2Buffer vb)
    {
        if (!vb.Synced) return;
        foreach (var p in vb.PlaneArray) if (p.Mem is { } mem) Ops.Finish(mem);
        vb.Synced = false;
    }

    /// <summary>vb2_plane_vaddr(): the plane's kernel address (0 when the allocator gives none).</summary>
    public nint PlaneVaddr(Vb2Buffer vb, int plane)
    {
        Live();
        ArgumentNullException.ThrowIfNull(vb);
        return vb.PlaneArray[plane].Mem is { } m ? Ops.Vaddr(m) : 0;
    }

    /// <summary>vb2_plane_cookie(): the plane's device view.</summary>
    public Vb2Cookie PlaneCookie(Vb2Buffer vb, int plane)
    {
        Live();
        ArgumentNullException.ThrowIfNull(vb);
        return vb.PlaneArray[plane].Mem is { } m ? Ops.Cookie(m) : default;
    }

    /// <summary>What the device's DMA reaches for a plane: its bytes through the kernel mapping.</summary>
    public unsafe Span<byte> PlaneSpan(Vb2Buffer vb, int plane)
    {
        nint v = PlaneVaddr(vb, plane);
        if (v == 0)
            throw new Vb2Exception(-14, $"[{Name}] plane {plane} of buffer {vb.Index} has no kernel mapping"
                + (_k.VmallocSpaceOrNull is null ? $" (its pages would need vm_map_ram: {Core.NoRemap.Reason})" : ""));
        return new Span<byte>((void*)v, checked((int)vb.PlaneArray[plane].Length));
    }

    // ================================================================== DQBUF, streaming

    /// <summary>
    /// VIDIOC_DQBUF (vb2_core_dqbuf): the oldest DONE or ERROR buffer back to user space. -EINVAL when not streaming,
    /// -EAGAIN when none is done and <paramref name="nonblocking"/>, else waits (up to <paramref name="timeoutMs"/>;
    /// -ETIMEDOUT after it).
    /// </summary>
    public int DQBuf(out int index, bool nonblocking = true, int timeoutMs = Timeout.Infinite)
    {
        const string fn = "__vb2_wait_for_done_vb";
        index = -1;
        Live();
        long deadline = timeoutMs == Timeout.Infinite ? long.MaxValue : Environment.TickCount64 + Math.Max(0, timeoutMs);
        Vb2Buffer vb;
        lock (_doneLock)
        {
            while (true)
            {
                if (!Streaming) return Fail(-22, fn, "streaming off, will not wait for buffers");
                if (_done.Count > 0) break;
                if (nonblocking) return -11;                          // dprintk level 3: not an error worth a line
                // Waits in short slices, so that a waiter sees the machine's shutdown (ObjectDisposedException).
                long left = deadline - Environment.TickCount64;
                if (left <= 0) return -110;
                Monitor.Wait(_doneLock, (int)Math.Min(left, 50));
                Live();
            }
            vb = _done.Dequeue();
        }
        if (vb.State is not (Vb2BufferState.Done or Vb2BufferState.Error)) return Fail(-22, "vb2_core_dqbuf", "invalid buffer state");
        vb.Prepared = false;
        index = vb.Index;
        _queued.Remove(vb);
        vb.State = Vb2BufferState.Dequeued;
        return 0;
    }

    /// <summary>VIDIOC_STREAMON: -EINVAL without buffers or with fewer than min_buffers_needed; starts once enough are queued.</summary>
    public int StreamOn()
    {
        using var life = _k.Life.Enter();
        const string fn = "vb2_core_streamon";
        if (Streaming) { _k.Log.Info($"vb2: [{Name}] {fn}: already streaming"); return 0; }
        if (NumBuffers == 0) return Fail(-22, fn, "no buffers have been allocated");
        if (NumBuffers < MinBuffersNeeded) return Fail(-22, fn, $"need at least {MinBuffersNeeded} allocated buffers");
        if (_queued.Count >= MinBuffersNeeded) StartStreaming();
        Streaming = true;
        return 0;
    }

    /// <summary>VIDIOC_STREAMOFF: the driver gives back every buffer (ERROR), and all return to DEQUEUED.</summary>
    public int StreamOff()
    {
        using var life = _k.Life.Enter();
        Cancel();
        return 0;
    }

    /// <summary>__vb2_queue_cancel(): stop_streaming returns the driver's buffers; queued and done lists emptied; buffers DEQUEUED.</summary>
    private void Cancel()
    {
        if (_startStreamingCalled)
            while (DriverNext() is { } vb) BufferDone(vb, Vb2BufferState.Error);
        lock (_doneLock)
        {
            Streaming = false;
            _startStreamingCalled = false;
            _queued.Clear();
            _done.Clear();
            _driver.Clear();
            OwnedByDriver = 0;
            Monitor.PulseAll(_doneLock);
        }
        for (int i = 0; i < NumBuffers; i++)
        {
            var vb = _bufs[i]!;
            Finish(vb);
            vb.Prepared = false;
            vb.State = Vb2BufferState.Dequeued;
        }
    }

    /// <summary>
    /// VIDIOC_EXPBUF (vb2_core_expbuf): a new dma-buf descriptor (in <see cref="Machine.DmaBufFds"/>) over one plane of an
    /// MMAP buffer; the dma-buf holds the plane, so it outlives REQBUFS(0). Only O_CLOEXEC and the access mode are accepted.
    /// </summary>
    public int ExpBuf(int index, int plane, int flags, out int fd)
    {
        const string fn = "vb2_core_expbuf";
        fd = -1;
        using var life = _k.Life.Enter();
        if (Memory != Vb2Memory.Mmap) return Fail(-22, fn, "queue is not currently set up for mmap");
        if ((flags & ~(DmaBufCore.OCloexec | DmaBufCore.OAccMode)) != 0) return Fail(-22, fn, "queue does support only O_CLOEXEC and access mode flags");
        if ((uint)index >= (uint)NumBuffers) return Fail(-22, fn, "buffer index out of range");
        var vb = _bufs[index]!;
        if ((uint)plane >= (uint)vb.PlaneArray.Length) return Fail(-22, fn, "buffer plane out of range");
        var dbuf = Ops.GetDmabuf(vb.PlaneArray[plane].Mem!, flags & DmaBufCore.OAccMode);
        if (dbuf is null) return Fail(-22, fn, $"failed to export buffer {index}, plane {plane}");
        fd = _k.DmaBufFds.Install(dbuf);
        return 0;
    }

    /// <summary>vb2_core_queue_release(): streaming stopped and every buffer freed (exported planes stay with their dma-bufs).</summary>
    public void Release()
    {
        using var life = _k.Life.Enter();
        Cancel();
        FreeBuffers();
    }

    /// <inheritdoc/>
    public override string ToString() => _k.Life.IsDead ? $"vb2 queue {Name} ({Ops.Name}, machine disposed)" : $"vb2 queue {Name} ({Ops.Name}, {Memory}, {NumBuffers} buffers{(Streaming ? ", streaming" : "")})";
}
