// The verbs of `kmem` and what each prints.
using System.CommandLine;
using System.Reflection;
using Spectre.Console;

namespace Kmem.Cli;

internal static class Commands
{
    public static RootCommand Build(CliContext ctx)
    {
        var profileOpt = ProfileOption();
        var rootCmdline = CmdlineOption();
        var root = new RootCommand("kmem: the Linux kernel's memory allocators over real memory. With no command: boot the default board (rv1106), run the built-in camera-pages workload and print buddyinfo, pagetypeinfo, meminfo and the largest slab caches.")
        {
            profileOpt, rootCmdline,
        };
        root.SetAction(pr => MainJob(ctx, pr.GetValue(profileOpt)!, pr.GetValue(rootCmdline)));

        // kmem boot
        var bootProfile = ProfileOption();
        var bootCmdline = CmdlineOption();
        var boot = new Command("boot", "Boot a profile and print the boot log.") { bootProfile, bootCmdline };
        boot.SetAction(pr =>
        {
            using var m = BootMachine(pr.GetValue(bootProfile)!, pr.GetValue(bootCmdline));
            ctx.Out.Write(m.Dmesg());
            return 0;
        });

        // kmem profiles
        var showJson = new Option<string?>("--json") { Description = "Print the JSON of one embedded profile (a starting point for your own board)." };
        var profiles = new Command("profiles", "List the embedded machine profiles.") { showJson };
        profiles.SetAction(pr => ListProfiles(ctx, pr.GetValue(showJson)));

        // kmem cat PATH
        var catPath = new Argument<string>("path") { Description = "A kernel view, e.g. /proc/buddyinfo (see 'kmem cat --list')." };
        catPath.Arity = ArgumentArity.ZeroOrOne;
        var catProfile = ProfileOption();
        var catWorkload = WorkloadOption();
        var catList = new Option<bool>("--list") { Description = "List the paths the machine serves." };
        var catCmdline = CmdlineOption();
        var cat = new Command("cat", "Print one kernel view (after an optional workload).") { catPath, catProfile, catWorkload, catList, catCmdline };
        cat.SetAction(pr =>
        {
            using var m = BootMachine(pr.GetValue(catProfile)!, pr.GetValue(catCmdline));
            if (pr.GetValue(catList))
            {
                foreach (var p in m.ProcFs.Paths) ctx.Out.WriteLine(p);
                return 0;
            }
            string? path = pr.GetValue(catPath);
            if (string.IsNullOrEmpty(path)) throw new ArgumentException("cat needs a path (or --list)");
            if (path.StartsWith("/proc/rtnet/", StringComparison.Ordinal)) _ = m.Rtnet;   // modprobe rtnet
            var runner = RunIfGiven(ctx, m, pr.GetValue(catWorkload), quiet: true);
            ctx.Out.Write(m.ProcFs.Read(path));
            runner?.ReleaseAll();
            return 0;
        });

        // kmem run WORKLOAD
        var runArg = new Argument<string>("workload") { Description = $"A workload file (JSON, see docs/workloads.md) or a built-in name ({string.Join(", ", BuiltinWorkloads())})." };
        var runProfile = ProfileOption();
        var runCmdline = CmdlineOption();
        var runAfter = new Option<string?>("--after") { Description = "First rebuild the state of a real rk-dma-heap-info dump (see 'kmem import')." };
        var run = new Command("run", "Run a workload and print a summary.") { runArg, runProfile, runCmdline, runAfter };
        run.SetAction(pr =>
        {
            using var m = BootMachine(pr.GetValue(runProfile)!, pr.GetValue(runCmdline));
            var wl = LoadWorkload(pr.GetValue(runArg)!);
            var before = new HashSet<ulong>();
            if (pr.GetValue(runAfter) is { } dump)
            {
                var r = ImportDump(ctx, m, dump);
                before = RkStarts(m);
            }
            var result = RunWorkload(ctx, m, wl, out _);
            Summary(ctx, m, wl, result);
            if (m.RtnetLoaded) RtnetFigures(ctx, m);
            if (pr.GetValue(runAfter) is not null)
            {
                // What the workload added to the imported layout, and what is left.
                ctx.Out.WriteLine();
                foreach (var h in m.RkDmaHeaps.Values)
                {
                    foreach (var e in h.DmaBufEntries.Concat(h.ContigEntries).Where(e => !before.Contains(e.Start)).OrderBy(e => e.Start))
                        ctx.Out.WriteLine($"new in {h.Name}: {e.AllocBy} [0x{e.Start:x8}-0x{e.End:x8}] {e.Size >> 10} KiB");
                    ctx.Out.WriteLine($"{h.Name}: {h.Area.Used << 2} KiB used of {h.Area.Count << 2} KiB, largest free run {h.Area.MaxChunk << 2} KiB");
                }
            }
            ctx.Out.WriteLine();
            ctx.Out.Write(m.ProcFs.Read("/proc/buddyinfo"));
            return result.Ok ? 0 : 1;
        });

        // kmem import rk-dma-heap-info FILE
        var importKind = new Argument<string>("kind") { Description = "What the file is: rk-dma-heap-info." };
        var importFile = new Argument<string>("file") { Description = "A /proc/rk_dma_heap/rk-dma-heap-info dump (tabs or condensed spaces)." };
        var importProfile = ProfileOption();
        var import = new Command("import", "Rebuild the allocation state of a real dump and print it as the board would.") { importKind, importFile, importProfile };
        import.SetAction(pr =>
        {
            if (pr.GetValue(importKind) != "rk-dma-heap-info") throw new ArgumentException($"import: unknown kind '{pr.GetValue(importKind)}' (known: rk-dma-heap-info)");
            using var m = BootMachine(pr.GetValue(importProfile)!);
            ImportDump(ctx, m, pr.GetValue(importFile)!);
            ctx.Out.Write(m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
            foreach (var h in m.RkDmaHeaps.Values)
                ctx.Out.WriteLine($"{h.Name}: {h.Area.Used << 2} KiB used of {h.Area.Count << 2} KiB, largest free run {h.Area.MaxChunk << 2} KiB");
            return 0;
        });

        // kmem dmesg
        var dmesgProfile = ProfileOption();
        var dmesgWorkload = WorkloadOption();
        var level = new Option<int>("--level") { Description = "Only records at this printk level or more urgent (0-7).", DefaultValueFactory = _ => 7 };
        var dmesgCmdline = CmdlineOption();
        var dmesg = new Command("dmesg", "Print the log ring after boot (and an optional workload).") { dmesgProfile, dmesgWorkload, level, dmesgCmdline };
        dmesg.SetAction(pr =>
        {
            int lv = pr.GetValue(level);
            if (lv is < 0 or > 7) throw new ArgumentException($"--level {lv} is outside 0..7");
            using var m = BootMachine(pr.GetValue(dmesgProfile)!, pr.GetValue(dmesgCmdline));
            RunIfGiven(ctx, m, pr.GetValue(dmesgWorkload), quiet: true);
            ctx.Out.Write(m.Log.Dmesg((LogLevel)lv));
            return 0;
        });

        // kmem slabtop
        var topProfile = ProfileOption();
        var topWorkload = WorkloadOption();
        var topCmdline = CmdlineOption();
        var sort = new Option<string>("--sort", "-s") { Description = "Sort key as slabtop's: c cache size (default), o objects, a active objects, s object size, l slabs, b objects per slab, n name.", DefaultValueFactory = _ => "c" };
        var lines = new Option<int>("--lines", "-n") { Description = "Show at most this many caches (0: all).", DefaultValueFactory = _ => 0 };
        var slabtop = new Command("slabtop", "Print the slab caches once, as slabtop -o does, largest first.") { topProfile, topWorkload, topCmdline, sort, lines };
        slabtop.SetAction(pr =>
        {
            string key = pr.GetValue(sort)!;
            if (key.Length != 1 || !SlabTop.SortKeys.Contains(key[0])) throw new ArgumentException($"--sort {key}: not one of {string.Join(", ", SlabTop.SortKeys.ToCharArray())}");
            int n = pr.GetValue(lines);
            if (n < 0) throw new ArgumentException($"--lines {n} is negative");
            using var m = BootMachine(pr.GetValue(topProfile)!, pr.GetValue(topCmdline));
            var runner = RunIfGiven(ctx, m, pr.GetValue(topWorkload), quiet: false);
            SlabTop.Print(ctx, m, key[0], n);
            runner?.ReleaseAll();
            return 0;
        });

        // kmem replay TRACE
        var replayFile = new Argument<string>("trace") { Description = "Text output of the kmem trace events (ftrace's trace file, trace-cmd report, perf script); - reads standard input." };
        var replayProfile = ProfileOption();
        var replayCmdline = CmdlineOption();
        var replayJson = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var replayNoPages = new Option<bool>("--no-pages") { Description = "Leave the page events out (the recorded kernel's slab pages are page events too)." };
        var replay = new Command("replay", "Replay a recorded kmem trace on a board and report what Kmem did with it.") { replayFile, replayProfile, replayCmdline, replayJson, replayNoPages };
        replay.SetAction(pr =>
        {
            using var m = BootMachine(pr.GetValue(replayProfile)!, pr.GetValue(replayCmdline));
            string path = pr.GetValue(replayFile)!;
            bool json = pr.GetValue(replayJson);
            var report = ReplayTrace(ctx, m, path, new TraceReplayOptions { Pages = !pr.GetValue(replayNoPages) }, showProgress: !json);
            ctx.Out.Write(json ? report.ToJson() + "\n" : report.ToString());
            return 0;
        });

        // kmem map --out FILE.svg
        var mapProfile = ProfileOption();
        var mapCmdline = CmdlineOption();
        var mapWorkload = WorkloadOption();
        var mapTrace = new Option<string?>("--trace") { Description = "Replay this kmem trace first (see 'kmem replay')." };
        var mapOut = new Option<string>("--out", "-o") { Description = "The SVG file to write.", Required = true };
        var map = new Command("map", "Draw the physical memory as an SVG picture: owners, migratetypes, zones, CMA areas, free blocks per order.") { mapProfile, mapCmdline, mapWorkload, mapTrace, mapOut };
        map.SetAction(pr =>
        {
            if (pr.GetValue(mapWorkload) is not null && pr.GetValue(mapTrace) is not null) throw new ArgumentException("map: give --workload or --trace, not both");
            string path = pr.GetValue(mapOut)!;
            CheckOutputPath(path);
            using var m = BootMachine(pr.GetValue(mapProfile)!, pr.GetValue(mapCmdline));
            string title = $"{m.Profile.Name}: physical memory after boot";
            if (pr.GetValue(mapWorkload) is { } w)
            {
                var wl = LoadWorkload(w);
                var result = RunWorkload(ctx, m, wl, out _);
                title = $"{m.Profile.Name}: physical memory after workload {wl.Name}";
                if (!result.Ok) foreach (var p in result.Problems) ctx.Err.WriteLine($"kmem: {p}");
            }
            if (pr.GetValue(mapTrace) is { } t)
            {
                var report = ReplayTrace(ctx, m, t, new TraceReplayOptions(), showProgress: true);
                title = $"{m.Profile.Name}: physical memory after replaying {Path.GetFileName(t)} ({report.Replayed} events)";
            }
            string svg = m.RenderMemoryMap(title);
            try
            {
                File.WriteAllText(path, svg);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"map --out {path}: cannot write the file: {e.Message}", e);
            }
            ctx.Out.WriteLine($"kmem: wrote {path} ({new FileInfo(path).Length} bytes)");
            return 0;
        });

        root.Subcommands.Add(boot);
        root.Subcommands.Add(profiles);
        root.Subcommands.Add(cat);
        root.Subcommands.Add(run);
        root.Subcommands.Add(dmesg);
        root.Subcommands.Add(slabtop);
        root.Subcommands.Add(import);
        root.Subcommands.Add(replay);
        root.Subcommands.Add(map);
        return root;
    }

