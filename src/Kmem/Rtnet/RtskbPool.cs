// An rtskb pool (standalone RTnet's struct rtskb_queue used as a pool): a FIFO of preallocated buffers
// under a spin lock held for a few stores, biased to the thread that uses the pool (no locked instruction
// while a single thread allocates and frees). The FIFO is a ring of buffer addresses sized to the pool (a
// pool never queues more buffers than it owns), so a hand-over touches one slot, not the previous tail; alloc
// alone writes the head index and free alone the tail index, and an empty slot at the head is an empty pool.
// Everything a real-time operation touches sits in one cache-line control block in pinned memory, which each
// buffer's header points at: kfree_rtskb goes header -> control block -> ring slot, two dependent loads.
// Alloc and Free never allocate, never sleep and take O(1); Extend/Shrink/Release run outside real-time work
// and talk to the slab cache. Acquire is the compensation exchange that moves ownership of a filled buffer
// without changing any pool's total.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Kmem.Core;
using Kmem.Rtnet;

namespace Kmem;

/// <summary>
/// A pool of rtskbs (<c>rtskb_pool</c>): <see cref="Size"/> buffers, of which <see cref="FreeCount"/> are in the queue and the
/// rest out with their users. Create pools through <see cref="RtnetStack.CreatePool"/>.
/// </summary>
public sealed unsafe class RtskbPool
{
    private readonly RtskbPoolControl* _c;   // inside _controlMemory, 64-byte aligned
    private int _sizeLimit;                  // SKB_DATA_ALIGN(RTSKB_SIZE) + 1; 0 once the machine is shut down
    private readonly RtnetStack _stack;
    private readonly byte[] _controlMemory;  // pinned: the control block never moves and lives as long as the pool object
    private nint[] _ringMemory;              // pinned: the ring (replaced, under the lock, when Extend needs more room)
    private int _size;
    private bool _released;

    internal RtskbPool(RtnetStack stack, int id, string name)
    {
        _stack = stack;
        _sizeLimit = stack.DataBytes + 1;
        Id = id;
        Name = name;
        _controlMemory = GC.AllocateArray<byte>(2 * CacheLine, pinned: true);
        _c = (RtskbPoolControl*)AlignUp(_controlMemory);
        _c->Id = id;
        _c->HeaderBytes = stack.HeaderBytes;
        _ringMemory = NewRing(16, out _c->Ring);
        _c->Mask = 15;
    }

    private const int CacheLine = 64;

