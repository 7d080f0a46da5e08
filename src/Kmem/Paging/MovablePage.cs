// A movable allocation: memory whose owner lets the kernel move it (as page-cache and anonymous pages
// are), so that a CMA allocation meeting it migrates it elsewhere. The owner reaches the bytes through
// the handle; a pin holds the content in place while the owner uses its address.
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem;

/// <summary>
/// A block of movable memory (<c>__GFP_MOVABLE</c>) that Kmem may migrate: <see cref="Machine.CmaAlloc"/> moves it
/// out of the way and the handle then names the new page. Read and write it with <see cref="Read"/>/<see cref="Write"/>,
/// or hold a <see cref="Pin"/> while using its address directly: a pinned block is not moved (the kernel's
/// <c>-EBUSY</c> for a page with extra references). Dispose frees it.
/// </summary>
public sealed unsafe class MovablePage : IDisposable
{
    private readonly PageAllocator _pa;
    private readonly int _machineId;
    internal readonly object Gate = new();
    private volatile int _idx;
    private int _migrations;
    private readonly Func<int, int, nint>? _mapHigh;
    private readonly Action<int, int, nint>? _unmapHigh;

    /// <param name="pa">The page allocator.</param>
    /// <param name="machineId">The machine's id (for the page handles).</param>
    /// <param name="idx">The block's first frame.</param>
    /// <param name="order">The block's order.</param>
    /// <param name="gfp">The flags it was allocated with.</param>
    /// <param name="mapHigh">Maps a HighMem block (first frame, order) for a pin and returns its address (kmap() of one
    /// page, a vmap() of several); null where the machine has no HighMem.</param>
    /// <param name="unmapHigh">Undoes <paramref name="mapHigh"/> (first frame, order, address) when the pin goes.</param>
    internal MovablePage(PageAllocator pa, int machineId, int idx, int order, Gfp gfp,
        Func<int, int, nint>? mapHigh = null, Action<int, int, nint>? unmapHigh = null)
    {
        _pa = pa;
        _machineId = machineId;
        _idx = idx;
        Order = order;
        Gfp = gfp;
        _mapHigh = mapHigh;
        _unmapHigh = unmapHigh;
    }

    /// <summary>The block's order (2^order pages).</summary>
    public int Order { get; }

    /// <summary>The flags it was allocated with (migration targets use them too).</summary>
    internal Gfp Gfp { get; }

    internal int FrameIndex => _idx;

    internal bool Freed { get; private set; }

    /// <summary>Pins held now (taken and released under <see cref="Gate"/>; the monitor is reentrant, this count is not).</summary>
    internal int PinCount { get; private set; }

    /// <summary>Bytes in the block.</summary>
    public int Length => PhysicalMemory.PageSize << Order;

    /// <summary>The page the content is in now (it changes when the block is migrated).</summary>
    /// <exception cref="ObjectDisposedException">The block has been freed, or its machine disposed (the same for every member but <see cref="Order"/>, <see cref="Length"/> and <see cref="Dispose"/>).</exception>
    public Page Page
    {
        get
        {
            _pa.Life.ThrowIfDead();
            ThrowIfFreed();
            int idx = _idx;   // once: a migration may move the block between two reads
            return new Page(_pa.BasePfn + (ulong)idx, _machineId, idx);
        }
    }

    /// <summary>How many times the content has been moved.</summary>
    public int Migrations
    {
        get
        {
            _pa.Life.ThrowIfDead();
            return Volatile.Read(ref _migrations);
        }
    }

    /// <summary>True once disposed.</summary>
    public bool IsFreed
    {
        get
        {
            _pa.Life.ThrowIfDead();
            return Freed;
        }
    }

    internal void MovedTo(int idx)
    {
        _idx = idx;
        Interlocked.Increment(ref _migrations);
    }

    /// <summary>Copies bytes of the block, from <paramref name="offset"/>, into <paramref name="destination"/>.</summary>
    public void Read(Span<byte> destination, int offset = 0)
    {
        using var life = _pa.Life.Enter();                  // the copy touches the machine's memory: shutdown waits for it
        CheckRange(offset, destination.Length);
        Hold();
        try { Frames().Slice(offset, destination.Length).CopyTo(destination); }
        finally { Monitor.Exit(Gate); }
    }

