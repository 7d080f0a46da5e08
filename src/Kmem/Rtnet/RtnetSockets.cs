// RTnet sockets and NICs: each socket owns a pool (socket_rtskbs) that it resizes through the EXTPOOL /
// SHRPOOL calls with RTnet-final's return values and that close() releases (-EAGAIN while buffers are out);
// each NIC owns a receive pool and adds device_rtskbs to the global pool. A frame received on a NIC is
// copied into an rtskb of the NIC's pool, handed to the socket of its port by compensation (dropped back to
// the NIC's pool when the socket's pool is empty) and read by the socket's user, who frees it.
// Locks: RtnetStack._lock (the NIC and socket tables) takes only the log ring; a receive queue's RtSpinLock is
// held for a few stores and takes nothing.
namespace Kmem;

/// <summary>A FIFO of rtskbs linked through their headers, under a spin lock (a socket's receive queue).</summary>
internal sealed unsafe class RtskbQueue
{
    private nint _first, _last;
    private RtSpinLock _lock;
    private int _count;

    public int Count => Volatile.Read(ref _count);

    private void Lock() => _lock.Enter();

    public void Enqueue(Rtskb skb)
    {
        var h = skb.H;
        h->Next = 0;
        Lock();
        if (_last != 0) ((RtskbHeader*)_last)->Next = (nint)h; else _first = (nint)h;
        _last = (nint)h;
        _count++;
        _lock.Exit();
    }

    public Rtskb Dequeue()
    {
        Lock();
        var h = (RtskbHeader*)_first;
        if (h != null)
        {
            _first = h->Next;
            if (_first == 0) _last = 0;
            h->Next = 0;
            _count--;
        }
        _lock.Exit();
        return new Rtskb((nint)h);
    }
}

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

/// <summary>A NIC with its receive pool; <see cref="Receive"/> is a frame arriving from the wire (or the loopback).</summary>
public sealed class RtNic
{
    private readonly RtnetStack _stack;
    private long _rxPackets, _rxDropped;

    internal RtNic(RtnetStack stack, string name, RtskbPool pool, int addedToGlobal)
    {
        _stack = stack;
        Name = name;
        _rxPool = pool;
        AddedToGlobal = addedToGlobal;
    }

    /// <summary>The interface name (rtlo, rteth0…).</summary>
    public string Name { get; }

    private readonly RtskbPool _rxPool;

    /// <summary>The receive pool (rx_pool_size).</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Name"/> and <see cref="AddedToGlobal"/>).</exception>
    public RtskbPool RxPool { get { _stack.Life.ThrowIfDead(); return _rxPool; } }

    /// <summary>add_rtskbs: what registering the NIC added to the global pool.</summary>
    public int AddedToGlobal { get; }

    /// <summary>Frames received.</summary>
    public long RxPackets { get { _stack.Life.ThrowIfDead(); return Interlocked.Read(ref _rxPackets); } }

    /// <summary>Frames dropped: no receive buffer, no socket on the port, or the socket's pool empty.</summary>
    public long RxDropped { get { _stack.Life.ThrowIfDead(); return Interlocked.Read(ref _rxDropped); } }

    /// <summary>
    /// A frame arrives: it is copied into an rtskb of the receive pool and handed to the socket bound to
    /// <paramref name="port"/> by compensation. Returns true when the socket got it; false when it was dropped (the
    /// buffer then went straight back to this NIC's pool).
    /// </summary>
    public bool Receive(ReadOnlySpan<byte> frame, int port)
    {
        _stack.Life.ThrowIfDead();
        if (frame.Length > _stack.DataBytes) throw new ArgumentOutOfRangeException(nameof(frame), $"a frame of {frame.Length} bytes does not fit an rtskb ({_stack.DataBytes})");
        var skb = _rxPool.Alloc(frame.Length);
        if (skb.IsNull)
        {
            Interlocked.Increment(ref _rxDropped);
            return false;
        }
        frame.CopyTo(skb.Put(frame.Length));
        Interlocked.Increment(ref _rxPackets);
        var sock = _stack.SocketOn(port);
        if (sock is not null && sock.Deliver(skb)) return true;
        _stack.Free(skb);                           // dropped: back to the NIC's pool
        Interlocked.Increment(ref _rxDropped);
        return false;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} (rx pool {_rxPool})";
}

