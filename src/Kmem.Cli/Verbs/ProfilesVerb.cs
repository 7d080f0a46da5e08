// `kmem profiles`: the embedded machine profiles as a table, the JSON of one (a start for one's own board), or the
// kernel configuration a profile resolves to, as a .config fragment.
using System.CommandLine;
using Spectre.Console;

namespace Kmem.Cli.Verbs;

internal static class ProfilesVerb
{
    public static Command Create(CliContext ctx)
    {
        var json = new Option<string?>("--json") { Description = "Print the JSON of one embedded profile (a starting point for your own board)." };
        var config = new Option<string?>("--config")
        {
            Description = "Print the kernel configuration an embedded profile or a profile file resolves to (its release's defconfig with the profile's changes), as a .config fragment; --kernel changes the release.",
        };
        var profiles = new Command("profiles", "List the embedded machine profiles.") { json, config };
        profiles.SetAction(pr => Run(ctx, pr.GetValue(json), pr.GetValue(config)));
        return profiles;
    }

    private static int Run(CliContext ctx, string? json, string? config)
    {
        if (json is not null)
        {
            ctx.Out.Write(MachineProfile.EmbeddedJson(json));
            return 0;
        }
        if (config is not null)
        {
            var p = VerbSupport.LoadProfile(config);
            if (ctx.Kernel is { } version) p = p with { Version = version };
            ctx.Out.Write($"# Linux/{p.Arch.ToString().ToLowerInvariant()} {p.Version.Release} kernel configuration (the options Kmem acts on, and the profile's others)\n");
            ctx.Out.Write(p.Config.ToDotConfig());
            return 0;
        }
        // The figures stay on one line each (a wrapped CMA list reads as two areas); the descriptions, which would be
        // squeezed into a narrow column, follow the table one line each.
        var table = new Table().AddColumns(
            new TableColumn("name").NoWrap(), new TableColumn("arch").NoWrap(), new TableColumn("kernel").NoWrap(),
            new TableColumn("CPUs").NoWrap(), new TableColumn("nodes").NoWrap(), new TableColumn("RAM").NoWrap(),
            new TableColumn("zones").NoWrap(), new TableColumn("CMA").NoWrap(), new TableColumn("devices").NoWrap());
        var descriptions = new List<string>();
        foreach (var name in MachineProfile.EmbeddedNames)
        {
            var p = MachineProfile.Embedded(name);
            table.AddRow(
                Markup.Escape(p.Name) + (name == MachineProfile.DefaultName ? " (default)" : ""),
                p.Arch.ToString().ToLowerInvariant(),
                p.Version.ToString(),
                p.Cpus.ToString(),
                p.NodeCount.ToString(),
                $"{p.TotalRam >> 20} MiB",
                string.Join(" ", p.ZoneTypes.Select(z => z.KernelName())),
                CmaColumn(p),
                p.Devices.Count.ToString());
            descriptions.Add($"{Markup.Escape(p.Name),-20} {Markup.Escape(p.Description)}");
        }
        ctx.Console.Write(table);
        foreach (var d in descriptions) ctx.Console.MarkupLine(d);
        return 0;
    }

    /// <summary>The CMA areas the board has once booted: stated in the profile, or made by its command line (cma=,
    /// rk_dma_heap_cma=) where the boot places them.</summary>
    private static string CmaColumn(MachineProfile p)
    {
        static string Size(ulong bytes) => bytes % (1UL << 20) == 0 ? $"{bytes >> 20} MiB" : $"{bytes >> 10} KiB";
        IEnumerable<(string Name, ulong Size)> areas;
        try
        {
            using var m = Machine.Boot(p);
            areas = m.Cma.Values.OrderBy(c => c.Base).Select(c => (c.Name, c.Size)).ToList();
        }
        catch (KmemException)
        {
            areas = p.Cma.Select(c => (c.Name, c.Size));
        }
        var list = areas.ToList();
        return list.Count == 0 ? "-" : Markup.Escape(string.Join(", ", list.Select(c => $"{c.Name} {Size(c.Size)}")));
    }
}
