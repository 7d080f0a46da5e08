// The command tree of `kmem`: the root (the main job) and its nine verbs, the options they share (one
// recursive --profile for every verb that boots a board), the validators that refuse bad arguments while
// the line is parsed, and the built-in workloads.
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Reflection;
using Kmem.Cli.Verbs;

namespace Kmem.Cli;

internal static class Commands
{
    /// <summary>What the bare <c>kmem</c> command does (the root's description in the help).</summary>
    public const string Description =
        "kmem: the Linux kernel's memory allocators over real memory. With no command: boot the default board (rv1106), " +
        "run the built-in camera-pipeline workload (the RV1106 camera pipeline of Rockchip's DMA-BUF guide) and print " +
        "rk-dma-heap-info, the CMA lines of meminfo and buddyinfo, then stream the camera through videobuf2 and DRM PRIME " +
        "(camera-vb2) on the same board and print the dma-bufs it added and the GEM objects.";

    public static RootCommand Build(CliContext ctx)
    {
        var profile = ProfileOption();
        var cmdline = CmdlineOption();
        var kernel = KernelOption();
        var root = new RootCommand(Description) { profile, cmdline, kernel };
        root.SetAction(pr => MainJob.Run(ctx, pr.GetValue(profile)!, pr.GetValue(cmdline)));
        var profiles = ProfilesVerb.Create(ctx);
        profiles.Validators.Add(r =>
        {
            if (r.GetResult(profile) is { Implicit: false }) r.AddError("profiles: --profile does not apply (the verb lists every embedded profile)");
            if (r.GetResult(kernel) is { Implicit: false } && r.Children.All(c => c is not OptionResult { Option.Name: "--config" }))
                r.AddError("profiles: --kernel applies only with --config (the verb lists every embedded profile)");
        });
        root.Subcommands.Add(BootVerb.Create(ctx, profile));
        root.Subcommands.Add(profiles);
        root.Subcommands.Add(CatVerb.Create(ctx, profile));
        root.Subcommands.Add(RunVerb.Create(ctx, profile));
        root.Subcommands.Add(DmesgVerb.Create(ctx, profile));
        root.Subcommands.Add(SlabtopVerb.Create(ctx, profile));
        root.Subcommands.Add(ImportVerb.Create(ctx, profile));
        root.Subcommands.Add(ReplayVerb.Create(ctx, profile));
        root.Subcommands.Add(MapVerb.Create(ctx, profile));
        root.Subcommands.Add(ProfileFromDtVerb.Create(ctx));
        return root;
    }

    // ------------------------------------------------------------------ shared options

    /// <summary>--profile: one option on the root, inherited by every verb (given before or after the verb's name).</summary>
    private static Option<string> ProfileOption() => new("--profile", "-p")
    {
        Description = $"An embedded profile ({string.Join(", ", MachineProfile.EmbeddedNames)}) or a profile JSON file.",
        DefaultValueFactory = _ => MachineProfile.DefaultName,
        Recursive = true,
    };

    /// <summary>The name of the --kernel option (read after parsing, before a verb runs).</summary>
    internal const string KernelOptionName = "--kernel";

    /// <summary>--kernel: the kernel version to model instead of the profile's "version".</summary>
    private static Option<string?> KernelOption()
    {
        var o = new Option<string?>(KernelOptionName, "-k")
        {
            Description = "The kernel version to model (3.10 to 6.12, e.g. 5.15 or 6.6.30), instead of the profile's \"version\".",
            Recursive = true,
        };
        Refuse(o, v => !KernelVersion.TryParse(v, out var k) ? $"--kernel: '{v}' is not a kernel version (expected major.minor, e.g. 5.15)"
            : !k.IsSupported ? $"--kernel: Linux {k} is outside the releases Kmem models ({KernelVersion.Oldest} to 6.12)" : null);
        return o;
    }

    /// <summary>--cmdline: extra kernel command-line words for the verbs that boot a board with them.</summary>
    internal static Option<string?> CmdlineOption() => new("--cmdline", "-c")
    {
        Description = "Extra kernel command-line words, e.g. \"slub_debug=FZPU slub_max_order=2\".",
    };

    /// <summary>--workload: a workload the verb runs before it prints.</summary>
    internal static Option<string?> WorkloadOption() => new("--workload", "-w")
    {
        Description = "Run this workload (file or built-in name) before printing.",
    };

    // ------------------------------------------------------------------ validators

    /// <summary>Refuses, while the line is parsed, a value for which <paramref name="problem"/> gives a reason (null: accepted).</summary>
    internal static void Refuse<T>(Option<T> option, Func<T, string?> problem) =>
        option.Validators.Add(r => Check(r, r.GetValueOrDefault<T>, problem));

    /// <summary>Refuses, while the line is parsed, an argument for which <paramref name="problem"/> gives a reason (null: accepted).</summary>
    internal static void Refuse<T>(Argument<T> argument, Func<T, string?> problem) =>
        argument.Validators.Add(r => Check(r, r.GetValueOrDefault<T>, problem));

    /// <summary>Checks a value given on the line (a default needs no check); one that is not a <typeparamref name="T"/> is the parser's own error.</summary>
    private static void Check<T>(SymbolResult r, Func<T> value, Func<T, string?> problem)
    {
        if (r.Tokens.Count == 0) return;
        T v;
        try
        {
            v = value();
        }
        catch (InvalidOperationException)
        {
            return;
        }
        if (problem(v) is { } reason) r.AddError(reason);
    }

    /// <summary>The reason to refuse a file a verb will read: <paramref name="message"/> when it does not exist (<c>-</c>, standard input, when allowed).</summary>
    internal static string? MissingFile(string? path, string message, bool stdinAllowed = false) =>
        path is null || (stdinAllowed && path == "-") || File.Exists(path) ? null : message;

    // ------------------------------------------------------------------ built-in workloads

    /// <summary>The names of the workloads built into the command (its Workloads/*.json resources).</summary>
    internal static IEnumerable<string> BuiltinWorkloads() =>
        Assembly.GetExecutingAssembly().GetManifestResourceNames()
            .Where(n => n.StartsWith("Kmem.Cli.Workloads.", StringComparison.Ordinal))
            .Select(n => n["Kmem.Cli.Workloads.".Length..^".json".Length]);

    /// <summary>A workload file, or else a built-in workload of that name.</summary>
    /// <exception cref="WorkloadException">Neither a file nor a built-in name.</exception>
    internal static Workload LoadWorkload(string nameOrPath)
    {
        if (File.Exists(nameOrPath)) return Workload.Load(nameOrPath);
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream($"Kmem.Cli.Workloads.{nameOrPath}.json");
        if (s is null)
            throw new WorkloadException("(file)", $"'{nameOrPath}' is neither a file nor a built-in workload ({string.Join(", ", BuiltinWorkloads())})");
        using var r = new StreamReader(s);
        return Workload.Parse(r.ReadToEnd());
    }
}
