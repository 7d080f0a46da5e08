// `kmem replay TRACE`: replays a recorded kmem trace (ftrace, trace-cmd, perf script) on a board and prints
// the report, as text or JSON.
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
        replay.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetValue(cmdline), pr.GetValue(trace)!, pr.GetValue(json), pr.GetValue(noPages)));
        return replay;
    }

    private static int Run(CliContext ctx, string profile, string? cmdline, string path, bool json, bool noPages)
    {
        using var m = VerbSupport.BootMachine(ctx, profile, cmdline);
        var report = VerbSupport.ReplayTrace(ctx, m, path, new TraceReplayOptions { Pages = !noPages }, showProgress: !json);
        ctx.Out.Write(json ? report.ToJson() + "\n" : report.ToString());
        return 0;
    }
}
