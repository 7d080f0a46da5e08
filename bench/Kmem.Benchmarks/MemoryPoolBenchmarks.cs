// KmemMemoryPool next to MemoryPool<byte>.Shared: rent+dispose of 4 KiB buffers, and a System.IO.Pipelines
// round trip in 4 KiB chunks over each pool (Kestrel's PinnedBlockMemoryPool is internal to ASP.NET Core:
// its figure is quoted in docs/benchmarks.md from a separate measurement, not run here).
using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace Kmem.Benchmarks;

/// <summary>
/// Group "RentDispose": one <c>Rent(4096)</c> + <c>Dispose()</c> per operation, from a <see cref="KmemMemoryPool"/>
/// (default mode: managers reused per address; strict mode: a new manager per rent, as the pool did before
/// issue 25) and from <see cref="MemoryPool{T}.Shared"/> (the baseline), next to the bare <c>Kmalloc</c>/<c>Kfree</c>
/// pair under the pool. Group "Pipe": one 4 KiB chunk per operation
/// through a <see cref="Pipe"/> on one thread: <c>GetMemory(4096)</c>, a 4 KiB copy, <c>Advance</c>,
/// <c>FlushAsync</c>, <c>ReadAsync</c>, a check of the chunk's first byte and <c>AdvanceTo(End)</c>; each chunk fills
/// one segment, so each operation rents and returns one buffer. The default pipe (<see cref="PipeOptions.Default"/>,
/// <see cref="MemoryPool{T}.Shared"/>) takes its arrays from ArrayPool directly and is the baseline.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class MemoryPoolBenchmarks
{
    private const int Ops = 1024;
    private const int Chunk = 4096;

    private Machine _machine = null!;
    private KmemMemoryPool _kmem = null!;
    private KmemMemoryPool _strict = null!;
    private Pipe _kmemPipe = null!;
    private Pipe _strictPipe = null!;
    private Pipe _defaultPipe = null!;
    private readonly byte[] _data = new byte[Chunk];

    /// <summary>Boots one x86_64 machine, its two pools and the three pipes.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("x86_64");
        _kmem = new KmemMemoryPool(_machine);
        _strict = new KmemMemoryPool(_machine) { Strict = true };
        _kmemPipe = NewPipe(_kmem);
        _strictPipe = NewPipe(_strict);
        _defaultPipe = new Pipe(PipeOptions.Default);
        Random.Shared.NextBytes(_data);
    }

    private static Pipe NewPipe(MemoryPool<byte> pool) => new(new PipeOptions(pool, minimumSegmentSize: Chunk, useSynchronizationContext: false));

    /// <summary>Checks that every buffer went back, then shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var pipe in new[] { _kmemPipe, _strictPipe, _defaultPipe })
        {
            pipe.Writer.Complete();
            pipe.Reader.Complete();
        }
        if (_kmem.Rented != 0 || _strict.Rented != 0) throw new InvalidOperationException($"buffers not returned: {_kmem.Rented} + {_strict.Rented}");
        _machine.Dispose();
    }

    /// <summary>MemoryPool&lt;byte&gt;.Shared: an ArrayPool array wrapped in a new owner object per rent.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Ops), BenchmarkCategory("RentDispose")]
    public void SharedRentDispose() => RentDispose(MemoryPool<byte>.Shared);

    /// <summary>KmemMemoryPool, default mode: the managers of each kmalloc address are reused.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("RentDispose")]
    public void KmemRentDispose() => RentDispose(_kmem);

    /// <summary>KmemMemoryPool, strict mode: a new manager per rent.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("RentDispose")]
    public void KmemStrictRentDispose() => RentDispose(_strict);

    /// <summary>The kmalloc under the pool alone: <c>Kmalloc(4096)</c> + <c>Kfree</c>, so the pool's own share shows.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("RentDispose")]
    public void KmallocKfree()
    {
        var m = _machine;
        for (int i = 0; i < Ops; i++)
        {
            nint p = m.Kmalloc(Chunk, Gfp.Kernel);
            if (p == 0) Fail.NoMemory("Kmalloc");
            m.Kfree(p);
        }
    }

    private static void RentDispose(MemoryPool<byte> pool)
    {
        for (int i = 0; i < Ops; i++) pool.Rent(Chunk).Dispose();
    }

    /// <summary>A pipe with the default options (ArrayPool arrays).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Ops), BenchmarkCategory("Pipe")]
    public long DefaultPipe() => RoundTrip(_defaultPipe);

    /// <summary>A pipe over KmemMemoryPool, default mode.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("Pipe")]
    public long KmemPipe() => RoundTrip(_kmemPipe);

    /// <summary>A pipe over KmemMemoryPool, strict mode.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("Pipe")]
    public long KmemStrictPipe() => RoundTrip(_strictPipe);

    private long RoundTrip(Pipe pipe)
    {
        PipeWriter w = pipe.Writer;
        PipeReader r = pipe.Reader;
        long sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            Memory<byte> mem = w.GetMemory(Chunk);
            _data.CopyTo(mem.Span);
            w.Advance(Chunk);
            ValueTask<FlushResult> flush = w.FlushAsync();
            if (!flush.IsCompletedSuccessfully) throw new InvalidOperationException("the flush did not complete at once");
            _ = flush.Result;
            ValueTask<ReadResult> read = r.ReadAsync();
            if (!read.IsCompletedSuccessfully) throw new InvalidOperationException("the read did not complete at once");
            ReadResult result = read.Result;
            if (result.Buffer.Length != Chunk || result.Buffer.FirstSpan[0] != _data[0]) throw new InvalidOperationException("the chunk read is not the chunk written");
            sum += result.Buffer.FirstSpan[0];
            r.AdvanceTo(result.Buffer.End);
        }
        return sum;
    }
}
