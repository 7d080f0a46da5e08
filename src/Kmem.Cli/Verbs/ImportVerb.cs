// `kmem import rk-dma-heap-info FILE`: rebuilds the allocation state of a real dump on a board and prints
// it as the board would, with each RK heap's use and largest free run.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class ImportVerb
{
    /// <summary>The kinds of dump the verb reads.</summary>
    private const string RkDmaHeapInfo = "rk-dma-heap-info";

    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var kind = new Argument<string>("kind") { Description = "What the file is: rk-dma-heap-info." };
        Commands.Refuse(kind, k => k != RkDmaHeapInfo ? $"import: unknown kind '{k}' (known: {RkDmaHeapInfo})" : null);
        var file = new Argument<string>("file") { Description = "A /proc/rk_dma_heap/rk-dma-heap-info dump (tabs or condensed spaces)." };
        Commands.Refuse(file, f => Commands.MissingFile(f, $"import: no file '{f}'"));
        var import = new Command("import", "Rebuild the allocation state of a real dump and print it as the board would.") { kind, file };
        import.SetAction(pr => Run(ctx, pr.GetValue(profile)!, pr.GetValue(file)!));
        return import;
    }

    private static int Run(CliContext ctx, string profile, string file)
    {
        using var m = VerbSupport.BootMachine(ctx, profile);
        VerbSupport.ImportDump(ctx, m, file);
        ctx.Out.Write(m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
        foreach (var h in m.RkDmaHeaps.Values)
            ctx.Out.WriteLine($"{h.Name}: {h.Area.Used << 2} KiB used of {h.Area.Count << 2} KiB, largest free run {h.Area.MaxChunk << 2} KiB");
        return 0;
    }
}
