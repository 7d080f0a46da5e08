// The workload steps of DRM-GEM and videobuf2: dumb buffers and PRIME hand-overs through labels, vb2 queues by
// name (REQBUFS, EXPBUF into a dma-buf label, STREAMON/OFF, release), and vb2_pipeline: frames captured into one
// queue's buffers and handed as DMABUF to another queue, whose driver checks every byte it reads.
namespace Kmem;

public sealed partial class WorkloadRunner
{
    private DrmFile? _drmFile;
    private readonly Dictionary<string, List<int>> _gem = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Vb2Queue> _queues = new(StringComparer.Ordinal);

    private DrmFile DrmFile => _drmFile ??= _m.Drm.Open();

    /// <summary>Releases the queues and closes the DRM file (every handle with it).</summary>
    private void ReleaseMedia()
    {
        foreach (var q in _queues.Values) q.Release();
        _queues.Clear();
        _drmFile?.Close();
        _drmFile = null;
        _gem.Clear();
    }

    /// <summary>Runs a DRM or VB2 step; false when the step is not one.</summary>
    private bool ExecuteMedia(WorkloadStep step)
    {
        if (!step.Op.StartsWith("drm_", StringComparison.Ordinal) && !step.Op.StartsWith("vb2_", StringComparison.Ordinal)) return false;
        switch (step.Op)
        {
            case "drm_create_dumb":
            {
                string label = Str(step, "label")!;
                uint w = (uint)Long(step, "width", 0), h = (uint)Long(step, "height", 0), bpp = (uint)Long(step, "bpp", 32);
                long count = Long(step, "count", 1);
                var list = _gem.TryGetValue(label, out var l) ? l : _gem[label] = [];
                var stats = Stats(label);
                for (long i = 0; i < count; i++)
                {
                    try
                    {
                        var d = DrmFile.CreateDumb(w, h, bpp);
                        list.Add(d.Handle);
                        stats.Allocated++;
                        stats.BytesHeld += (long)d.Size;
                    }
                    catch (DrmException e)
                    {
                        stats.Failed++;
                        if (Str(step, "expect") != "failure") _result.Problems.Add($"{step.Location}: CREATE_DUMB {w}x{h}@{bpp} failed ({e.Errno}): {e.Message}");
                    }
                }
                break;
            }
            case "drm_close":
            {
                string label = Str(step, "label")!;
                foreach (int handle in GemLabel(step, label))
                {
                    Stats(label).BytesHeld -= DrmFile.Lookup(handle).Size;
                    DrmFile.GemClose(handle);
                    Stats(label).Freed++;
                }
                _gem.Remove(label);
                break;
            }
            case "drm_prime_export":
            {
                // Each object's dma-buf, held by the "as" label as a reference (the descriptor is closed again).
                var target = Holder(Str(step, "as")!);
                foreach (int handle in GemLabel(step, Str(step, "label")!))
                {
                    int fd = DrmFile.PrimeHandleToFd(handle);
                    var b = _m.DmaBufFds.Get(fd);
                    _m.DmaBufFds.Close(fd);
                    target.Add(BufHeld(b));
                    Stats(Str(step, "as")!).Allocated++;
                }
                break;
            }
            case "drm_prime_import":
            {
                string asLabel = Str(step, "as")!;
                var list = _gem.TryGetValue(asLabel, out var l) ? l : _gem[asLabel] = [];
                foreach (var held in Holder(Str(step, "label")!))
                {
                    if (held.Buf is null) throw new WorkloadException($"{step.Location}.label", "holds no dma-bufs");
                    int fd = _m.DmaBufFds.Install(held.Buf.Get());
                    try { list.Add(DrmFile.PrimeFdToHandle(fd)); Stats(asLabel).Allocated++; }
                    catch (DrmException e) { Stats(asLabel).Failed++; if (Str(step, "expect") != "failure") _result.Problems.Add($"{step.Location}: PRIME import failed ({e.Errno}): {e.Message}"); }
                    finally { _m.DmaBufFds.Close(fd); }
                }
                break;
            }
            case "vb2_queue":
            {
                string name = Str(step, "queue")!;
                if (_queues.ContainsKey(name)) throw new WorkloadException($"{step.Location}.queue", $"queue '{name}' exists already");
                Device? dev = Str(step, "device") is null ? null : DeviceArg(step);
                Vb2MemOps ops = Str(step, "memops") switch
                {
                    "dma-sg" => _m.Vb2DmaSg,
                    "vmalloc" => _m.Vb2Vmalloc,
                    _ => _m.Vb2DmaContig,
                };
                _queues[name] = _m.Vb2QueueInit(name, dev, ops, Vb2IoModes.Mmap | Vb2IoModes.Userptr | Vb2IoModes.Dmabuf,
                    Str(step, "direction") == "output", [PlaneSize(step)], Int(step, "min_buffers", 0));
                break;
            }
            case "vb2_reqbufs":
            {
                var q = QueueArg(step);
                int count = Int(step, "count", 0);
                var memory = MemoryArg(step);
                int r = q.ReqBufs(memory, ref count);
                Errno(step, "VIDIOC_REQBUFS", r);
                break;
            }
            case "vb2_expbuf":
            {
                var q = QueueArg(step);
                string asLabel = Str(step, "as")!;
                var target = Holder(asLabel);
                for (int i = 0; i < q.NumBuffers; i++)
                {
                    int r = q.ExpBuf(i, 0, DmaHeap.OCloexec | DmaHeap.ORdWr, out int fd);
                    if (Errno(step, "VIDIOC_EXPBUF", r)) continue;
                    var b = _m.DmaBufFds.Get(fd);
                    _m.DmaBufFds.Close(fd);
                    target.Add(BufHeld(b));
                    Stats(asLabel).Allocated++;
                }
                break;
            }
            case "vb2_streamon":
                Errno(step, "VIDIOC_STREAMON", QueueArg(step).StreamOn());
                break;
            case "vb2_streamoff":
                Errno(step, "VIDIOC_STREAMOFF", QueueArg(step).StreamOff());
                break;
            case "vb2_release":
            {
                var q = QueueArg(step);
                q.Release();
                _queues.Remove(q.Name);
                break;
            }
            case "vb2_pipeline":
                Pipeline(step);
                break;
            default:
                throw new WorkloadException(step.Location, $"operation '{step.Op}' is not supported");
        }
        return true;
    }

