// rtdm_lock for the rtskb queues. RtSpinLock is a test-and-set spin lock for critical sections of a few stores:
// it never sleeps and never yields the CPU, like RTnet's lock held with interrupts off. RtBiasedLock puts a
// thread-biased fast path in front of it: the one thread that uses a pool runs its critical sections with plain
// stores (no locked instruction); the first other thread revokes the bias once, with a process-wide memory barrier,
// and from then on everyone takes the spin lock.
using System.Runtime.CompilerServices;

namespace Kmem;

/// <summary>A spin lock held for a handful of instructions (keep it in a field; it is a mutable struct).</summary>
internal struct RtSpinLock
{
    private int _held;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enter()
    {
        while (Interlocked.CompareExchange(ref _held, 1, 0) != 0)
            while (Volatile.Read(ref _held) != 0) Thread.SpinWait(1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit() => Volatile.Write(ref _held, 0);
}

/// <summary>
/// A spin lock biased to the first thread that takes it for a real-time operation (keep it in a field; it is a mutable
/// struct). The owner's <see cref="TryEnterBiased"/> is two plain stores and a load (an asymmetric Dekker handshake);
/// the first other thread to <see cref="Enter"/> sets the revoke flag, issues
/// <see cref="Interlocked.MemoryBarrierProcessWide"/> (which orders the owner's flag store before its load of the
/// revoke flag), waits for the owner's critical section in progress, if any, and turns the lock into a plain spin lock
/// for good. The handshake relies on the JIT keeping volatile accesses in program order, as RyuJIT does.
/// </summary>
internal struct RtBiasedLock
{
    private const int Unbiased = 0, Shared = -1;
    private RtSpinLock _lock;
    private int _bias;            // Unbiased, Shared, or the owner's managed thread id
    private int _inSection;       // the owner is inside a biased critical section
    private int _revoking;

    [ThreadStatic] private static int t_threadId;  // the managed thread id, cached in inline thread-local storage

    /// <summary>The calling thread's managed id (never 0).</summary>
    private static int ThreadId
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            int id = t_threadId;
            return id != 0 ? id : t_threadId = Environment.CurrentManagedThreadId;
        }
    }

    /// <summary>The owner's fast path: true when the caller owns the bias and is now inside its critical section.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnterBiased()
    {
        if (_bias != ThreadId) return false;
        Volatile.Write(ref _inSection, 1);
        if (Volatile.Read(ref _revoking) == 0) return true;
        Volatile.Write(ref _inSection, 0);
        return false;
    }

    /// <summary>Leaves a critical section entered by <see cref="TryEnterBiased"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ExitBiased() => Volatile.Write(ref _inSection, 0);

    /// <summary>
    /// The slow path: takes the spin lock and revokes another thread's bias. With <paramref name="bias"/> an unbiased
    /// lock becomes biased to the caller for its next critical sections (real-time operations pass true; set-up,
    /// shrinking and checks pass false).
    /// </summary>
    public void Enter(bool bias)
    {
        _lock.Enter();
        int me = ThreadId;
        if (_bias == Unbiased)
        {
            if (bias) _bias = me;
        }
        else if (_bias != Shared && _bias != me)
        {
            Volatile.Write(ref _revoking, 1);
            Interlocked.MemoryBarrierProcessWide();
            while (Volatile.Read(ref _inSection) != 0) Thread.SpinWait(1);
            _bias = Shared;
        }
    }

    /// <summary>Leaves a critical section entered by <see cref="Enter"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit() => _lock.Exit();

    /// <summary>The owner's thread id while biased; 0 before the first real-time use; -1 once shared.</summary>
    public readonly int Bias => Volatile.Read(ref Unsafe.AsRef(in _bias));
}
