// `kmem cat PATH`: one kernel view (/proc, /sys) of a freshly booted board (or of a real board's state rebuilt with
// --after), after an optional workload;
// `kmem cat --list` lists the paths the board serves.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class CatVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var path = new Argument<string>("path") { Description = "A kernel view, e.g. /proc/buddyinfo (see 'kmem cat --list').", Arity = ArgumentArity.ZeroOrOne };
        var workload = Commands.WorkloadOption();
        var list = new Option<bool>("--list") { Description = "List the paths the machine serves." };
        var cmdline = Commands.CmdlineOption();
        var after = VerbSupport.AfterOption("cat");
        var cat = new Command("cat", "Print one kernel view (after an optional rebuilt state and workload).") { path, workload, list, cmdline, after };
        cat.Validators.Add(r =>
        {
            if (!r.GetValue(list) && string.IsNullOrEmpty(r.GetValue(path))) r.AddError("cat needs a path (or --list)");
        });
        cat.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetResult(profile) is { Implicit: false }, pr.GetValue(cmdline), pr.GetValue(list), pr.GetValue(path), pr.GetValue(workload), pr.GetValue(after)));
        return cat;
    }

    private static int Run(CliContext ctx, string profile, bool profileGiven, string? cmdline, bool list, string? path, string? workload, string? after)
    {
        using var m = VerbSupport.BootAfter(ctx, profile, profileGiven, cmdline, after);
        if (list)
        {
            foreach (var p in m.ProcFs.Paths) ctx.Out.WriteLine(p);
            return 0;
        }
        if (path!.StartsWith("/proc/rtnet/", StringComparison.Ordinal)) _ = m.Rtnet;   // modprobe rtnet
        var runner = VerbSupport.RunIfGiven(ctx, m, workload, quiet: true);
        ctx.Out.Write(m.ProcFs.Read(path));
        runner?.ReleaseAll();
        return 0;
    }
}
