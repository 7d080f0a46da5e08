// The real-time state of an rtskb pool: one cache line the pool's lock, free list and counters share.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Kmem.Rtnet;

/// <summary>
/// A pool's real-time state: the lock, the ring and its indices, in one cache line of pinned memory (the header of
/// every buffer the pool owns holds its address).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct RtskbPoolControl
{
    public RtBiasedLock Lock;      // rtdm_lock: interrupts "off" meanwhile
    public uint Head;              // buffers ever dequeued (the first queued one is at Ring[Head & Mask])
    public uint Tail;              // buffers ever queued (Tail - Head are in the queue; the slots past them hold 0)
    public int Mask;               // ring capacity - 1 (a power of two >= the pool's size)
    public int HeaderBytes;        // buf_start - the object (ALIGN_RTSKB_STRUCT_LEN)
    public nint* Ring;             // queued buffers, Head first
    public int Id;                 // the pool's id in the stack
    public int Dead;               // set under the lock by the machine's shutdown: the queue is closed for good
}
