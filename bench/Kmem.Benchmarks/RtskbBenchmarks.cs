// RTnet rtskb pools: alloc+free of one 1544-byte buffer and the compensation exchange, next to
// ArrayPool<byte>.Shared.Rent(1544)/Return and a ConcurrentQueue-based pool of preallocated buffers; and a
// latency run (--latency) that times every single operation and prints p50/p99/p99.9/max.
using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>Per-operation cost of the rtskb pool next to its peers (1024 operations per invocation).</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public class RtskbBenchmarks
{
    private const int Ops = 1024;
    private Machine _machine = null!;
    private RtnetStack _rt = null!;
    private RtskbPool _pool = null!, _consumer = null!;
    private ConcurrentQueue<byte[]> _queue = null!;

    /// <summary>Boots rv1106 and loads RTnet; a 64-buffer pool, a 64-buffer consumer pool, a queue of 64 buffers.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("rv1106");
        _rt = _machine.Rtnet;
        _pool = _rt.CreatePool("bench", 64);
        _consumer = _rt.CreatePool("bench-consumer", 64);
        _queue = new ConcurrentQueue<byte[]>(Enumerable.Range(0, 64).Select(_ => new byte[1544]));
    }

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary>alloc_rtskb(1544) + a byte written + kfree_rtskb.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public unsafe void RtskbAllocFree()
    {
        for (int i = 0; i < Ops; i++)
        {
            var skb = _pool.Alloc(1544);
            *(byte*)skb.Data = 1;
            _rt.Free(skb);
        }
    }

    /// <summary>alloc from the producer, rtskb_acquire into the consumer pool, kfree to the consumer (one hand-over).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void RtskbCompensationExchange()
    {
        for (int i = 0; i < Ops; i++)
        {
            var skb = _pool.Alloc(1544);
            if (_consumer.Acquire(skb) != 0) throw new InvalidOperationException("exchange failed");
            _rt.Free(skb);
        }
    }

    /// <summary><c>ArrayPool&lt;byte&gt;.Shared.Rent(1544)</c> + <c>Return</c> (the baseline).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Ops)]
    public void ArrayPoolRentReturn()
    {
        var pool = ArrayPool<byte>.Shared;
        for (int i = 0; i < Ops; i++)
        {
            var a = pool.Rent(1544);
            a[0] = 1;
            pool.Return(a);
        }
    }

    /// <summary>A pool of preallocated buffers in a <c>ConcurrentQueue&lt;byte[]&gt;</c>: TryDequeue + Enqueue.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void ConcurrentQueuePool()
    {
        for (int i = 0; i < Ops; i++)
        {
            _queue.TryDequeue(out var a);
            a![0] = 1;
            _queue.Enqueue(a);
        }
    }
}

/// <summary>
/// The latency run: every operation timed alone, 10⁶ of each per round after a warm-up, the candidates interleaved
/// (one sample of each in turn, the order rotating) so that the host's noise falls on all of them alike; percentiles
/// per round, the median over the rounds, and managed bytes.
/// </summary>
public static class RtskbLatency
{
    private const int N = 1_000_000;
    private const int Buffers = 16;                               // RTnet's socket_rtskbs default

    /// <summary>Runs <paramref name="rounds"/> rounds of the five candidates and prints one table row per candidate and round.</summary>
    public static unsafe void Run(int rounds)
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("lat", Buffers);
        var producer = rt.CreatePool("lat-producer", Buffers);     // the exchange's two pools, apart from the pair's
        var consumer = rt.CreatePool("lat-consumer", Buffers);
        var queue = new ConcurrentQueue<byte[]>(Enumerable.Range(0, Buffers).Select(_ => new byte[1544]));
        var ap = ArrayPool<byte>.Shared;
        var ops = new (string Name, Action Op)[]
        {
            ("timer only (no operation)", () => { }),
            ("rtskb alloc+free", () => { var s = pool.Alloc(1544); *(byte*)s.Data = 1; rt.Free(s); }),
            ("rtskb exchange (alloc, acquire, free)", () => { var s = producer.Alloc(1544); consumer.Acquire(s); rt.Free(s); }),
            ("ArrayPool Rent(1544)/Return", () => { var a = ap.Rent(1544); a[0] = 1; ap.Return(a); }),
            ("ConcurrentQueue pool", () => { queue.TryDequeue(out var a); a![0] = 1; queue.Enqueue(a); }),
        };
        Console.WriteLine($"{N:N0} samples per candidate and round, {Buffers}-buffer pools, {Environment.ProcessorCount} CPUs, " +
                          $"Stopwatch resolution {1e9 / Stopwatch.Frequency:F0} ns");
        Console.WriteLine("| round | operation | p50 | p99 | p99.9 | max | managed bytes per op |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        var p999 = new double[ops.Length][];
        for (int j = 0; j < ops.Length; j++) p999[j] = new double[rounds];
        int wins = 0;
        for (int r = 0; r < rounds; r++)
        {
            var rows = Round(ops);
            for (int j = 0; j < ops.Length; j++)
            {
                p999[j][r] = rows[j].P999;
                Console.WriteLine($"| {r + 1} | {ops[j].Name} | {rows[j].P50:F0} ns | {rows[j].P99:F0} ns | {rows[j].P999:F0} ns | {rows[j].Max / 1000:F1} µs | {rows[j].Bytes:F2} |");
            }
            if (rows[1].P999 < rows[3].P999 && rows[1].P999 < rows[4].P999) wins++;
        }
        Console.WriteLine();
        for (int j = 0; j < ops.Length; j++)
        {
            Array.Sort(p999[j]);
            Console.WriteLine($"median p99.9 over {rounds} rounds, {ops[j].Name}: {p999[j][rounds / 2]:F0} ns");
        }
        Console.WriteLine($"rounds in which the rtskb pair's p99.9 is below both peers': {wins} of {rounds}");
    }

    private readonly record struct Row(double P50, double P99, double P999, double Max, double Bytes);

    private static Row[] Round((string Name, Action Op)[] ops)
    {
        int k = ops.Length;
        var bytes = new long[k];
        for (int j = 0; j < k; j++)
        {
            var op = ops[j].Op;
            for (int i = 0; i < 100_000; i++) op();                   // warm-up (tiering)
            long b0 = GC.GetAllocatedBytesForCurrentThread();         // managed bytes: a pass of its own, untimed
            for (int i = 0; i < N; i++) op();
            bytes[j] = GC.GetAllocatedBytesForCurrentThread() - b0;
        }
        var ticks = new long[k][];
        for (int j = 0; j < k; j++) ticks[j] = new long[N];
        for (int i = 0; i < N; i++)
            for (int step = 0; step < k; step++)
            {
                int j = (i + step) % k;
                var op = ops[j].Op;
                long t0 = Stopwatch.GetTimestamp();
                op();
                ticks[j][i] = Stopwatch.GetTimestamp() - t0;
            }
        double ns = 1e9 / Stopwatch.Frequency;
        var rows = new Row[k];
        for (int j = 0; j < k; j++)
        {
            var t = ticks[j];
            Array.Sort(t);
            double P(double q) => t[Math.Min(N - 1, (int)(q * N))] * ns;
            rows[j] = new Row(P(0.50), P(0.99), P(0.999), t[^1] * ns, (double)bytes[j] / N);
        }
        return rows;
    }
}
