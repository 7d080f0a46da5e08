// A ready-made capture → encode frame loop for benchmarks and checks: an ISP queue (dma-contig, MMAP, capture)
// whose buffers are exported once, and an encoder queue (dma-contig, DMABUF, output) that is handed each
// frame's dma-buf. One Frame() is a capture, DQBUF, QBUF to the encoder, its DMA, DQBUF, and the requeue.
namespace Kmem;

/// <summary>
/// The ISP-to-encoder loop of an rv1106-like board with 1080p NV12 frames by default: every
/// buffer goes round as in a camera application using DMABUF hand-over. Dispose releases the queues and descriptors.
/// </summary>
public sealed class Vb2FrameLoop : IDisposable
{
    private readonly Machine _m;
    private readonly Vb2Queue _isp, _enc;
    private readonly int[] _fds;

    /// <summary>Sets the loop up on the machine's ISP (<paramref name="capture"/>) and encoder (<paramref name="output"/>) devices.</summary>
    /// <exception cref="Vb2Exception">A queue could not get its buffers.</exception>
    public Vb2FrameLoop(Machine m, int buffers, string capture = "ffa00000.rkisp", string output = "ffa50000.rkvenc", long frameBytes = 1920 * 1080 * 3 / 2)
    {
        _m = m;
        _isp = m.Vb2QueueInit("rkisp_mainpath", m.Devices[capture], m.Vb2DmaContig, Vb2IoModes.Mmap, false, [frameBytes]);
        _enc = m.Vb2QueueInit("rkvenc", m.Devices[output], m.Vb2DmaContig, Vb2IoModes.Dmabuf, true, [frameBytes]);
        int n = buffers, k = buffers;
        Check(_isp.ReqBufs(Vb2Memory.Mmap, ref n), "REQBUFS (capture)");
        Check(_enc.ReqBufs(Vb2Memory.Dmabuf, ref k), "REQBUFS (output)");
        _fds = new int[n];
        for (int i = 0; i < n; i++) Check(_isp.ExpBuf(i, 0, DmaHeap.ORdWr | DmaHeap.OCloexec, out _fds[i]), "EXPBUF");
        for (int i = 0; i < n; i++) Check(_isp.QBuf(i), "QBUF");
        Check(_isp.StreamOn(), "STREAMON (capture)");
        Check(_enc.StreamOn(), "STREAMON (output)");
    }

    private static void Check(int r, string what)
    {
        if (r != 0) throw new Vb2Exception(r, $"frame loop set-up: {what} returned {r}");
    }

    /// <summary>Frames gone round so far.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for <see cref="Frame"/>).</exception>
    public long Frames { get { _m.Life.ThrowIfDead(); return _frames; } }

    private long _frames;

    /// <summary>
    /// One frame: the ISP fills the head of its queue (a byte at each end), user space dequeues it and queues its dma-buf
    /// on the encoder, the encoder reads the same bytes and completes, and the buffer goes back to the ISP.
    /// </summary>
    /// <exception cref="Vb2Exception">A step returned an error, or the encoder did not see the ISP's bytes.</exception>
    public void Frame()
    {
        using var life = _m.Life.Enter();              // the frame's bytes are written and read here: shutdown waits for it
        var cap = _isp.DriverNext() ?? throw new Vb2Exception(-11, "the ISP driver has no buffer");
        var bytes = _isp.PlaneSpan(cap, 0);
        byte mark = (byte)_frames;
        bytes[0] = mark;
        bytes[^1] = (byte)~mark;
        _isp.BufferDone(cap);
        Check(_isp.DQBuf(out int idx), "DQBUF (capture)");
        Check(_enc.QBufDmabuf(idx, _fds[idx]), "QBUF (output)");
        var work = _enc.DriverNext()!;
        var seen = _enc.PlaneSpan(work, 0);
        if (seen[0] != mark || seen[bytes.Length - 1] != (byte)~mark) throw new Vb2Exception(-5, $"frame {_frames}: the encoder read other bytes");
        _enc.BufferDone(work);
        Check(_enc.DQBuf(out _), "DQBUF (output)");
        Check(_isp.QBuf(idx), "QBUF (capture)");
        _frames++;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_m.Life.TryEnter(out var life)) return;   // the machine is gone, and its buffers with it
        using var scope = life;
        _enc.Release();
        _isp.Release();
        foreach (int fd in _fds) _m.DmaBufFds.Close(fd);
    }
}
