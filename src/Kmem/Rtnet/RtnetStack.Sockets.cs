// The RTnet stack's socket and NIC tables (the other half of RtnetStack).
namespace Kmem;

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
