// RTnet sockets and NICs: each socket owns a pool (socket_rtskbs) that it resizes through the EXTPOOL /
// SHRPOOL calls with RTnet-final's return values and that close() releases (-EAGAIN while buffers are out);
// each NIC owns a receive pool and adds device_rtskbs to the global pool. A frame received on a NIC is
// copied into an rtskb of the NIC's pool, handed to the socket of its port by compensation (dropped back to
// the NIC's pool when the socket's pool is empty) and read by the socket's user, who frees it.
// Locks: RtnetStack._lock (the NIC and socket tables) takes only the log ring; a receive queue's RtSpinLock is
// held for a few stores and takes nothing.
using Kmem.Rtnet;

namespace Kmem;

/// <summary>A real-time socket bound to a port, with its own rtskb pool.</summary>
public sealed class RtSocket
{
    /// <summary>RT_SO_EXTPOOL (README.pools; RTnet 0.7's setsockopt option).</summary>
    public const int RtSoExtPool = 0xFF01;
    /// <summary>RT_SO_SHRPOOL.</summary>
    public const int RtSoShrPool = 0xFF02;
    /// <summary>RTNET_RTIOC_EXTPOOL = _IOW(RTIOC_TYPE_NETWORK, 0x14, unsigned).</summary>
    public const uint RtiocExtPool = 0x40040414;
    /// <summary>RTNET_RTIOC_SHRPOOL = _IOW(RTIOC_TYPE_NETWORK, 0x15, unsigned).</summary>
    public const uint RtiocShrPool = 0x40040415;

    private readonly RtnetStack _stack;
    private readonly RtskbQueue _rx = new();
    private long _dropped, _received;

    internal RtSocket(RtnetStack stack, int port, RtskbPool pool)
    {
        _stack = stack;
        Port = port;
        _pool = pool;
    }

    /// <summary>The port the socket receives on.</summary>
    public int Port { get; }

    private readonly RtskbPool _pool;
    private bool _closing, _closed;

    /// <summary>The socket's pool.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Port"/>).</exception>
    public RtskbPool Pool { get { Live(); return _pool; } }

    /// <summary>SKB_POOL_CLOSED: close() was called.</summary>
    public bool Closing { get { Live(); return _closing; } }

    /// <summary>True once close() succeeded.</summary>
    public bool Closed { get { Live(); return _closed; } }

    /// <summary>Packets waiting in the receive queue.</summary>
    public int Queued { get { Live(); return _rx.Count; } }

    /// <summary>Packets dropped because the socket's pool had no buffer to give in exchange.</summary>
    public long Dropped { get { Live(); return Interlocked.Read(ref _dropped); } }

    /// <summary>Packets delivered to the receive queue.</summary>
    public long Received { get { Live(); return Interlocked.Read(ref _received); } }

    private void Live() => _stack.Life.ThrowIfDead();

    internal bool Deliver(Rtskb skb)
    {
        if (_closing || _pool.Acquire(skb) != 0)
        {
            Interlocked.Increment(ref _dropped);
            return false;                          // the caller drops it back to the NIC's pool
        }
        _rx.Enqueue(skb);
        Interlocked.Increment(ref _received);
        return true;
    }

    /// <summary>
    /// recvmsg (non-blocking): copies the next packet into <paramref name="dst"/> and frees its rtskb (to this socket's
    /// pool, its owner now). Returns the bytes copied, or -EAGAIN (-11) when nothing is queued.
    /// </summary>
    public int Receive(Span<byte> dst)
    {
        Live();
        var skb = _rx.Dequeue();
        if (skb.IsNull) return -11;
        int n = Math.Min(dst.Length, skb.Len);
        skb.Bytes[..n].CopyTo(dst);
        _stack.Free(skb);
        return n;
    }

    /// <summary>Takes the next packet without freeing it (the caller owns it and must <see cref="RtnetStack.Free"/> it).</summary>
    public Rtskb ReceiveRtskb()
    {
        Live();
        return _rx.Dequeue();
    }

    /// <summary>
    /// RT_SO_EXTPOOL / RT_SO_SHRPOOL (and the RTNET_RTIOC_ ioctls), RTnet-final's values: EXTPOOL returns the buffers added,
    /// -ENOMEM when a request above 0 added none, -EBADF once closing; SHRPOOL returns the buffers removed, -EBUSY when a
    /// request above 0 removed none (all are out); other options -ENOPROTOOPT; a negative count -EINVAL.
    /// </summary>
    public int SetSockOpt(int option, int count)
    {
        Live();
        if (count < 0) return -22;
        switch (option)
        {
            case RtSoExtPool:
                if (_closing) return -9;
                int added = _pool.Extend(count);
                return added == 0 && count > 0 ? -12 : added;
            case RtSoShrPool:
                int removed = _pool.Shrink(count);
                return removed == 0 && count > 0 ? -16 : removed;
            default:
                return -92;
        }
    }

    /// <summary>The ioctl form of <see cref="SetSockOpt"/>; unknown requests give -ENOTTY.</summary>
    public int Ioctl(uint request, int count) => Live(request) switch
    {
        RtiocExtPool => SetSockOpt(RtSoExtPool, count),
        RtiocShrPool => SetSockOpt(RtSoShrPool, count),
        _ => -25,
    };

    /// <summary>
    /// close(): marks the pool closed, frees queued packets and the free buffers; while buffers are still out it returns
    /// -EAGAIN (-11) and the socket stays (retry once they are back); then 0.
    /// </summary>
    public int Close()
    {
        using var life = _stack.Life.Enter();
        if (_closed) return -9;
        _closing = true;
        for (var skb = _rx.Dequeue(); !skb.IsNull; skb = _rx.Dequeue()) _stack.Free(skb);
        int r = _pool.Release();
        if (r != 0) return r;
        _closed = true;
        _stack.Unbind(this);
        return 0;
    }

    /// <inheritdoc/>
    public override string ToString() => $"socket :{Port} ({_pool})";

    private uint Live(uint request)
    {
        Live();
        return request;
    }
}
