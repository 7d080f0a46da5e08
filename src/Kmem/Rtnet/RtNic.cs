// An RTnet NIC: its receive pool (device_rtskbs added to the global pool) and frame reception by compensation.
namespace Kmem;

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
