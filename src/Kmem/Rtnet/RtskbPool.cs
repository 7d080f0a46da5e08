// An rtskb pool (standalone RTnet's struct rtskb_queue used as a pool): a FIFO of preallocated buffers
// under a spin lock held for a few stores, biased to the thread that uses the pool (no locked instruction
// while a single thread allocates and frees). The FIFO is a ring of buffer addresses sized to the pool (a
// pool never queues more buffers than it owns), so a hand-over touches one slot, not the previous tail. Alloc and Free never allocate, never sleep and take
// O(1); Extend/Shrink/Release run outside real-time work and talk to the slab cache. Acquire is the
// compensation exchange that moves ownership of a filled buffer without changing any pool's total.
using System.Runtime.CompilerServices;

namespace Kmem;

/// <summary>
/// A pool of rtskbs (<c>rtskb_pool</c>): <see cref="Size"/> buffers, of which <see cref="FreeCount"/> are in the queue and the
/// rest out with their users. Create pools through <see cref="RtnetStack.CreatePool"/>.
/// </summary>
public sealed unsafe class RtskbPool
{
    private readonly RtnetStack _stack;
    private nint[] _ring = new nint[16];      // queued buffers, _head first; capacity a power of two ≥ _size
    private int _head;
    private RtBiasedLock _lock;              // rtdm_lock: interrupts "off" meanwhile
    private int _free;
    private int _size;
    private bool _released;

    private readonly int _maxSize;

    internal RtskbPool(RtnetStack stack, int id, string name)
    {
        _stack = stack;
        _maxSize = stack.DataBytes;
        Id = id;
        Name = name;
    }

    internal int Id { get; }

    /// <summary>The pool's name (for reports and the per-pool figures).</summary>
    public string Name { get; }

    /// <summary>Buffers that belong to the pool now (queued + out).</summary>
    public int Size => Volatile.Read(ref _size);

    /// <summary>Buffers in the queue.</summary>
    public int FreeCount => Volatile.Read(ref _free);

    /// <summary>Buffers out with their users.</summary>
    public int Out => Size - FreeCount;

    private long _allocFailures, _acquireFailures;

    /// <summary>Allocations that found the pool empty.</summary>
    public long AllocFailures => Interlocked.Read(ref _allocFailures);

    /// <summary>Exchanges (<see cref="Acquire"/>) that failed because this pool, the compensating one, was empty.</summary>
    public long AcquireFailures => Interlocked.Read(ref _acquireFailures);

    /// <summary>True once <see cref="Release"/> succeeded.</summary>
    public bool Released => _released;

    /// <summary>The thread the pool's lock is biased to (0 before the first real-time use, -1 once two threads used it).</summary>
    internal int LockBias => _lock.Bias;

    /// <summary>Takes the lock for a non-real-time operation (it does not bias the lock).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Lock() => _lock.Enter(bias: false);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unlock() => _lock.Exit();

