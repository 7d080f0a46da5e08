// What several verbs share: booting the board a profile names, running a workload (with a progress bar on a
// terminal), streaming a trace through a replayer, the --after option (rebuilding a real board's state before the
// view) and the one-line summary after a run.
using System.CommandLine;
using Spectre.Console;

namespace Kmem.Cli.Verbs;

internal static class VerbSupport
{
    /// <summary>Boots an embedded profile, or a profile file (a name ending in .json or holding a path separator), at the
    /// kernel version --kernel gives when it was given.</summary>
    internal static Machine BootMachine(CliContext ctx, string profile, string? cmdline = null)
    {
        var p = LoadProfile(profile);
        if (ctx.Kernel is { } version) p = p with { Version = version };
        return string.IsNullOrWhiteSpace(cmdline) ? Machine.Boot(p) : Machine.Boot(p, cmdline);
    }

    /// <summary>An embedded profile, or a profile file (a name ending in .json or holding a path separator).</summary>
    internal static MachineProfile LoadProfile(string profile)
    {
        bool isFile = profile.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || profile.Contains('/') || profile.Contains('\\');
        return isFile ? MachineProfile.Load(profile) : MachineProfile.Embedded(profile);
    }

    /// <summary>Runs the workload named by --workload, if one was; its problems go to stderr unless <paramref name="quiet"/>.</summary>
    internal static WorkloadRunner? RunIfGiven(CliContext ctx, Machine m, string? workload, bool quiet)
    {
        if (workload is null) return null;
        var wl = Commands.LoadWorkload(workload);
        var r = RunWorkload(ctx, m, wl, out var runner);
        if (!r.Ok && !quiet) foreach (var p in r.Problems) ctx.Err.WriteLine($"kmem: {p}");
        return runner;
    }

    /// <summary>Runs a workload on the machine, with a progress bar when the output is a terminal and the workload has several steps.</summary>
    internal static WorkloadResult RunWorkload(CliContext ctx, Machine m, Workload wl, out WorkloadRunner runner)
    {
        runner = new WorkloadRunner(m);
        if (ctx.Console.Profile.Capabilities.Interactive && wl.Steps.Count > 1)
        {
            WorkloadResult? result = null;
            var r = runner;
            ctx.Console.Progress().Start(p =>
            {
                var task = p.AddTask(Markup.Escape($"workload {wl.Name}"), maxValue: wl.Steps.Count);
                r.Progress = (_, done, _) => task.Value = done;
                result = r.Run(wl);
            });
            return result!;
        }
        return runner.Run(wl);
    }

    /// <summary>Streams a trace file (or standard input) through a replayer, with a progress bar on a terminal.</summary>
    internal static TraceReport ReplayTrace(CliContext ctx, Machine m, string path, TraceReplayOptions options, bool showProgress)
    {
        var replayer = new TraceReplayer(m);
        if (path == "-") return replayer.Replay(Console.In, options);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        using var reader = new StreamReader(stream);
        if (!showProgress || !ctx.Console.Profile.Capabilities.Interactive) return replayer.Replay(reader, options);
        TraceReport? report = null;
        ctx.Console.Progress().Start(p =>
        {
            var task = p.AddTask(Markup.Escape($"replay {Path.GetFileName(path)}"), maxValue: Math.Max(1, stream.Length));
            report = replayer.Replay(reader, options with { Progress = _ => task.Value = stream.Position });
            task.Value = task.MaxValue;
        });
        return report!;
    }

    /// <summary>
    /// The <c>--after PATH</c> option of a verb: the state to rebuild before anything else (today an rk-dma-heap-info dump,
    /// in its full or <c>grep Alloc</c> form). Every verb that takes it gets it here and boots with <see cref="BootAfter"/>.
    /// </summary>
    internal static Option<string?> AfterOption(string verb)
    {
        var after = new Option<string?>("--after")
        {
            Description = "First rebuild the state of a real board: an rk-dma-heap-info dump (full or 'grep Alloc' form), or a "
                + "directory of /proc files copied from it (the machine they describe, unless --profile is given; see 'kmem import').",
        };
        Commands.Refuse(after, f => Directory.Exists(f) ? null : Commands.MissingFile(f, $"{verb} --after: no file '{f}'"));
        return after;
    }

