// `kmem slabtop`: the slab caches once, as `slabtop -o` prints them (SlabTop), after an optional rebuilt state (--after)
// and workload.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class SlabtopVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var workload = Commands.WorkloadOption();
        var cmdline = Commands.CmdlineOption();
        var sort = new Option<string>("--sort", "-s") { Description = "Sort key as slabtop's: c cache size (default), o objects, a active objects, s object size, l slabs, b objects per slab, n name.", DefaultValueFactory = _ => "c" };
        Commands.Refuse(sort, key => key.Length != 1 || !SlabTop.SortKeys.Contains(key[0]) ? $"--sort {key}: not one of {string.Join(", ", SlabTop.SortKeys.ToCharArray())}" : null);
        var lines = new Option<int>("--lines", "-n") { Description = "Show at most this many caches (0: all).", DefaultValueFactory = _ => 0 };
        Commands.Refuse(lines, n => n < 0 ? $"--lines {n} is negative" : null);
        var after = VerbSupport.AfterOption("slabtop");
        var slabtop = new Command("slabtop", "Print the slab caches once, as slabtop -o does, largest first.") { workload, cmdline, sort, lines, after };
        slabtop.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetResult(profile) is { Implicit: false }, pr.GetValue(cmdline), pr.GetValue(workload), pr.GetValue(sort)![0], pr.GetValue(lines), pr.GetValue(after)));
        return slabtop;
    }

    private static int Run(CliContext ctx, string profile, bool profileGiven, string? cmdline, string? workload, char key, int lines, string? after)
    {
        using var m = VerbSupport.BootAfter(ctx, profile, profileGiven, cmdline, after);
        var runner = VerbSupport.RunIfGiven(ctx, m, workload, quiet: false);
        SlabTop.Print(ctx, m, key, lines);
        runner?.ReleaseAll();
        return 0;
    }
}
