// The "CPU" side of SLUB for .NET threads. Each thread that uses a slab cache owns a table of
// kmem_cache_cpu structures (one per cache it has used, indexed by the cache's slot) headed by an
// owner/drainer handshake (Core/OwnerDrainHandshake.cs): the owner enters it around each fast-path
// operation; a thread that must flush another thread's slabs (shrink, destroy, memory pressure)
// takes it as the drainer. The owner's slow path and every flusher serialise on the thread's lock.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Core;

namespace Kmem.Slab;

/// <summary>
/// One thread's state for one cache (<c>struct kmem_cache_cpu</c>), in native memory. The first 64 bytes
/// hold everything the allocation fast path and the free of the object allocated last read, the cache's
/// constants included, so that such a pair touches this line and the object only.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemCacheCpu
{
    /// <summary>The next object to hand out after <see cref="Hot"/> (0 when empty); objects link through their free pointers.</summary>
    public nint Freelist;
    /// <summary>
    /// The most recently freed object of the CPU slab, not yet linked (0: none): the head of the freelist in
    /// effect, kept out of the object so that an alloc after a free touches neither the object nor its link.
    /// </summary>
    public nint Hot;
    /// <summary>
    /// The object the fast path handed out last from the CPU slab, while it is still in use (0: none): freeing it
    /// needs no range or index check, since it is known to start an object of the CPU slab. Cleared when it is
    /// freed by this thread and whenever the CPU slab changes.
    /// </summary>
    public nint LastAlloc;
    /// <summary>Linear address of the CPU slab (the base the free pointers are relative to).</summary>
    public nint SlabBase;
    /// <summary>The cache's free pointer offset (<c>s->offset</c>).</summary>
    public int Offset;
    /// <summary>The cache's hardening key (<c>s->random</c>).</summary>
    public uint Random;
    /// <summary>Bytes of a slab of the cache's preferred order: the largest valid link.</summary>
    public uint SlabBytes;
    /// <summary>The cache's object stride (<c>s->size</c>).</summary>
    public int Size;
    /// <summary>Address of the CPU slab's first object (SlabBase + red_left_pad).</summary>
    public nint ObjStart;
    /// <summary>Bytes the CPU slab's object slots span (objects × size); 0 without a CPU slab, so no address matches.</summary>
    public nuint ObjBytes;
    /// <summary>The cache's reciprocal of size for object index checks (0: divide).</summary>
    public ulong Magic;
    /// <summary>Bytes <c>__GFP_ZERO</c> clears (<c>s->object_size</c>).</summary>
    public int ZeroBytes;
    /// <summary>Frame index of the CPU slab, or -1.</summary>
    public int Page;
    /// <summary>First frozen slab of the CPU partial list (linked through the frames' Next), or -1.</summary>
    public int Partial;
    /// <summary><c>page->pages</c> of the list head: slabs on the CPU partial list.</summary>
    public int PartialPages;
    /// <summary><c>page->pobjects</c> of the list head: free objects on the list when they were added.</summary>
    public int PartialObjects;
    /// <summary>
    /// The detached freelist of frees to another thread's slab (build_detached_freelist() of the kernel's bulk
    /// free): objects of one slab, linked, pushed to that slab with one compare-and-swap. -1 when empty.
    /// </summary>
    public int RemotePage;
    /// <summary>Objects in the detached freelist.</summary>
    public int RemoteCount;
    /// <summary>
    /// slab_nid() of the CPU slab while there is one (node_match() of kmem_cache_alloc_node()'s fast path reads it;
    /// the fast path without a node never does). It fills the 4-byte hole after RemoteCount, keeping the struct at two cache lines.
    /// </summary>
    public int Node;
    /// <summary>First and last object of the detached freelist.</summary>
    public nint RemoteHead, RemoteTail;
    /// <summary>Linear address of the detached freelist's slab (the base its links are relative to).</summary>
    public nint RemoteSlabBase;
    /// <summary>Address of the first object of the detached freelist's slab.</summary>
    public nint RemoteObjStart;
    /// <summary>
    /// Bytes that slab's object slots span; 0 while the detached freelist is empty, so that no address matches. A
    /// free that falls on one of those slots joins the list on the fast path, with no page descriptor read: the slab
    /// cannot go away meanwhile, since the objects on the list still count as in use in it.
    /// </summary>
    public nuint RemoteObjBytes;
    /// <summary>Address of the first object of the slab whose object the main sheaf took last on the checked path.</summary>
    public nint SheafObjStart;
    /// <summary>
    /// Bytes that slab's object slots span; 0 when there is none. A free that falls on one of those slots goes into
    /// the main sheaf on the fast path, with no page descriptor read: while that object stays in the sheaf (it counts
    /// as in use in its slab), the slab is this cache's. So taking an object out of the main sheaf (TakeFromMain),
    /// flushing it or freeing it sets this to 0; the checked path sets it for each object it puts in.
    /// </summary>
    public nuint SheafObjBytes;
    /// <summary>The thread's main sheaf (caches with sheaves only; null until the first free that needs it).</summary>
    public SlabSheaf* Main;
}

