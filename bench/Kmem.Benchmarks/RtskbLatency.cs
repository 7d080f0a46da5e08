// The rtskb latency run (--latency): every single operation timed alone, the candidates interleaved, each
// sample counted in a histogram of its own (no sample arrays streaming through the cache), then p50/p99/p99.9/max
// per round, the median over the rounds, and the histogram over all rounds. Where the clock advances in coarse
// steps, p99.9 is also given interpolated within its step, so that two candidates in the same step can be told apart.
using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;

namespace Kmem.Benchmarks;

/// <summary>
/// The latency run: 10⁶ samples of each candidate per round after a warm-up. The candidates are interleaved (one sample
/// of each in turn, the order rotating) so that the host's noise falls on all of them alike. Each sample goes into a
/// histogram with one slot per timer tick, written in place: storing 10⁶ raw samples per candidate would stream
/// 40 MB through the cache and take a page fault every 512 samples in the middle of the timed loop. A warm-up
/// round, not reported, comes first.
/// </summary>
public static class RtskbLatency
{
    private const int N = 1_000_000;
    private const int Buffers = 16;                               // RTnet's socket_rtskbs default
    private const int Slots = 1 << 14;                            // one slot per tick; the last one counts the rest

    /// <summary>Runs <paramref name="rounds"/> rounds of the six candidates and prints one table row per candidate and round.</summary>
    public static unsafe void Run(int rounds)
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("lat", Buffers);
        var producer = rt.CreatePool("lat-producer", Buffers);     // the exchange's two pools, apart from the pair's
        var consumer = rt.CreatePool("lat-consumer", Buffers);
        var queue = NewQueue();
        var producerQueue = NewQueue();                             // the exchange's peer: two ConcurrentQueue pools
        var consumerQueue = NewQueue();
        var ap = ArrayPool<byte>.Shared;
        var ops = new (string Name, Action Op)[]
        {
            ("timer only (no operation)", () => { }),
            ("rtskb alloc+free", () => { var s = pool.Alloc(1544); *(byte*)s.Data = 1; rt.Free(s); }),
            ("rtskb exchange (alloc, acquire, free)", () => { var s = producer.Alloc(1544); consumer.Acquire(s); rt.Free(s); }),
            ("ArrayPool Rent(1544)/Return", () => { var a = ap.Rent(1544); a[0] = 1; ap.Return(a); }),
            ("ConcurrentQueue pool", () => { queue.TryDequeue(out var a); a![0] = 1; queue.Enqueue(a); }),
            // The same hand-over between two ConcurrentQueue pools: the producer's buffer out, the consumer's spare to
            // the producer, the filled buffer back to the consumer (ArrayPool has no owners, so no exchange to compare).
            ("ConcurrentQueue exchange", () =>
            {
                producerQueue.TryDequeue(out var filled);
                consumerQueue.TryDequeue(out var spare);
                producerQueue.Enqueue(spare!);
                consumerQueue.Enqueue(filled!);
            }),
        };
        int k = ops.Length;
        Console.WriteLine($"{N:N0} samples per candidate and round, {Buffers}-buffer pools, {Environment.ProcessorCount} CPUs, " +
                          $"Stopwatch resolution {1e9 / Stopwatch.Frequency:F0} ns");
        var p999 = new double[k][];
        for (int j = 0; j < k; j++) p999[j] = new double[rounds];
        var hist = new long[k][];
        var total = new long[k][];
        for (int j = 0; j < k; j++) { hist[j] = new long[Slots]; total[j] = new long[Slots]; }
        var max = new long[k];
        WarmUp(ops, hist, max);
        double step = ClockStep(hist[0]);
        if (step > 1)
            Console.WriteLine($"The clock advances in steps of {step:F1} ns: p99.9 is given as read, then interpolated within its step (\"~\").");
        Console.WriteLine("| round | operation | p50 | p99 | p99.9 | max | managed bytes per op |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        var p999i = new double[k][];
        for (int j = 0; j < k; j++) p999i[j] = new double[rounds];
        // What the goal compares: the rtskb pair (1) against ArrayPool (3) and the queue pool (4), and the rtskb
        // exchange (2) against the queue exchange (5). Each counts the rounds it is below all its peers.
        var goals = new (int Candidate, int[] Peers, string Text, int[] Wins)[]
        {
            (1, [3, 4], "the rtskb pair's p99.9 is below both peers'", new int[2]),
            (2, [5], "the rtskb exchange's p99.9 is below the ConcurrentQueue exchange's", new int[2]),
        };
        for (int r = 0; r < rounds; r++)
        {
            var bytes = Round(ops, hist, max);
            for (int j = 0; j < k; j++)
            {
                var h = hist[j];
                for (int v = 0; v < Slots; v++) total[j][v] += h[v];
                p999[j][r] = Percentile(h, 0.999, N);
                p999i[j][r] = Interpolated(h, 0.999, N, step);
                string interpolated = step > 1 ? $" (~{p999i[j][r]:F1})" : "";
                Console.WriteLine($"| {r + 1} | {ops[j].Name} | {Percentile(h, 0.50, N):F0} ns | {Percentile(h, 0.99, N):F0} ns | " +
                                  $"{p999[j][r]:F0}{interpolated} ns | {max[j] * Ns / 1000:F1} µs | {bytes[j]:F2} |");
            }
            foreach (var g in goals)
            {
                if (g.Peers.All(q => p999[g.Candidate][r] < p999[q][r])) g.Wins[0]++;
                if (g.Peers.All(q => p999i[g.Candidate][r] < p999i[q][r])) g.Wins[1]++;
            }
        }
        Console.WriteLine();
        for (int j = 0; j < k; j++)
        {
            Array.Sort(p999[j]);
            Array.Sort(p999i[j]);
            string interpolated = step > 1 ? $" (~{p999i[j][rounds / 2]:F1} ns)" : "";
            Console.WriteLine($"median p99.9 over {rounds} rounds, {ops[j].Name}: {p999[j][rounds / 2]:F0} ns{interpolated}");
        }
        Console.WriteLine();
        long all = (long)N * rounds;
        for (int j = 0; j < k; j++)
        {
            string interpolated = step > 1 ? $" (~{Interpolated(total[j], 0.999, all, step):F1} ns)" : "";
            Console.WriteLine($"p99.9 of all {all:N0} samples, {ops[j].Name}: {Percentile(total[j], 0.999, all):F0} ns{interpolated}");
        }
        foreach (var g in goals)
            Console.WriteLine($"rounds in which {g.Text}: {g.Wins[0]} of {rounds}" +
                              (step > 1 ? $" as read, {g.Wins[1]} of {rounds} interpolated" : ""));
        Console.WriteLine();
        PrintHistogram(ops, total);
    }

