// Entry point: runs the benchmarks picked on the command line (for example --filter '*'); skips mimalloc when absent.
// Three modes of its own: --latency [rounds], --targets [cycles] and --cross-thread-phases [cycles].
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;

namespace Kmem.Benchmarks;

/// <summary>The benchmark runner.</summary>
public static class Program
{
    /// <summary>Runs <c>BenchmarkSwitcher</c> over this assembly with the command-line arguments.</summary>
    public static void Main(string[] args)
    {
        if (Mode(args, "--latency", 5) is int rounds) RtskbLatency.Run(rounds);
        else if (Mode(args, "--targets", 12) is int targetCycles) Targets.Run(targetCycles);
        else if (Mode(args, "--cross-thread-phases", 8) is int cycles) CrossThreadPhases.Run(cycles);
        else
        {
            if (!Mimalloc.IsAvailable) Console.WriteLine("mimalloc (libmimalloc.so.2) not found: its benchmarks are skipped.");
            BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, DefaultConfig.Instance.AddFilter(SkipMimallocWhenAbsent));
        }
    }

    /// <summary>
    /// Leaves the mimalloc rows out when the library cannot be loaded (their bodies also return at once).
    /// </summary>
    internal static readonly SimpleFilter SkipMimallocWhenAbsent = new(b =>
        Mimalloc.IsAvailable || !b.Descriptor.WorkloadMethod.Name.StartsWith("Mimalloc", StringComparison.Ordinal));

    /// <summary>
    /// Null when <paramref name="flag"/> is absent; else the positive count that follows it, or <paramref name="fallback"/>.
    /// </summary>
    private static int? Mode(string[] args, string flag, int fallback)
    {
        int at = Array.IndexOf(args, flag);
        if (at < 0) return null;
        return at + 1 < args.Length && int.TryParse(args[at + 1], out int n) && n > 0 ? n : fallback;
    }
}
