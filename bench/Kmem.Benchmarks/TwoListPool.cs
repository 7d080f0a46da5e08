// The cross-thread slab group's reference scheme: a fixed pool of 64-byte blocks with an owner-local freelist and a
// shared remote stack that the freeing thread pushes 64 blocks at a time (no checks, no slabs, no lists).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Benchmarks;

/// <summary>
/// The scheme the reference VM's own two-thread table names "owner-local list, B batches 64 frees into one CAS
/// push" (shared/reference peer-baselines, task B2): thread A pops blocks from its own intrusive freelist and, when
/// that is empty, takes the whole remote stack with one exchange; thread B links the blocks it frees into a chain
/// and pushes every 64 with one compare-and-swap. It checks nothing (a double free corrupts it) and has no slab
/// lists, so it is the cost of the hand-over pattern itself with intrusive links: what a slab allocator
/// pays above it is its bookkeeping and its checks. Each side's words sit on cache lines of their own.
/// One producer thread and one consumer thread only.
/// </summary>
internal sealed unsafe class TwoListPool : IDisposable
{
    [StructLayout(LayoutKind.Explicit, Size = 448)]
    private struct Words
    {
        [FieldOffset(128)] public nint Local;      // A's
        [FieldOffset(256)] public nint Remote;     // shared, once per batch
        [FieldOffset(384)] public nint BatchHead;  // B's
        [FieldOffset(392)] public nint BatchTail;
        [FieldOffset(400)] public int BatchCount;
    }

    /// <summary>Blocks B links before it pushes them.</summary>
    public const int Batch = 64;

    private readonly nint _memory;
    private Words _w;

    /// <summary>A pool of <paramref name="blocks"/> 64-byte blocks, all on A's list in address order.</summary>
    public TwoListPool(int blocks)
    {
        _memory = (nint)NativeMemory.AlignedAlloc((nuint)blocks * 64, 4096);
        for (int i = 0; i < blocks; i++) *(nint*)(_memory + i * 64) = i + 1 < blocks ? _memory + (i + 1) * 64 : 0;
        _w.Local = _memory;
    }

    /// <summary>Thread A: a block (spins while every block is in flight).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint Alloc()
    {
        nint o = _w.Local;
        if (o == 0) o = TakeRemote();
        _w.Local = *(nint*)o;
        return o;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private nint TakeRemote()
    {
        nint o;
        var spin = new SpinWait();
        while ((o = Interlocked.Exchange(ref _w.Remote, 0)) == 0) spin.SpinOnce(sleep1Threshold: -1);
        return o;
    }

    /// <summary>Thread B: frees a block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Free(nint o)
    {
        *(nint*)o = _w.BatchHead;
        if (_w.BatchHead == 0) _w.BatchTail = o;
        _w.BatchHead = o;
        if (++_w.BatchCount == Batch) Push();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Push()
    {
        nint old;
        do
        {
            old = Volatile.Read(ref _w.Remote);
            *(nint*)_w.BatchTail = old;
        } while (Interlocked.CompareExchange(ref _w.Remote, _w.BatchHead, old) != old);
        _w.BatchHead = 0;
        _w.BatchCount = 0;
    }

    /// <summary>Frees the pool's memory (after both threads have stopped).</summary>
    public void Dispose() => NativeMemory.AlignedFree((void*)_memory);
}

/// <summary>Frees a block of the reference scheme on the consumer thread.</summary>
internal readonly struct TwoListFreer(TwoListPool pool) : IFreer<nint>
{
    public void Free(nint p) => pool.Free(p);
}
