// MemoryPool<byte> over kmalloc: .NET code that takes a MemoryPool (System.IO.Pipelines, sockets,
// serializers) gets native, GC-free buffers from a Kmem machine. Each rented buffer is a kmalloc
// object (or a large kmalloc above 8 KiB) whose whole size class is usable; Dispose frees it once.
// Rent and return allocate no managed memory in steady state: the memory managers handed out are
// bound to the kmalloc object's address, two per address used in turn, and kept for the next rent of
// that address (KmemMemoryPool.Buffers.cs); the strict mode gives each rent its own manager instead.
using System.Buffers;
using System.Diagnostics;

namespace Kmem;

/// <summary>
/// A <see cref="MemoryPool{T}"/> whose buffers come from a machine's kmalloc caches.
/// </summary>
/// <remarks>
/// <para>
/// Each <see cref="Rent"/> is one <c>kmalloc()</c>; the <see cref="IMemoryOwner{T}"/> it returns is a
/// <see cref="MemoryManager{T}"/> over that object, and its <see cref="IDisposable.Dispose"/> is one <c>kfree()</c>
/// (a second Dispose frees nothing). The whole size class is usable: <c>Rent(300)</c> gives 512 bytes on x86_64.
/// Rent and Dispose are thread-safe and may happen on different threads (a pipe's writer rents, its reader returns).
/// </para>
/// <para>
/// <b>No managed allocation per rent.</b> A <see cref="Memory{T}"/> holds its manager and nothing else (no
/// generation), so a manager that is reused can be reached by a stale <see cref="Memory{T}"/> again. This pool
/// therefore reuses a manager only for the <i>same</i> kmalloc object: it keeps, per object address it has rented,
/// two managers of that object's size, and each rent of the address takes the other one. A stale owner,
/// <see cref="Memory{T}"/> or manager of this pool (one whose Dispose was called) then
/// <list type="bullet">
/// <item>throws <see cref="ObjectDisposedException"/> from <c>Memory.Span</c>, <c>GetSpan()</c>, <c>Pin()</c> and
/// <c>Memory.Pin()</c> while its object is free, and while the object is out to its 1st, 3rd, 5th… renter since
/// (above all the very next renter of the same object, which LIFO slab free lists make the common case);</item>
/// <item>while the object is out to its 2nd, 4th… renter since, reaches that renter's bytes unnoticed: the same
/// bytes, never memory the pool gave back, another allocator's object or a page of another cache;</item>
/// <item>a second Dispose frees nothing while the object is free or out to its 1st, 3rd… renter since (not the new
/// renter's buffer); while it is out to its 2nd, 4th… renter the stale owner <i>is</i> that renter's manager, and
/// its Dispose frees that renter's buffer.</item>
/// </list>
/// When the address comes back with another size (its slab was shrunk away and the page reused by another kmalloc
/// cache), the old managers are retired for good (they throw forever) and a new pair is made. The managers kept
/// grow with the distinct addresses ever rented (at most the machine's memory divided by the smallest size rented,
/// about 130 managed bytes per address); <see cref="Trim"/> drops those of the addresses not rented now.
/// </para>
/// <para>
/// <b>Strict mode</b> (<see cref="Strict"/>): each rent gets a new manager, retired by its Dispose, so every use
/// after return and every second Dispose is caught, at the cost of one managed allocation per rent (the pool's
/// behaviour before). Use it to debug a program that misuses its buffers.
/// </para>
/// <para>
/// After the machine is disposed, owners' Dispose does nothing (the machine took its memory with it) and every
/// buffer's memory throws <see cref="ObjectDisposedException"/>.
/// </para>
/// </remarks>
public sealed partial class KmemMemoryPool : MemoryPool<byte>
{
    /// <summary>Sizes up to this are bucketed by 8 bytes in <see cref="_classLength"/> (kmalloc's caches stop at 8 KiB for 4 KiB pages).</summary>
    private const int CachedClassMax = 8192;

    private readonly Machine _machine;
    private readonly Gfp _gfp;
    private readonly int _defaultSize;
    private readonly int _maxSize;
    /// <summary>
    /// The usable size of kmalloc(n, gfp) by (n - 1) / 8, learned from ksize on the first rent of the bucket (0 when
    /// not yet known). kmalloc picks its cache from the size and the GFP flags alone, so the figure never changes;
    /// no 8-byte bucket straddles a size class, as class boundaries are multiples of 8.
    /// </summary>
    private readonly int[] _classLength;
    /// <summary>Buffers of the strict mode out now (the default mode counts from the managers' states).</summary>
    private long _strictRented;

