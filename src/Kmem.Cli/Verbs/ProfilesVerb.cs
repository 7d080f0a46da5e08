// `kmem profiles`: the embedded machine profiles as a table, or the JSON of one (a start for one's own board).
using System.CommandLine;
using Spectre.Console;

namespace Kmem.Cli.Verbs;

internal static class ProfilesVerb
{
    public static Command Create(CliContext ctx)
    {
        var json = new Option<string?>("--json") { Description = "Print the JSON of one embedded profile (a starting point for your own board)." };
        var profiles = new Command("profiles", "List the embedded machine profiles.") { json };
        profiles.SetAction(pr => Run(ctx, pr.GetValue(json)));
        return profiles;
    }

    private static int Run(CliContext ctx, string? json)
    {
        if (json is not null)
        {
            ctx.Out.Write(MachineProfile.EmbeddedJson(json));
            return 0;
        }
        var table = new Table().AddColumns("name", "arch", "CPUs", "RAM", "zones", "CMA", "devices", "description");
        foreach (var name in MachineProfile.EmbeddedNames)
        {
            var p = MachineProfile.Embedded(name);
            table.AddRow(
                Markup.Escape(p.Name) + (name == MachineProfile.DefaultName ? " (default)" : ""),
                p.Arch.ToString().ToLowerInvariant(),
                p.Cpus.ToString(),
                $"{p.TotalRam >> 20} MiB",
                string.Join(" ", p.ZoneTypes.Select(z => z.KernelName())),
                p.Cma.Count == 0 ? "-" : Markup.Escape(string.Join(", ", p.Cma.Select(c => $"{c.Name} {c.Size >> 20} MiB"))),
                p.Devices.Count.ToString(),
                Markup.Escape(p.Description));
        }
        ctx.Console.Write(table);
        return 0;
    }
}
