// MemoryPool<byte> over kmalloc: .NET code that takes a MemoryPool (System.IO.Pipelines, sockets,
// serializers) gets native, GC-free buffers from a Kmem machine. Each rented buffer is a kmalloc
// object (or a large kmalloc above 8 KiB) whose whole size class is usable; Dispose frees it once.
using System.Buffers;

namespace Kmem;

/// <summary>A <see cref="MemoryPool{T}"/> whose buffers come from a machine's kmalloc caches.</summary>
public sealed class KmemMemoryPool : MemoryPool<byte>
{
    private readonly Machine _machine;
    private readonly Gfp _gfp;
    private readonly int _defaultSize;
    private long _rented;

    /// <summary>Creates a pool over <paramref name="machine"/>'s kmalloc, allocating with <paramref name="gfp"/>.</summary>
    /// <param name="machine">The machine whose memory the buffers come from.</param>
    /// <param name="gfp">The allocation flags (<see cref="Gfp.Kernel"/> blocks and reclaims when memory is short).</param>
    /// <param name="defaultBufferSize">The size of <c>Rent()</c> without a size (4096, a page).</param>
    public KmemMemoryPool(Machine machine, Gfp gfp = Gfp.Kernel, int defaultBufferSize = 4096)
    {
        ArgumentNullException.ThrowIfNull(machine);
        _machine = machine;
        _gfp = gfp;
        if (defaultBufferSize < 1 || defaultBufferSize > machine.KmallocMaxSize) throw new ArgumentOutOfRangeException(nameof(defaultBufferSize));
        _defaultSize = defaultBufferSize;
    }

    /// <summary>KMALLOC_MAX_SIZE (capped at <see cref="int.MaxValue"/>).</summary>
    public override int MaxBufferSize => (int)Math.Min(_machine.KmallocMaxSize, int.MaxValue);

    /// <summary>Buffers rented and not yet disposed.</summary>
    public long Rented
    {
        get
        {
            _machine.ThrowIfDisposed();
            return Volatile.Read(ref _rented);
        }
    }

    /// <summary>Rents a buffer of at least <paramref name="minBufferSize"/> bytes (its kmalloc size class).</summary>
    /// <exception cref="InsufficientMemoryException">kmalloc failed.</exception>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        _machine.ThrowIfDisposed();
        if (minBufferSize == -1) minBufferSize = _defaultSize;
        ArgumentOutOfRangeException.ThrowIfNegative(minBufferSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, MaxBufferSize);
        nuint size = (nuint)Math.Max(minBufferSize, 1);
        nint p = _machine.Kmalloc(size, _gfp, "KmemMemoryPool.Rent");
        if (p == 0) throw new InsufficientMemoryException($"kmalloc({size}) failed");
        Interlocked.Increment(ref _rented);
        return new Buffer(this, p, (int)Math.Min(_machine.Ksize(p, "KmemMemoryPool.Rent"), (nuint)int.MaxValue));
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) { }

    /// <summary>One rented buffer: a memory manager over native memory that kfree's it on the first Dispose.</summary>
    private sealed unsafe class Buffer(KmemMemoryPool pool, nint ptr, int length) : MemoryManager<byte>
    {
        private nint _ptr = ptr;

        public override Span<byte> GetSpan()
        {
            nint p = Volatile.Read(ref _ptr);
            ObjectDisposedException.ThrowIf(p == 0, this);
            pool._machine.ThrowIfDisposed();
            return new Span<byte>((void*)p, length);
        }

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            nint p = Volatile.Read(ref _ptr);
            ObjectDisposedException.ThrowIf(p == 0, this);
            pool._machine.ThrowIfDisposed();
            ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)length, nameof(elementIndex));
            return new MemoryHandle((void*)(p + elementIndex)); // native memory never moves
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            nint p = Interlocked.Exchange(ref _ptr, 0);
            if (p == 0) return; // a second Dispose frees nothing
            if (pool._machine.IsDead) return; // the machine took the buffer with it (.NET's rule: Dispose never throws)
            pool._machine.Kfree(p, "KmemMemoryPool.Return");
            Interlocked.Decrement(ref pool._rented);
        }
    }
}
