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

    internal MovablePage(PageAllocator pa, int machineId, int idx, int order, Gfp gfp)
    {
        _pa = pa;
        _machineId = machineId;
        _idx = idx;
        Order = order;
        Gfp = gfp;
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
            return new Page(_pa.BasePfn + (ulong)_idx, _machineId);
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
        using var pin = Pin();
        CheckRange(offset, destination.Length);
        pin.Span.Slice(offset, destination.Length).CopyTo(destination);
    }

    /// <summary>Copies <paramref name="source"/> into the block at <paramref name="offset"/>.</summary>
    public void Write(ReadOnlySpan<byte> source, int offset = 0)
    {
        using var life = _pa.Life.Enter();
        using var pin = Pin();
        CheckRange(offset, source.Length);
        source.CopyTo(pin.Span[offset..]);
    }

    private void CheckRange(int offset, int length)
    {
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{length} bytes at {offset} do not fit in {Length}");
    }

    /// <summary>Holds the block where it is until the pin is disposed (on the same thread); its address is stable meanwhile.</summary>
    public PinnedPage Pin()
    {
        _pa.Life.ThrowIfDead();
        LockOrder.Enter(LockRank.MovablePin, Gate);
        Monitor.Enter(Gate);
        if (Freed)
        {
            Monitor.Exit(Gate);
            ThrowIfFreed();
        }
        PinCount++;
        return new PinnedPage(this, _pa.IdxToVirt(_idx), Length);
    }

    internal void Unpin()
    {
        PinCount--;
        Monitor.Exit(Gate);
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

    /// <summary>The linear address of the block while pinned.</summary>
    public nint Address { get; }

    /// <summary>Bytes in the block.</summary>
    public int Length { get; }

    /// <summary>The block's bytes.</summary>
    public Span<byte> Span => new((void*)Address, Length);

    /// <summary>Releases the pin.</summary>
    public void Dispose() => _owner?.Unpin();
}
