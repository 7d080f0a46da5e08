// `kmem dmesg`: the log ring after boot (and an optional workload), filtered by printk level.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class DmesgVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var workload = Commands.WorkloadOption();
        var level = new Option<int>("--level") { Description = "Only records at this printk level or more urgent (0-7).", DefaultValueFactory = _ => 7 };
        Commands.Refuse(level, lv => lv is < 0 or > 7 ? $"--level {lv} is outside 0..7" : null);
        var cmdline = Commands.CmdlineOption();
        var dmesg = new Command("dmesg", "Print the log ring after boot (and an optional workload).") { workload, level, cmdline };
        dmesg.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetValue(cmdline), pr.GetValue(workload), pr.GetValue(level)));
        return dmesg;
    }

    private static int Run(CliContext ctx, string profile, string? cmdline, string? workload, int level)
    {
        using var m = VerbSupport.BootMachine(ctx, profile, cmdline);
        VerbSupport.RunIfGiven(ctx, m, workload, quiet: true);
        ctx.Out.Write(m.Log.Dmesg((LogLevel)level));
        return 0;
    }
}
