// The workload steps of contiguous and device memory: runs from a named CMA area (cma_alloc/cma_release), coherent
// DMA buffers of a named device, and movable blocks (pages that compaction and CMA may migrate; reached under a
// pin), each held by a label.
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The CMA, coherent DMA and movable-block operations.</summary>
internal static class CmaSteps
{
    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("cma_alloc", ["label", "cma", "count", "align", "gfp", "times", "expect", "fill"],
            step =>
            {
                Label(step);
                if (string.IsNullOrWhiteSpace(Str(step, "cma"))) throw new WorkloadException($"{step.Location}.cma", "is required (the area's name)");
                Int(step, "count", 1, 1, 1 << 24);
                Int(step, "align", 0, 0, 30);
                GfpArg(step);
                AllocArgs(step, "times");
            },
            (ctx, step) =>
            {
                var m = ctx.Machine;
                var cma = m.Cma.GetValueOrDefault(Str(step, "cma")!) ?? throw new WorkloadException($"{step.Location}.cma", $"no CMA area '{Str(step, "cma")}' on {m.Profile.Name} (areas: {string.Join(", ", m.Cma.Keys)})");
                int count = Int(step, "count", 1), align = Int(step, "align", 0);
                var gfp = GfpArg(step);
                ctx.AllocSteps(step, $"cma_alloc({cma.Name}, {count})", () => m.CmaAlloc(cma, count, align, gfp) is { IsNull: false } p
                    ? new Held.CmaRun(cma, p, m.PageAddress(p), (nuint)count * 4096) : null, "times");
            }),
        WorkloadOp.Free("cma_release"),
        new("dma_alloc_coherent", ["label", "device", "size", "gfp", "count", "expect", "fill"],
            step =>
            {
                Label(step);
                if (string.IsNullOrWhiteSpace(Str(step, "device"))) throw new WorkloadException($"{step.Location}.device", "is required (the device's name)");
                SizeUpTo(step, int.MaxValue, "must be 1 byte .. 2 GiB");
                GfpArg(step);
                AllocArgs(step);
            },
            (ctx, step) =>
            {
                var m = ctx.Machine;
                var dev = m.Devices.GetValueOrDefault(Str(step, "device")!) ?? throw new WorkloadException($"{step.Location}.device", $"no device '{Str(step, "device")}' on {m.Profile.Name} (devices: {string.Join(", ", m.Devices.Keys)})");
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                ctx.AllocSteps(step, $"dma_alloc_coherent({dev.Name}, {size})", () => m.DmaAllocCoherent(dev, (nuint)size, gfp, out ulong h, "workload") is var a && a != 0
                    ? new Held.Coherent(dev, a, (nuint)size, h, gfp.AllowsBlocking()) : null);
            }),
        WorkloadOp.Free("dma_free_coherent"),
        new("alloc_movable", ["label", "order", "gfp", "count", "expect", "fill"],
            step =>
            {
                Label(step);
                Int(step, "order", 0, 0, 10);
                if (step.Args.ContainsKey("gfp") && (GfpArg(step) & Gfp.Movable) == 0) throw new WorkloadException($"{step.Location}.gfp", "a movable allocation needs __GFP_MOVABLE");
                AllocArgs(step);
            },
            (ctx, step) =>
            {
                int order = Int(step, "order", 0);
                var gfp = step.Args.ContainsKey("gfp") ? GfpArg(step) : Gfp.HighUserMovable;
                ctx.AllocSteps(step, $"movable allocation of order {order}", () => ctx.Machine.AllocMovable(gfp, order) is { } mv ? new Held.Movable(mv, order) : null);
            }),
        WorkloadOp.Free("free_movable"),
    ];
}