    /// <summary>Creates a pool over <paramref name="machine"/>'s kmalloc, allocating with <paramref name="gfp"/>.</summary>
    /// <param name="machine">The machine whose memory the buffers come from.</param>
    /// <param name="gfp">The allocation flags (<see cref="Gfp.Kernel"/> blocks and reclaims when memory is short).</param>
    /// <param name="defaultBufferSize">The size of <c>Rent()</c> without a size (4096, a page).</param>
    /// <exception cref="ArgumentNullException"><paramref name="machine"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="defaultBufferSize"/> is not 1..KMALLOC_MAX_SIZE.</exception>
    public KmemMemoryPool(Machine machine, Gfp gfp = Gfp.Kernel, int defaultBufferSize = 4096)
    {
        ArgumentNullException.ThrowIfNull(machine);
        _machine = machine;
        _gfp = gfp;
        _maxSize = (int)Math.Min(machine.KmallocMaxSize, int.MaxValue);
        if (defaultBufferSize < 1 || defaultBufferSize > _maxSize) throw new ArgumentOutOfRangeException(nameof(defaultBufferSize));
        _defaultSize = defaultBufferSize;
        _classLength = new int[Math.Min(_maxSize, CachedClassMax) / 8];
        _table = new Buffer?[InitialTableSize];
    }

    /// <summary>
    /// True for the strict mode: each <see cref="Rent"/> allocates a new manager, retired by its Dispose, so that every
    /// use after return and every second Dispose is caught (one managed allocation per rent). False (the default):
    /// the managers of an address are reused, no managed allocation per rent, with the guarantees in the class remarks.
    /// </summary>
    public bool Strict { get; init; }

    /// <summary>KMALLOC_MAX_SIZE (capped at <see cref="int.MaxValue"/>).</summary>
    public override int MaxBufferSize
    {
        get
        {
            _machine.ThrowIfDisposed();
            return _maxSize;
        }
    }

    /// <summary>Buffers rented and not yet disposed.</summary>
    /// <remarks>
    /// Counted from the managers' states (no shared counter is touched by a rent or a return): a walk over the managers
    /// kept, under the pool's lock, so its cost grows with the addresses kept. While other threads rent and return,
    /// the figure is a snapshot of each manager's state at the moment it was read.
    /// </remarks>
    public long Rented
    {
        get
        {
            _machine.ThrowIfDisposed();
            return CountRented() + Volatile.Read(ref _strictRented);
        }
    }

    /// <summary>Rents a buffer of at least <paramref name="minBufferSize"/> bytes (its kmalloc size class).</summary>
    /// <param name="minBufferSize">The bytes needed, 0..<see cref="MaxBufferSize"/>; -1 for the pool's default size.</param>
    /// <returns>The buffer; its Dispose frees it (once).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBufferSize"/> is below -1 or above <see cref="MaxBufferSize"/>.</exception>
    /// <exception cref="InsufficientMemoryException">kmalloc failed.</exception>
    /// <exception cref="ObjectDisposedException">The machine is disposed.</exception>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        _machine.ThrowIfDisposed();
        if (minBufferSize == -1) minBufferSize = _defaultSize;
        ArgumentOutOfRangeException.ThrowIfNegative(minBufferSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, _maxSize);
        int size = Math.Max(minBufferSize, 1);
        nint p = _machine.Kmalloc((nuint)size, _gfp, "KmemMemoryPool.Rent");
        if (p == 0) ThrowNoMemory(size);
        int length = ClassLength(p, size);
        try
        {
            if (!Strict) return Acquire(p, length);
            var b = new Buffer(this, p, length, Buffer.Retired);
            Interlocked.Increment(ref _strictRented);
            return b;
        }
        catch
        {
            _machine.Kfree(p, "KmemMemoryPool.Rent");
            throw;
        }
    }

    /// <summary>
    /// Drops the managers kept for addresses that are not rented now (they are retired: a stale
    /// <see cref="Memory{T}"/> over one of them throws from then on) and returns how many addresses were dropped.
    /// The next rent of such an address makes a new pair (two small managed allocations). Rents may go on meanwhile.
    /// </summary>
    /// <returns>The number of addresses whose managers were dropped.</returns>
    /// <exception cref="ObjectDisposedException">The machine is disposed.</exception>
    public int Trim()
    {
        _machine.ThrowIfDisposed();
        return TrimTable();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) { }

    /// <summary>The usable size of the object kmalloc gave for <paramref name="size"/> bytes: from the table, else from ksize.</summary>
    private int ClassLength(nint p, int size)
    {
        int bucket = (size - 1) >> 3;
        int[] classes = _classLength;
        if ((uint)bucket < (uint)classes.Length)
        {
            int known = classes[bucket];
            if (known != 0)
            {
                Debug.Assert((nuint)known == _machine.Ksize(p, "KmemMemoryPool.Rent"), "kmalloc's size class of a size never changes");
                return known;
            }
        }
        int length = Ksize(p);
        if ((uint)bucket < (uint)classes.Length) classes[bucket] = length;
        return length;
    }

    /// <summary>ksize() of a buffer just allocated (capped at <see cref="int.MaxValue"/>); frees it if ksize throws.</summary>
    private int Ksize(nint p)
    {
        try
        {
            return (int)Math.Min(_machine.Ksize(p, "KmemMemoryPool.Rent"), (nuint)int.MaxValue);
        }
        catch
        {
            _machine.Kfree(p, "KmemMemoryPool.Rent");
            throw;
        }
    }

    private static void ThrowNoMemory(int size) => throw new InsufficientMemoryException($"kmalloc({size}) failed");
}
