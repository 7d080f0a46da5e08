// Per-CPU page lists (order 0, and from 5.14 orders up to PAGE_ALLOC_COSTLY_ORDER and the THP order), made correct for .NET threads. Each thread that allocates
// gets its own set of lists per zone (a "magazine", the kernel's per_cpu_pages) in one native block,
// used with plain loads and stores. Another thread may drain it (drain_all_pages) through the
// owner/drainer handshake at the block's start (Core/OwnerDrainHandshake.cs): the owner enters it
// around each operation, the drainer takes the lists with a process-wide memory barrier. An owner
// that finds a drain requested takes the slow path under DrainLock, which every drainer holds.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Core;

namespace Kmem.Paging;

/// <summary>
/// One zone's lists inside a thread's block: <c>[count, len0 … len14, stack0[cap], stack1[cap], …]</c>, one stack per
/// list (<see cref="PcpPolicy.Index"/>: per migratetype, and per order from 5.14), the top being the hot end (the
/// kernel's list head). The count is in pages (a block of order n counts 2^n); the lists of order 0 are 0..2 in every
/// release. A value type over the block so the fast path needs no object per zone.
/// </summary>
internal readonly unsafe struct PerCpuPages
{
    /// <summary>The count and up to <see cref="PcpPolicy.MaxLists"/> lengths.</summary>
    public const int Header = 1 + PcpPolicy.MaxLists;
    private readonly int* _p;
    private readonly int _cap;

    public PerCpuPages(int* p, int cap, Zone zone)
    {
        _p = p;
        _cap = cap;
        Zone = zone;
    }

    public Zone Zone { get; }

    public bool IsNull => _p == null;

    /// <summary>Ints one zone's lists take in the block.</summary>
    public static int Stride(Zone z) => Header + z.PcpLists * z.PcpCap;

    /// <summary>
    /// Entries per stack, fixed at boot (<see cref="Zone.PcpCap"/>): an order-0 list never holds more than high + batch
    /// pages plus what refills of the other lists put above high (from 5.14, up to a scaled batch of blocks per list,
    /// two THP blocks for a THP list); a list of order n holds fewer blocks than that.
    /// </summary>
    public static int Capacity(Zone z, PcpPolicy policy)
    {
        long cap = (long)z.PcpHigh + z.PcpBatch + 2;
        if (policy.Lists > PageTypes.PcpTypes)
            for (int list = 0; list < policy.Lists; list++)
            {
                int order = policy.OrderOf(list);
                cap += Math.Max((long)z.PcpBatch, 2L << order);
            }
        return (int)Math.Min(cap, int.MaxValue / PcpPolicy.MaxLists / 4);
    }

    /// <summary>pcp->count: pages on all lists.</summary>
    public int Count => Volatile.Read(ref _p[0]);

    public int Length(int mt) => _p[1 + mt];

    /// <summary>Takes the most recently freed page of list <paramref name="mt"/>, or -1.</summary>
    /// <remarks>
    /// The order-0 fast paths' list operations index with unsigned values (every index here is non-negative): a 32-bit
    /// value widens to a pointer offset for free then, where a signed one costs a sign extension on the address chain.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PopHot(int* p, int cap, int mt)
    {
        int* count = p + 1 + (uint)mt;
        uint n = (uint)*count;
        if (n == 0) return -1;
        *count = (int)(n - 1);
        p[0]--;
        return p[(nuint)Header - 1 + (nuint)(uint)mt * (uint)cap + n];
    }

    /// <summary>Puts a page on the hot end of list <paramref name="mt"/>; returns the new count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PushHot(int* p, int cap, int mt, int idx)
    {
        int* count = p + 1 + (uint)mt;
        uint n = (uint)*count;
        p[(nuint)Header + (nuint)(uint)mt * (uint)cap + n] = idx;
        *count = (int)(n + 1);
        return ++p[0];
    }

    /// <summary>Puts a block of 2^<paramref name="order"/> pages on the hot end of list <paramref name="list"/>; returns the new count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PushHot(int* p, int cap, int list, int order, int idx)
    {
        int* count = p + 1 + (uint)list;
        uint n = (uint)*count;
        p[(nuint)Header + (nuint)(uint)list * (uint)cap + n] = idx;
        *count = (int)(n + 1);
        return p[0] += 1 << order;
    }

    /// <summary>Takes the hot block (2^<paramref name="order"/> pages) of list <paramref name="list"/>, which the caller saw non-empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PopHot(int* p, int cap, int list, int order)
    {
        int* count = p + 1 + (uint)list;
        uint n = (uint)*count - 1;
        *count = (int)n;
        p[0] -= 1 << order;
        return p[(nuint)Header + (nuint)(uint)list * (uint)cap + n];
    }

    public int PopHot(int mt) => PopHot(_p, _cap, mt);

    public int PushHot(int mt, int idx) => PushHot(_p, _cap, mt, idx);

    /// <summary>Takes the hot block of list <paramref name="list"/> (blocks of 2^<paramref name="order"/> pages), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PopHot(int list, int order)
    {
        int n = _p[1 + list];
        if (n == 0) return -1;
        _p[1 + list] = n - 1;
        _p[0] -= 1 << order;
        return _p[Header + list * _cap + n - 1];
    }

    /// <summary>Puts a block of 2^<paramref name="order"/> pages on the hot end of list <paramref name="list"/>; returns the new count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PushHot(int list, int order, int idx) => PushHot(_p, _cap, list, order, idx);

    /// <summary>Removes up to <paramref name="max"/> of the coldest blocks (of 2^<paramref name="order"/> pages) of list <paramref name="mt"/> into <paramref name="into"/>.</summary>
    public int TakeCold(int mt, Span<int> into, int max, int order = 0)
    {
        int n = _p[1 + mt];
        int take = Math.Min(Math.Min(n, max), into.Length);
        var list = new Span<int>(_p + Header + mt * _cap, n);
        list[..take].CopyTo(into);
        list[take..].CopyTo(list);
        _p[1 + mt] = n - take;
        _p[0] -= take << order;
        return take;
    }

    /// <summary>The blocks on list <paramref name="mt"/>, hot end first (for checks; not for concurrent use).</summary>
    public int[] Pages(int mt)
    {
        int n = _p[1 + mt];
        var r = new int[n];
        for (int i = 0; i < n; i++) r[i] = _p[Header + mt * _cap + n - 1 - i];
        return r;
    }
}

