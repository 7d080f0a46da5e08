// The targets run (--targets): one BenchmarkDotNet run of exactly the rows the speed targets name, then a verdict for
// each target from that run's own figures (ratios within the run, as the targets are stated), then the cross-thread
// rows side by side in one process (--cross-thread-phases, in a child process with tiered compilation off), so that a
// host's state can be told apart from Kmem's cost. One command gives the answer on any machine, the reference VM's too.
using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Parameters;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Kmem.Benchmarks;

/// <summary>
/// Runs the rows of the three speed targets in one BenchmarkDotNet run and prints each target's verdict: the order-0
/// page pairs against <c>ArrayPool&lt;byte&gt;.Shared</c> (at most 1.8×), the 6.6 order-1..3 pairs against the order-0
/// pair (at most 2×), the 64-byte cross-thread rows (at most 20 ns; stated for the reference VM, so on another host it
/// is the figure to compare, not a verdict on the reference VM) and 0 managed bytes per operation on every Kmem row.
/// </summary>
public static class Targets
{
    private const double Order0Limit = 1.8, HighOrderLimit = 2.0, CrossThreadLimitNs = 20.0;
    private static readonly string[] KmemPageRows = ["KmemAllocPages", "KmemAllocPagesUntouched", "KmemGetFreePages"];
    private static readonly string[] KmemCrossRows = ["KmemCacheAllocFree", "KmemSheafCacheAllocFree", "KmemKmallocKfree"];

