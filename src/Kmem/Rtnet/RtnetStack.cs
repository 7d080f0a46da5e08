// The RTnet stack of one machine (standalone RTnet's final behaviour): the rtskb slab cache and its
// geometry, the global statistics and /proc/rtnet/rtskb, the pool set (global, ICMP, VNIC, proxy, NIC
// receive pools), buffer checks for kfree_rtskb, the compensation exchange, sockets and NICs.
using Kmem.Core;
using Kmem.Kernel;
using Kmem.Rtnet;
using Kmem.Slab;

namespace Kmem;

/// <summary>RTnet's module parameters (standalone RTnet's defaults), from the kernel command line (<c>rtnet.socket_rtskbs=16</c> …).</summary>
public sealed record RtnetParams
{
    /// <summary>RTSKB_SIZE: the data buffer of each rtskb (1544, "maximum needed by pcnet32-rt").</summary>
    public int RtskbSize { get; init; } = 1544;
    /// <summary>socket_rtskbs: each socket's initial pool.</summary>
    public int SocketRtskbs { get; init; } = 16;
    /// <summary>global_rtskbs: the global pool's base size.</summary>
    public int GlobalRtskbs { get; init; }
    /// <summary>device_rtskbs: buffers added to the global pool per registered NIC.</summary>
    public int DeviceRtskbs { get; init; } = 16;
    /// <summary>rx_pool_size: each NIC's receive pool (rt_8139too's default).</summary>
    public int RxPoolSize { get; init; } = 16;
    /// <summary>vnic_rtskbs: the RTmac VNIC pool.</summary>
    public int VnicRtskbs { get; init; } = 32;
    /// <summary>proxy_rtskbs: the rtnetproxy pool.</summary>
    public int ProxyRtskbs { get; init; } = 32;

    /// <summary>ICMP_REPLY_POOL_SIZE (not a parameter).</summary>
    public const int IcmpReplyPoolSize = 8;
}

/// <summary>
/// The RTnet stack: rtskb pools over the <c>rtskb_slab_pool</c> cache, the standard pool set, sockets and NICs.
/// Reach it with <see cref="Machine.Rtnet"/> (loading it, as <c>modprobe rtnet</c>).
/// </summary>
public sealed unsafe partial class RtnetStack
{
    // What kfree_rtskb reads of the stack: the first fields of the object, loaded together with the header.
    private readonly long _magic;                // the stack's cookie in every live rtskb's header
    private readonly nint _linear;               // the linear map: [_linear, _linear + _linearBytes), lowmem only
    private nuint _linearBytes;                  // 0 once the machine is shut down: every later check fails
    private RtskbPool?[] _poolsById = new RtskbPool?[16];
    private readonly KernelContext _k;
    private readonly SlabCache _cache;
    private readonly Lock _lock = new();
    private int _nextPool = 1;
    private int _pools_, _poolsMax, _amount, _amountMax;

    internal RtnetStack(KernelContext k, RtnetParams p)
    {
        _k = k;
        Params = p;
        int line = k.Facts.CacheLineSize;
        HeaderBytes = Align(k.Facts.Is64Bit ? 160 : 88, line);          // ALIGN_RTSKB_STRUCT_LEN
        DataBytes = Align(p.RtskbSize, line);                             // SKB_DATA_ALIGN(RTSKB_SIZE)
        _cache = k.Slab.Create("rtskb_slab_pool", HeaderBytes + DataBytes, 0, SlabFlags.HwcacheAlign, null, 0);
        _magic = Random.Shared.NextInt64() | 1;
        _linear = k.Pages.IdxToVirt(0);
        _linearBytes = (nuint)k.Pages.LinearBytes;                       // up to high_memory: rtskbs are slab objects, never HighMem
        _liveness = RtskbLiveness.Register(_linear, _linearBytes, k.Life);
        // rtskb_pools_init(): the statistics start at 0, then the global pool (global_rtskbs), the ICMP pool.
        _global = CreatePool("global", p.GlobalRtskbs);
        _icmp = CreatePool("icmp", RtnetParams.IcmpReplyPoolSize);
        _vnic = CreatePool("vnic", p.VnicRtskbs);
        _proxy = CreatePool("proxy", p.ProxyRtskbs);
        k.Proc.Register("/proc/rtnet/rtskb", ProcRtskb);
        k.Proc.Register("/proc/rtnet/version", () => "RTnet 0.9.13\n");
        // The loopback device rtlo, registered at stack init as RTnet's rtloopback module does.
        RegisterNic("rtlo", 1);
    }

    private static int Align(int v, int a) => (v + a - 1) & ~(a - 1);

    private readonly RtskbLiveness.Registration _liveness;

    /// <summary>The machine's life: every member but the fixed geometry throws once it is dead.</summary>
    internal KernelLife Life => _k.Life;

    /// <summary>
    /// The machine's shutdown (after every counted call has left): later frees fail the linear-map check before they read
    /// a header, every pool is closed and its lock sealed, and the stack's rtskbs no longer count as live.
    /// </summary>
    internal void Shutdown()
    {
        Volatile.Write(ref _linearBytes, 0);
        foreach (var p in Volatile.Read(ref _poolsById)) p?.Shutdown();
        RtskbLiveness.Unregister(_liveness);
    }

