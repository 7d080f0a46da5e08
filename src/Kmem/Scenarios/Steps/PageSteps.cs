// The workload steps of the page allocator: page blocks and exact allocations held by labels, references
// (get_page/put_page), byte patterns written and verified through any label, draining the per-CPU lists,
// reclaim, and vm.min_free_kbytes.
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The page allocator's operations.</summary>
internal static class PageSteps
{
    /// <summary>The most vm.min_free_kbytes can be (the sysctl is an int).</summary>
    internal const long MaxMinFreeKbytes = int.MaxValue;

    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("alloc_pages", ["label", "order", "gfp", "node", "count", "expect", "fill"],
            step =>
            {
                Label(step);
                Int(step, "order", 0, 0, 63);
                GfpArg(step);
                Int(step, "node", Machine.NumaNoNode, Machine.NumaNoNode, 63);
                AllocArgs(step);
            },
            (ctx, step) =>
            {
                int order = Int(step, "order", 0);
                var gfp = GfpArg(step);
                // "node": alloc_pages_node() on that node (the machine refuses a node it does not have); without it the
                // workload thread's node, as alloc_pages() does.
                if (step.Args.ContainsKey("node"))
                {
                    int node = Int(step, "node", Machine.NumaNoNode);
                    ctx.AllocSteps(step, $"allocation of order {order} on node {node}", () => ctx.Machine.AllocPagesNode(node, gfp, order) is { IsNull: false } p ? new Held.PageBlock(p, order) : null);
                    return;
                }
                ctx.AllocSteps(step, $"allocation of order {order}", () => ctx.Machine.AllocPages(gfp, order) is { IsNull: false } p ? new Held.PageBlock(p, order) : null);
            }),
        WorkloadOp.Free("free_pages"),
        new("alloc_pages_exact", ["label", "size", "gfp", "count", "expect"],
            step =>
            {
                Label(step);
                SizeUpTo(step, 1UL << 32, "must be 1 byte .. 4 GiB");
                GfpArg(step);
                Long(step, "count", 1, 1, 10_000_000);
                Expect(step);
            },
            (ctx, step) =>
            {
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                ctx.AllocSteps(step, $"exact allocation of {size} bytes", () => ctx.Machine.AllocPagesExact((nuint)size, gfp) is var a && a != 0 ? new Held.Exact(a, (nuint)size) : null);
            }),
        new("get_page", ["label"], Label,
            (ctx, step) =>
            {
                foreach (var h in ctx.Holder(Str(step, "label")!)) if (!h.Page.IsNull) ctx.Machine.GetPage(h.Page);
            }),
        new("put_page", ["label"], Label,
            (ctx, step) =>
            {
                foreach (var h in ctx.Holder(Str(step, "label")!)) if (!h.Page.IsNull) ctx.Machine.PutPage(h.Page);
            }),
        new("write", ["label", "pattern"], LabelAndPattern,
            (ctx, step) =>
            {
                byte b = (byte)Pattern(step, "pattern");
                foreach (var h in ctx.Holder(Str(step, "label")!)) h.Fill(ctx.Machine, b);
            }),
        new("verify", ["label", "pattern"], LabelAndPattern,
            (ctx, step) =>
            {
                byte b = (byte)Pattern(step, "pattern");
                string label = Str(step, "label")!;
                foreach (var h in ctx.Holder(label))
                {
                    int bad = h.FirstOther(ctx.Machine, b);
                    if (bad >= 0) { ctx.Result.Problems.Add($"{step.Location}: '{label}' byte {bad} of {h.Page} is not 0x{b:x2}"); break; }
                }
            }),
        new("drain", [], _ => { }, (ctx, _) => ctx.Machine.DrainAllPages()),
        new("reclaim", [], _ => { }, (ctx, _) => ctx.Machine.Reclaim()),
        new("min_free_kbytes", ["value"],
            step =>
            {
                Required(step, "value");
                Long(step, "value", 0, 0, MaxMinFreeKbytes);
            },
            (ctx, step) => ctx.Machine.Sysctl.Vm.MinFreeKbytes = Long(step, "value", 0))
        {
            CheckOn = (m, step) =>
            {
                long maxKb = (long)(m.Profile.TotalRam / 4 / 1024);
                if (Long(step, "value", 0) > maxKb)
                    throw new WorkloadException($"{step.Location}.value", $"{Long(step, "value", 0)} KiB is more than a quarter of {m.Profile.Name}'s memory (0..{maxKb})");
            },
        },
    ];

    /// <summary>The checks of write and verify: a label and a byte pattern.</summary>
    private static void LabelAndPattern(WorkloadStep step)
    {
        Label(step);
        Pattern(step, "pattern");
    }
}
