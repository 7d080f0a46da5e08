// A bounded single-producer/single-consumer ring that hands blocks from an allocating thread to a freeing thread.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Benchmarks;

/// <summary>
/// One side's index: <see cref="Value"/> and <see cref="Cached"/> are that side's own (no other thread reads them);
/// <see cref="Published"/>, on a cache line of its own, is what the other side reads.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct PaddedIndex
{
    [FieldOffset(64)] public long Value;
    [FieldOffset(72)] public long Cached; // the other side's published index as last seen by this side
    [FieldOffset(80)] public long Waits;  // times this side found the ring full (producer) or empty (consumer)
    [FieldOffset(128)] public long Published;
}

/// <summary>
/// Bounded SPSC ring with batched publication. Each side publishes its index once every <see cref="Batch"/>
/// items, and at once whenever it is about to wait (the producer before it waits for room or for the ring to
/// drain, the consumer when it finds the ring empty), so the index cache lines cross between the cores once a
/// batch instead of once an item, and neither side can wait on an index the other has not published. The
/// consumer advances its index only after it has dealt with the item (<see cref="TryPeek"/>, then
/// <see cref="Advance"/>), so <see cref="WaitUntilEmpty"/> means every item has been freed.
/// </summary>
internal sealed class SpscRing<T>
{
    /// <summary>Items between two publications of an index.</summary>
    public const int Batch = 32;

    private readonly T[] _slots;
    private readonly int _mask;
    private PaddedIndex _head; // the producer's
    private PaddedIndex _tail; // the consumer's
    private volatile Exception? _fault;

    public SpscRing(int capacity)
    {
        if (capacity < 2 * Batch || (capacity & (capacity - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(capacity), $"must be a power of two, at least {2 * Batch}");
        _slots = new T[capacity];
        _mask = capacity - 1;
    }

    /// <summary>
    /// Times the producer found the ring full and waited for room: the freeing thread was the slower side. Counted off
    /// the fast path only; read it while the ring is idle.
    /// </summary>
    public long ProducerWaits => Volatile.Read(ref _head.Waits);

    /// <summary>Times the consumer found the ring empty: the allocating thread was the slower side (as above).</summary>
    public long ConsumerIdle => Volatile.Read(ref _tail.Waits);

    /// <summary>The exception that stopped the consumer, if any (the producer rethrows it).</summary>
    public Exception? Fault { get => _fault; set => _fault = value; }

    /// <summary>Producer: adds an item, spinning while the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enqueue(T item)
    {
        long h = _head.Value;
        if (h - _head.Cached > _mask)
        {
            _head.Cached = Volatile.Read(ref _tail.Published);
            if (h - _head.Cached > _mask) WaitForRoom(h);
        }
        _slots[(int)h & _mask] = item;
        _head.Value = ++h;
        if ((h & (Batch - 1)) == 0) Volatile.Write(ref _head.Published, h);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WaitForRoom(long h)
    {
        _head.Waits++;
        Volatile.Write(ref _head.Published, h);
        var spin = new SpinWait();
        while (h - (_head.Cached = Volatile.Read(ref _tail.Published)) > _mask)
        {
            if (_fault is { } f) throw new InvalidOperationException("the consumer thread failed", f);
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Producer: publishes what it has added and waits until the consumer has finished with every item.</summary>
    public void WaitUntilEmpty()
    {
        long h = _head.Value;
        Volatile.Write(ref _head.Published, h);
        var spin = new SpinWait();
        while (Volatile.Read(ref _tail.Published) != h)
        {
            if (_fault is { } f) throw new InvalidOperationException("the consumer thread failed", f);
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Consumer: the oldest item, without removing it; false (after publishing its index) when the ring is empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPeek(out T item)
    {
        long t = _tail.Value;
        if (t == _tail.Cached && t == (_tail.Cached = Volatile.Read(ref _head.Published)))
        {
            _tail.Waits++;
            if (_tail.Published != t) Volatile.Write(ref _tail.Published, t);
            item = default!;
            return false;
        }
        item = _slots[(int)t & _mask];
        return true;
    }

    /// <summary>Consumer: removes the item returned by the last <see cref="TryPeek"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Advance()
    {
        long t = _tail.Value;
        if (RuntimeHelpers.IsReferenceOrContainsReferences<T>()) _slots[(int)t & _mask] = default!;
        _tail.Value = ++t;
        if ((t & (Batch - 1)) == 0) Volatile.Write(ref _tail.Published, t);
    }
}

/// <summary>How the consumer thread frees one item (a struct, so the call is specialised and inlined).</summary>
internal interface IFreer<T>
{
    void Free(T item);
}

/// <summary>
/// The freeing thread (thread B): takes items off the ring and frees them until stopped. It spins
/// (yielding, never sleeping) while the ring is empty so that it answers at once when work arrives.
/// </summary>
internal sealed class Consumer<T, TFreer> where TFreer : struct, IFreer<T>
{
    private readonly SpscRing<T> _ring;
    private readonly TFreer _freer;
    private readonly Thread _thread;
    private volatile bool _stop;

    public Consumer(SpscRing<T> ring, TFreer freer, string name)
    {
        _ring = ring;
        _freer = freer;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    private void Run()
    {
        try
        {
            var spin = new SpinWait();
            while (true)
            {
                if (_ring.TryPeek(out T item))
                {
                    _freer.Free(item);
                    _ring.Advance();
                    spin.Reset();
                    continue;
                }
                if (_stop) return;
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }
        catch (Exception e)
        {
            _ring.Fault = e;
        }
    }

    /// <summary>Asks the thread to finish (after the ring is empty) and joins it.</summary>
    public void Stop()
    {
        _stop = true;
        _thread.Join();
    }
}

/// <summary>Frees a mimalloc block on the consumer thread.</summary>
internal readonly unsafe struct MimallocFreer : IFreer<nint>
{
    public void Free(nint p) => Mimalloc.Free((void*)p);
}

/// <summary>Returns an ArrayPool array on the consumer thread.</summary>
internal readonly struct ArrayPoolFreer : IFreer<byte[]>
{
    public void Free(byte[] a) => System.Buffers.ArrayPool<byte>.Shared.Return(a);
}
