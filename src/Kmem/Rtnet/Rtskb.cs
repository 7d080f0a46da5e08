// The real-time socket buffer (struct rtskb): one slab object of rtskb_slab_pool holding the header and,
// cache-line aligned after it, the data buffer of RTSKB_SIZE bytes. The header lives in the object itself
// (native memory); the public handle is a pointer-sized value.
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
    public int Len => H->Len;

    /// <summary>The data pointer (<c>data</c>).</summary>
    public nint Data => H->Data;

    /// <summary>Room from <c>data</c> to <c>end</c> (the size asked at allocation).</summary>
    public int Capacity => (int)(H->End - H->Data);

    /// <summary>The data bytes (<c>data</c> .. <c>data + len</c>).</summary>
    public Span<byte> Bytes => new((void*)H->Data, H->Len);

    /// <summary>
    /// rtskb_put(): extends the data by <paramref name="n"/> bytes at the tail and returns them to fill.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Past <c>end</c> (the kernel's skb_over_panic).</exception>
    public Span<byte> Put(int n)
    {
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
    public override string ToString() => IsNull ? "rtskb (null)" : $"rtskb 0x{(nint)H:x} len {Len}";
}
