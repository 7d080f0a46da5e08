// A spin lock with a thread-biased fast path: the one thread that uses a pool runs its critical sections with plain stores; the first other thread revokes the bias for good, as the drainer of the owner/drainer handshake (Core/OwnerDrainHandshake.cs).
using System.Runtime.CompilerServices;
using Kmem.Core;

namespace Kmem.Rtnet;

/// <summary>
/// A spin lock biased to the first thread that takes it for a real-time operation (keep it in a field; it is a mutable
/// struct). The owner's <see cref="TryEnterBiased"/> is a range check of a local's address against the owner's stack,
/// then the owner's side of an <see cref="OwnerDrainHandshake"/> (two plain stores and a load); the first other thread
/// to <see cref="Enter"/> takes the drainer's side under the spin lock (the request,
/// <see cref="Interlocked.MemoryBarrierProcessWide"/>, a wait for the owner's critical section in progress, if any),
/// never lowers the request, and turns the lock into a plain spin lock for good. Where the thread's stack range is
/// unknown (<see cref="ThreadStack"/>), the lock is never biased.
/// </summary>
internal unsafe struct RtBiasedLock
{
    private const int Unbiased = 0, Shared = -1;
    private RtSpinLock _lock;
    private int _bias;            // Unbiased, Shared, or the owner's managed thread id
    private OwnerDrainHandshake _hs; // owner inside: in a biased critical section; drain requested: revoked for good
    private nint _ownerStack;     // the owner's stack: lowest address, then size (0 until biased; written once)
    private nint _ownerStackSize;

    [ThreadStatic] private static int t_threadId;  // the managed thread id, cached (slow paths only)
    [ThreadStatic] private static nint t_stack, t_stackSize;
    [ThreadStatic] private static int t_stackKnown;  // 0 not asked yet, 1 known, -1 unknown

    /// <summary>The calling thread's managed id (never 0).</summary>
    private static int ThreadId
    {
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
        int probe = 0;                                  // its address says which thread's stack this is
        nint size = Volatile.Read(ref _ownerStackSize); // read before the address: size != 0 means the address is set
        if ((nuint)((nint)(&probe) - _ownerStack) >= (nuint)size) return false;
        if (_hs.OwnerEnter()) return true;
        _hs.OwnerExit();
        return false;
    }

    /// <summary>Leaves a critical section entered by <see cref="TryEnterBiased"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ExitBiased() => _hs.OwnerExit();

    /// <summary>
    /// The slow path: takes the spin lock and revokes another thread's bias. With <paramref name="bias"/> an unbiased
    /// lock becomes biased to the caller for its next critical sections (real-time operations pass true; set-up,
    /// shrinking and checks pass false).
    /// </summary>
    public void Enter(bool bias)
    {
        bool stackKnown = bias && Volatile.Read(ref _bias) == Unbiased && CurrentStackKnown();  // the C library, before the lock
        _lock.Enter();
        int me = ThreadId;
        if (_bias == Unbiased)
        {
            if (stackKnown)
            {
                _bias = me;
                _ownerStack = t_stack;
                Volatile.Write(ref _ownerStackSize, t_stackSize);
            }
        }
        else if (_bias != Shared && _bias != me)
        {
            _hs.DrainerEnter();   // never exited: the bias is gone for good
            _bias = Shared;
        }
    }

    /// <summary>Reads the calling thread's stack range once per thread; false when it cannot be known.</summary>
    private static bool CurrentStackKnown()
    {
        if (t_stackKnown == 0)
            t_stackKnown = ThreadStack.TryGetCurrent(out t_stack, out t_stackSize) ? 1 : -1;
        return t_stackKnown > 0;
    }

    /// <summary>Leaves a critical section entered by <see cref="Enter"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit() => _lock.Exit();

    /// <summary>
    /// Makes the lock a plain spin lock for good, so that every later critical section goes through <see cref="Enter"/>
    /// (the machine's shutdown closes a pool this way). The caller holds the lock, taken with <see cref="Enter"/>, which
    /// has already revoked another thread's bias; a bias of the caller's own needs no handshake.
    /// </summary>
    public void Seal()
    {
        _hs.RequestDrain();
        _bias = Shared;
    }

    /// <summary>The owner's thread id while biased; 0 before the first real-time use (or where it cannot be biased); -1 once shared.</summary>
    public readonly int Bias => Volatile.Read(ref Unsafe.AsRef(in _bias));
}