    /// <summary>
    /// vb2_pipeline: the "from" queue (MMAP, capture) fills each frame; user space dequeues it and queues the buffer's
    /// dma-buf (label "buffers", one per index) on the "to" queue (DMABUF, output), whose driver reads it back.
    /// </summary>
    private void Pipeline(WorkloadStep step)
    {
        var from = QueueArg(step, "from");
        var to = QueueArg(step, "to");
        var bufs = Holder(Str(step, "buffers")!);
        long frames = Long(step, "frames", 1);
        if (bufs.Count < from.NumBuffers) throw new WorkloadException($"{step.Location}.buffers", $"holds {bufs.Count} dma-bufs, the queue has {from.NumBuffers} buffers");
        var fds = bufs.Select(b => _m.DmaBufFds.Install(b.Buf!.Get())).ToArray();
        long bad = 0, sameMemory = 0;
        try
        {
            for (int i = 0; i < from.NumBuffers; i++) Errno(step, "VIDIOC_QBUF", from.QBuf(i));
            if (!from.Streaming) Errno(step, "VIDIOC_STREAMON", from.StreamOn());
            if (!to.Streaming) Errno(step, "VIDIOC_STREAMON", to.StreamOn());
            for (long f = 0; f < frames; f++)
            {
                var cap = from.DriverNext();
                if (cap is null) { _result.Problems.Add($"{step.Location}: frame {f}: the capture driver has no buffer"); break; }
                byte mark = (byte)(f * 31 + 7);
                var bytes = from.PlaneSpan(cap, 0);
                bytes[0] = mark;
                bytes[^1] = (byte)~mark;
                from.BufferDone(cap);
                if (Errno(step, "VIDIOC_DQBUF", from.DQBuf(out int idx))) break;
                if (Errno(step, "VIDIOC_QBUF", to.QBufDmabuf(idx, fds[idx]))) break;
                var work = to.DriverNext()!;
                var seen = to.PlaneSpan(work, 0);
                if (seen[0] != mark || seen[bytes.Length - 1] != (byte)~mark) bad++;
                if (to.PlaneCookie(work, 0).DmaAddress == from.PlaneCookie(cap, 0).DmaAddress) sameMemory++;
                to.BufferDone(work);
                if (Errno(step, "VIDIOC_DQBUF", to.DQBuf(out _))) break;
                if (Errno(step, "VIDIOC_QBUF", from.QBuf(idx))) break;
            }
            Errno(step, "VIDIOC_STREAMOFF", from.StreamOff());
            Errno(step, "VIDIOC_STREAMOFF", to.StreamOff());
        }
        finally
        {
            foreach (int fd in fds) _m.DmaBufFds.Close(fd);
        }
        if (bad > 0) _result.Problems.Add($"{step.Location}: {bad} of {frames} frames read back wrong");
        _result.Notes.Add($"vb2_pipeline {from.Name} -> {to.Name}: {frames} frames of {from.PlaneSizes[0]} bytes, {frames - bad} read back intact, " +
                          $"{sameMemory} at the producer's own device address (zero copy)");
    }

