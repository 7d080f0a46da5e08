// The workload steps of DRM-GEM and videobuf2: dumb buffers and PRIME hand-overs through labels, vb2 queues by
// name (REQBUFS, EXPBUF into a dma-buf label, STREAMON/OFF, release), and vb2_pipeline: frames captured into one
// queue's buffers and handed as DMABUF to another queue, whose driver checks every byte it reads.
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The DRM and VB2 operations.</summary>
internal static class MediaSteps
{
    /// <summary>The runner's DRM file (opened on first use), its GEM handles by label, and its vb2 queues by name.</summary>
    internal sealed class Session : StepState
    {
        private DrmFile? _file;

        /// <summary>GEM handles by label.</summary>
        public Dictionary<string, List<int>> Gem { get; } = new(StringComparer.Ordinal);

        /// <summary>vb2 queues by name.</summary>
        public Dictionary<string, Vb2Queue> Queues { get; } = new(StringComparer.Ordinal);

        /// <summary>The DRM file of the machine's DRM device, opened on first use.</summary>
        public DrmFile File(Machine m) => _file ??= m.Drm.Open();

        /// <inheritdoc/>
        public override string What => "the media objects";

        /// <summary>Releases the queues and closes the DRM file (every handle with it).</summary>
        public override void Release()
        {
            foreach (var q in Queues.Values) q.Release();
            Queues.Clear();
            _file?.Close();
            _file = null;
            Gem.Clear();
        }
    }

    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        Media("drm_create_dumb", ["label", "width", "height", "bpp", "count", "expect"], ["label", "width", "height"],
            step =>
            {
                Long(step, "width", 0, 1, 1 << 16);
                Long(step, "height", 0, 1, 1 << 16);
                Long(step, "bpp", 32, 1, 64);
                Long(step, "count", 1, 1, 4096);
            },
            (ctx, media, step) =>
            {
                string label = Str(step, "label")!;
                uint w = (uint)Long(step, "width", 0), h = (uint)Long(step, "height", 0), bpp = (uint)Long(step, "bpp", 32);
                long count = Long(step, "count", 1);
                var list = media.Gem.TryGetValue(label, out var l) ? l : media.Gem[label] = [];
                var stats = ctx.Stats(label);
                for (long i = 0; i < count; i++)
                {
                    try
                    {
                        var d = media.File(ctx.Machine).CreateDumb(w, h, bpp);
                        list.Add(d.Handle);
                        stats.Allocated++;
                        stats.BytesHeld += (long)d.Size;
                    }
                    catch (DrmException e)
                    {
                        stats.Failed++;
                        if (Str(step, "expect") != "failure") ctx.Result.Problems.Add($"{step.Location}: CREATE_DUMB {w}x{h}@{bpp} failed ({e.Errno}): {e.Message}");
                    }
                }
            }),
        Media("drm_close", ["label"], ["label"], null,
            (ctx, media, step) =>
            {
                string label = Str(step, "label")!;
                foreach (int handle in GemLabel(media, step, label))
                {
                    var file = media.File(ctx.Machine);
                    ctx.Stats(label).BytesHeld -= file.Lookup(handle).Size;
                    file.GemClose(handle);
                    ctx.Stats(label).Freed++;
                }
                media.Gem.Remove(label);
            }),
        Media("drm_prime_export", ["label", "as"], ["label", "as"], null,
            (ctx, media, step) =>
            {
                // Each object's dma-buf, held by the "as" label as a reference (the descriptor is closed again).
                var target = ctx.Holder(Str(step, "as")!);
                foreach (int handle in GemLabel(media, step, Str(step, "label")!))
                {
                    int fd = media.File(ctx.Machine).PrimeHandleToFd(handle);
                    var b = ctx.Machine.DmaBufFds.Get(fd);
                    ctx.Machine.DmaBufFds.Close(fd);
                    target.Add(new Held.DmaBuffer(b));
                    ctx.Stats(Str(step, "as")!).Allocated++;
                }
            }),
        Media("drm_prime_import", ["label", "as", "expect"], ["label", "as"], null,
            (ctx, media, step) =>
            {
                var m = ctx.Machine;
                string asLabel = Str(step, "as")!;
                var list = media.Gem.TryGetValue(asLabel, out var l) ? l : media.Gem[asLabel] = [];
                foreach (var held in ctx.Holder(Str(step, "label")!))
                {
                    if (held is not Held.DmaBuffer buf) throw new WorkloadException($"{step.Location}.label", "holds no dma-bufs");
                    int fd = m.DmaBufFds.Install(buf.Buf.Get());
                    try { list.Add(media.File(m).PrimeFdToHandle(fd)); ctx.Stats(asLabel).Allocated++; }
                    catch (DrmException e) { ctx.Stats(asLabel).Failed++; if (Str(step, "expect") != "failure") ctx.Result.Problems.Add($"{step.Location}: PRIME import failed ({e.Errno}): {e.Message}"); }
                    finally { m.DmaBufFds.Close(fd); }
                }
            }),
        Media("vb2_queue", ["queue", "device", "memops", "direction", "format", "width", "height", "size", "min_buffers"], ["queue"],
            step =>
            {
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
            },
            (ctx, media, step) =>
            {
                var m = ctx.Machine;
                string name = Str(step, "queue")!;
                if (media.Queues.ContainsKey(name)) throw new WorkloadException($"{step.Location}.queue", $"queue '{name}' exists already");
                Device? dev = Str(step, "device") is null ? null : DmaBufSteps.DeviceArg(m, step);
                Vb2MemOps ops = Str(step, "memops") switch
                {
                    "dma-sg" => m.Vb2DmaSg,
                    "vmalloc" => m.Vb2Vmalloc,
                    _ => m.Vb2DmaContig,
                };
                media.Queues[name] = m.Vb2QueueInit(name, dev, ops, Vb2IoModes.Mmap | Vb2IoModes.Userptr | Vb2IoModes.Dmabuf,
                    Str(step, "direction") == "output", [PlaneSize(step)], Int(step, "min_buffers", 0));
            }),
        Media("vb2_reqbufs", ["queue", "memory", "count", "expect"], ["queue", "count"],
            step =>
            {
                Int(step, "count", 0, 0, Vb2Queue.MaxFrame);
                if (Str(step, "memory") is { } m && m is not ("mmap" or "userptr" or "dmabuf"))
                    throw new WorkloadException($"{step.Location}.memory", $"'{m}' is not mmap, userptr or dmabuf");
            },
            (ctx, media, step) =>
            {
                var q = QueueArg(media, step);
                int count = Int(step, "count", 0);
                var memory = MemoryArg(step);
                int r = q.ReqBufs(memory, ref count);
                Errno(ctx, step, "VIDIOC_REQBUFS", r);
            }),
        Media("vb2_expbuf", ["queue", "as", "expect"], ["queue", "as"], null,
            (ctx, media, step) =>
            {
                var q = QueueArg(media, step);
                string asLabel = Str(step, "as")!;
                var target = ctx.Holder(asLabel);
                for (int i = 0; i < q.NumBuffers; i++)
                {
                    int r = q.ExpBuf(i, 0, DmaHeap.OCloexec | DmaHeap.ORdWr, out int fd);
                    if (Errno(ctx, step, "VIDIOC_EXPBUF", r)) continue;
                    var b = ctx.Machine.DmaBufFds.Get(fd);
                    ctx.Machine.DmaBufFds.Close(fd);
                    target.Add(new Held.DmaBuffer(b));
                    ctx.Stats(asLabel).Allocated++;
                }
            }),
        Media("vb2_streamon", ["queue", "expect"], ["queue"], null,
            (ctx, media, step) => Errno(ctx, step, "VIDIOC_STREAMON", QueueArg(media, step).StreamOn())),
        Media("vb2_streamoff", ["queue", "expect"], ["queue"], null,
            (ctx, media, step) => Errno(ctx, step, "VIDIOC_STREAMOFF", QueueArg(media, step).StreamOff())),
        Media("vb2_release", ["queue"], ["queue"], null,
            (_, media, step) =>
            {
                var q = QueueArg(media, step);
                q.Release();
                media.Queues.Remove(q.Name);
            }),
        Media("vb2_pipeline", ["from", "to", "buffers", "frames", "expect"], ["from", "to", "buffers", "frames"],
            step => Long(step, "frames", 1, 1, 100_000_000),
            Pipeline),
    ];

    /// <summary>
    /// A media operation: the arguments it requires (<paramref name="need"/>, each "is required" when absent), its own
    /// checks, and the <c>expect</c> every media step may give (an errno, -4095..0).
    /// </summary>
    private static WorkloadOp Media(string name, string[] args, string[] need, Action<WorkloadStep>? checks, Action<StepContext, Session, WorkloadStep> run) =>
        new(name, args,
            step =>
            {
                foreach (var k in need) Required(step, k);
                checks?.Invoke(step);
                Int(step, "expect", 0, -4095, 0);
            },
            (ctx, step) => run(ctx, ctx.State<Session>(), step));

    /// <summary>
    /// vb2_pipeline: the "from" queue (MMAP, capture) fills each frame; user space dequeues it and queues the buffer's
    /// dma-buf (label "buffers", one per index) on the "to" queue (DMABUF, output), whose driver reads it back.
    /// </summary>
    private static void Pipeline(StepContext ctx, Session media, WorkloadStep step)
    {
        var m = ctx.Machine;
        var from = QueueArg(media, step, "from");
        var to = QueueArg(media, step, "to");
        var bufs = ctx.Holder(Str(step, "buffers")!);
        long frames = Long(step, "frames", 1);
        if (bufs.Count < from.NumBuffers) throw new WorkloadException($"{step.Location}.buffers", $"holds {bufs.Count} dma-bufs, the queue has {from.NumBuffers} buffers");
        // A holding that is no dma-buf fails the step (as a null reference).
        var fds = bufs.Select(b => m.DmaBufFds.Install((b as Held.DmaBuffer)!.Buf.Get())).ToArray();
        long bad = 0, sameMemory = 0;
        try
        {
            for (int i = 0; i < from.NumBuffers; i++) Errno(ctx, step, "VIDIOC_QBUF", from.QBuf(i));
            if (!from.Streaming) Errno(ctx, step, "VIDIOC_STREAMON", from.StreamOn());
            if (!to.Streaming) Errno(ctx, step, "VIDIOC_STREAMON", to.StreamOn());
            for (long f = 0; f < frames; f++)
            {
                var cap = from.DriverNext();
                if (cap is null) { ctx.Result.Problems.Add($"{step.Location}: frame {f}: the capture driver has no buffer"); break; }
                byte mark = (byte)(f * 31 + 7);
                var bytes = from.PlaneSpan(cap, 0);
                bytes[0] = mark;
                bytes[^1] = (byte)~mark;
                from.BufferDone(cap);
                if (Errno(ctx, step, "VIDIOC_DQBUF", from.DQBuf(out int idx))) break;
                if (Errno(ctx, step, "VIDIOC_QBUF", to.QBufDmabuf(idx, fds[idx]))) break;
                var work = to.DriverNext()!;
                var seen = to.PlaneSpan(work, 0);
                if (seen[0] != mark || seen[bytes.Length - 1] != (byte)~mark) bad++;
                if (to.PlaneCookie(work, 0).DmaAddress == from.PlaneCookie(cap, 0).DmaAddress) sameMemory++;
                to.BufferDone(work);
                if (Errno(ctx, step, "VIDIOC_DQBUF", to.DQBuf(out _))) break;
                if (Errno(ctx, step, "VIDIOC_QBUF", from.QBuf(idx))) break;
            }
            Errno(ctx, step, "VIDIOC_STREAMOFF", from.StreamOff());
            Errno(ctx, step, "VIDIOC_STREAMOFF", to.StreamOff());
        }
        finally
        {
            foreach (int fd in fds) m.DmaBufFds.Close(fd);
        }
        if (bad > 0) ctx.Result.Problems.Add($"{step.Location}: {bad} of {frames} frames read back wrong");
        ctx.Result.Notes.Add($"vb2_pipeline {from.Name} -> {to.Name}: {frames} frames of {from.PlaneSizes[0]} bytes, {frames - bad} read back intact, " +
                             $"{sameMemory} at the producer's own device address (zero copy)");
    }

    private static List<int> GemLabel(Session media, WorkloadStep step, string label) =>
        media.Gem.TryGetValue(label, out var l) ? [.. l] : throw new WorkloadException($"{step.Location}.label", $"no GEM objects under '{label}'");

    private static Vb2Queue QueueArg(Session media, WorkloadStep step, string key = "queue")
    {
        string name = Str(step, key)!;
        return media.Queues.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.{key}", $"no vb2 queue '{name}' (make it with vb2_queue)");
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
    private static bool Errno(StepContext ctx, WorkloadStep step, string ioctl, int r)
    {
        int expect = Int(step, "expect", 0);
        if (r != expect) ctx.Result.Problems.Add($"{step.Location}: {ioctl} returned {r}, expected {expect}");
        return r != 0;
    }
}