public sealed partial class RtnetStack
{
    private readonly Dictionary<int, RtSocket> _sockets = [];
    private readonly Dictionary<string, RtNic> _nics = [];
    private RtSocket?[] _byPort = new RtSocket?[65536];

    /// <summary>The registered NICs by name.</summary>
    public IReadOnlyDictionary<string, RtNic> Nics { get { Life.ThrowIfDead(); lock (_lock) return new Dictionary<string, RtNic>(_nics); } }

    /// <summary>The open sockets by port.</summary>
    public IReadOnlyDictionary<int, RtSocket> Sockets { get { Life.ThrowIfDead(); lock (_lock) return new Dictionary<int, RtSocket>(_sockets); } }

    /// <summary>The loopback NIC (rtlo).</summary>
    public RtNic Loopback => Nics["rtlo"];

    /// <summary>
    /// rt_register_rtnetdev(): a NIC with a receive pool of <paramref name="rxPoolSize"/> (default rx_pool_size); the
    /// global pool grows by device_rtskbs.
    /// </summary>
    public RtNic RegisterNic(string name, int? rxPoolSize = null)
    {
        using var life = Life.Enter();
        ArgumentException.ThrowIfNullOrEmpty(name);
        lock (_lock)
            if (_nics.ContainsKey(name)) throw Misuse("rt_register_rtnetdev", $"a NIC named {name} exists");
        var pool = CreatePool($"{name}-rx", rxPoolSize ?? Params.RxPoolSize);
        int added = _global.Extend(Params.DeviceRtskbs);
        var nic = new RtNic(this, name, pool, added);
        lock (_lock) _nics.Add(name, nic);
        return nic;
    }

    /// <summary>
    /// socket() + bind(): a socket on <paramref name="port"/> with a pool of socket_rtskbs (or <paramref name="poolSize"/>).
    /// Null, with the statistics put right, when not one buffer could be had (-ENOMEM).
    /// </summary>
    /// <exception cref="RtnetException">The port is taken or out of range.</exception>
    public RtSocket? Socket(int port, int? poolSize = null)
    {
        using var life = Life.Enter();
        if ((uint)port > 65535) throw Misuse("bind", $"port {port} is outside 0..65535");
        lock (_lock)
            if (_sockets.ContainsKey(port)) throw Misuse("bind", $"port {port} is in use (-EADDRINUSE)");
        var pool = CreatePool($"socket:{port}", poolSize ?? Params.SocketRtskbs);
        if (pool.Size == 0 && (poolSize ?? Params.SocketRtskbs) > 0)
        {
            pool.Release();
            return null;
        }
        var s = new RtSocket(this, port, pool);
        lock (_lock)
        {
            _sockets.Add(port, s);
            Volatile.Write(ref _byPort[port], s);
        }
        return s;
    }

    /// <summary>
    /// rt_unregister_rtnetdev() + rtdev_free(): the NIC's receive pool is released and the global pool shrinks by what
    /// registering it added (add_rtskbs; only free buffers can go). Returns 0, or -EAGAIN (-11) while receive buffers
    /// are still out (retry once they are back).
    /// </summary>
    public int UnregisterNic(RtNic nic)
    {
        using var life = Life.Enter();
        ArgumentNullException.ThrowIfNull(nic);
        lock (_lock)
            if (!_nics.TryGetValue(nic.Name, out var mine) || mine != nic) throw Misuse("rt_unregister_rtnetdev", $"{nic.Name} is not registered");
        int r = nic.RxPool.Release();
        if (r != 0) return r;
        _global.Shrink(nic.AddedToGlobal);
        lock (_lock) _nics.Remove(nic.Name);
        return 0;
    }

    internal RtSocket? SocketOn(int port) => (uint)port < 65536u ? Volatile.Read(ref _byPort[port]) : null;

    internal void Unbind(RtSocket s)
    {
        lock (_lock)
        {
            _sockets.Remove(s.Port);
            Volatile.Write(ref _byPort[s.Port], null);
        }
    }
}