/// <summary>All of one thread's per-CPU lists for one page allocator, plus the drain handshake words.</summary>
internal sealed unsafe class PcpThreadCache
{
    /// <summary>
    /// Ints before the first zone's lists: the handshake (slots 0 and 1), the thread's node (2), the fast paths' node row
    /// (3) and that row's first entry in the table of fast zones (4), then padding to a cache line.
    /// </summary>
    public const int BlockHeader = 16;

    public PcpThreadCache(PageAllocator owner, int ownerId, Thread thread, int cpu)
    {
        OwnerId = ownerId;
        Thread = thread;
        Cpu = cpu;
        int total = owner.ThreadBlockInts;
        Mem = (int*)NativeMemory.AlignedAlloc((nuint)total * sizeof(int), 64);
        new Span<int>(Mem, total).Clear();
        SetNode(Mem, owner.NodeOfCpu(cpu), policy: false, owner.NodeCount);
    }

    /// <summary>Where in the block's header the thread's node (<c>numa_node_id()</c>) is kept, after the handshake.</summary>
    private const int NodeSlot = 2;

    /// <summary>
    /// The node row the fast paths look their zone up in: the thread's node under the default policy, or the allocator's
    /// node count (a row without zones, so every allocation takes the general path) while the thread has a memory
    /// policy of its own. The order-0 and order-1..3 fast paths read it as <see cref="FastRowSlot"/>.
    /// </summary>
    private const int FastNodeSlot = 3;

    /// <summary>
    /// The first entry of the fast paths' row (<see cref="FastNodeSlot"/> times the entries of a row), kept beside it so
    /// that the order-0 and order-1..3 allocations index their table with one load.
    /// </summary>
    private const int FastRowSlot = 4;

    /// <summary>The node of the CPU the block's thread runs as.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NodeOf(int* block) => block[NodeSlot];

    /// <summary>The fast path's node row (see <see cref="FastNodeSlot"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int FastNodeOf(int* block) => block[FastNodeSlot];

