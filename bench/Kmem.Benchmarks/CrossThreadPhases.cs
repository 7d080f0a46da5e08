// The cross-thread phases run (--cross-thread-phases): the slab cross-thread rows, the bare two-list scheme and
// mimalloc in turn, in one process, cycle after cycle, each with its ring's wait counters. Its purpose is to tell the
// host's state apart from the allocator's cost: a row measured minutes apart from its reference in BenchmarkDotNet (a
// process per row) can fall in another state of a shared host, while here every cycle puts the rows and the
// references side by side.
using System.Diagnostics;

namespace Kmem.Benchmarks;

/// <summary>
/// Runs the rows of <see cref="SlabCrossThreadBenchmarks"/> that free on thread B through Kmem (cache, cache with
/// sheaves, kmalloc), the reference two-list scheme and, when libmimalloc is installed, mimalloc, one after the other,
/// for a number of cycles. Each row of a cycle gets a fresh setup, two warm-up invocations and three measured ones of
/// 10⁶ objects; its figure is the median of the three, in ns per object, with its ratios to the two-list scheme and to
/// mimalloc of the same cycle. The wait counters say which thread was the slower: the producer (A) waiting for room
/// means B was, the consumer (B) finding the ring empty means A was. Run it with tiered compilation off so that every
/// cycle runs fully optimised code.
/// </summary>
public static class CrossThreadPhases
{
    private const int Warmups = 2, Measured = 3;

    private static readonly (string Name, Action<SlabCrossThreadBenchmarks> Setup, Action<SlabCrossThreadBenchmarks> Run)[] AllRows =
    [
        ("cache", b => b.SetupCache(), b => b.KmemCacheAllocFree()),
        ("sheaves", b => b.SetupSheafCache(), b => b.KmemSheafCacheAllocFree()),
        ("kmalloc", b => b.SetupKmalloc(), b => b.KmemKmallocKfree()),
        ("two-list", b => b.SetupTwoList(), b => b.TwoListReference()),
        ("mimalloc", b => b.SetupMimalloc(), b => b.MimallocMalloc()),
    ];

    private const int TwoList = 3, Mi = 4;

    /// <summary>Runs <paramref name="cycles"/> cycles and prints one line per cycle, then the medians.</summary>
    public static void Run(int cycles)
    {
        var rows = Mimalloc.IsAvailable ? AllRows : AllRows[..Mi];
        if (!Mimalloc.IsAvailable) Console.WriteLine("mimalloc (libmimalloc.so.2) not found: its row and ratio are left out.");
        var ns = new double[rows.Length][];
        for (int r = 0; r < rows.Length; r++) ns[r] = new double[cycles];
        Console.WriteLine("Per row: ns per object (ratio to the two-list scheme / to mimalloc of the same cycle) and the waits:");
        Console.WriteLine("A-waits = the producer found the ring full (B was slower), B-idle = the consumer found it empty (A was).");
        Console.WriteLine($"{"cycle",6} " + string.Join(" ", rows.Select(r => $"{r.Name,-34}")));
        for (int c = 0; c < cycles; c++)
        {
            var waits = new (long A, long B)[rows.Length];
            for (int r = 0; r < rows.Length; r++) (ns[r][c], waits[r]) = Measure(rows[r]);
            var cells = rows.Select((_, r) => $"{ns[r][c],5:F1} ({Ratios(ns, r, c)}) {waits[r].A}/{waits[r].B}");
            Console.WriteLine($"{c + 1,6} " + string.Join(" ", cells.Select(x => $"{x,-34}")));
        }
        Console.WriteLine($"{"median",6} " + string.Join(" ", rows.Select((_, r) =>
            $"{$"{Median(ns[r]),5:F1} ({MedianRatio(ns, r, TwoList):F2}" + (ns.Length > Mi ? $" / {MedianRatio(ns, r, Mi):F2})" : ")"),-34}")));
    }

    private static string Ratios(double[][] ns, int r, int c) =>
        $"{ns[r][c] / ns[TwoList][c]:F2}" + (ns.Length > Mi ? $" / {ns[r][c] / ns[Mi][c]:F2}" : "");

    private static double MedianRatio(double[][] ns, int r, int reference) =>
        Median(ns[r].Select((v, c) => v / ns[reference][c]).ToArray());

    private static (double Ns, (long A, long B) Waits) Measure((string Name, Action<SlabCrossThreadBenchmarks> Setup, Action<SlabCrossThreadBenchmarks> Run) row)
    {
        var b = new SlabCrossThreadBenchmarks();
        row.Setup(b);
        try
        {
            for (int i = 0; i < Warmups; i++) row.Run(b);
            var ring = b.Ring!;
            long a0 = ring.ProducerWaits, b0 = ring.ConsumerIdle;
            var t = new double[Measured];
            for (int i = 0; i < Measured; i++)
            {
                long start = Stopwatch.GetTimestamp();
                row.Run(b);
                t[i] = Stopwatch.GetElapsedTime(start).TotalNanoseconds / SlabCrossThreadBenchmarks.ObjectsPerInvoke;
            }
            return (Median(t), (ring.ProducerWaits - a0, ring.ConsumerIdle - b0));
        }
        finally
        {
            b.Cleanup();
        }
    }

    private static double Median(double[] v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
