// The owner/drainer handshake that guards per-thread allocator state (the slab layer's kmem_cache_cpu
// tables, the per-CPU page lists, RTnet's biased pool locks): one owner thread enters and leaves its
// state with plain stores, and a rare drainer (flush, drain, shrink, revoke) takes the state from it
// with one process-wide memory barrier. Its correctness argument is written beside the type.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Core;

/// <summary>
/// An asymmetric Dekker handshake between the one thread that owns some state (the owner) and the threads that
/// must sometimes take that state from it (drainers). Two words: <c>Busy</c>, written only by the owner, and
/// <c>DrainRequested</c>, written only by drainers. The owner's side is two plain stores and one load, with no
/// interlocked instruction; the drainer pays for both sides with <see cref="Interlocked.MemoryBarrierProcessWide"/>.
/// The struct is 8 bytes and is placed where its users keep it: a field, or the first words of a native block
/// (read it through a pointer then). It is a mutable struct: never copy it.
/// </summary>
/// <remarks>
/// <para><b>The protocol.</b> The owner calls <see cref="OwnerEnter"/> (store Busy = 1, then load DrainRequested)
/// and <see cref="OwnerExit"/> (store Busy = 0) after it, whatever the answer: on true it works on its state between
/// the two; on false (it is refused) it must not touch the state and exits at once, then takes its slow path, which
/// serialises with drainers by the lock the drainers hold (each user names its lock). A drainer, holding that lock,
/// calls <see cref="DrainerEnter"/> (store DrainRequested = 1, the process-wide barrier, then wait until Busy reads
/// 0), works on the owner's state, and calls <see cref="DrainerExit"/> (store DrainRequested = 0), or leaves the
/// request raised for good to retire the fast path (<see cref="RequestDrain"/> without exit).</para>
/// <para><b>Why the two sides never both proceed.</b> Each side stores its own word and then loads the other's. The
/// hardware may let a load overtake an earlier store to another address (the store buffer; x86 and Arm alike), so
/// without more, both could load the other's old 0 and proceed. The process-wide barrier closes that window from
/// the drainer's side alone: it runs a full memory barrier on every processor that runs a thread of the process,
/// after the drainer's own store is visible. That barrier falls at some point P of the owner's instruction
/// stream. (a) If the owner's Busy = 1 store comes before P, the store is visible once the barrier returns, so the
/// drainer's later load sees Busy = 1 and waits until the owner exits (after its section, or at once if refused).
/// (b) If the store comes after P, the owner's load of DrainRequested, which follows it in program order, also comes
/// after P and so sees the drainer's 1: the owner is refused. Hence when the drainer sees Busy = 0 after the
/// barrier, the owner is outside its state and every later entry is refused until DrainRequested falls.
/// One of (a) and (b) always holds: an owner thread that is not running when the barrier is issued (preempted, or
/// moving to another processor) stopped at some point of its stream, and the context switch that stopped it
/// already made its earlier stores visible, so P is that point.</para>
/// <para><b>What each side sees of the other's work.</b> Busy = 0 is a release store and the drainer's load of it
/// an acquire, so the drainer sees every write the owner made inside the section it waited for; DrainRequested = 0
/// is a release store and the owner's load an acquire, so the owner's next section sees the drainer's writes.</para>
/// <para><b>What each side must do.</b> The owner's section must be short and wait for nothing a drainer may hold
/// while it waits (no lock a drainer takes before or while waiting: it would deadlock); after a false
/// <see cref="OwnerEnter"/> it must lower Busy at once (a drainer is waiting for it) and go to the slow path, not
/// retry in a loop. Drainers of one handshake must be serialised by a lock (a second drainer's
/// <see cref="DrainerExit"/> would lower the first one's request), and a drain run on the owner's own thread needs
/// no handshake (the owner cannot be inside its section then). The argument also needs the JIT to keep the owner's volatile store before its volatile load, which RyuJIT does
/// (it does not move volatile accesses past one another).</para>
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct OwnerDrainHandshake
{
    private int _busy;
    private int _drainRequested;

    /// <summary>
    /// The owner's entry: raises Busy and tells whether the state is the owner's until <see cref="OwnerExit"/> (true),
    /// or a drainer holds it or is taking it (false: the owner calls <see cref="OwnerExit"/> at once and takes its
    /// slow path). Either way <see cref="OwnerExit"/> follows. (Leaving the exit to the caller keeps the owner's code
    /// as the fast paths had it by hand, with the common case falling through.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool OwnerEnter()
    {
        Volatile.Write(ref _busy, 1);
        return Volatile.Read(ref _drainRequested) == 0;
    }

    /// <summary>The owner lowers Busy after <see cref="OwnerEnter"/>, whatever it answered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OwnerExit() => Volatile.Write(ref _busy, 0);

    /// <summary>
    /// Takes the state from its owner: raises the request, issues the process-wide barrier and waits until the
    /// owner is out of its section. The caller holds the lock that serialises this handshake's drainers.
    /// </summary>
    public void DrainerEnter()
    {
        RequestDrain();
        Fence();
        WaitForOwner();
    }

    /// <summary>Gives the state back: the owner's next <see cref="OwnerEnter"/> answers true again.</summary>
    public void DrainerExit() => Volatile.Write(ref _drainRequested, 0);

    /// <summary>
    /// Raises the request without waiting: the first step of <see cref="DrainerEnter"/>, for a drainer that takes
    /// several owners' states at once (raise every request, one <see cref="Fence"/>, then <see cref="WaitForOwner"/>
    /// on each) or that retires the fast path for good (never lowered). Alone, it does not keep an owner that is
    /// already inside its section out: only the fence and the wait do.
    /// </summary>
    public void RequestDrain() => Volatile.Write(ref _drainRequested, 1);

    /// <summary>
    /// The barrier between a drainer's requests and its waits (<see cref="Interlocked.MemoryBarrierProcessWide"/>):
    /// one serves any number of handshakes whose requests were raised before it.
    /// </summary>
    public static void Fence() => Interlocked.MemoryBarrierProcessWide();

    /// <summary>Waits, after a <see cref="Fence"/> that followed the request, until the owner is outside its section.</summary>
    public readonly void WaitForOwner()
    {
        var spin = new SpinWait();
        while (OwnerInside) spin.SpinOnce();
    }

    /// <summary>True while the owner has Busy raised (meaningful to a drainer after the request and the fence).</summary>
    public readonly bool OwnerInside => Volatile.Read(ref Unsafe.AsRef(in _busy)) != 0;

    /// <summary>True while a drainer's request is raised.</summary>
    public readonly bool DrainRequested => Volatile.Read(ref Unsafe.AsRef(in _drainRequested)) != 0;
}