    /// <summary>The first entry of the fast path's row in the allocator's table of fast zones (see <see cref="FastRowSlot"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint FastRowOf(int* block) => (uint)block[FastRowSlot];

    /// <summary>
    /// What is wrong with the block's node row and its first entry (for the consistency checker): null when the row is
    /// the thread's node, or <paramref name="nodeCount"/> under a memory policy, and the entry is that row's first.
    /// </summary>
    public static string? RowError(int* block, bool policy, int nodeCount)
    {
        int node = block[NodeSlot], fast = block[FastNodeSlot], first = block[FastRowSlot];
        int want = policy ? nodeCount : node;
        if (fast != want) return $"fast node row {fast}, but the thread's {(policy ? "policy row" : "node")} is {want}";
        if (first != fast * PageAllocator.ZoneBitCombinations)
            return $"fast row entry {first}, but row {fast} starts at {fast * PageAllocator.ZoneBitCombinations}";
        return null;
    }

    /// <summary>
    /// Sets the block's node (at creation, and when the thread moves to a CPU of another node) and the fast path's row:
    /// the node itself, or <paramref name="nodeCount"/> when <paramref name="policy"/> (the thread has a memory policy).
    /// </summary>
    public static void SetNode(int* block, int node, bool policy, int nodeCount)
    {
        Volatile.Write(ref block[NodeSlot], node);
        int row = policy ? nodeCount : node;
        Volatile.Write(ref block[FastNodeSlot], row);
        Volatile.Write(ref block[FastRowSlot], row * PageAllocator.ZoneBitCombinations);
    }

    /// <summary>The thread's memory policy (<c>current-&gt;mempolicy</c>), null for the default (local allocation).</summary>
    public MemPolicy? Policy;

    /// <summary><c>current-&gt;il_prev</c>: the node the thread's last interleaved allocation went to.</summary>
    public int IlPrev;

    /// <summary>
    /// The owning allocator's id (not the allocator itself: threads keep their caches in thread statics, and a
    /// reference from there would keep a machine that nothing else holds from ever being collected).
    /// </summary>
    public readonly int OwnerId;
    /// <summary>
    /// The thread's block: the handshake (<see cref="OwnerDrainHandshake"/>) at its start, then the lists of every
    /// populated zone at <see cref="Zone.PcpOffset"/>. The owner reaches it through a primitive thread-static pointer.
    /// </summary>
    public int* Mem;
    /// <summary>The block's handshake: the owner enters it around each fast-path operation, drainers under <see cref="DrainLock"/>.</summary>
    public OwnerDrainHandshake* Hs => Handshake(Mem);

    /// <summary>The handshake at the start of a thread's block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static OwnerDrainHandshake* Handshake(int* block) => (OwnerDrainHandshake*)block;
    public readonly Thread Thread;
    /// <summary>The CPU (of the machine's profile) this thread's lists are reported under (changed by a migration).</summary>
    public int Cpu;
    /// <summary>Serialises drainers, and an owner that found DrainRequested set.</summary>
    public readonly Lock DrainLock = new();
    /// <summary>Next cache of the same thread (for other allocators).</summary>
    public PcpThreadCache? NextInThread;
    /// <summary>Set when the owning allocator is disposed; the cache is then unlinked lazily.</summary>
    public bool Dead;

    /// <summary>The lists of one zone (a null view for unpopulated zones).</summary>
    public PerCpuPages For(Zone z) => z.Populated ? new PerCpuPages(Mem + z.PcpOffset, z.PcpCap, z) : default;

    /// <summary>
    /// Frees the block; the caller guarantees no thread uses the lists any more. <paramref name="fold"/> first moves
    /// what the block still counts (its NUMA events) to the zones, under the same lock the readers take.
    /// </summary>
    public void Release(Action<nint>? fold = null)
    {
        lock (DrainLock)
        {
            var m = Mem;
            if (m != null) fold?.Invoke((nint)m);
            Mem = null;
            if (m != null) NativeMemory.AlignedFree(m);
        }
    }

    /// <summary>
    /// A dead allocator's block is not freed at its dispose (its owner may still hold the address in a thread
    /// static); it goes when the owner thread lets go of the cache or ends.
    /// </summary>
    ~PcpThreadCache()
    {
        var m = Mem;
        Mem = null;
        if (m != null) NativeMemory.AlignedFree(m);
    }
}