    /// <summary>Copies <paramref name="source"/> into the block at <paramref name="offset"/>.</summary>
    public void Write(ReadOnlySpan<byte> source, int offset = 0)
    {
        using var life = _pa.Life.Enter();
        CheckRange(offset, source.Length);
        Hold();
        try { source.CopyTo(Frames()[offset..]); }
        finally { Monitor.Exit(Gate); }
    }

    /// <summary>Takes the gate (no migration meanwhile) of a block that is not freed.</summary>
    private void Hold()
    {
        _pa.Life.ThrowIfDead();
        LockOrder.Enter(LockRank.MovablePin, Gate);
        Monitor.Enter(Gate);
        if (!Freed) return;
        Monitor.Exit(Gate);
        ThrowIfFreed();
    }

    /// <summary>
    /// The block's bytes through the host's view of its frames, for the copies above only (the kernel copies a page's
    /// content through a temporary mapping, kmap_atomic() for HighMem); under the gate.
    /// </summary>
    private Span<byte> Frames() => new((void*)_pa.IdxToVirt(_idx), Length);

    private void CheckRange(int offset, int length)
    {
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{length} bytes at {offset} do not fit in {Length}");
    }

    /// <summary>
    /// Holds the block where it is until the pin is disposed (on the same thread); its address is stable meanwhile. A
    /// lowmem block's address is its linear address. A HighMem block (<see cref="Gfp.HighUserMovable"/> blocks come
    /// from HighMem first) has none: the pin maps it, as a driver kmaps a pinned user page (kmap() of the page, a vmap()
    /// of a larger block), and the unpin unmaps it.
    /// </summary>
    /// <exception cref="HighMemException">The block is HighMem and this thread is in atomic context (a kmap_atomic() not
    /// undone), where kmap() may not sleep: nothing is pinned.</exception>
    public PinnedPage Pin()
    {
        Hold();
        int idx = _idx;
        nint address;
        if (!_pa.IsHighMem(idx)) address = _pa.IdxToVirt(idx);
        else
        {
            try
            {
                address = _mapHigh?.Invoke(idx, Order) ?? throw new InvalidOperationException("a HighMem block without a way to map it");
            }
            catch
            {
                Monitor.Exit(Gate);
                throw;
            }
        }
        PinCount++;
        return new PinnedPage(this, address, Length);
    }

    internal void Unpin(nint address)
    {
        try
        {
            int idx = _idx;
            if (_pa.IsHighMem(idx)) _unmapHigh?.Invoke(idx, Order, address);
        }
        finally
        {
            PinCount--;
            Monitor.Exit(Gate);
        }
    }

    private void ThrowIfFreed()
    {
        if (Freed) throw new ObjectDisposedException(nameof(MovablePage), "the movable page has been freed");
    }

    /// <summary>Frees the block (once; later calls do nothing, nor do calls once the machine has been disposed).</summary>
    public void Dispose()
    {
        if (!_pa.Life.TryEnter(out var life)) return;
        using (life)
        {
            LockOrder.Enter(LockRank.MovablePin, Gate);
            lock (Gate)
            {
                if (Freed) return;
                Freed = true;
                _pa.FreeMovable(this, _idx, Order);
            }
        }
    }
}

/// <summary>A pin on a <see cref="MovablePage"/>: while it lives the block is not migrated. Dispose it on the thread that took it.</summary>
public readonly unsafe ref struct PinnedPage
{
    private readonly MovablePage _owner;

    internal PinnedPage(MovablePage owner, nint address, int length)
    {
        _owner = owner;
        Address = address;
        Length = length;
    }

    /// <summary>The block's address while pinned: its linear address, or the mapping the pin made of a HighMem block.</summary>
    public nint Address { get; }

    /// <summary>Bytes in the block.</summary>
    public int Length { get; }

    /// <summary>The block's bytes.</summary>
    public Span<byte> Span => new((void*)Address, Length);

    /// <summary>Releases the pin.</summary>
    public void Dispose() => _owner?.Unpin(Address);
}
