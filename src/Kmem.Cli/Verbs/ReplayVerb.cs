// `kmem replay TRACE`: replays a recorded kmem trace (ftrace, trace-cmd, perf script) on a board and prints
// the report, as text or JSON. Without an explicit --profile the board is the recording machine as the trace
// shows it (TraceMachineInference); what was inferred and why heads the report.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class ReplayVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var trace = new Argument<string>("trace") { Description = "Text output of the kmem trace events (ftrace's trace file, trace-cmd report, perf script); - reads standard input." };
        Commands.Refuse(trace, t => Commands.MissingFile(t, $"replay: no trace file '{t}'", stdinAllowed: true));
        var cmdline = Commands.CmdlineOption();
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var noPages = new Option<bool>("--no-pages") { Description = "Leave the page events out (the recorded kernel's slab pages are page events too)." };
        var replay = new Command("replay", "Replay a recorded kmem trace on a board and report what Kmem did with it.") { trace, cmdline, json, noPages };
        replay.SetAction(pr => Run(ctx, pr.GetResult(profile) is { Implicit: false } ? pr.GetValue(profile)! : null, pr.GetValue(cmdline),
            pr.GetValue(trace)!, pr.GetValue(json), pr.GetValue(noPages)));
        return replay;
    }

    /// <summary>Replays on <paramref name="profile"/>, or, when none was given, on the machine the trace was recorded on.</summary>
    private static int Run(CliContext ctx, string? profile, string? cmdline, string path, bool json, bool noPages)
    {
        TraceMachine? recordedOn = null;
        string? stdin = null;
        if (profile is null)
        {
            // Standard input can be read once: it is kept for the replay after the inference has read it.
            if (path == "-") stdin = Console.In.ReadToEnd();
            using (var reader = stdin is not null ? new StringReader(stdin) : (TextReader)new StreamReader(path))
                recordedOn = TraceMachineInference.Infer(reader);
        }
        var p = recordedOn?.Profile ?? VerbSupport.LoadProfile(profile!);
        if (ctx.Kernel is { } version) p = p with { Version = version };
        using var m = string.IsNullOrWhiteSpace(cmdline) ? Machine.Boot(p) : Machine.Boot(p, cmdline);
        var options = new TraceReplayOptions { Pages = !noPages, RecordedOn = recordedOn };
        var report = stdin is not null
            ? new TraceReplayer(m).Replay(new StringReader(stdin), options)
            : VerbSupport.ReplayTrace(ctx, m, path, options, showProgress: !json);
        ctx.Out.Write(json ? report.ToJson() + "\n" : report.ToString());
        return 0;
    }
}
