// The videobuf2 frame loop: a 1080p NV12 frame captured by the ISP queue (dma-contig, MMAP), handed to the
// encoder queue as DMABUF and read there, next to what an application does without zero copy: a frame buffer
// from ArrayPool<byte>.Shared handed over by reference, or copied into the encoder's buffer.
using System.Buffers;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>One frame per operation (frames per second = 10⁹ / ns).</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 15)]
public class Vb2Benchmarks
{
    private const int FrameBytes = 1920 * 1080 * 3 / 2;
    private Machine _machine = null!;
    private Vb2FrameLoop _loop = null!;
    private byte[] _encoderFrame = null!;
    private readonly Queue<byte[]> _handOver = new(4);
    private long _n;

    /// <summary>Boots rv1106 and sets the loop up with four buffers; warms the hand-over (attach and map happen once).</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("rv1106");
        _loop = new Vb2FrameLoop(_machine, 4);
        for (int i = 0; i < 16; i++) _loop.Frame();
        _encoderFrame = new byte[FrameBytes];
    }

    /// <summary>Releases the queues and shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _loop.Dispose();
        _machine.Dispose();
    }

    /// <summary>Kmem: capture, DQBUF, QBUF(DMABUF) to the encoder, the encoder's read, DQBUF, requeue.</summary>
    [Benchmark]
    public void Vb2DmabufFrame() => _loop.Frame();

    /// <summary>ArrayPool: rent a frame, write it, hand the array over through a queue, read it, return it.</summary>
    [Benchmark(Baseline = true)]
    public void ArrayPoolHandOver()
    {
        var a = ArrayPool<byte>.Shared.Rent(FrameBytes);
        byte mark = (byte)_n++;
        a[0] = mark;
        a[FrameBytes - 1] = (byte)~mark;
        _handOver.Enqueue(a);
        var b = _handOver.Dequeue();
        if (b[0] != mark || b[FrameBytes - 1] != (byte)~mark) throw new InvalidOperationException();
        ArrayPool<byte>.Shared.Return(b);
    }

    /// <summary>ArrayPool with a copy: the frame copied into the encoder's own buffer (what zero copy saves).</summary>
    [Benchmark]
    public void ArrayPoolCopy()
    {
        var a = ArrayPool<byte>.Shared.Rent(FrameBytes);
        byte mark = (byte)_n++;
        a[0] = mark;
        a[FrameBytes - 1] = (byte)~mark;
        a.AsSpan(0, FrameBytes).CopyTo(_encoderFrame);
        if (_encoderFrame[0] != mark) throw new InvalidOperationException();
        ArrayPool<byte>.Shared.Return(a);
    }
}
