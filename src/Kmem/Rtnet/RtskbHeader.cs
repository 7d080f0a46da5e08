// The header every rtskb carries in front of its data (next link, owner pool, lengths, liveness).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Rtnet;

/// <summary>
/// The native header at the start of each rtskb object (the fields pools and users need; 104 bytes, inside the
/// cache-line-aligned header space of the kernel's struct rtskb: 192 bytes on 64-bit, 128 on 32-bit ARM).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RtskbHeader
{
    // The fields alloc_rtskb/kfree_rtskb touch come first, so that the fast path reads and writes one cache line.
    public long Magic;         // the stack's cookie while the object is an rtskb of a pool
    public nint Pool;          // the owning pool's control block (RtskbPoolControl*)
    public int State;          // 1 queued in its pool, 2 out
    public int Len;
    public nint BufStart;
    public nint Data;
    public nint Tail;
    public nint End;
    public int Protocol;
    public nint Next;          // queue link
    // The rest (chain and receive metadata) lives on the next line.
    public nint ChainEnd;      // last rtskb of the chain that starts here (itself for one buffer)
    public int Priority;
    public int PktType;        // PACKET_HOST 0
    public long TimeStamp;
    public nint Socket;        // receiving socket id (0: none)

    public const int Queued = 1, Out = 2;
}
