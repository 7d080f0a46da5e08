// `kmem map --out FILE.svg`: the physical memory of a board as an SVG picture, after boot, a workload or a
// replayed trace, on a fresh board or on a real board's state rebuilt with --after.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class MapVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var cmdline = Commands.CmdlineOption();
        var workload = Commands.WorkloadOption();
        var trace = new Option<string?>("--trace") { Description = "Replay this kmem trace first (see 'kmem replay')." };
        Commands.Refuse(trace, t => Commands.MissingFile(t, $"map --trace: no trace file '{t}'", stdinAllowed: true));
        var output = new Option<string>("--out", "-o") { Description = "The SVG file to write.", Required = true };
        Commands.Refuse(output, OutputPathProblem);
        var after = VerbSupport.AfterOption("map");
        var map = new Command("map", "Draw the physical memory as an SVG picture: owners, migratetypes, zones, CMA areas, free blocks per order.") { cmdline, workload, trace, output, after };
        map.Validators.Add(r =>
        {
            if (r.GetValue(workload) is not null && r.GetValue(trace) is not null) r.AddError("map: give --workload or --trace, not both");
        });
        map.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetResult(profile) is { Implicit: false }, pr.GetValue(cmdline), pr.GetValue(workload), pr.GetValue(trace), pr.GetValue(output)!, pr.GetValue(after)));
        return map;
    }

    /// <summary>Why the picture cannot be written there (an empty name, a missing directory, a directory), or null.</summary>
    private static string? OutputPathProblem(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) return "map --out: the file name is empty";
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) return $"map --out {path}: the directory {dir} does not exist";
        if (Directory.Exists(full)) return $"map --out {path}: is a directory, not a file";
        return null;
    }

    private static int Run(CliContext ctx, string profile, bool profileGiven, string? cmdline, string? workload, string? trace, string path, string? after)
    {
        using var m = VerbSupport.BootAfter(ctx, profile, profileGiven, cmdline, after);
        string state = after is null ? "" : $" (state of {Path.GetFileName(after)})";
        string title = $"{m.Profile.Name}{state}: physical memory after boot";
        if (workload is not null)
        {
            var wl = Commands.LoadWorkload(workload);
            var result = VerbSupport.RunWorkload(ctx, m, wl, out _);
            title = $"{m.Profile.Name}{state}: physical memory after workload {wl.Name}";
            if (!result.Ok) foreach (var p in result.Problems) ctx.Err.WriteLine($"kmem: {p}");
        }
        if (trace is not null)
        {
            var report = VerbSupport.ReplayTrace(ctx, m, trace, new TraceReplayOptions(), showProgress: true);
            title = $"{m.Profile.Name}{state}: physical memory after replaying {Path.GetFileName(trace)} ({report.Replayed} events)";
        }
        string svg = m.RenderMemoryMap(title);
        try
        {
            File.WriteAllText(path, svg);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliInputException($"map --out {path}: cannot write the file: {e.Message}", e);
        }
        ctx.Out.WriteLine($"kmem: wrote {path} ({new FileInfo(path).Length} bytes)");
        return 0;
    }
}