    /// <summary>Dequeues under the lock: the biased fast path, else the spin lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private RtskbHeader* Dequeue()
    {
        if (!_lock.TryEnterBiased()) return DequeueShared();
        var h = DequeueLocked();
        _lock.ExitBiased();
        return h;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RtskbHeader* DequeueShared()
    {
        _lock.Enter(bias: true);
        var h = DequeueLocked();
        _lock.Exit();
        return h;
    }

    /// <summary>__rtskb_queue_tail() of one buffer (its chain is itself); the caller holds the lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EnqueueLocked(RtskbHeader* h)
    {
        // next and chain_end need no store: the ring links the queue, and every rtskb is its own chain.
        h->State = RtskbHeader.Queued;
        var ring = _ring;
        Slot(ring, (_head + _free) & (ring.Length - 1)) = (nint)h;
        _free++;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private RtskbHeader* DequeueLocked()
    {
        if (_free == 0) return null;
        var ring = _ring;
        var h = (RtskbHeader*)Slot(ring, _head);
        _head = (_head + 1) & (ring.Length - 1);
        _free--;
        h->State = RtskbHeader.Out;
        return h;
    }

    /// <summary>A ring slot without the bounds check (the index is masked by the ring's power-of-two length).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref nint Slot(nint[] ring, int index) =>
        ref Unsafe.Add(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(ring), index);

    /// <summary>Grows the ring (outside real-time work) so that it holds <paramref name="size"/> buffers; the caller holds the lock.</summary>
    private void ReserveLocked(int size)
    {
        if (size <= _ring.Length) return;
        var bigger = new nint[System.Numerics.BitOperations.RoundUpToPowerOf2((uint)size)];
        for (int i = 0; i < _free; i++) bigger[i] = _ring[(_head + i) & (_ring.Length - 1)];
        _ring = bigger;
        _head = 0;
    }

    // ================================================================== real-time operations

    /// <summary>
    /// alloc_rtskb(): the head of the queue with <c>data = tail = buf_start</c>, <c>end = buf_start + size</c> and
    /// <c>len = 0</c>, or the null buffer when the pool is empty. O(1), no managed allocation, never waits.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size above SKB_DATA_ALIGN(RTSKB_SIZE) or below 0 (the CHECKED build's assertion).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Rtskb Alloc(int size)
    {
        if ((uint)size > (uint)_maxSize) _stack.BadSize(this, size);
        var h = Dequeue();
        if (h == null)
        {
            Interlocked.Increment(ref _allocFailures);
            return default;
        }
        nint buf = h->BufStart;
        h->Data = h->Tail = buf;
        h->End = buf + size;
        h->Len = 0;
        return new Rtskb((nint)h);
    }

    /// <summary>Takes one free buffer for an exchange; null when empty.</summary>
    internal RtskbHeader* TakeForExchange()
    {
        var h = Dequeue();
        if (h == null) Interlocked.Increment(ref _acquireFailures);
        return h;
    }

    /// <summary>kfree_rtskb() to this pool (the buffer's owner): onto the tail of the queue.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Put(RtskbHeader* h)
    {
        if (!_lock.TryEnterBiased())
        {
            PutShared(h);
            return;
        }
        EnqueueLocked(h);
        _lock.ExitBiased();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void PutShared(RtskbHeader* h)
    {
        _lock.Enter(bias: true);
        EnqueueLocked(h);
        _lock.Exit();
    }

    /// <summary>
    /// rtskb_acquire(rtskb, this): the consumer (this pool) gives one of its free buffers to the pool that owns
    /// <paramref name="skb"/> and takes ownership of <paramref name="skb"/>. Returns 0, or -ENOMEM (-12) with nothing
    /// changed when this pool is empty.
    /// </summary>
    public int Acquire(Rtskb skb) => _stack.Acquire(skb, this);

    // ================================================================== non-real-time operations

    /// <summary>rtskb_pool_extend(): adds up to <paramref name="n"/> buffers from the slab; returns how many were added (a partial result stays).</summary>
    public int Extend(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (_released) return _stack.Closed(this, "rtskb_pool_extend");
        int added = 0;
        for (; added < n; added++)
        {
            var h = _stack.NewObject(this);
            if (h == null) break;
            Lock();
            ReserveLocked(_size + 1);
            _size++;
            EnqueueLocked(h);
            Unlock();
        }
        return added;
    }

    /// <summary>rtskb_pool_shrink(): gives up to <paramref name="n"/> free buffers back to the slab (never one that is out); returns how many.</summary>
    public int Shrink(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        int removed = 0;
        for (; removed < n; removed++)
        {
            Lock();
            var h = DequeueLocked();
            if (h != null) _size--;
            Unlock();
            if (h == null) break;
            _stack.DeleteObject(h);
        }
        return removed;
    }

    /// <summary>
    /// Releases the pool as RTnet's socket close does: every free buffer goes back to the slab; while buffers are still
    /// out the pool stays (with those buffers' places) and the call returns -EAGAIN (-11), to be retried once they
    /// are back; then it returns 0 and the pool is gone.
    /// </summary>
    public int Release()
    {
        if (_released) return 0;
        Shrink(int.MaxValue);
        if (Size > 0) return -11;
        _released = true;
        _stack.PoolReleased(this);
        return 0;
    }

    /// <summary>Walks the queue (checks): the buffers in it, or -1 when one is not a queued buffer of this pool.</summary>
    internal int CountQueue()
    {
        Lock();
        try
        {
            if (_free > _size || _size > _ring.Length) return -1;
            for (int i = 0; i < _free; i++)
            {
                var h = (RtskbHeader*)_ring[(_head + i) & (_ring.Length - 1)];
                if (h->Pool != Id || h->State != RtskbHeader.Queued) return -1;
            }
            return _free;
        }
        finally { Unlock(); }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {FreeCount}/{Size} free";
}