    private static double Ns => 1e9 / Stopwatch.Frequency;

    private static ConcurrentQueue<byte[]> NewQueue() => new(Enumerable.Range(0, Buffers).Select(_ => new byte[1544]));

    /// <summary>
    /// Lets tiered compilation finish before anything is reported: bursts of calls with pauses between them (the
    /// runtime promotes a method after its call-counting delay, in the background), then one full round thrown away,
    /// which also gets the timed loop itself past on-stack replacement.
    /// </summary>
    private static void WarmUp((string Name, Action Op)[] ops, long[][] hist, long[] max)
    {
        for (int pass = 0; pass < 5; pass++)
        {
            foreach (var (_, op) in ops)
                for (int i = 0; i < 10_000; i++) op();
            Thread.Sleep(150);
        }
        Round(ops, hist, max);
    }

    /// <summary>
    /// The clock's step in ns, read off the timer-only histogram: on a clock that advances in coarse steps (an AMD TSC
    /// counts from the 100 MHz reference clock, so it moves every 10 ns) the readings fall into narrow clusters one step
    /// apart; on a fine clock they form one run of adjacent values, and the step is 1 ns (the Stopwatch tick).
    /// </summary>
    private static double ClockStep(long[] timerOnly)
    {
        long threshold = N / 10_000;                                  // ignore the sparse tail
        var centers = new List<double>();                             // each cluster's weighted mean reading
        double sum = 0;
        long count = 0;
        int last = -10;
        for (int v = 0; v <= Slots; v++)
        {
            if (v < Slots && timerOnly[v] < threshold) continue;
            if ((v == Slots || v > last + 2) && count > 0)            // the cluster before v ends
            {
                centers.Add(sum / count);
                (sum, count) = (0, 0);
            }
            if (v == Slots) break;
            sum += (double)v * timerOnly[v];
            count += timerOnly[v];
            last = v;
        }
        if (centers.Count < 2) return Ns;
        return (centers[^1] - centers[0]) * Ns / (centers.Count - 1);
    }