    /// <summary>The parameters in force.</summary>
    public RtnetParams Params { get; }

    /// <summary>ALIGN_RTSKB_STRUCT_LEN: the header part of each object.</summary>
    public int HeaderBytes { get; }

    /// <summary>SKB_DATA_ALIGN(RTSKB_SIZE): the data part, and the largest size <see cref="RtskbPool.Alloc"/> accepts.</summary>
    public int DataBytes { get; }

    /// <summary>L: the bytes of one rtskb (header + data), the unit of "rtskb memory need".</summary>
    public int RtskbBytes => HeaderBytes + DataBytes;

    /// <summary>The slab cache the buffers come from.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Params"/>, <see cref="HeaderBytes"/>, <see cref="DataBytes"/> and <see cref="RtskbBytes"/>).</exception>
    public SlabCache Cache { get { Life.ThrowIfDead(); return _cache; } }

    private readonly RtskbPool _global, _icmp, _vnic, _proxy;

    /// <summary>global_pool: global_rtskbs plus device_rtskbs per registered NIC (ARP, RTmac, forwarding).</summary>
    public RtskbPool GlobalPool { get { Life.ThrowIfDead(); return _global; } }

    /// <summary>The ICMP reply pool (8).</summary>
    public RtskbPool IcmpPool { get { Life.ThrowIfDead(); return _icmp; } }

    /// <summary>The RTmac VNIC pool (vnic_rtskbs).</summary>
    public RtskbPool VnicPool { get { Life.ThrowIfDead(); return _vnic; } }

    /// <summary>The rtnetproxy pool (proxy_rtskbs).</summary>
    public RtskbPool ProxyPool { get { Life.ThrowIfDead(); return _proxy; } }

    /// <summary>rtskb_pools and its maximum.</summary>
    public (int Current, int Max) PoolCount { get { Life.ThrowIfDead(); lock (_lock) return (_pools_, _poolsMax); } }

    /// <summary>rtskb_amount and its maximum.</summary>
    public (int Current, int Max) RtskbCount { get { Life.ThrowIfDead(); lock (_lock) return (_amount, _amountMax); } }

    /// <summary>Every live pool.</summary>
    public IReadOnlyList<RtskbPool> Pools { get { Life.ThrowIfDead(); return LivePools(); } }

    private RtskbPool[] LivePools() => Volatile.Read(ref _poolsById).Where(p => p is { IsReleased: false }).Select(p => p!).ToArray();

    /// <summary>
    /// rtskb_pool_init(): a new pool filled with up to <paramref name="initialSize"/> buffers. The pool counts in the
    /// statistics even when none could be had; check <see cref="RtskbPool.Size"/> against the request.
    /// </summary>
    public RtskbPool CreatePool(string name, int initialSize)
    {
        using var life = Life.Enter();
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegative(initialSize);
        RtskbPool pool;
        lock (_lock)
        {
            int id = _nextPool++;
            if (id >= _poolsById.Length)
            {
                var grown = new RtskbPool?[_poolsById.Length * 2];
                Array.Copy(_poolsById, grown, _poolsById.Length);
                Volatile.Write(ref _poolsById, grown);
            }
            pool = new RtskbPool(this, id, name);
            _poolsById[id] = pool;
            _pools_++;
            _poolsMax = Math.Max(_poolsMax, _pools_);
        }
        pool.Extend(initialSize);
        return pool;
    }

    internal void PoolReleased(RtskbPool p)
    {
        lock (_lock)
        {
            _pools_--;
            _poolsById[p.Id] = null;
        }
    }

    internal int Closed(RtskbPool p, string fn)
    {
        _k.Log.Err($"RTnet: {fn} on released pool {p.Name}");
        return -9;                                                     // -EBADF
    }

    /// <summary>A new rtskb object for <paramref name="pool"/>, or null ("rtskb allocation from slab pool failed").</summary>
    internal RtskbHeader* NewObject(RtskbPool pool)
    {
        nint obj = _cache.Alloc(Gfp.Kernel | Gfp.NoWarn);
        if (obj == 0)
        {
            _k.Log.Err("RTnet: rtskb allocation from slab pool failed");
            return null;
        }
        var h = (RtskbHeader*)obj;
        *h = default;
        h->ChainEnd = obj;
        h->Magic = _magic;
        h->Pool = pool.Control;
        h->BufStart = obj + HeaderBytes;
        lock (_lock)
        {
            _amount++;
            _amountMax = Math.Max(_amountMax, _amount);
        }
        return h;
    }

    internal void DeleteObject(RtskbHeader* h)
    {
        h->Magic = 0;
        h->State = 0;
        _cache.Free((nint)h);
        lock (_lock) _amount--;
    }

    /// <summary>The pool with this id, or null.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal RtskbPool? PoolById(int id)
    {
        var ps = Volatile.Read(ref _poolsById);
        return (uint)id < (uint)ps.Length ? ps[id] : null;
    }

