// The workload steps of DMA-BUF heaps and Rockchip's RK-DMA-HEAP: dma-bufs from a heap, RK dma-bufs and page
// runs with their "Alloc by" name (the caller's, or the allocating thread's: a step may run on a thread of a
// given name, such as rockit's "vmpi"), attachments, and inode numbers taken by other files.
using System.Text.Json;

namespace Kmem;

public sealed partial class WorkloadRunner
{
    private static readonly string[] DmaBufOps = ["dma_heap_alloc", "rk_dma_heap_alloc", "rk_dma_heap_alloc_contig", "dmabuf_attach", "dmabuf_inodes"];
    private static readonly string[] DmaBufLabelOps = ["dma_heap_alloc", "dma_heap_free", "rk_dma_heap_alloc", "rk_dma_heap_free",
        "rk_dma_heap_alloc_contig", "rk_dma_heap_free_contig", "dmabuf_attach"];

    /// <summary>Runs a DMA-BUF step; false when the step is not one.</summary>
    private bool ExecuteDmaBuf(WorkloadStep step)
    {
        switch (step.Op)
        {
            case "dma_heap_alloc":
            {
                string name = Str(step, "heap") ?? "system";
                var heap = _m.DmaHeaps.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.heap", $"no dma-buf heap '{name}' (heaps: {string.Join(", ", _m.DmaHeaps.Keys)})");
                long size = (long)Size(step, "size");
                AllocSteps(step, $"{name} heap allocation of {size} bytes", () => heap.AllocateBuffer(size) is { } b ? BufHeld(b) : null);
                return true;
            }
            case "rk_dma_heap_alloc":
            {
                var rk = RkHeap(step);
                long size = (long)Size(step, "size");
                string? name = Str(step, "name");
                var devices = AttachArg(step);
                if (step.Args.ContainsKey("ino")) _m.DmaBufNextIno = (ulong)Long(step, "ino", 0);
                AllocSteps(step, $"rk_dma_heap_buffer_alloc({size})", () =>
                {
                    var b = OnThread(Str(step, "thread"), () => rk.BufferAlloc(size, name));
                    if (b is null) return null;
                    foreach (var d in devices) b.Attach(d);
                    return BufHeld(b);
                });
                return true;
            }
            case "rk_dma_heap_alloc_contig":
            {
                var rk = RkHeap(step);
                long size = (long)Size(step, "size");
                long aligned = (size + 4095) & ~4095L;
                string? name = Str(step, "name");
                AllocSteps(step, $"rk_dma_heap_alloc_contig_pages({size})", () =>
                    OnThread(Str(step, "thread"), () => rk.AllocContigPages(size, name)) is { IsNull: false } p
                        ? new Held(p, 0, _m.PageAddress(p), (nuint)aligned) { Rk = rk } : null);
                return true;
            }
            case "dmabuf_attach":
            {
                var dev = DeviceArg(step);
                foreach (var h in Holder(Str(step, "label")!))
                    if (h.Buf is not null) h.Buf.Attach(dev);
                return true;
            }
            case "dmabuf_inodes":
                _m.DmaBufSkipInodes(Long(step, "count", 0));
                return true;
        }
        return false;
    }

    /// <summary>A dma-buf held by a label (write/verify/fill go through its CPU view).</summary>
    private static Held BufHeld(DmaBuf b) => new(default, 0, 0, (nuint)b.Size) { Buf = b };

    private RkDmaHeap RkHeap(WorkloadStep step)
    {
        string name = Str(step, "heap") ?? "rk-dma-heap-cma";
        return _m.RkDmaHeapFind(name) ?? throw new WorkloadException($"{step.Location}.heap", $"no RK-DMA-HEAP '{name}' on {_m.Profile.Name}");
    }

    private Device DeviceArg(WorkloadStep step)
    {
        string name = Str(step, "device")!;
        return _m.Devices.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.device", $"no device '{name}' on {_m.Profile.Name} (devices: {string.Join(", ", _m.Devices.Keys)})");
    }

    private List<Device> AttachArg(WorkloadStep step)
    {
        var list = new List<Device>();
        if (!step.Args.TryGetValue("attach", out var a)) return list;
        foreach (var d in a.EnumerateArray())
        {
            string n = d.GetString()!;
            list.Add(_m.Devices.GetValueOrDefault(n) ?? throw new WorkloadException($"{step.Location}.attach", $"no device '{n}' on {_m.Profile.Name}"));
        }
        return list;
    }

    /// <summary>Runs <paramref name="f"/> on a thread of that name (what the kernel sees as current->comm), or here.</summary>
    private static T OnThread<T>(string? name, Func<T> f)
    {
        if (name is null) return f();
        T result = default!;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try { result = f(); }
            catch (Exception e) { error = e; }
        }) { Name = name };
        t.Start();
        t.Join();
        if (error is not null) throw error;
        return result;
    }

    private static void ValidateDmaBuf(WorkloadStep step)
    {
        switch (step.Op)
        {
            case "dma_heap_alloc" or "rk_dma_heap_alloc" or "rk_dma_heap_alloc_contig":
                if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
                if (Size(step, "size") is 0 or > int.MaxValue) throw new WorkloadException($"{step.Location}.size", "must be 1 byte .. 2 GiB");
                Str(step, "heap");
                Str(step, "name");
                if (Str(step, "thread") is { Length: 0 or > 15 }) throw new WorkloadException($"{step.Location}.thread", "a thread name has 1..15 characters");
                if (step.Op != "rk_dma_heap_alloc_contig") AllocArgs(step);
                else { Long(step, "count", 1, 1, 10_000_000); Expect(step); }
                if (step.Args.TryGetValue("attach", out var a))
                {
                    if (a.ValueKind != JsonValueKind.Array || a.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                        throw new WorkloadException($"{step.Location}.attach", "must be an array of device names");
                }
                Long(step, "ino", 0, 0, long.MaxValue);
                break;
            case "dmabuf_attach":
                if (string.IsNullOrWhiteSpace(Str(step, "device"))) throw new WorkloadException($"{step.Location}.device", "is required");
                break;
            case "dmabuf_inodes":
                if (!step.Args.ContainsKey("count")) throw new WorkloadException($"{step.Location}.count", "is required");
                Long(step, "count", 0, 0, 1L << 40);
                break;
        }
    }
}
