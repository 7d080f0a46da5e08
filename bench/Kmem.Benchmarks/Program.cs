// Entry point: runs the benchmarks picked on the command line (for example --filter '*'); skips mimalloc when absent.
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
        int latency = Array.IndexOf(args, "--latency");
        if (latency >= 0)
        {
            int rounds = latency + 1 < args.Length && int.TryParse(args[latency + 1], out int n) && n > 0 ? n : 5;
            RtskbLatency.Run(rounds);
            return;
        }
        int targets = Array.IndexOf(args, "--targets");
        if (targets >= 0)
        {
            int cycles = targets + 1 < args.Length && int.TryParse(args[targets + 1], out int n) && n > 0 ? n : 12;
            Targets.Run(cycles);
            return;
        }
        int phases = Array.IndexOf(args, "--cross-thread-phases");
        if (phases >= 0)
        {
            int cycles = phases + 1 < args.Length && int.TryParse(args[phases + 1], out int c) && c > 0 ? c : 8;
            CrossThreadPhases.Run(cycles);
            return;
        }
        // The mimalloc rows are left out when the library cannot be loaded (their bodies also return at once).
        var config = DefaultConfig.Instance.AddFilter(new SimpleFilter(b =>
            Mimalloc.IsAvailable || !b.Descriptor.WorkloadMethod.Name.StartsWith("Mimalloc", StringComparison.Ordinal)));
        if (!Mimalloc.IsAvailable) Console.WriteLine("mimalloc (libmimalloc.so.2) not found: its benchmarks are skipped.");
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
    }
}
