// The workload steps of vmalloc: virtually contiguous areas held by labels (vmalloc, or vmalloc_user when "user"
// is set; /proc/vmallocinfo names the label as the caller), and the lazy-purge flush vm_unmap_aliases.
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The vmalloc operations.</summary>
internal static class VmallocSteps
{
    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("vmalloc", ["label", "size", "gfp", "count", "expect", "fill", "user"],
            step =>
            {
                Label(step);
                Required(step, "size");
                if (Size(step, "size") > int.MaxValue) throw new WorkloadException($"{step.Location}.size", "must be below 2 GiB");
                GfpArg(step);
                Bool(step, "user");
                AllocArgs(step);
            },
            (ctx, step) =>
            {
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                bool user = Bool(step, "user");
                string label = Str(step, "label")!;   // /proc/vmallocinfo names the label as the caller
                var m = ctx.Machine;
                ctx.AllocSteps(step, $"vmalloc({size})", () =>
                    (user ? m.VmallocUser((nuint)size, label, "", 0) : m.Vmalloc((nuint)size, gfp, label, "", 0)) is var a && a != 0
                        ? new Held.VmallocArea(a, (nuint)size) : null);
            }),
        WorkloadOp.Free("vfree"),
        new("vm_unmap_aliases", [], _ => { }, (ctx, _) => ctx.Machine.VmUnmapAliases()),
    ];
}