    /// <summary>
    /// Boots the machine a verb with <c>--after</c> works on. A directory is a /proc snapshot: the machine the files
    /// describe (or the --profile machine when <paramref name="profileGiven"/>) is booted with its state rebuilt, and the
    /// findings and what it held go to stderr. A file is an rk-dma-heap-info dump, rebuilt on the --profile machine.
    /// </summary>
    /// <exception cref="ProcSnapshotException">The snapshot is malformed, contradicts itself or does not fit the machine.</exception>
    internal static Machine BootAfter(CliContext ctx, string profile, bool profileGiven, string? cmdline, string? after)
    {
        if (after is not null && Directory.Exists(after))
        {
            var snap = ProcSnapshot.Load(after);
            foreach (var f in snap.Findings) ctx.Err.WriteLine($"kmem: {Path.Combine(after, f.ToString())}");
            var p = profileGiven ? LoadProfile(profile) : snap.DeriveProfile();
            if (ctx.Kernel is { } version) p = p with { Version = version };
            if (!string.IsNullOrWhiteSpace(cmdline)) p = p with { Cmdline = (p.Cmdline + " " + cmdline).Trim() };
            var (machine, import) = snap.Boot(p);
            ctx.Err.WriteLine($"kmem: rebuilt the /proc snapshot {after} ({string.Join(", ", snap.Files)}) on {p.Name}; "
                + $"{import.SlabCaches.Count} slab caches, {import.VmallocAreas.Count} vmalloc areas and {import.CmaPages} CMA pages rebuilt, "
                + $"{import.Recorded.Sum(r => r.Pages)} pages held as recorded allocations");
            return machine;
        }
        var m = BootMachine(ctx, profile, cmdline);
        try
        {
            ApplyAfter(ctx, m, after);
        }
        catch
        {
            m.Dispose();
            throw;
        }
        return m;
    }

    /// <summary>Rebuilds the state <c>--after</c> names on the machine (nothing when it was not given).</summary>
    internal static void ApplyAfter(CliContext ctx, Machine m, string? after)
    {
        if (after is null) return;
        ImportDump(ctx, m, after);
    }

    /// <summary>Reads and replays an rk-dma-heap-info dump on the machine; prints one line of what it rebuilt.</summary>
    /// <exception cref="CliInputException">The board has no RK-DMA-HEAP, or the dump is malformed or cannot be rebuilt
    /// (naming the file and line).</exception>
    internal static RkDmaHeapImport.Result ImportDump(CliContext ctx, Machine m, string file)
    {
        if (m.RkDmaHeaps.Count == 0) throw new CliInputException($"import: {m.Profile.Name} has no RK-DMA-HEAP (try --profile rv1106)");
        RkDmaHeapImport.Result r;
        try
        {
            r = RkDmaHeapImport.Replay(m, RkDmaHeapImport.Parse(File.ReadAllText(file)));
        }
        catch (DumpFormatException e)
        {
            // file:line, as a compiler names the place at fault.
            throw new CliInputException(e.Line > 0 ? $"{file}:{e.Line}: {e.Problem}" : $"{file}: {e.Problem}", e);
        }
        ctx.Err.WriteLine($"kmem: imported {r.DmaBufs} dma-bufs and {r.PageRuns} page runs ({r.Bytes >> 10} KiB) from {file}");
        if (r.UnnamedHeapTakenAs is { } heap)
            ctx.Err.WriteLine($"kmem: {file} has \"Alloc by\" lines without their dma-heap:<name> headers ('grep Alloc' form): they were put in {heap}, " +
                              "the board's RK-DMA-HEAP area, as dma-bufs (that form gives no inode numbers, attached devices, or which are page runs)");
        return r;
    }

    /// <summary>The one-line summary: steps and time, free pages, CMA free, dma-bufs, and whether every expectation held.</summary>
    internal static void SummaryLine(CliContext ctx, Machine m, WorkloadResult result)
    {
        long free = m.Zones.Sum(z => z.FreePages), managed = m.Zones.Sum(z => z.Managed);
        var bufs = m.DmaBufs;
        // The free CMA pages of the buddy allocator (NR_FREE_CMA_PAGES), plus the free room of the inactive areas
        // (CONFIG_CMA_INACTIVE, or a node's inactive property), which never enter it: what their bitmaps leave.
        long cmaFreeKb = (m.Cma.Values.Where(c => c.Inactive).Sum(c => (long)(c.Count - c.Used)) + m.Zones.Sum(z => z.FreeCmaPages)) * 4;
        ctx.Out.WriteLine($"summary: {result.StepsRun} steps in {result.Elapsed.TotalMilliseconds:F1} ms; {free} of {managed} pages free ({free * 100.0 / Math.Max(1, managed):F1}%); " +
                          $"CMA free {cmaFreeKb} kB; {bufs.Count} dma-bufs ({bufs.Sum(b => b.Size) >> 10} KiB); " +
                          $"{(result.Ok ? "all expectations held" : $"{result.Problems.Count} problem(s)")}");
        foreach (var p in result.Problems) ctx.Err.WriteLine($"kmem: {p}");
    }
}