    /// <summary>
    /// The q-quantile with the readings grouped by clock step and each step's samples spread evenly over the step
    /// (the grouped-data estimate): readings of n steps stand for durations around n steps, so where two candidates
    /// share the step of their p99.9, the one with fewer samples at and above it has the lower value.
    /// </summary>
    private static double Interpolated(long[] h, double q, long n, double step)
    {
        if (step <= Ns) return Percentile(h, q, n);
        double target = q * n, seen = 0;
        int k = 0;
        long inStep = 0;
        for (int v = 0; v < Slots; v++)
        {
            if (h[v] == 0) continue;
            int kv = (int)Math.Round(v * Ns / step);
            if (kv != k)
            {
                if (seen + inStep > target) break;
                seen += inStep;
                (k, inStep) = (kv, 0);
            }
            inStep += h[v];
        }
        return (k - 0.5 + (target - seen) / inStep) * step;
    }

    /// <summary>The value at rank ⌊q·n⌋ of the <paramref name="n"/> samples counted in <paramref name="h"/>, sorted, in ns.</summary>
    private static double Percentile(long[] h, double q, long n)
    {
        long target = (long)(q * n), seen = 0;
        for (int v = 0; v < Slots; v++)
            if ((seen += h[v]) > target) return v * Ns;
        return (Slots - 1) * Ns;
    }

    /// <summary>One round: a warm-up and an untimed pass that counts managed bytes, then the interleaved timed samples.</summary>
    private static double[] Round((string Name, Action Op)[] ops, long[][] hist, long[] max)
    {
        int k = ops.Length;
        var bytes = new double[k];
        for (int j = 0; j < k; j++)
        {
            var op = ops[j].Op;
            for (int i = 0; i < 100_000; i++) op();                   // warm-up (tiering)
            long b0 = GC.GetAllocatedBytesForCurrentThread();         // managed bytes: a pass of its own, untimed
            for (int i = 0; i < N; i++) op();
            bytes[j] = (double)(GC.GetAllocatedBytesForCurrentThread() - b0) / N;
            Array.Fill(hist[j], 0);                                   // written, so every page is in before timing
            max[j] = 0;
        }
        for (int i = 0; i < N; i++)
            for (int step = 0; step < k; step++)
            {
                int j = (i + step) % k;
                var op = ops[j].Op;
                long t0 = Stopwatch.GetTimestamp();
                op();
                long d = Stopwatch.GetTimestamp() - t0;
                hist[j][Math.Min(d, Slots - 1)]++;
                if (d > max[j]) max[j] = d;
            }
        return bytes;
    }

    /// <summary>The samples of every round in power-of-two buckets of nanoseconds, a column per candidate.</summary>
    private static void PrintHistogram((string Name, Action Op)[] ops, long[][] total)
    {
        int k = ops.Length;
        var buckets = new SortedDictionary<int, long[]>();             // bucket b: [2^b, 2^(b+1)) ns; 0 also holds < 1 ns
        for (int j = 0; j < k; j++)
            for (int v = 0; v < Slots; v++)
            {
                if (total[j][v] == 0) continue;
                double ns = v * Ns;
                int b = ns < 2 ? 0 : (int)Math.Log2(ns);
                if (!buckets.TryGetValue(b, out var row)) buckets[b] = row = new long[k];
                row[j] += total[j][v];
            }
        Console.WriteLine($"Histogram over all rounds (samples per bucket; the last bucket holds everything from {(Slots - 1) * Ns / 1000:F1} µs up):");
        Console.WriteLine("| ns | " + string.Join(" | ", ops.Select(o => o.Name)) + " |");
        Console.WriteLine("|---|" + string.Concat(Enumerable.Repeat("---:|", k)));
        foreach (var (b, row) in buckets)
            Console.WriteLine($"| {(b == 0 ? 0 : 1L << b)}–{(1L << (b + 1)) - 1} | " + string.Join(" | ", row.Select(c => c.ToString("N0"))) + " |");
    }
}