    private static nint AlignUp(Array pinned) =>
        ((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned)) + CacheLine - 1) & ~(nint)(CacheLine - 1);

    /// <summary>A pinned ring of <paramref name="capacity"/> slots starting on a cache line.</summary>
    private static nint[] NewRing(int capacity, out nint* ring)
    {
        var memory = GC.AllocateArray<nint>(capacity + CacheLine / sizeof(nint), pinned: true);
        ring = (nint*)AlignUp(memory);
        return memory;
    }

    /// <summary>The control block's address (what the headers of this pool's buffers hold).</summary>
    internal nint Control => (nint)_c;

    internal int Id { get; }

    /// <summary>The pool's name (for reports and the per-pool figures).</summary>
    public string Name { get; }

    /// <summary>Buffers that belong to the pool now (queued + out).</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Name"/>).</exception>
    public int Size
    {
        get => _stack.Life.Live(Volatile.Read(ref _size));
    }

    /// <summary>Buffers in the queue.</summary>
    public int FreeCount
    {
        get => _stack.Life.Live(Queued);
    }

    private int Queued => (int)(Volatile.Read(ref _c->Tail) - Volatile.Read(ref _c->Head));

    /// <summary>Buffers out with their users.</summary>
    public int Out => Size - FreeCount;

    private long _allocFailures, _acquireFailures;

    /// <summary>Allocations that found the pool empty.</summary>
    public long AllocFailures
    {
        get => _stack.Life.Live(Interlocked.Read(ref _allocFailures));
    }

    /// <summary>Exchanges (<see cref="Acquire"/>) that failed because this pool, the compensating one, was empty.</summary>
    public long AcquireFailures
    {
        get => _stack.Life.Live(Interlocked.Read(ref _acquireFailures));
    }

    /// <summary>True once <see cref="Release"/> succeeded.</summary>
    public bool Released
    {
        get => _stack.Life.Live(_released);
    }

    /// <summary>True once <see cref="Release"/> succeeded (no machine check: the stack's own bookkeeping).</summary>
    internal bool IsReleased => _released;

    /// <summary>The thread the pool's lock is biased to (0 before the first real-time use, -1 once two threads used it).</summary>
    internal int LockBias => _c->Lock.Bias;

    /// <summary>Takes the lock for a non-real-time operation (it does not bias the lock).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Lock() => _c->Lock.Enter(bias: false);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unlock() => _c->Lock.Exit();

    /// <summary>
    /// Dequeues under the lock: the biased fast path, else the spin lock. A <paramref name="size"/> of 0 or more also sets
    /// the buffer up for alloc_rtskb inside the critical section, so that once the machine's shutdown has passed the lock
    /// no allocation writes to the machine's memory. A sealed (shut down) pool is always taken through the spin lock.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static RtskbHeader* Dequeue(RtskbPoolControl* c, int size)
    {
        if (!c->Lock.TryEnterBiased()) return DequeueShared(c, size);
        var h = DequeueLocked(c);
        if (h != null && size >= 0) SetUp(c, h, size);
        c->Lock.ExitBiased();
        return h;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static RtskbHeader* DequeueShared(RtskbPoolControl* c, int size)
    {
        c->Lock.Enter(bias: true);
        RtskbHeader* h = null;
        if (c->Dead == 0)
        {
            h = DequeueLocked(c);
            if (h != null && size >= 0) SetUp(c, h, size);
        }
        c->Lock.Exit();
        return h;
    }

    /// <summary>alloc_rtskb's set-up: <c>data = tail = buf_start</c>, <c>end = buf_start + size</c>, <c>len = 0</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetUp(RtskbPoolControl* c, RtskbHeader* h, int size)
    {
        // Only stores to the header (buf_start is the object plus the header's fixed size), so a header line that is not
        // in the cache does not hold up the caller.
        nint buf = (nint)h + c->HeaderBytes;
        h->Data = h->Tail = buf;
        h->End = buf + size;
        h->Len = 0;
    }

    /// <summary>__rtskb_queue_tail() of one buffer (its chain is itself); the caller holds the lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EnqueueLocked(RtskbPoolControl* c, RtskbHeader* h)
    {
        // next and chain_end need no store: the ring links the queue, and every rtskb is its own chain. The tail
        // index is the producer's alone, so a put reads nothing an alloc just wrote.
        h->State = RtskbHeader.Queued;
        uint tail = c->Tail;
        c->Ring[tail & (uint)c->Mask] = (nint)h;
        c->Tail = tail + 1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static RtskbHeader* DequeueLocked(RtskbPoolControl* c)
    {
        // An empty queue is an empty slot at the head: the alloc reads the slot it needs anyway, not the tail.
        uint head = c->Head;
        nint* slot = c->Ring + (head & (uint)c->Mask);
        var h = (RtskbHeader*)*slot;
        if (h == null) return null;
        *slot = 0;
        c->Head = head + 1;
        h->State = RtskbHeader.Out;
        PrefetchNext(c, head + 1);
        return h;
    }

    /// <summary>
    /// Starts loading the header line and the first data line of the buffer the next alloc will take: in FIFO order a
    /// buffer waits a whole round of the pool between two uses, long enough for its lines to leave the cache.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchNext(RtskbPoolControl* c, uint head)
    {
        if (!Sse.IsSupported) return;
        nint next = c->Ring[head & (uint)c->Mask];
        if (next == 0) return;
        Sse.Prefetch0((void*)next);
        Sse.Prefetch0((void*)(next + c->HeaderBytes));
    }

    /// <summary>Grows the ring (outside real-time work) so that it holds <paramref name="size"/> buffers; the caller holds the lock.</summary>
    private void ReserveLocked(int size)
    {
        var c = _c;
        if (size <= c->Mask + 1) return;
        int capacity = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)size);
        var memory = NewRing(capacity, out nint* bigger);
        uint queued = c->Tail - c->Head;
        for (uint i = 0; i < queued; i++) bigger[i] = c->Ring[(c->Head + i) & (uint)c->Mask];
        c->Ring = bigger;
        c->Mask = capacity - 1;
        c->Head = 0;
        c->Tail = queued;
        _ringMemory = memory;                // the old ring is no longer reachable from the control block
    }

    // ================================================================== real-time operations

    /// <summary>
    /// alloc_rtskb(): the head of the queue with <c>data = tail = buf_start</c>, <c>end = buf_start + size</c> and
    /// <c>len = 0</c>, or the null buffer when the pool is empty. O(1), no managed allocation, never waits.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size above SKB_DATA_ALIGN(RTSKB_SIZE) or below 0 (the CHECKED build's assertion).</exception>
    /// <exception cref="ObjectDisposedException">The machine has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Rtskb Alloc(int size)
    {
        // The machine's shutdown sets the limit to 0, so the one compare also turns every later call away.
        if ((uint)size >= (uint)_sizeLimit) AllocRefused(size);
        var h = Dequeue(_c, size);
        if (h == null) return AllocFailed();
        return new Rtskb((nint)h);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void AllocRefused(int size)
    {
        _stack.Life.ThrowIfDead();
        _stack.BadSize(this, size);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Rtskb AllocFailed()
    {
        _stack.Life.ThrowIfDead();                     // a sealed pool looks empty to a call already past the limit
        Interlocked.Increment(ref _allocFailures);
        return default;
    }

    /// <summary>Takes one free buffer for an exchange; null when empty (or shut down).</summary>
    internal RtskbHeader* TakeForExchange()
    {
        var h = Dequeue(_c, -1);
        if (h == null) Interlocked.Increment(ref _acquireFailures);
        return h;
    }

    /// <summary>
    /// The machine's shutdown: later allocations are turned away by the size limit; under the lock (which revokes another
    /// thread's bias and waits for its critical section) the queue is closed and the lock sealed, so that every later
    /// alloc or free goes through the spin lock, sees the pool closed and touches no buffer.
    /// </summary>
    internal void Shutdown()
    {
        Volatile.Write(ref _sizeLimit, 0);
        var c = _c;
        c->Lock.Enter(bias: false);
        c->Dead = 1;
        c->Lock.Seal();
        c->Lock.Exit();
    }

    /// <summary>kfree_rtskb() to the pool whose control block is <paramref name="c"/> (the buffer's owner): onto the tail of the queue.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Put(RtskbPoolControl* c, RtskbHeader* h)
    {
        if (!c->Lock.TryEnterBiased())
        {
            PutShared(c, h);
            return;
        }
        EnqueueLocked(c, h);
        c->Lock.ExitBiased();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void PutShared(RtskbPoolControl* c, RtskbHeader* h)
    {
        c->Lock.Enter(bias: true);
        if (c->Dead != 0)
        {
            c->Lock.Exit();
            KernelLife.ThrowDead();                         // a free in flight when the machine was shut down
        }
        EnqueueLocked(c, h);
        c->Lock.Exit();
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
        using var life = _stack.Life.Enter();
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
            EnqueueLocked(_c, h);
            Unlock();
        }
        return added;
    }

    /// <summary>rtskb_pool_shrink(): gives up to <paramref name="n"/> free buffers back to the slab (never one that is out); returns how many.</summary>
    public int Shrink(int n)
    {
        using var life = _stack.Life.Enter();
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        int removed = 0;
        for (; removed < n; removed++)
        {
            Lock();
            var h = DequeueLocked(_c);
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
        using var life = _stack.Life.Enter();
        if (_released) return 0;
        Shrink(int.MaxValue);
        if (Volatile.Read(ref _size) > 0) return -11;
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
            var c = _c;
            uint queued = c->Tail - c->Head;
            if (queued > (uint)_size || _size > c->Mask + 1) return -1;
            for (uint i = 0; i <= (uint)c->Mask; i++)
            {
                var h = (RtskbHeader*)c->Ring[(c->Head + i) & (uint)c->Mask];
                if (i < queued ? h == null || h->Pool != (nint)c || h->State != RtskbHeader.Queued : h != null) return -1;
            }
            return (int)queued;
        }
        finally { Unlock(); }
    }

    /// <inheritdoc/>
    public override string ToString() => _stack.Life.IsDead ? $"{Name}: (machine disposed)" : $"{Name}: {Queued}/{Volatile.Read(ref _size)} free";
}
