// The real-time socket buffer (struct rtskb): one slab object of rtskb_slab_pool holding the header and,
// cache-line aligned after it, the data buffer of RTSKB_SIZE bytes. The header lives in the object itself
// (native memory); the public handle is a pointer-sized value.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem;

/// <summary>
/// The native header at the start of each rtskb object (the fields pools and users need; 104 bytes, inside the
/// cache-line-aligned header space of the kernel's struct rtskb: 192 bytes on 64-bit, 128 on 32-bit ARM).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RtskbHeader
{
    // The fields alloc_rtskb/kfree_rtskb touch come first, so that the fast path reads and writes one cache line.
    public long Magic;         // the stack's cookie while the object is an rtskb of a pool
    public nint Pool;          // the owning pool's control block (RtskbPoolControl*)
    public int State;          // 1 queued in its pool, 2 out
    public int Len;
    public nint BufStart;
    public nint Data;
    public nint Tail;
    public nint End;
    public int Protocol;
    public nint Next;          // queue link
    // The rest (chain and receive metadata) lives on the next line.
    public nint ChainEnd;      // last rtskb of the chain that starts here (itself for one buffer)
    public int Priority;
    public int PktType;        // PACKET_HOST 0
    public long TimeStamp;
    public nint Socket;        // receiving socket id (0: none)

    public const int Queued = 1, Out = 2;
}

/// <summary>
/// A real-time socket buffer (<c>struct rtskb *</c>): the data buffer between <see cref="Data"/> and the tail, its
/// length, and the pool that owns it now. <c>default(Rtskb)</c> is the null buffer (an empty pool).
/// </summary>
public readonly unsafe struct Rtskb : IEquatable<Rtskb>
{
    internal readonly RtskbHeader* H;

    internal Rtskb(nint p) => H = (RtskbHeader*)p;

    /// <summary>The object's address.</summary>
    public nint Address => (nint)H;

    /// <summary>True for the null buffer.</summary>
    public bool IsNull => H == null;

    /// <summary>Bytes of data (<c>len</c>).</summary>
    /// <exception cref="ObjectDisposedException">The buffer's machine has been disposed (the same for every member but <see cref="Address"/> and <see cref="IsNull"/>).</exception>
    public int Len { get { Live(); return H->Len; } }

    /// <summary>The data pointer (<c>data</c>).</summary>
    public nint Data { get { Live(); return H->Data; } }

    /// <summary>Room from <c>data</c> to <c>end</c> (the size asked at allocation).</summary>
    public int Capacity { get { Live(); return (int)(H->End - H->Data); } }

    /// <summary>The data bytes (<c>data</c> .. <c>data + len</c>).</summary>
    public Span<byte> Bytes { get { Live(); return new((void*)H->Data, H->Len); } }

    /// <summary>Throws <see cref="ObjectDisposedException"/> when no live machine's RTnet stack owns the address (one load while no stack has been shut down).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Live()
    {
        if (RtskbLiveness.AnyGone) RtskbLiveness.Check((nint)H);
    }

    /// <summary>
    /// rtskb_put(): extends the data by <paramref name="n"/> bytes at the tail and returns them to fill.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Past <c>end</c> (the kernel's skb_over_panic).</exception>
    public Span<byte> Put(int n)
    {
        Live();
        if (n < 0 || H->Tail + n > H->End) throw new ArgumentOutOfRangeException(nameof(n), $"rtskb_put: {n} bytes past the end ({Capacity - Len} left)");
        var span = new Span<byte>((void*)H->Tail, n);
        H->Tail += n;
        H->Len += n;
        return span;
    }

    /// <inheritdoc/>
    public bool Equals(Rtskb other) => H == other.H;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Rtskb r && Equals(r);

    /// <inheritdoc/>
    public override int GetHashCode() => ((nint)H).GetHashCode();

    /// <inheritdoc/>
    public override string ToString() => IsNull ? "rtskb (null)" : RtskbLiveness.IsLive((nint)H) ? $"rtskb 0x{(nint)H:x} len {H->Len}" : $"rtskb 0x{(nint)H:x} (machine disposed)";
}

/// <summary>
/// Which addresses hold rtskbs of a live machine: an <see cref="Rtskb"/> is a bare pointer, so its members find its
/// stack's linear map here. The lookup only runs once some stack has been shut down (or its machine collected); until
/// then a member pays one load and branch.
/// </summary>
internal static class RtskbLiveness
{
    /// <summary>One RTnet stack's linear map. The machine is held weakly, so that an unreachable one can still be collected.</summary>
    internal sealed class Entry(nint start, nuint bytes, KernelLife life)
    {
        public readonly nint Start = start;
        public readonly nuint Bytes = bytes;
        public readonly WeakReference<KernelLife> Life = new(life);
    }

    /// <summary>What the stack holds: when it is collected without a shutdown (its machine never disposed), the lookup starts.</summary>
    internal sealed class Registration(Entry entry)
    {
        public readonly Entry Entry = entry;

        ~Registration() => Interlocked.Exchange(ref s_anyGone, 1);
    }

    private static readonly Lock s_lock = new();
    private static Entry[] s_live = [];
    private static int s_anyGone;

    /// <summary>True once some stack has been shut down or its machine collected.</summary>
    public static bool AnyGone
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref s_anyGone) != 0;
    }

    public static Registration Register(nint start, nuint bytes, KernelLife life)
    {
        var e = new Entry(start, bytes, life);
        lock (s_lock) s_live = [.. s_live.Where(x => x.Life.TryGetTarget(out _)), e];   // entries of collected machines go
        return new Registration(e);
    }

    public static void Unregister(Registration r)
    {
        Interlocked.Exchange(ref s_anyGone, 1);
        lock (s_lock) s_live = [.. s_live.Where(x => x != r.Entry)];
        GC.SuppressFinalize(r);
    }

    /// <summary>True when a live machine's stack owns <paramref name="p"/> (the null buffer counts as live: its members fault as before).</summary>
    public static bool IsLive(nint p)
    {
        if (p == 0) return true;
        foreach (var e in Volatile.Read(ref s_live))
            if ((nuint)(p - e.Start) < e.Bytes && e.Life.TryGetTarget(out var l) && !l.IsDead) return true;
        return false;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Check(nint p)
    {
        if (!IsLive(p)) KernelLife.ThrowDead();
    }
}