    /// <summary>Refuses, before any work, an output file whose directory does not exist or that is a directory.</summary>
    private static void CheckOutputPath(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("map --out: the file name is empty");
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new ArgumentException($"map --out {path}: the directory {dir} does not exist");
        if (Directory.Exists(full)) throw new ArgumentException($"map --out {path}: is a directory, not a file");
    }

    private static Option<string> ProfileOption() => new("--profile", "-p")
    {
        Description = $"An embedded profile ({string.Join(", ", MachineProfile.EmbeddedNames)}) or a profile JSON file.",
        DefaultValueFactory = _ => MachineProfile.DefaultName,
    };

    private static Option<string?> CmdlineOption() => new("--cmdline", "-c")
    {
        Description = "Extra kernel command-line words, e.g. \"slub_debug=FZPU slub_max_order=2\".",
    };

    private static Option<string?> WorkloadOption() => new("--workload", "-w")
    {
        Description = "Run this workload (file or built-in name) before printing.",
    };

    // ------------------------------------------------------------------ the main job

    private static int MainJob(CliContext ctx, string profile, string? cmdline)
    {
        using var m = BootMachine(profile, cmdline);
        var wl = LoadWorkload(KmemCli.DefaultWorkload);
        var result = RunWorkload(ctx, m, wl, out _);
        ctx.Out.WriteLine($"# kmem: booted {m.Profile.Name} ({m.Profile.Description}), ran workload '{wl.Name}'");
        ctx.Out.WriteLine();
        if (m.ProcFs.Exists("/proc/rk_dma_heap/rk-dma-heap-info"))
        {
            ctx.Out.WriteLine("$ cat /proc/rk_dma_heap/rk-dma-heap-info");
            ctx.Out.Write(m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
            ctx.Out.WriteLine();
        }
        ctx.Out.WriteLine("$ grep Cma /proc/meminfo");
        foreach (var line in m.ProcFs.Read("/proc/meminfo").Split('\n').Where(l => l.StartsWith("Cma", StringComparison.Ordinal)))
            ctx.Out.WriteLine(line);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("$ cat /proc/buddyinfo");
        ctx.Out.Write(m.ProcFs.Read("/proc/buddyinfo"));
        ctx.Out.WriteLine();
        SummaryLine(ctx, m, result);

        // The same board streams: ISP → encoder through videobuf2, the display's framebuffers through PRIME.
        var vb2 = LoadWorkload("camera-vb2");
        var streamed = RunWorkload(ctx, m, vb2, out var vb2Runner);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine($"# kmem: then ran workload '{vb2.Name}' on the same board");
        foreach (var note in streamed.Notes) ctx.Out.WriteLine(note);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("$ cat /sys/kernel/debug/dma_buf/bufinfo   # the buffers it added");
        ctx.Out.Write(BufinfoOf(m, b => b.ExpName.StartsWith("videobuf2", StringComparison.Ordinal) || b.ExpName == "drm"));
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("$ cat /sys/kernel/debug/dri/0/gem_objects");
        ctx.Out.Write(m.ProcFs.Read("/sys/kernel/debug/dri/0/gem_objects"));
        ctx.Out.WriteLine();
        SummaryLine(ctx, m, streamed);
        vb2Runner.ReleaseAll();
        return result.Ok && streamed.Ok ? 0 : 1;
    }

    /// <summary>The bufinfo blocks of the buffers that match, in the kernel's order and format, without the totals.</summary>
    private static string BufinfoOf(Machine m, Func<DmaBuf, bool> which)
    {
        var inos = m.DmaBufs.Where(which).Select(b => b.Ino).ToHashSet();
        var text = m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo");
        var blocks = text.Split("\n\n");
        var sb = new System.Text.StringBuilder();
        var lines = text.Split('\n');
        sb.Append(lines[2]).Append('\n');                                       // the header line
        for (int i = 3; i < lines.Length; i++)
        {
            var cols = lines[i].Split('\t');
            if (cols.Length < 6 || !ulong.TryParse(cols[5], out var ino) || !inos.Contains(ino)) continue;
            for (; i < lines.Length && lines[i].Length > 0; i++) sb.Append(lines[i]).Append('\n');
        }
        return sb.ToString();
    }

    // ------------------------------------------------------------------ helpers

    internal static Machine BootMachine(string profile, string? cmdline = null)
    {
        bool isFile = profile.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || profile.Contains('/') || profile.Contains('\\');
        var p = isFile ? MachineProfile.Load(profile) : MachineProfile.Embedded(profile);
        return string.IsNullOrWhiteSpace(cmdline) ? Machine.Boot(p) : Machine.Boot(p, cmdline);
    }

    /// <summary>The RTnet figures after a run: every pool, socket and NIC.</summary>
    private static void RtnetFigures(CliContext ctx, Machine m)
    {
        var rt = m.Rtnet;
        var pools = new Table().Title("rtskb pools").AddColumns("pool", "size", "free", "out", "empty allocs", "failed exchanges");
        foreach (var p in rt.Pools)
            pools.AddRow(Markup.Escape(p.Name), p.Size.ToString(), p.FreeCount.ToString(), p.Out.ToString(), p.AllocFailures.ToString(), p.AcquireFailures.ToString());
        ctx.Console.Write(pools);
        var socks = new Table().Title("sockets").AddColumns("port", "received", "dropped", "queued");
        foreach (var (port, s) in rt.Sockets.OrderBy(kv => kv.Key))
            socks.AddRow(port.ToString(), s.Received.ToString(), s.Dropped.ToString(), s.Queued.ToString());
        ctx.Console.Write(socks);
        foreach (var nic in rt.Nics.Values)
            ctx.Out.WriteLine($"{nic.Name}: rx {nic.RxPackets} packets, {nic.RxDropped} dropped; rx pool {nic.RxPool.FreeCount}/{nic.RxPool.Size} free");
        ctx.Out.Write(m.ProcFs.Read("/proc/rtnet/rtskb"));
    }

    /// <summary>Reads and replays a dump on the machine; prints one line of what it rebuilt.</summary>
    private static RkDmaHeapImport.Result ImportDump(CliContext ctx, Machine m, string file)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"import: no file '{file}'");
        if (m.RkDmaHeaps.Count == 0) throw new ArgumentException($"import: {m.Profile.Name} has no RK-DMA-HEAP (try --profile rv1106)");
        var r = RkDmaHeapImport.Replay(m, RkDmaHeapImport.Parse(File.ReadAllText(file)));
        ctx.Err.WriteLine($"kmem: imported {r.DmaBufs} dma-bufs and {r.PageRuns} page runs ({r.Bytes >> 10} KiB) from {file}");
        return r;
    }

    private static HashSet<ulong> RkStarts(Machine m) =>
        [.. m.RkDmaHeaps.Values.SelectMany(h => h.DmaBufEntries.Concat(h.ContigEntries)).Select(e => e.Start)];

    internal static IEnumerable<string> BuiltinWorkloads() =>
        Assembly.GetExecutingAssembly().GetManifestResourceNames()
            .Where(n => n.StartsWith("Kmem.Cli.Workloads.", StringComparison.Ordinal))
            .Select(n => n["Kmem.Cli.Workloads.".Length..^".json".Length]);

    internal static Workload LoadWorkload(string nameOrPath)
    {
        if (File.Exists(nameOrPath)) return Workload.Load(nameOrPath);
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream($"Kmem.Cli.Workloads.{nameOrPath}.json");
        if (s is null)
            throw new WorkloadException("(file)", $"'{nameOrPath}' is neither a file nor a built-in workload ({string.Join(", ", BuiltinWorkloads())})");
        using var r = new StreamReader(s);
        return Workload.Parse(r.ReadToEnd());
    }

    private static WorkloadRunner? RunIfGiven(CliContext ctx, Machine m, string? workload, bool quiet)
    {
        if (workload is null) return null;
        var wl = LoadWorkload(workload);
        var r = RunWorkload(ctx, m, wl, out var runner);
        if (!r.Ok && !quiet) foreach (var p in r.Problems) ctx.Err.WriteLine($"kmem: {p}");
        return runner;
    }

    private static WorkloadResult RunWorkload(CliContext ctx, Machine m, Workload wl, out WorkloadRunner runner)
    {
        runner = new WorkloadRunner(m);
        if (ctx.Console.Profile.Capabilities.Interactive && wl.Steps.Count > 1)
        {
            WorkloadResult? result = null;
            var r = runner;
            ctx.Console.Progress().Start(p =>
            {
                var task = p.AddTask(Markup.Escape($"workload {wl.Name}"), maxValue: wl.Steps.Count);
                r.Progress = (_, done, _) => task.Value = done;
                result = r.Run(wl);
            });
            return result!;
        }
        return runner.Run(wl);
    }

    /// <summary>Streams a trace file (or standard input) through a replayer, with a progress bar on a terminal.</summary>
    internal static TraceReport ReplayTrace(CliContext ctx, Machine m, string path, TraceReplayOptions options, bool showProgress)
    {
        var replayer = new TraceReplayer(m);
        if (path == "-") return replayer.Replay(Console.In, options);
        if (!File.Exists(path)) throw new FileNotFoundException($"replay: no trace file '{path}'", path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        using var reader = new StreamReader(stream);
        if (!showProgress || !ctx.Console.Profile.Capabilities.Interactive) return replayer.Replay(reader, options);
        TraceReport? report = null;
        ctx.Console.Progress().Start(p =>
        {
            var task = p.AddTask(Markup.Escape($"replay {Path.GetFileName(path)}"), maxValue: Math.Max(1, stream.Length));
            report = replayer.Replay(reader, options with { Progress = _ => task.Value = stream.Position });
            task.Value = task.MaxValue;
        });
        return report!;
    }

    private static void Summary(CliContext ctx, Machine m, Workload wl, WorkloadResult result)
    {
        var table = new Table().Title(Markup.Escape($"workload {wl.Name} on {m.Profile.Name}")).AddColumns("label", "allocated", "failed", "freed", "pages held", "bytes held");
        foreach (var (label, s) in result.Labels)
            table.AddRow(Markup.Escape(label), s.Allocated.ToString(), s.Failed.ToString(), s.Freed.ToString(), s.PagesHeld.ToString(), s.BytesHeld.ToString());
        ctx.Console.Write(table);
        foreach (var note in result.Notes) ctx.Out.WriteLine(note);
        SummaryLine(ctx, m, result);
    }

    /// <summary>The one-line summary: steps and time, free pages, CMA free, dma-bufs, and whether every expectation held.</summary>
    private static void SummaryLine(CliContext ctx, Machine m, WorkloadResult result)
    {
        long free = m.Zones.Sum(z => z.FreePages), managed = m.Zones.Sum(z => z.Managed);
        var bufs = m.DmaBufs;
        ctx.Out.WriteLine($"summary: {result.StepsRun} steps in {result.Elapsed.TotalMilliseconds:F1} ms; {free} of {managed} pages free ({free * 100.0 / Math.Max(1, managed):F1}%); " +
                          $"CMA free {m.Zones.Sum(z => z.FreeCmaPages) * 4} kB; {bufs.Count} dma-bufs ({bufs.Sum(b => b.Size) >> 10} KiB); " +
                          $"{(result.Ok ? "all expectations held" : $"{result.Problems.Count} problem(s)")}");
        foreach (var p in result.Problems) ctx.Err.WriteLine($"kmem: {p}");
    }

    private static int ListProfiles(CliContext ctx, string? json)
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
