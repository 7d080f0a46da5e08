// RTnet rtskb pools: alloc+free of one 1544-byte buffer and the compensation exchange, next to
// ArrayPool<byte>.Shared.Rent(1544)/Return and a ConcurrentQueue-based pool of preallocated buffers, and the same
// exchange between two ConcurrentQueue pools (the latency run of the same operations is RtskbLatency).
using System.Buffers;
using System.Collections.Concurrent;
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
    private ConcurrentQueue<byte[]> _queue = null!, _consumerQueue = null!;

    /// <summary>Boots rv1106 and loads RTnet; a 64-buffer pool and a 64-buffer consumer pool, two queues of 64 buffers.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("rv1106");
        _rt = _machine.Rtnet;
        _pool = _rt.CreatePool("bench", 64);
        _consumer = _rt.CreatePool("bench-consumer", 64);
        _queue = NewQueue();
        _consumerQueue = NewQueue();
    }

    private static ConcurrentQueue<byte[]> NewQueue() => new(Enumerable.Range(0, 64).Select(_ => new byte[1544]));

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

    /// <summary>
    /// The exchange between two ConcurrentQueue pools: the producer's buffer out, the consumer's spare to the producer,
    /// the filled buffer to the consumer.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void ConcurrentQueueExchange()
    {
        for (int i = 0; i < Ops; i++)
        {
            _queue.TryDequeue(out var filled);
            _consumerQueue.TryDequeue(out var spare);
            _queue.Enqueue(spare!);
            _consumerQueue.Enqueue(filled!);
        }
    }
}
