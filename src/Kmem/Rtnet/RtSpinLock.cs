// rtdm_lock for the rtskb queues: a test-and-set spin lock for critical sections of a few stores. It never sleeps
// and never yields the CPU, like RTnet's lock held with interrupts off (RtBiasedLock puts a thread-biased fast path
// in front of it).
using System.Runtime.CompilerServices;

namespace Kmem.Rtnet;

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
