// `kmem import rk-dma-heap-info FILE`: rebuilds the allocation state of a real dump on a board and prints it as the
// board would, with each RK heap's use and largest free run. `kmem import proc DIR`: rebuilds a /proc snapshot (the
// files a user copied from a board) on the machine those files describe, or on --profile, and prints what was derived
// from which file, the contradictions found line by line, and the rebuilt views.
using System.CommandLine;

namespace Kmem.Cli.Verbs;

internal static class ImportVerb
{
    /// <summary>The kinds of dump the verb reads.</summary>
    private const string RkDmaHeapInfo = "rk-dma-heap-info";
    private const string Proc = "proc";

    public static Command Create(CliContext ctx, Option<string> profile)
    {
        var kind = new Argument<string>("kind") { Description = "What the file is: rk-dma-heap-info, or proc (a directory of /proc files)." };
        Commands.Refuse(kind, k => k is not (RkDmaHeapInfo or Proc) ? $"import: unknown kind '{k}' (known: {RkDmaHeapInfo}, {Proc})" : null);
        var file = new Argument<string>("file")
        {
            Description = "A /proc/rk_dma_heap/rk-dma-heap-info dump (tabs or condensed spaces), or for proc a directory holding any of " +
                string.Join(", ", ProcSnapshot.KnownFiles) + ".",
        };
        var import = new Command("import", "Rebuild the state of a real dump or /proc snapshot and print it as the board would.") { kind, file };
        import.Validators.Add(r =>
        {
            string k = r.GetValue(kind)!, f = r.GetValue(file)!;
            if (k == Proc && !Directory.Exists(f)) r.AddError($"import: no directory '{f}'");
            if (k == RkDmaHeapInfo && !File.Exists(f)) r.AddError($"import: no file '{f}'");
        });
        import.SetAction(pr => pr.GetValue(kind) == Proc
            ? RunProc(ctx, pr.GetResult(profile) is { Implicit: false } ? pr.GetValue(profile) : null, pr.GetValue(file)!)
            : Run(ctx, pr.GetValue(profile)!, pr.GetValue(file)!));
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

    private static int RunProc(CliContext ctx, string? profile, string dir)
    {
        var snap = ProcSnapshot.Load(dir);
        ctx.Out.WriteLine($"# read: {string.Join(", ", snap.Files)}{(snap.Fdt is not null ? ", fdt" : "")}");
        var p = profile is null ? snap.DeriveProfile() : VerbSupport.LoadProfile(profile);
        if (profile is not null) ctx.Out.WriteLine($"# machine: the profile {p.Name} (--profile)");
        foreach (var d in snap.Derived) ctx.Out.WriteLine($"# derived: {d}");
        foreach (var f in snap.Findings) ctx.Out.WriteLine($"# {f}");
        if (ctx.Kernel is { } version) p = p with { Version = version };
        var (m, import) = snap.Boot(p);
        using (m)
        {
            foreach (var n in import.Notes) ctx.Out.WriteLine($"# note: {n}");
            if (snap.Files.Contains("slabinfo"))
                ctx.Out.WriteLine($"# rebuilt: {import.SlabCaches.Count} slab caches ({import.SlabCaches.Count(c => c.Created)} created), "
                    + $"{import.SlabCaches.Sum(c => c.Objects)} objects, {import.SlabPages} slab pages ({import.SlabPages * 4} kB)");
            if (snap.Files.Contains("vmallocinfo"))
                ctx.Out.WriteLine($"# rebuilt: {import.VmallocAreas.Count} vmalloc areas ({import.VmallocAreas.Count(a => a.Pages == 0)} ioremap reservations), "
                    + $"{import.VmallocAreas.Sum(a => (long)a.Pages)} pages");
            if (import.CmaPages > 0)
                ctx.Out.WriteLine($"# rebuilt: {import.CmaPages} used CMA pages ({import.CmaPages * 4} kB) as movable pages a cma_alloc migrates");
            foreach (var (name, pages) in import.Recorded) ctx.Out.WriteLine($"# {name}: {pages} pages ({pages * 4} kB) held as recorded allocations");
            var views = new List<string> { "/proc/buddyinfo", "/proc/pagetypeinfo", "/proc/meminfo" };
            if (snap.Files.Contains("slabinfo") && m.ProcFs.Exists("/proc/slabinfo")) views.Add("/proc/slabinfo");
            if (snap.Files.Contains("vmallocinfo")) views.Add("/proc/vmallocinfo");
            foreach (var path in views)
            {
                ctx.Out.WriteLine($"# cat {path}");
                ctx.Out.Write(m.ProcFs.Read(path));
            }
        }
        return 0;
    }
}