    private List<int> GemLabel(WorkloadStep step, string label) =>
        _gem.TryGetValue(label, out var l) ? [.. l] : throw new WorkloadException($"{step.Location}.label", $"no GEM objects under '{label}'");


    private Vb2Queue QueueArg(WorkloadStep step, string key = "queue")
    {
        string name = Str(step, key)!;
        return _queues.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.{key}", $"no vb2 queue '{name}' (make it with vb2_queue)");
    }

    private static Vb2Memory MemoryArg(WorkloadStep step) => Str(step, "memory") switch
    {
        "userptr" => Vb2Memory.Userptr,
        "dmabuf" => Vb2Memory.Dmabuf,
        _ => Vb2Memory.Mmap,
    };

    /// <summary>The plane size: "size", or a format ("nv12", "yuyv", "rgb888", "xrgb8888") with width and height.</summary>
    private static long PlaneSize(WorkloadStep step)
    {
        if (step.Args.ContainsKey("size")) return (long)Size(step, "size");
        long w = Long(step, "width", 0), h = Long(step, "height", 0);
        return Str(step, "format") switch
        {
            "yuyv" => w * h * 2,
            "rgb888" => w * h * 3,
            "xrgb8888" => w * h * 4,
            _ => w * h * 3 / 2,
        };
    }

    /// <summary>Records an unexpected errno ("expect": the errno, default 0); true when the call failed.</summary>
    private bool Errno(WorkloadStep step, string ioctl, int r)
    {
        int expect = Int(step, "expect", 0);
        if (r != expect) _result.Problems.Add($"{step.Location}: {ioctl} returned {r}, expected {expect}");
        return r != 0;
    }

    private static void ValidateMedia(WorkloadStep step)
    {
        string[] need = step.Op switch
        {
            "drm_create_dumb" => ["label", "width", "height"],
            "drm_close" => ["label"],
            "drm_prime_export" or "drm_prime_import" => ["label", "as"],
            "vb2_queue" => ["queue"],
            "vb2_reqbufs" => ["queue", "count"],
            "vb2_expbuf" => ["queue", "as"],
            "vb2_streamon" or "vb2_streamoff" or "vb2_release" => ["queue"],
            "vb2_pipeline" => ["from", "to", "buffers", "frames"],
            _ => throw new WorkloadException(step.Location, $"operation '{step.Op}' is not supported"),
        };
        foreach (var k in need)
            if (!step.Args.ContainsKey(k)) throw new WorkloadException($"{step.Location}.{k}", "is required");
        switch (step.Op)
        {
            case "drm_create_dumb":
                Long(step, "width", 0, 1, 1 << 16);
                Long(step, "height", 0, 1, 1 << 16);
                Long(step, "bpp", 32, 1, 64);
                Long(step, "count", 1, 1, 4096);
                break;
            case "vb2_queue":
                if (Str(step, "memops") is { } mo && mo is not ("dma-contig" or "dma-sg" or "vmalloc"))
                    throw new WorkloadException($"{step.Location}.memops", $"'{mo}' is not dma-contig, dma-sg or vmalloc");
                if (Str(step, "direction") is { } d && d is not ("capture" or "output"))
                    throw new WorkloadException($"{step.Location}.direction", $"'{d}' is not capture or output");
                if (Str(step, "format") is { } f && f is not ("nv12" or "yuyv" or "rgb888" or "xrgb8888"))
                    throw new WorkloadException($"{step.Location}.format", $"'{f}' is not nv12, yuyv, rgb888 or xrgb8888");
                if (!step.Args.ContainsKey("size") && (!step.Args.ContainsKey("width") || !step.Args.ContainsKey("height")))
                    throw new WorkloadException(step.Location, "needs a size, or a width and a height");
                if (step.Args.ContainsKey("width")) { Long(step, "width", 0, 1, 1 << 16); Long(step, "height", 0, 1, 1 << 16); }
                if (step.Args.ContainsKey("size") && Size(step, "size") is 0 or > int.MaxValue) throw new WorkloadException($"{step.Location}.size", "must be 1 byte .. 2 GiB");
                Int(step, "min_buffers", 0, 0, Vb2Queue.MaxFrame);
                break;
            case "vb2_reqbufs":
                Int(step, "count", 0, 0, Vb2Queue.MaxFrame);
                if (Str(step, "memory") is { } m && m is not ("mmap" or "userptr" or "dmabuf"))
                    throw new WorkloadException($"{step.Location}.memory", $"'{m}' is not mmap, userptr or dmabuf");
                break;
            case "vb2_pipeline":
                Long(step, "frames", 1, 1, 100_000_000);
                break;
        }
        Int(step, "expect", 0, -4095, 0);
    }
}