    /// <summary>
    /// The header of a live rtskb that is out, or an error report (a foreign pointer, a double free). The fast check:
    /// inside this machine's linear map (so the header can be read), the stack's secret cookie, the "out" state.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private RtskbHeader* Checked(Rtskb skb, string fn)
    {
        nint p = skb.Address;
        var h = (RtskbHeader*)p;
        if ((nuint)(p - _linear) < _linearBytes && h->Magic == _magic && h->State == RtskbHeader.Out) return h;
        throw CheckFailed(p, fn);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private Exception CheckFailed(nint p, string fn)
    {
        if (Life.IsDead) return KernelLife.Dead();                    // nothing of the dead machine's memory is read
        if (p == 0) return Misuse(fn, "the null rtskb");
        if ((nuint)(p - _linear) >= _linearBytes || _k.Slab.SlabCacheOf(p) != _cache || ((RtskbHeader*)p)->Magic != _magic)
            return Misuse(fn, $"0x{p:x} is not an rtskb of this stack");
        var h = (RtskbHeader*)p;
        return Misuse(fn, $"rtskb 0x{p:x} is already free in pool {PoolOf(h)?.Name ?? "?"} (double free)");
    }

    private KmemException Misuse(string fn, string what)
    {
        _k.Log.Err($"RTnet: {fn}: {what}");
        return new RtnetException(what);
    }

    internal void BadSize(RtskbPool pool, int size)
    {
        _k.Log.Err($"RTnet: alloc_rtskb: size {size} is above SKB_DATA_ALIGN(RTSKB_SIZE) = {DataBytes} (pool {pool.Name})");
        throw new ArgumentOutOfRangeException(nameof(size), size, $"rtskb sizes are 0..{DataBytes}");
    }

    /// <summary>kfree_rtskb(): the buffer goes to the tail of the pool that owns it now, from any thread.</summary>
    /// <exception cref="RtnetException">A pointer that is no rtskb of this stack, or one already free.</exception>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Free(Rtskb skb)
    {
        var h = Checked(skb, "kfree_rtskb");
        RtskbPool.Put(OwnerControl(h), h);
    }

    /// <summary>rtskb_acquire(): see <see cref="RtskbPool.Acquire"/>.</summary>
    internal int Acquire(Rtskb skb, RtskbPool comp)
    {
        var h = Checked(skb, "rtskb_acquire");
        var owner = OwnerControl(h);
        var c = comp.TakeForExchange();
        if (c == null)
        {
            Life.ThrowIfDead();                                        // the pool was closed under the call
            return -12;                                                // -ENOMEM: nothing changes
        }
        c->Pool = (nint)owner;
        RtskbPool.Put(owner, c);
        h->Pool = comp.Control;
        return 0;
    }

    /// <summary>The pool that owns a buffer now.</summary>
    public RtskbPool OwnerOf(Rtskb skb)
    {
        Life.ThrowIfDead();
        return PoolOf(Checked(skb, "rtskb owner"))!;
    }

    /// <summary>The pool whose control block the header names.</summary>
    private RtskbPool? PoolOf(RtskbHeader* h) => PoolById(OwnerControl(h)->Id);

    /// <summary>
    /// The control block of the pool that owns a checked buffer. The header is read again after the check, and a machine
    /// shut down in between has replaced its memory with zeros: a null owner then means "disposed", never a null dereference.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private RtskbPoolControl* OwnerControl(RtskbHeader* h)
    {
        var c = (RtskbPoolControl*)h->Pool;
        if (c == null) OwnerLost(h);
        return c;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void OwnerLost(RtskbHeader* h)
    {
        Life.ThrowIfDead();
        throw Misuse("rtskb owner", $"rtskb 0x{(nint)h:x} has no owning pool (its header was overwritten)");
    }

    /// <summary>/proc/rtnet/rtskb: exactly RTnet's four lines.</summary>
    private string ProcRtskb()
    {
        int pools, poolsMax, amount, amountMax;
        lock (_lock) { pools = _pools_; poolsMax = _poolsMax; amount = _amount; amountMax = _amountMax; }
        long l = RtskbBytes;
        return "Statistics\t\tCurrent\tMaximum\n" +
               $"rtskb pools\t\t{pools}\t{poolsMax}\n" +
               $"rtskbs\t\t\t{amount}\t{amountMax}\n" +
               $"rtskb memory need\t{amount * l}\t{amountMax * l}\n";
    }

    /// <summary>Invariants: each pool's queue holds its free count, the totals add up.</summary>
    internal List<string> CheckInvariants()
    {
        var errors = new List<string>();
        int total = 0;
        foreach (var p in LivePools())
        {
            int q = p.CountQueue();
            if (q != p.FreeCount) errors.Add($"rtnet: pool {p.Name}: queue holds {q}, free count {p.FreeCount}");
            total += p.Size;
        }
        lock (_lock)
            if (total != _amount) errors.Add($"rtnet: pools hold {total} rtskbs, rtskb_amount is {_amount}");
        return errors;
    }
}

/// <summary>Misuse of RTnet buffers (a foreign or already-free rtskb, a closed pool); the report is in the log and nothing changed.</summary>
public sealed class RtnetException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public RtnetException(string message) : base(message) { }
}