/// <summary>The per-thread table of <see cref="KmemCacheCpu"/> pointers and its handshake.</summary>
internal sealed unsafe class SlabThread
{
    /// <summary>Table index 0 holds the handshake (<see cref="OwnerDrainHandshake"/>, 8 bytes); index 1 is never used, so a destroyed cache's slot reads null.</summary>
    public const int DeadSlot = 1;
    private const int FirstSlot = 2;

    // The fast path's view: primitive thread statics are read inline.
    [ThreadStatic] internal static nint* t_table;
    [ThreadStatic] internal static int t_len;
    /// <summary>
    /// The slot of the cache the thread's last kfree went to, stored as slot ^ 1 (so 0, the initial value, names
    /// <see cref="DeadSlot"/>, whose entry is null in every table); tried before the page descriptor.
    /// </summary>
    [ThreadStatic] internal static int t_kfreeHint;
    [ThreadStatic] private static SlabThread? t_self;

    private static readonly Lock s_lock = new();
    private static readonly List<SlabThread> s_all = [];
    private static readonly Stack<int> s_freeSlots = new();
    private static int s_nextSlot = FirstSlot;

    private SlabThread(Thread thread, int cpu)
    {
        Thread = thread;
        Cpu = cpu;
        Len = 16;
        Table = (nint*)NativeMemory.AllocZeroed((nuint)Len, (nuint)sizeof(nint));
    }

    public readonly Thread Thread;
    /// <summary>The profile CPU the thread was first seen on (for reports).</summary>
    public readonly int Cpu;
    /// <summary>Serialises the owner's slow path and every flusher.</summary>
    public readonly Lock Lock = new();
    public nint* Table;
    public int Len;

    /// <summary>The handshake in the table's first entry (where the fast paths find it as <see cref="Handshake(nint*)"/>).</summary>
    public OwnerDrainHandshake* Hs => Handshake(Table);

    /// <summary>The handshake of a thread's table: its first entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static OwnerDrainHandshake* Handshake(nint* table) => (OwnerDrainHandshake*)table;

    /// <summary>The calling thread's table, created on first use.</summary>
    public static SlabThread Current
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => t_self ?? Create();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static SlabThread Create()
    {
        var st = new SlabThread(Thread.CurrentThread, Thread.GetCurrentProcessorId());
        lock (s_lock) s_all.Add(st);
        t_self = st;
        t_table = st.Table;
        t_len = st.Len;
        return st;
    }

    /// <summary>A slot number for a new cache.</summary>
    public static int AllocSlot()
    {
        lock (s_lock) return s_freeSlots.Count > 0 ? s_freeSlots.Pop() : s_nextSlot++;
    }

    /// <summary>Gives a slot back once no thread's table holds an entry for it.</summary>
    public static void FreeSlot(int slot)
    {
        lock (s_lock) s_freeSlots.Push(slot);
    }

    /// <summary>The calling thread's structure for <paramref name="slot"/>, or null. Owner only.</summary>
    public KmemCacheCpu* Get(int slot) => slot < Len ? (KmemCacheCpu*)Table[slot] : null;

    /// <summary>Installs the calling thread's structure for a slot, growing the table. Owner only, under <see cref="Lock"/>.</summary>
    public void Set(int slot, KmemCacheCpu* c)
    {
        if (slot >= Len)
        {
            int len = Math.Max(Len * 2, slot + 1);
            var t = (nint*)NativeMemory.AllocZeroed((nuint)len, (nuint)sizeof(nint));
            new Span<nint>(Table, Len).CopyTo(new Span<nint>(t, len));
            var old = Table;
            Table = t;
            Len = len;
            t_table = t;
            t_len = len;
            NativeMemory.Free(old);
        }
        Table[slot] = (nint)c;
    }

    /// <summary>
    /// Takes exclusive use of this thread's structures: the lock, then (for another thread) the handshake.
    /// False (and nothing held) when the thread has ended and its table was freed.
    /// </summary>
    public bool EnterExclusive()
    {
        Lock.Enter();
        if (Table == null)
        {
            Lock.Exit();
            return false;
        }
        if (ReferenceEquals(Thread, System.Threading.Thread.CurrentThread)) return true;
        Hs->DrainerEnter();
        return true;
    }

    public void ExitExclusive()
    {
        if (!ReferenceEquals(Thread, System.Threading.Thread.CurrentThread)) Hs->DrainerExit();
        Lock.Exit();
    }

    /// <summary>Frees the tables of threads that have ended and hold no structure any more.</summary>
    public static void PruneDead()
    {
        lock (s_lock)
        {
            for (int i = s_all.Count - 1; i >= 0; i--)
            {
                var st = s_all[i];
                if (st.Thread.IsAlive || !st.Lock.TryEnter()) continue;
                try
                {
                    bool empty = true;
                    for (int s = FirstSlot; s < st.Len && empty; s++) empty = st.Table[s] == 0;
                    if (!empty) continue;
                    NativeMemory.Free(st.Table);
                    st.Table = null;
                    st.Len = 0;
                    s_all.RemoveAt(i);
                }
                finally
                {
                    st.Lock.Exit();
                }
            }
        }
    }
}