    /// <summary>Runs the benchmarks (<paramref name="cycles"/> cycles of the side-by-side run after them) and prints the verdicts.</summary>
    public static void Run(int cycles)
    {
        string[] filters =
        [
            "*.PairBenchmarks.Kmem*", "*.PairBenchmarks.ArrayPoolRent",
            "*PcpHighOrderBenchmarks.Order0Pair66", "*PcpHighOrderBenchmarks.HighOrderPair66",
            "*SlabCrossThreadBenchmarks.Kmem*", "*SlabCrossThreadBenchmarks.TwoListReference", "*SlabCrossThreadBenchmarks.MimallocMalloc",
        ];
        var config = DefaultConfig.Instance.AddFilter(Program.SkipMimallocWhenAbsent)
            .AddFilter(new SimpleFilter(b => b.Descriptor.Type != typeof(PairBenchmarks) || Order(b.Parameters) == 0));
        var summaries = BenchmarkSwitcher.FromTypes([typeof(PairBenchmarks), typeof(PcpHighOrderBenchmarks), typeof(SlabCrossThreadBenchmarks)])
            .Run(["--filter", .. filters, "--iterationCount", "10", "--warmupCount", "3", "--buildTimeout", "1500"], config);
        var rows = summaries.SelectMany(s => s.Reports).Where(r => r.ResultStatistics is not null).ToList();
        Console.WriteLine();
        Console.WriteLine(Verdicts(rows.Select(r => new Row(
            r.BenchmarkCase.Descriptor.Type.Name, r.BenchmarkCase.Descriptor.WorkloadMethod.Name, Order(r.BenchmarkCase.Parameters),
            r.ResultStatistics!.Mean, r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase))).ToList(), Host()));
        RunPhasesInChild(cycles);
    }

    /// <summary>One measured row: its class, method, order parameter (-1: none), mean ns per operation and managed bytes per operation.</summary>
    public readonly record struct Row(string Type, string Method, int Order, double MeanNs, long? BytesPerOp);

    /// <summary>The verdict text for a run's rows (a target whose rows are missing says so).</summary>
    public static string Verdicts(IReadOnlyList<Row> rows, string host)
    {
        var sb = new System.Text.StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.AppendLine(ci, $"Speed targets, from this run only ({host}):");

        double? arrayPool = Find(rows, nameof(PairBenchmarks), "ArrayPoolRent", 0);
        sb.AppendLine(ci, $"1. Order-0 page pair at most {Order0Limit}x ArrayPool<byte>.Shared Rent(4096)+Return ({Ns(arrayPool)}):");
        foreach (var m in KmemPageRows)
            sb.AppendLine(ci, $"   {m,-26} {Ns(Find(rows, nameof(PairBenchmarks), m, 0)),10}  {RatioVerdict(Find(rows, nameof(PairBenchmarks), m, 0), arrayPool, Order0Limit)}");

        sb.AppendLine(ci, $"2. Orders 1..3 through the 6.6 per-CPU lists at most {HighOrderLimit}x the order-0 pair of the same run:");
        for (int order = 1; order <= 3; order++)
        {
            double? high = Find(rows, nameof(PcpHighOrderBenchmarks), "HighOrderPair66", order);
            double? zero = Find(rows, nameof(PcpHighOrderBenchmarks), "Order0Pair66", order);
            sb.AppendLine(ci, $"   order {order}: {Ns(high),10} against {Ns(zero),10}  {RatioVerdict(high, zero, HighOrderLimit)}");
        }

        sb.AppendLine(ci, $"3. A 64-byte object allocated on one thread and freed on another, at most {CrossThreadLimitNs} ns (stated for the reference VM):");
        foreach (var m in KmemCrossRows)
        {
            double? ns = Find(rows, nameof(SlabCrossThreadBenchmarks), m, -1);
            sb.AppendLine(ci, $"   {m,-26} {Ns(ns),10}  {(ns is null ? "not measured" : ns <= CrossThreadLimitNs ? "under the limit" : "over the limit")}");
        }
        double? twoList = Find(rows, nameof(SlabCrossThreadBenchmarks), "TwoListReference", -1);
        double? mi = Find(rows, nameof(SlabCrossThreadBenchmarks), "MimallocMalloc", -1);
        string slow = twoList > CrossThreadLimitNs ? " (the bare scheme itself is over the limit: the host's cross-core path is slow in this run)" : "";
        sb.AppendLine(ci, $"   in the same run: the bare two-list scheme {Ns(twoList)}, mimalloc {Ns(mi)}{slow}");
        sb.AppendLine("   BenchmarkDotNet runs each row in a process of its own; the side-by-side run below compares them in one.");

        var kmem = rows.Where(r => r.Method.StartsWith("Kmem", StringComparison.Ordinal) || r.Type == nameof(PcpHighOrderBenchmarks) && r.Method != "ArrayPoolSameSize").ToList();
        var allocating = kmem.Where(r => r.BytesPerOp is not 0).Select(r => $"{r.Type}.{r.Method}{(r.Order >= 0 ? $"({r.Order})" : "")}: {(r.BytesPerOp is { } b ? $"{b} B" : "not measured")}").ToList();
        sb.AppendLine(ci, $"4. 0 managed bytes per operation on every Kmem row: {(kmem.Count == 0 ? "not measured" : allocating.Count == 0 ? $"met ({kmem.Count} rows)" : "NOT met: " + string.Join(", ", allocating))}");
        return sb.ToString();
    }

    private static double? Find(IReadOnlyList<Row> rows, string type, string method, int order)
    {
        foreach (var r in rows)
            if (r.Type == type && r.Method == method && (order < 0 || r.Order == order)) return r.MeanNs;
        return null;
    }

    private static string RatioVerdict(double? value, double? baseline, double limit)
    {
        if (value is not { } v || baseline is not { } b || b <= 0) return "not measured";
        double ratio = v / b;
        return string.Create(CultureInfo.InvariantCulture, $"{ratio:F2}x  {(ratio <= limit ? "met" : "NOT met")}");
    }

    private static string Ns(double? ns) => ns is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v:F2} ns") : "-";

    private static int Order(ParameterInstances parameters)
    {
        foreach (var p in parameters.Items)
            if (p.Name == "Order" && p.Value is int o) return o;
        return -1;
    }

    /// <summary>The CPU model (as /proc/cpuinfo names it, with family and model), the processor count and the date.</summary>
    private static string Host()
    {
        string model = "unknown CPU", family = "?", number = "?";
        if (File.Exists("/proc/cpuinfo"))
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                if (key == "model name") model = value;
                else if (key == "cpu family") family = value;
                else if (key == "model") number = value;
                else if (key.Length == 0) break;                       // the first processor is enough
            }
        return $"{model}, family {family} model {number}, {Environment.ProcessorCount} CPUs, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";
    }

    /// <summary>Runs --cross-thread-phases in a child process with tiered compilation off (it cannot be turned off in this one).</summary>
    private static void RunPhasesInChild(int cycles)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        string dll = typeof(Targets).Assembly.Location;
        if (!Path.GetFileNameWithoutExtension(Environment.ProcessPath!).Equals(Path.GetFileNameWithoutExtension(dll), StringComparison.Ordinal))
            psi.ArgumentList.Add(dll);                                 // started as "dotnet Kmem.Benchmarks.dll"
        psi.ArgumentList.Add("--cross-thread-phases");
        psi.ArgumentList.Add(cycles.ToString(CultureInfo.InvariantCulture));
        psi.Environment["DOTNET_TieredCompilation"] = "0";
        Console.WriteLine("The cross-thread rows side by side in one process (tiered compilation off):");
        using var child = Process.Start(psi)!;
        child.WaitForExit();
    }
}
