// `kmem run WORKLOAD`: runs a workload (optionally on top of a real board's state, --after) and prints its summary:
// the label table, each allocation step's outcome (success, first failure's reason, the orders and migratetypes of its
// pages, the buddy allocator's fallbacks), the fragmentation and each CMA area's largest free run before and after,
// the RTnet figures when it loaded RTnet, what it added to the dump's layout, and buddyinfo.
using System.CommandLine;
using Spectre.Console;

namespace Kmem.Cli.Verbs;

internal static class RunVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var workload = new Argument<string>("workload") { Description = $"A workload file (JSON, see docs/workloads.md) or a built-in name ({string.Join(", ", Commands.BuiltinWorkloads())})." };
        var cmdline = Commands.CmdlineOption();
        var after = VerbSupport.AfterOption("run");
        var run = new Command("run", "Run a workload and print a summary.") { workload, cmdline, after };
        run.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetResult(profile) is { Implicit: false }, pr.GetValue(cmdline), pr.GetValue(workload)!, pr.GetValue(after)));
        return run;
    }

    private static int Run(CliContext ctx, string profile, bool profileGiven, string? cmdline, string workload, string? after)
    {
        var wl = Commands.LoadWorkload(workload);
        using var m = VerbSupport.BootAfter(ctx, profile, profileGiven, cmdline, after);
        var before = after is null ? new HashSet<ulong>() : RkStarts(m);
        var result = VerbSupport.RunWorkload(ctx, m, wl, out _);
        Summary(ctx, m, wl, result);
        if (m.RtnetLoaded) RtnetFigures(ctx, m);
        if (after is not null)
        {
            // What the workload added to the imported layout, and what is left.
            ctx.Out.WriteLine();
            foreach (var h in m.RkDmaHeaps.Values)
            {
                foreach (var e in h.DmaBufEntries.Concat(h.ContigEntries).Where(e => !before.Contains(e.Start)).OrderBy(e => e.Start))
                    ctx.Out.WriteLine($"new in {h.Name}: {e.AllocBy} [0x{e.Start:x8}-0x{e.End:x8}] {e.Size >> 10} KiB");
                ctx.Out.WriteLine($"{h.Name}: {h.Area.Used << 2} KiB used of {h.Area.Count << 2} KiB, largest free run {h.Area.MaxChunk << 2} KiB");
            }
        }
        ctx.Out.WriteLine();
        ctx.Out.Write(m.ProcFs.Read("/proc/buddyinfo"));
        return result.Ok ? 0 : 1;
    }

    /// <summary>The start addresses of every buffer of the RK heaps (what the dump rebuilt).</summary>
    private static HashSet<ulong> RkStarts(Machine m) =>
        [.. m.RkDmaHeaps.Values.SelectMany(h => h.DmaBufEntries.Concat(h.ContigEntries)).Select(e => e.Start)];

    /// <summary>The table of what each label allocated, failed, freed and holds, the workload's notes, and the summary line.</summary>
    private static void Summary(CliContext ctx, Machine m, Workload wl, WorkloadResult result)
    {
        var table = new Table().Title(Markup.Escape($"workload {wl.Name} on {m.Profile.Name}")).AddColumns("label", "allocated", "failed", "freed", "pages held", "bytes held");
        foreach (var (label, s) in result.Labels)
            table.AddRow(Markup.Escape(label), s.Allocated.ToString(), s.Failed.ToString(), s.Freed.ToString(), s.PagesHeld.ToString(), s.BytesHeld.ToString());
        ctx.Console.Write(table);
        foreach (var note in result.Notes) ctx.Out.WriteLine(note);
        StepLines(ctx, result);
        Fragmentation(ctx, result);
        VerbSupport.SummaryLine(ctx, m, result);
    }

    /// <summary>One line per allocation step: how many succeeded and failed, the first failure's reason, where the pages came from.</summary>
    private static void StepLines(CliContext ctx, WorkloadResult result)
    {
        foreach (var s in result.Steps)
        {
            var line = new System.Text.StringBuilder($"step {s.Location} {s.Op} ({s.Label}): ");
            line.Append(s.Succeeded ? $"ok, {s.Allocated} allocated" : $"FAILED {s.Failed} of {s.Allocated + s.Failed}");
            if (s.Sources.Count > 0)
                line.Append("; pages from ").AppendJoin(", ", s.Sources.Select(p =>
                    $"{(p.Order >= 0 ? $"order {p.Order}" : "CMA runs")} {p.Migratetype.KernelName()} x{p.Blocks} ({p.Pages} pages)"));
            if (s.Fallbacks.Count > 0)
                line.Append("; fell back ").AppendJoin(", ", s.Fallbacks.Select(f => $"{f.Wanted.KernelName()} from {f.From.KernelName()} x{f.Count}"));
            if (s.FirstFailure is { } why) line.Append("; first failure: ").Append(why);
            ctx.Out.WriteLine(line.ToString());
        }
    }

    /// <summary>extfrag unusable_index before and after, and each CMA area's largest free run before and after.</summary>
    private static void Fragmentation(CliContext ctx, WorkloadResult result)
    {
        ctx.Out.WriteLine("fragmentation (extfrag unusable_index, per order) before:");
        ctx.Out.Write(result.UnusableIndexBefore);
        ctx.Out.WriteLine("after:");
        ctx.Out.Write(result.UnusableIndexAfter);
        foreach (var c in result.CmaFreeRuns)
            ctx.Out.WriteLine($"CMA {c.Area}: largest free run {c.BeforePages * 4} KiB before, {c.AfterPages * 4} KiB after (of {c.SizePages * 4} KiB)");
    }

    /// <summary>The RTnet figures after a run: every pool, socket and NIC.</summary>
    private static void RtnetFigures(CliContext ctx, Machine m)
    {
        var rt = m.Rtnet;
        var pools = new Table().Title("rtskb pools").AddColumns("pool", "size", "free", "out", "empty allocs", "failed exchanges");
        foreach (var p in rt.Pools)
            pools.AddRow(Markup.Escape(p.Name), p.Size.ToString(), p.FreeCount.ToString(), p.Out.ToString(), p.AllocFailures.ToString(), p.AcquireFailures.ToString());
        ctx.Console.Write(pools);
        var socks = new Table().Title("sockets").AddColumns("port", "received", "dropped", "queued");
        foreach (var (port, s) in rt.Sockets.OrderBy(kv => kv.Key))
            socks.AddRow(port.ToString(), s.Received.ToString(), s.Dropped.ToString(), s.Queued.ToString());
        ctx.Console.Write(socks);
        foreach (var nic in rt.Nics.Values)
            ctx.Out.WriteLine($"{nic.Name}: rx {nic.RxPackets} packets, {nic.RxDropped} dropped; rx pool {nic.RxPool.FreeCount}/{nic.RxPool.Size} free");
        ctx.Out.Write(m.ProcFs.Read("/proc/rtnet/rtskb"));
    }
}
