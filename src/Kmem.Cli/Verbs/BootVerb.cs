// `kmem boot`: boots a profile (with extra kernel command-line words) and prints the boot log.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class BootVerb
{
    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var cmdline = Commands.CmdlineOption();
        var boot = new Command("boot", "Boot a profile and print the boot log.") { cmdline };
        boot.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetValue(cmdline)));
        return boot;
    }

    private static int Run(CliContext ctx, string profile, string? cmdline)
    {
        using var m = VerbSupport.BootMachine(ctx, profile, cmdline);
        ctx.Out.Write(m.Dmesg());
        return 0;
    }
}
