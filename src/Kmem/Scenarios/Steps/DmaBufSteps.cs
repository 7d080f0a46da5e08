// The workload steps of DMA-BUF heaps and Rockchip's RK-DMA-HEAP: dma-bufs from a heap, RK dma-bufs and page
// runs with their "Alloc by" name (the caller's, or the allocating thread's: a step may run on a thread of a
// given name, such as rockit's "vmpi"), attachments, and inode numbers taken by other files.
using System.Text.Json;
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The DMA-BUF and RK-DMA-HEAP operations.</summary>
internal static class DmaBufSteps
{
    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("dma_heap_alloc", ["label", "heap", "size", "count", "expect", "fill"], HeapAllocChecks(contig: false),
            (ctx, step) =>
            {
                var m = ctx.Machine;
                string name = Str(step, "heap") ?? "system";
                var heap = m.DmaHeaps.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.heap", $"no dma-buf heap '{name}' (heaps: {string.Join(", ", m.DmaHeaps.Keys)})");
                long size = (long)Size(step, "size");
                ctx.AllocSteps(step, $"{name} heap allocation of {size} bytes", () => heap.AllocateBuffer(size) is { } b ? new Held.DmaBuffer(b) : null);
            }),
        WorkloadOp.Free("dma_heap_free"),
        new("rk_dma_heap_alloc", ["label", "heap", "size", "name", "thread", "attach", "ino", "count", "expect", "fill"], HeapAllocChecks(contig: false),
            (ctx, step) =>
            {
                var rk = RkHeap(ctx.Machine, step);
                long size = (long)Size(step, "size");
                string? name = Str(step, "name");
                var devices = AttachArg(ctx.Machine, step);
                if (step.Args.ContainsKey("ino")) ctx.Machine.Sysctl.Kmem.DmaBufNextIno = (ulong)Long(step, "ino", 0);
                ctx.AllocSteps(step, $"rk_dma_heap_buffer_alloc({size})", () =>
                {
                    var b = OnThread(Str(step, "thread"), () => rk.BufferAlloc(size, name));
                    if (b is null) return null;
                    foreach (var d in devices) b.Attach(d);
                    return new Held.DmaBuffer(b);
                });
            }),
        WorkloadOp.Free("rk_dma_heap_free"),
        new("rk_dma_heap_alloc_contig", ["label", "heap", "size", "name", "thread", "count", "expect"], HeapAllocChecks(contig: true),
            (ctx, step) =>
            {
                var m = ctx.Machine;
                var rk = RkHeap(m, step);
                long size = (long)Size(step, "size");
                long aligned = (size + 4095) & ~4095L;
                string? name = Str(step, "name");
                ctx.AllocSteps(step, $"rk_dma_heap_alloc_contig_pages({size})", () =>
                    OnThread(Str(step, "thread"), () => rk.AllocContigPages(size, name)) is { IsNull: false } p
                        ? new Held.RkRun(rk, p, m.PageAddress(p), (nuint)aligned) : null);
            }),
        WorkloadOp.Free("rk_dma_heap_free_contig"),
        new("dmabuf_attach", ["label", "device"],
            step =>
            {
                Label(step);
                if (string.IsNullOrWhiteSpace(Str(step, "device"))) throw new WorkloadException($"{step.Location}.device", "is required");
            },
            (ctx, step) =>
            {
                var dev = DeviceArg(ctx.Machine, step);
                foreach (var h in ctx.Holder(Str(step, "label")!))
                    if (h is Held.DmaBuffer buf) buf.Buf.Attach(dev);
            }),
        new("dmabuf_inodes", ["count"],
            step =>
            {
                Required(step, "count");
                Long(step, "count", 0, 0, 1L << 40);
            },
            (ctx, step) => ctx.Machine.Sysctl.Kmem.DmaBufSkipInodes(Long(step, "count", 0))),
    ];

    /// <summary>The checks of the heap allocations; a page run (<paramref name="contig"/>) takes no fill.</summary>
    private static Action<WorkloadStep> HeapAllocChecks(bool contig) => step =>
    {
        Label(step);
        SizeUpTo(step, int.MaxValue, "must be 1 byte .. 2 GiB");
        Str(step, "heap");
        Str(step, "name");
        if (Str(step, "thread") is { Length: 0 or > 15 }) throw new WorkloadException($"{step.Location}.thread", "a thread name has 1..15 characters");
        if (!contig) AllocArgs(step);
        else { Long(step, "count", 1, 1, 10_000_000); Expect(step); }
        if (step.Args.TryGetValue("attach", out var a))
        {
            if (a.ValueKind != JsonValueKind.Array || a.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                throw new WorkloadException($"{step.Location}.attach", "must be an array of device names");
        }
        Long(step, "ino", 0, 0, long.MaxValue);
    };

    private static RkDmaHeap RkHeap(Machine m, WorkloadStep step)
    {
        string name = Str(step, "heap") ?? "rk-dma-heap-cma";
        return m.RkDmaHeapFind(name) ?? throw new WorkloadException($"{step.Location}.heap", $"no RK-DMA-HEAP '{name}' on {m.Profile.Name}");
    }

    /// <summary>The <c>device</c> argument: a device of the machine.</summary>
    internal static Device DeviceArg(Machine m, WorkloadStep step)
    {
        string name = Str(step, "device")!;
        return m.Devices.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.device", $"no device '{name}' on {m.Profile.Name} (devices: {string.Join(", ", m.Devices.Keys)})");
    }

    private static List<Device> AttachArg(Machine m, WorkloadStep step)
    {
        var list = new List<Device>();
        if (!step.Args.TryGetValue("attach", out var a)) return list;
        foreach (var d in a.EnumerateArray())
        {
            string n = d.GetString()!;
            list.Add(m.Devices.GetValueOrDefault(n) ?? throw new WorkloadException($"{step.Location}.attach", $"no device '{n}' on {m.Profile.Name}"));
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
}
