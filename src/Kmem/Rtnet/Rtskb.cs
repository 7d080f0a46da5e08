// The real-time socket buffer (struct rtskb): one slab object of rtskb_slab_pool holding the header and,
// cache-line aligned after it, the data buffer of RTSKB_SIZE bytes. The header lives in the object itself
// (native memory); the public handle is a pointer-sized value.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Rtnet;

namespace Kmem;

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
