// The buddy page allocator of one machine, every NUMA node of it: the zones of all nodes (node by node),
// each node's zonelists, the GFP policy and the fast path (per-CPU lists for order 0, buddy lists under
// the zone lock otherwise). The slow path, reclaim, per-CPU list management, reports and invariant checks
// live in the other partial files; node bookkeeping (pgdat, zonelist order, the thread's node) in
// PageAllocator.Nodes.cs.
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator : IDisposable
{
    private readonly PageFrameTable _frames;
    private readonly PageFrame* _f;
    private readonly nint _linear;
    private readonly KernelLog _log;
    private readonly PageAllocatorSettings _settings;
    /// <summary>
    /// For each node and highest zone index (<c>[node * ZonesPerNode + hz]</c>): the populated zones to try, the node's own
    /// highest first, then the other nodes' in the node's fallback order (ZONELIST_FALLBACK).
    /// </summary>
    private Zone[][] _zonelists = [];
    /// <summary>The same for <c>__GFP_THISNODE</c>: the node's own zones only (ZONELIST_NOFALLBACK).</summary>
    private Zone[][] _thisnodeZonelists = [];
    /// <summary>Entries of a table indexed by the zone bits (<c>gfp &amp; GFP_ZONEMASK</c>): 16.</summary>
    internal const int ZoneBitCombinations = (int)GfpFlags.ZoneMask + 1;
    /// <summary>gfp_zone() for the 16 combinations of the four zone bits; -1 marks a bad combination.</summary>
    private readonly int[] _gfpZoneTable = new int[ZoneBitCombinations];
    /// <summary>For each node and combination of the zone bits (<c>[node * 16 + bits]</c>): the fast path's zone, mark and NUMA slot.</summary>
    private readonly FastZoneEntry[] _fast;

    /// <summary>One entry of <see cref="_fast"/>: what the order-0 fast path needs of a node row and zone-bit combination in one place.</summary>
    private struct FastZoneEntry
    {
        /// <summary>The first zone of the node's zonelist for the combination (null: none, or a memory policy's row).</summary>
        public Zone? Zone;
        /// <summary>That zone's low watermark plus its lowmem reserve for the combination's highest zone.</summary>
        public long Mark;
        /// <summary>
        /// Byte offset in a thread's block of the NUMA count a fast allocation by a thread of this node adds to: the
        /// zone's hit-and-local slot, its hit-and-other slot when the zone is on another node, or without CONFIG_NUMA
        /// a slot nothing reads.
        /// </summary>
        public int NumaSlot;
    }
    private volatile bool _disposed;
    /// <summary>The release's per-CPU list shape and order bounds, chosen at boot.</summary>
    private readonly PcpPolicy _pcp;

    public PageAllocator(PageAllocatorSettings settings, PageFrameTable frames, nint linearBase, KernelLog log, KernelLife life)
    {
        _settings = settings;
        Life = life;
        _frames = frames;
        _f = frames.Base;
        _linear = linearBase;
        _log = log;
        MachineId = settings.MachineId;
        _fastOwnerId = _allocatorId;
        BasePfn = settings.BasePfn;
        MaxOrder = settings.MaxOrder;
        PageblockOrder = settings.PageblockOrder;
        Cpus = settings.Cpus;
        ReclaimRetryWait = settings.ReclaimRetryWait;
        _pcp = PcpPolicy.For(settings.Version, settings.TransparentHugepage, settings.PageblockOrder);
        _pcpFastOrder = Math.Min(_pcp.HighestOrder, settings.MaxOrder - 1);

        // A page frame records its zone in a byte: nodes × zone types must fit (64 nodes × 4 types is the most a profile gives).
        if (settings.Zones.Length > 256) throw new ArgumentException($"{settings.Zones.Length} zones do not fit a page frame's zone byte (at most 256)");
        Zones = new Zone[settings.Zones.Length];
        Usemap = new PageblockUsemap(BasePfn, frames.Count, PageblockOrder);
        _pageblockTypes = Usemap.Types;
        NodeCount = settings.Zones.Length == 0 ? 1 : settings.Zones.Max(z => z.Node) + 1;
        ZonesPerNode = settings.Zones.Length / NodeCount;
        for (int i = 0; i < Zones.Length; i++)
        {
            var (type, s, e, node) = settings.Zones[i];
            if (node != i / ZonesPerNode) throw new ArgumentException("the zones must come node by node, each node with the same zone types");
            Zones[i] = new Zone(type, i, s, e, frames, BasePfn, MaxOrder, PageblockOrder, Usemap) { Node = node, ZoneIdx = i % ZonesPerNode };
        }
        _cpuNode = settings.CpuNodes.Length == settings.Cpus ? settings.CpuNodes : new int[settings.Cpus];
        _distance = settings.Distances ?? Enumerable.Range(0, NodeCount).Select(a => Enumerable.Range(0, NodeCount).Select(b => a == b ? 10 : 20).ToArray()).ToArray();
        // One row per node, and a last row without zones for threads with a memory policy (see PcpThreadCache.FastNodeOf).
        _fast = new FastZoneEntry[(NodeCount + 1) * ZoneBitCombinations];
        _pcpPlaces = GC.AllocateArray<PcpPlace>(Math.Max(Zones.Length, 1), pinned: true);   // one at least: its address is taken
        _pcpPlacesPtr = (PcpPlace*)Unsafe.AsPointer(ref _pcpPlaces[0]);
        HighStartIdx = int.MaxValue;
        foreach (var z in Zones)
            // Lowmem ends at one physical limit whatever the node: the lowest HighMem start of any node.
            if (z.Type == ZoneType.HighMem && z.EndPfn > z.StartPfn) HighStartIdx = Math.Min(HighStartIdx, (int)(z.StartPfn - BasePfn));
        BuildGfpZoneTable();
        InitMemory();
        BuildAllZonelists();
        SetupWatermarks();
        int offset = PcpThreadCache.BlockHeader;
        foreach (var z in Zones)
        {
            if (!z.Populated) continue;
            z.PcpOffset = offset;
            z.PcpLists = _pcp.Lists;
            z.PcpCap = PerCpuPages.Capacity(z, _pcp);
            z.PcpHighLimit = z.PcpHigh;
            offset += PerCpuPages.Stride(z);
        }
        // CONFIG_NUMA: the thread's NUMA event counts per zone follow the lists (longs, so an even int offset).
        _numaStats = settings.Numa;
        _numaOffset = (offset + 1) & ~1;
        foreach (var z in Zones) z.NumaStatsOffset = _numaOffset * sizeof(int) + z.Index * NumaThreadSlots * sizeof(long);
        // Without CONFIG_NUMA the fast path's one increment goes to a slot nothing reads (so it needs no test).
        ThreadBlockInts = _numaOffset + (_numaStats ? Zones.Length * NumaThreadSlots * 2 : 2);
        SetFastNumaSlots();
        foreach (var z in Zones) (_pcpPlaces[z.Index].Offset, _pcpPlaces[z.Index].Cap) = (z.PcpOffset, z.PcpCap);
    }

    public int MachineId { get; }
    public ulong BasePfn { get; }
    public int MaxOrder { get; }
    public int PageblockOrder { get; }
    public int Cpus { get; }
    /// <summary>The release's per-CPU list shape, pcp->high formula and MAX_ORDER naming.</summary>
    public PcpPolicy Pcp => _pcp;
    public Zone[] Zones { get; }
    /// <summary>The machine-wide pageblock types the zones write through to (the free fast path's lookup).</summary>
    public PageblockUsemap Usemap { get; }
    // Usemap.Types, read by the free fast paths from the allocator itself.
    private readonly byte* _pageblockTypes;

    /// <summary>By zone index: where the zone's lists are in a thread's block and its pcp->high (<see cref="PcpPlace"/>).</summary>
    private readonly PcpPlace[] _pcpPlaces;
    /// <summary>The same table by pointer (it is pinned for the allocator's life), so that the free fast path tests no array reference.</summary>
    private readonly PcpPlace* _pcpPlacesPtr;

    /// <summary>
    /// A zone's per-CPU lists as the order-0 free fast path needs them: their offset in a thread's block (ints), their
    /// stacks' capacity, and pcp->high (a copy of <see cref="Zone.PcpHigh"/>, written with it). The free finds them from
    /// the page's zone byte in one line, without loading the zone object.
    /// </summary>
    private struct PcpPlace
    {
        public int Offset, Cap, High, Unused;
    }

    /// <summary>The usemap's byte for frame <paramref name="idx"/>: its pageblock's type, or Shared or Unclaimed (one load).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int UsemapType(int idx) => _pageblockTypes[(uint)idx];
    public KernelLog Log => _log;
    /// <summary>The machine's life: every layer above checks it (and counts its slow paths in) through here.</summary>
    public KernelLife Life { get; }
    public PageFrameTable Frames => _frames;
    public long MinFreeKbytes { get; private set; }
    public long TotalReservePages { get; private set; }
    public long TotalRamPages { get; private set; }
    public long TotalCmaPages { get; private set; }
    /// <summary>CMA pages of the areas that were activated (an inactive area's never reach the buddy allocator).</summary>
    public long ActiveCmaPages { get; private set; }
    public long PhysPages { get; private set; }
    public TimeSpan ReclaimRetryWait { get; set; }
    /// <summary>Node-wide counters the upper layers feed (slab, kernel misc reclaimable, …).</summary>
    public VmStat Stat { get; } = new();

    // ================================================================== watermarks

    /// <summary>init_per_zone_wmark_min(), setup_per_zone_wmarks(), lowmem reserves and per-CPU list sizes.</summary>
    private void SetupWatermarks()
    {
        long lowmemPages = 0;
        foreach (var z in Zones) if (z.Type != ZoneType.HighMem && z.Type != ZoneType.Movable) lowmemPages += z.Managed;
        MinFreeKbytes = _settings.MinFreeKbytes ?? Watermarks.MinFreeKbytes(lowmemPages * 4);
        RecalculateWatermarks();
    }

    /// <summary>Recomputes every zone's watermarks and reserves from <see cref="MinFreeKbytes"/>.</summary>
    public void SetMinFreeKbytes(long kbytes)
    {
        MinFreeKbytes = kbytes;
        RecalculateWatermarks();
    }

    private void RecalculateWatermarks()
    {
        // __setup_per_zone_wmarks() shares min_free_kbytes among the lowmem zones of every node; setup_per_zone_lowmem_reserve()
        // works within each node.
        // From 5.16 ZONE_MOVABLE is capped like HighMem ("mm/page_alloc: fix min_free_kbytes calculation regarding
        // ZONE_MOVABLE"): it leaves the lowmem share and gets clamp(managed / 1024, 32, 128), an empty one 32.
        bool movableLikeHigh = Version.IsAtLeast(5, 16);
        var marks = Watermarks.ZoneWatermarks(MinFreeKbytes, Zones.Select(z => (z.Managed, z.Type == ZoneType.HighMem || (movableLikeHigh && z.Type == ZoneType.Movable))).ToArray());
        var reserve = new long[Zones.Length][];
        for (int n = 0; n < NodeCount; n++)
        {
            var own = Watermarks.LowmemReserve(Zones.Skip(n * ZonesPerNode).Take(ZonesPerNode).Select(z => (z.Managed, Watermarks.DefaultLowmemReserveRatio(z.Type))).ToArray());
            for (int t = 0; t < ZonesPerNode; t++) reserve[n * ZonesPerNode + t] = own[t];
        }
        for (int i = 0; i < Zones.Length; i++)
        {
            var z = Zones[i];
            LockOrder.Enter(LockRank.Zone, z.Lock);
            lock (z.Lock)
            {
                (z.WmarkMin, z.WmarkLow, z.WmarkHigh) = marks[i];
                z.LowmemReserve = reserve[i];
                // pageset_set_high_and_batch(); from 5.14 setup_per_zone_wmarks() updates pcp->high with the watermarks.
                // zone_highsize() splits the low watermark among the CPUs of the zone's node (all CPUs when it has none).
                var (high, batch, highMax) = Watermarks.PcpSizes(_pcp.Formula, Watermarks.PcpBatch(z.Managed), z.WmarkLow, z.Managed, CpusOfNode(z.Node));
                // The lists' room is fixed at boot: a later min_free_kbytes that would raise high keeps the boot value.
                if (z.PcpHighLimit > 0) high = Math.Min(high, z.PcpHighLimit);
                z.PcpBatch = batch;
                z.PcpHigh = high;
                _pcpPlaces[i].High = high;
                z.PcpHighMax = Math.Max(highMax, high);
                z.PcpFreeCount = !_pcp.ScaledFree ? batch : high < batch ? 1 : Math.Min(batch, high - batch);
            }
        }
        for (int n = 0; n < NodeCount; n++)
            for (int b = 0; b < ZoneBitCombinations; b++)
            {
                int hz = _gfpZoneTable[b];
                var list = hz < 0 ? [] : _zonelists[n * ZonesPerNode + hz];
                var first = list.Length == 0 ? null : list[0];
                ref FastZoneEntry e = ref _fast[n * ZoneBitCombinations + b];
                e.Mark = first is null ? 0 : first.WmarkLow + first.LowmemReserve[hz];
                e.Zone = first;
            }
        TotalReservePages = Watermarks.TotalReservePages(Zones.Select(z => (z.Managed, z.WmarkHigh, z.LowmemReserve)).ToArray());
    }

    // ================================================================== allocation fast path

    /// <summary>fail_page_alloc is armed: the slow paths ask <see cref="ShouldFailAllocPage"/> (one of <see cref="_gates"/>).</summary>
    private bool FailPageAllocArmed => (Volatile.Read(ref _gates) & GateFailArmed) != 0;

    /// <summary>
    /// What closes the fast paths: <see cref="GateShutdown"/> once the machine shuts down, <see cref="GateFailArmed"/>
    /// while fail_page_alloc is armed. While any is set, <see cref="_fastOwnerId"/> matches no thread, so the fast paths
    /// find no block and every call takes a slow path, which checks for shutdown and injects faults.
    /// </summary>
    private int _gates;
    private const int GateShutdown = 1, GateFailArmed = 2;
    private readonly Lock _gateLock = new();

    /// <summary>
    /// The owner id <see cref="FastThreadBlock"/> compares the thread's with: <see cref="_allocatorId"/> while the fast
    /// paths are open, -1 (no thread's) while a gate is closed. The test the fast paths make anyway (does this thread
    /// hold a block of this allocator?) is thus also their test for shutdown and fault injection.
    /// </summary>
    private volatile int _fastOwnerId;

    private void SetGate(int gate, bool closed)
    {
        lock (_gateLock) SetGateLocked(gate, closed);
    }

    private void SetGateLocked(int gate, bool closed)
    {
        _gates = closed ? _gates | gate : _gates & ~gate;
        _fastOwnerId = _gates == 0 ? _allocatorId : -1;
    }

    /// <summary>fail_page_alloc: forced page allocation failures (ignore-gfp-wait and ignore-gfp-highmem on, min-order 1, by default).</summary>
    public FaultAttr FailPageAlloc => Volatile.Read(ref _failPageAlloc) ?? CreateFailPageAlloc();
    private FaultAttr? _failPageAlloc;

    /// <summary>Made once: two first callers at once get the same object (a second one would never be consulted).</summary>
    private FaultAttr CreateFailPageAlloc()
    {
        var f = new FaultAttr("fail_page_alloc", Log, ignoreGfpReclaim: true, minOrder: 1) { IgnoreGfpHighmem = true };
        f.Changed = FailPageAllocChanged;
        return Interlocked.CompareExchange(ref _failPageAlloc, f, null) ?? f;
    }

    /// <summary>
    /// The gate follows fail_page_alloc's armed state, read under the gate's lock: two changes made at once end with the
    /// gate as the last state says, not as the last caller to reach the lock saw it.
    /// </summary>
    private void FailPageAllocChanged()
    {
        lock (_gateLock) SetGateLocked(GateFailArmed, _failPageAlloc!.Armed);
    }

    /// <summary>should_fail_alloc_page().</summary>
    private bool ShouldFailAllocPage(Gfp gfp, int order)
    {
        var f = FailPageAlloc;
        if (order < f.MinOrder || (gfp & Gfp.NoFail) != 0) return false;
        if (f.IgnoreGfpHighmem && (gfp & Gfp.HighMem) != 0) return false;
        if (f.IgnoreGfpReclaim && (gfp & Gfp.DirectReclaim) != 0) return false;
        if (!f.ShouldFail(1L << order)) return false;
        Interlocked.Increment(ref FailureCount);
        return true;
    }

    /// <summary>alloc_pages(): from the calling thread's node (<c>numa_node_id()</c>); the frame index of the block, or -1.</summary>
    /// <remarks>
    /// The common case is written out here with no call that returns: an order-0 request of a thread that has its
    /// block, whose node's first zone passes its low watermark, from a thread list that has a page. Every other case
    /// (an empty list to refill, a drainer holding the lists, a first allocation on this thread, fault injection,
    /// __GFP_ZERO) ends in a tail call, so the method keeps its values in scratch registers and saves none.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Alloc(Gfp gfp, int order) => AllocFrom(FastThreadBlock(), gfp, order);

    /// <summary>
    /// <see cref="Alloc(Gfp, int)"/> with the calling thread's block already looked up (<see cref="FastThreadBlock"/>, null
    /// when the thread has none for this allocator yet): the thread-local read is the one call of the fast path, and
    /// made in the caller it leaves this method without a call that returns, so without registers to save.
    /// </summary>
    private int AllocFrom(int* mem, Gfp gfp, int order)
    {
        // No test for shutdown or fault injection here: either makes mem null (see _fastOwnerId).
        if (order == 0 && mem != null)
        {
            // The thread's row of the fast table, as the block keeps it (row 0 without CONFIG_NUMA: one node, no policy).
            if (TryFastZone(PcpThreadCache.FastRowOf(mem), gfp, 0, out Zone? z, out int mt, out int numaSlot)) // then the row is the thread's node (a policy's row has no zones)
            {
                var hs = PcpThreadCache.Handshake(mem);
                int* pcp = mem + (uint)z.PcpOffset;
                if (hs->OwnerEnter() && pcp[1 + mt] != 0) // no drainer, and the list has a page
                {
                    int idx = PerCpuPages.PopHot(pcp, z.PcpCap, mt);
                    hs->OwnerExit();
                    PrepOrder0(idx, mt, z);
                    (*(long*)((byte*)mem + (uint)numaSlot))++;   // zone_statistics(): hit, and local or other
                    if ((gfp & Gfp.Zero) != 0) return ZeroedPage(idx);
                    return idx;
                }
                hs->OwnerExit();
            }
        }
        else if ((uint)(order - 1) < (uint)_pcpFastOrder && mem != null)
            return AllocPcpHighOrder(mem, gfp, order);
        return AllocSlow(gfp, order);
    }

    /// <summary>
    /// The first zone of node row <paramref name="row"/>'s zonelist for <paramref name="gfp"/> when it passes the low
    /// watermark of zone_watermark_fast() for <paramref name="order"/> (for an order above 0, less the block's other
    /// pages and the highatomic reserve; the free CMA pages count only for a movable request), else null (also for
    /// __GFP_THISNODE and a thread with a memory policy, whose row has no zones). <paramref name="mt"/> is
    /// gfp_migratetype().
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Zone? FastZone(int row, Gfp gfp, int order, out int mt) =>
        TryFastZone((uint)row * ZoneBitCombinations, gfp, order, out Zone? z, out mt, out _) ? z : null;

    /// <summary>
    /// <see cref="FastZone(int, Gfp, int, out int)"/> as a test, for the row whose first entry is <paramref name="rowBase"/>
    /// (the row times <see cref="ZoneBitCombinations"/>), with the byte offset in a thread's block of the count a fast
    /// allocation of the row's own thread adds to (<see cref="FastZoneEntry.NumaSlot"/>). The answer is the test itself,
    /// so that the order-0 fast path tests the zone once (a null result would be tested again).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryFastZone(uint rowBase, Gfp gfp, int order, [NotNullWhen(true)] out Zone? z, out int mt, out int numaSlot)
    {
        nuint zb = rowBase + (uint)(gfp & GfpFlags.ZoneMask);
        ref FastZoneEntry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_fast), zb);
        z = e.Zone;
        numaSlot = e.NumaSlot;
        mt = (int)(gfp & GfpFlags.MovableMask) >> GfpFlags.MovableShift; // gfp_migratetype(): Movable 1, Reclaimable 2
        if (mt == 3) mt = (int)MigrateType.Unmovable;
        if (z is null || (gfp & Gfp.ThisNode) != 0) return false;
        long free = Volatile.Read(ref z.FreePages);
        if (order != 0) free -= ((1L << order) - 1) + Volatile.Read(ref z.NrReservedHighatomic);
        if (mt != (int)MigrateType.Movable) free -= Volatile.Read(ref z.FreeCmaPages);
        return free > e.Mark;
    }

    /// <summary>__GFP_ZERO on a page of the fast path: clears it and returns it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int ZeroedPage(int idx)
    {
        new Span<byte>((void*)IdxToVirt(idx), PhysicalMemory.PageSize).Clear();
        return idx;
    }

    /// <summary><see cref="AllocFrom"/> past its first test: fault injection, the refill of an empty list, the higher orders.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int AllocSlow(Gfp gfp, int order)
    {
        if (_disposed) ThrowDisposed();
        if (FailPageAllocArmed && ShouldFailAllocPage(gfp, order)) return -1;
        if (order == 0)
        {
            // The common case, inlined: the first zone of the thread's node's zonelist passes its low watermark and the
            // thread's list for the migratetype has a page. One thread-local lookup, no lock, no atomic.
            int* mem = ThreadBlock();
            // Without CONFIG_NUMA there is one node and no memory policy: row 0, with no load waiting on the block.
            int idx = TryOrder0(mem, _numaStats ? PcpThreadCache.FastNodeOf(mem) : 0, gfp);
            if (idx >= 0) return idx;
        }
        else if ((uint)order <= (uint)_pcpFastOrder)
        {
            int idx = TryPcpHighOrder(ThreadBlock(), gfp, order);
            if (idx >= 0) return idx;
        }
        return AllocGeneral(gfp, order, -1);
    }

    /// <summary>
    /// The high-order fast path for a thread that has its block (fault injection already checked; <paramref name="order"/>
    /// is 1.._pcpFastOrder). The common case is written out with no call that returns, as the order-0 one is: a plain
    /// block (neither __GFP_COMP nor __GFP_ZERO) from a list that has one, in the first zone of the thread's node when it
    /// passes its watermark for the order (<see cref="TryPcpHighOrder"/>'s test). Anything else, the refill of an empty
    /// list included, ends in the tail call to <see cref="AllocPcpHighOrderSlow"/>, which decides exactly as before.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int AllocPcpHighOrder(int* mem, Gfp gfp, int order)
    {
        if ((gfp & (Gfp.Comp | Gfp.Zero)) == 0
            && TryFastZone(PcpThreadCache.FastRowOf(mem), gfp, order, out Zone? z, out int mt, out int numaSlot)
            && Volatile.Read(ref z.PcpTypeOrders) >> order != 0)
        {
            var hs = PcpThreadCache.Handshake(mem);
            int* pcp = mem + (uint)z.PcpOffset;
            int list = PageTypes.PcpTypes * order + mt; // _pcp.Index(mt, order) for an order up to PAGE_ALLOC_COSTLY_ORDER
            if (hs->OwnerEnter() && pcp[1 + (uint)list] != 0)
            {
                int idx = PerCpuPages.PopHot(pcp, z.PcpCap, list, order);
                hs->OwnerExit();
                PrepPlainBlock(idx, order, mt, z);
                (*(long*)((byte*)mem + (uint)numaSlot))++;   // zone_statistics(): hit, and local or other
                return idx;
            }
            hs->OwnerExit();
        }
        return AllocPcpHighOrderSlow(mem, gfp, order);
    }

    /// <summary><see cref="AllocPcpHighOrder"/> past its first test: the refill of an empty list, __GFP_COMP and __GFP_ZERO, a drainer, the general path.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int AllocPcpHighOrderSlow(int* mem, Gfp gfp, int order)
    {
        int idx = TryPcpHighOrder(mem, gfp, order);
        return idx >= 0 ? idx : AllocGeneral(gfp, order, -1);
    }

    /// <summary>The highest order the per-CPU lists hold below the THP order: PAGE_ALLOC_COSTLY_ORDER from 5.14, else 0.</summary>
    private int _pcpFastOrder;

    /// <summary>Turns the high-order fast path off, so that tests can compare it with the general path it shortcuts.</summary>
    internal void DisableHighOrderFastPath() => _pcpFastOrder = 0;

    /// <summary>
    /// The fast path of orders 1..PAGE_ALLOC_COSTLY_ORDER from 5.14: what the general path's first attempt does when the
    /// first zone of the thread's node's zonelist passes its low watermark for the order, without the zonelist walk.
    /// zone_watermark_fast() for an order above 0 is __zone_watermark_ok(): the free pages less the block's other pages,
    /// the highatomic reserve and (unless the request may use CMA) the free CMA pages must stay above the mark plus the
    /// lowmem reserve, and some free list of the order or above must hold a block of a per-CPU type (the one-load
    /// <see cref="Zone.PcpTypeOrders"/>). rmqueue() then takes the block from the thread's list of that order
    /// (rmqueue_pcplist()), refilled from the buddy lists in a batch scaled to the order. Anything else (a policy,
    /// __GFP_THISNODE, a zone below its mark, a free area holding only CMA or highatomic blocks) returns -1 and the
    /// caller takes the general path, which decides exactly as before.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int TryPcpHighOrder(int* mem, Gfp gfp, int order)
    {
        if (!TryFastZone(PcpThreadCache.FastRowOf(mem), gfp, order, out Zone? z, out int mt, out _)
            || Volatile.Read(ref z.PcpTypeOrders) >> order == 0) return -1;
        int idx = RmqueuePcpHigh(mem, z, order, mt, mt == (int)MigrateType.Movable ? AllocFlags.Cma : 0);
        if (idx < 0) return -1;
        if ((gfp & Gfp.Comp) == 0)
        {
            PrepPlainBlock(idx, order, mt, z);
            if ((gfp & Gfp.Zero) != 0) new Span<byte>((void*)IdxToVirt(idx), PhysicalMemory.PageSize << order).Clear();
        }
        else
        {
            PrepNewPage(idx, order, gfp, mt);
            _f[idx].Zone = (byte)z.Index;
        }
        if (_numaStats) CountNumaFast(mem, z, PcpThreadCache.NodeOf(mem));
        return idx;
    }

    /// <summary>
    /// The order-0 fast path from node row <paramref name="row"/> of the fast-zone table (a node, or the empty row of a
    /// thread with a memory policy): the first zone of that node's zonelist, if it passes its low watermark and the
    /// thread's list has a page; -1 otherwise (the caller takes the general path). Not for __GFP_THISNODE.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int TryOrder0(int* mem, int row, Gfp gfp)
    {
        Zone? z = FastZone(row, gfp, 0, out int mt);
        if (z is null) return -1;
        int idx = RmqueuePcp(mem, z, mt, mt == (int)MigrateType.Movable ? AllocFlags.Cma : 0);
        if (idx < 0) return -1;
        PrepOrder0(idx, mt, z);
        if (_numaStats) CountNumaFast(mem, z, PcpThreadCache.NodeOf(mem)); // row may be another node's (alloc_pages_node)
        if ((gfp & Gfp.Zero) != 0) new Span<byte>((void*)IdxToVirt(idx), PhysicalMemory.PageSize).Clear();
        return idx;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PrepOrder0(int idx, int mt, Zone z) => PrepPlainBlock(idx, 0, mt, z);

    /// <summary>
    /// prep_new_page() of a plain (not compound) block's head, without __GFP_ZERO: Flags=Allocated, RefCount=1 |
    /// MapCount=0, Order, Migratetype, Zone | Private=0, in three stores.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PrepPlainBlock(int idx, int order, int mt, Zone z)
    {
        ref ulong words = ref Unsafe.As<PageFrame, ulong>(ref _f[(uint)idx]);
        words = (ulong)PageFlags.Allocated | (1UL << 32);
        Unsafe.Add(ref words, 1) = ((ulong)(byte)order << 32) | ((ulong)(byte)mt << 40) | z.FrameWordZone;
        Unsafe.Add(ref words, 3) = 0;
    }

    /// <summary>The general allocation path: every zone of the node's zonelist, then the slow path (<paramref name="nid"/> -1: the thread's node).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int AllocGeneral(Gfp gfp, int order, int nid)
    {
        using var _ = Life.Enter();
        if ((uint)order >= (uint)MaxOrder)
        {
            // WARN_ON_ONCE_GFP(order >= MAX_ORDER) up to 6.3, (order > MAX_ORDER) from 6.4, (order > MAX_PAGE_ORDER) from 6.8.
            if ((gfp & Gfp.NoWarn) == 0) WarnOnce("order >= MAX_ORDER", $"WARNING: CPU: {CurrentCpu()} PID: {Environment.CurrentManagedThreadId} at mm/page_alloc.c {_pcp.AllocFunction}: {_pcp.OrderCheck(order, MaxOrder)}");
            return -1;
        }
        int hz = GfpZone(gfp);
        if (hz < 0) return BadGfpZone(gfp);
        int mt = (int)PageTypes.FromGfp(gfp);
        AllocFlags af = AllocFlags.WmarkLow;
        if (mt == (int)MigrateType.Movable) af |= AllocFlags.Cma;
        Zone[] list;
        if (nid >= 0) list = Zonelist(nid, hz, gfp);
        else
        {
            int* mem = ThreadBlock();
            int node = PcpThreadCache.NodeOf(mem);
            // alloc_pages(): a thread with a memory policy of its own (not for __GFP_THISNODE, which keeps the default).
            if (PcpThreadCache.FastNodeOf(mem) != node && (gfp & Gfp.ThisNode) == 0) return AllocPolicy(gfp, order, hz, mt, af);
            list = Zonelist(node, hz, gfp);
        }
        int idx = GetPageFromFreelist(gfp, order, af, list, hz, mt);
        if (idx < 0) idx = AllocSlowPath(gfp, order, list, hz, mt);
        return idx;
    }

    /// <summary>get_page_from_freelist(): the first zone of the zonelist that passes its watermark.</summary>
    private int GetPageFromFreelist(Gfp gfp, int order, AllocFlags af, Zone[] list, int hz, int mt)
    {
        for (int i = 0; i < list.Length; i++)
        {
            var z = list[i];
            if ((af & AllocFlags.NoWatermarks) == 0)
            {
                long mark = (af & AllocFlags.WmarkMask) switch
                {
                    AllocFlags.WmarkMin => z.WmarkMin,
                    AllocFlags.WmarkLow => z.WmarkLow,
                    _ => z.WmarkHigh,
                };
                if (!ZoneWatermarkFast(z, order, mark, hz, af)) continue;
            }
            int idx = order == 0 ? RmqueuePcp(z, mt, af)
                // rmqueue(): from 5.14 the orders pcp_allowed_order() admits come from the lists too (movable requests
                // only when they may use CMA, as the movable list can hold CMA pages)
                : _pcp.Allowed(order) && ((af & AllocFlags.Cma) != 0 || mt != (int)MigrateType.Movable) ? RmqueuePcpHigh(z, order, mt, af)
                : RmqueueBuddy(z, order, mt, af);
            if (idx < 0) continue;
            PrepNewPage(idx, order, gfp, mt);
            _f[idx].Zone = (byte)z.Index;
            if (_numaStats) ZoneStatistics(list[0], z, 1);
            if (order > 0 && (af & AllocFlags.Harder) != 0)
            {
                LockOrder.Enter(LockRank.Zone, z.Lock);
                lock (z.Lock) z.ReserveHighatomicPageblock(idx);
            }
            return idx;
        }
        return -1;
    }

    /// <summary>zone_watermark_fast().</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool ZoneWatermarkFast(Zone z, int order, long mark, int hz, AllocFlags af)
    {
        long free = Volatile.Read(ref z.FreePages);
        long cma = (af & AllocFlags.Cma) == 0 ? Volatile.Read(ref z.FreeCmaPages) : 0;
        if (order == 0 && free - cma > mark + z.LowmemReserve[hz]) return true;
        return ZoneWatermarkOk(z, order, mark, hz, af, free);
    }

    /// <summary>__zone_watermark_ok().</summary>
    public static bool ZoneWatermarkOk(Zone z, int order, long mark, int hz, AllocFlags af, long freePages)
    {
        long min = mark;
        bool harder = (af & (AllocFlags.Harder | AllocFlags.Oom)) != 0;
        freePages -= (1L << order) - 1;
        if ((af & AllocFlags.High) != 0) min -= min / 2;
        if (!harder) freePages -= Volatile.Read(ref z.NrReservedHighatomic);
        else if ((af & AllocFlags.Oom) != 0) min -= min / 2;
        else min -= min / 4;
        if ((af & AllocFlags.Cma) == 0) freePages -= Volatile.Read(ref z.FreeCmaPages);
        if (freePages <= min + z.LowmemReserve[hz]) return false;
        if (order == 0) return true;
        if (Volatile.Read(ref z.PcpTypeOrders) >> order != 0) return true; // a block of a per-CPU type, order or above
        for (int o = order; o < z.MaxOrder; o++)
        {
            if ((af & AllocFlags.Cma) != 0 && !z.ListEmpty(o, (int)MigrateType.Cma)) return true;
            if (harder && !z.ListEmpty(o, (int)MigrateType.HighAtomic)) return true;
        }
        return false;
    }

    /// <summary>rmqueue() for order &gt; 0: the buddy lists under the zone lock.</summary>
    private int RmqueueBuddy(Zone z, int order, int mt, AllocFlags af)
    {
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            int idx = -1;
            if ((af & AllocFlags.Harder) != 0) idx = z.RmqueueSmallest(order, (int)MigrateType.HighAtomic);
            if (idx < 0) idx = z.Rmqueue(order, mt, af, out _);
            return idx;
        }
    }

    /// <summary>prep_new_page(): refcount 1, compound metadata, zeroing.</summary>
    private void PrepNewPage(int idx, int order, Gfp gfp, int mt)
    {
        ref PageFrame f = ref _f[idx];
        f.Flags = PageFlags.Allocated;
        f.RefCount = 1;
        f.MapCount = 0;
        f.Order = (byte)order;
        f.Migratetype = (byte)mt;
        f.Private = 0;
        f.Next = f.Prev = -1;
        if (order > 0 && (gfp & Gfp.Comp) != 0)
        {
            f.Flags |= PageFlags.Head;
            int n = 1 << order;
            for (int i = 1; i < n; i++)
            {
                ref PageFrame t = ref _f[idx + i];
                t.Flags = PageFlags.Tail;
                t.CompoundHead = idx;
                t.RefCount = 0;
            }
        }
        // __GFP_ZERO: kernel_init_free_pages() clears each page with clear_highpage(), through kmap_atomic() for HighMem;
        // Kmem clears the frames through its own view of them (the address goes nowhere).
        if ((gfp & Gfp.Zero) != 0)
            new Span<byte>((void*)IdxToVirt(idx), PhysicalMemory.PageSize << order).Clear();
    }

    // ================================================================== free

    /// <summary>__free_pages(): drop a reference; the last one frees the block.</summary>
    /// <remarks>
    /// The common case is written out here with no call that returns: the sole owner frees an order-0 page of a
    /// per-CPU type's pageblock on a thread that has its block, and the list stays below high. Everything else ends in
    /// a tail call (<see cref="FreeSlow"/>, or the flush of a list that reached high).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Free(int idx, int order, string caller) => FreeTo(FastThreadBlock(), idx, order, caller);

    /// <summary><see cref="Free(int, int, string)"/> with the calling thread's block already looked up (as for <see cref="AllocFrom"/>).</summary>
    private void FreeTo(int* mem, int idx, int order, string caller)
    {
        // No test for shutdown here: it makes mem null (see _fastOwnerId), and the slow path checks.
        ref PageFrame f = ref _f[(uint)idx];
        // PG flags Allocated alone and a refcount of 1: the first two words of the descriptor, compared at once.
        if (order == 0 && mem != null && Unsafe.As<PageFrame, ulong>(ref f) == ((ulong)PageFlags.Allocated | 1UL << 32) && f.Order == 0)
        {
            // The block's type from the machine-wide usemap, one load from the index: HighAtomic and CMA pages, isolated
            // blocks and a block two zones share take the slow path.
            int mt = UsemapType(idx);
            if (mt < PageTypes.PcpTypes)
            {
                int zone = f.Zone;                      // read before the page is on a list: another thread may own it after
                ref PcpPlace place = ref _pcpPlacesPtr[(uint)zone];
                var hs = PcpThreadCache.Handshake(mem);
                if (hs->OwnerEnter())                    // no drainer: the lists are ours
                {
                    Unsafe.As<PageFrame, ulong>(ref f) = (ulong)PageFlags.Pcp;   // Flags=Pcp, RefCount=0: one store
                    f.Migratetype = (byte)mt;           // set_pcppage_migratetype()
                    int count = PerCpuPages.PushHot(mem + (uint)place.Offset, place.Cap, mt, idx);
                    hs->OwnerExit();
                    if (count >= place.High) FreePcpOverHigh(Zones[zone]);
                    return;
                }
                hs->OwnerExit();
            }
        }
        else if ((uint)(order - 1) < (uint)_pcpFastOrder && mem != null
            && Unsafe.As<PageFrame, ulong>(ref f) == ((ulong)PageFlags.Allocated | 1UL << 32) && f.Order == order)
        {
            // From 5.14, the sole owner of a plain block of order 1..PAGE_ALLOC_COSTLY_ORDER frees it to its thread's list.
            FreePcpHighOrder(mem, idx, order);
            return;
        }
        FreeSlow(idx, order, caller);
    }

    /// <summary><see cref="FreeTo"/> past its first test.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeSlow(int idx, int order, string caller)
    {
        if (_disposed) ThrowDisposed();
        ref PageFrame f = ref _f[idx];
        if (f.RefCount == 1 && f.Flags == PageFlags.Allocated && f.Order == order)
        {
            // The common case, inlined: the sole owner frees an order-0 page to its thread's list.
            if (order == 0)
            {
                f.RefCount = 0;
                FreeUnrefPage(Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(Zones), f.Zone), idx);
                return;
            }
            // From 5.14, a non-compound block of order 1..PAGE_ALLOC_COSTLY_ORDER goes to its list the same way.
            if (order <= _pcpFastOrder)
            {
                f.RefCount = 0;
                FreeUnrefPageHigh(Zones[f.Zone], idx, order);
                return;
            }
        }
        FreeGeneral(idx, order, caller);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeGeneral(int idx, int order, string caller)
    {
        using var _ = Life.Enter();
        ref PageFrame f = ref _f[idx];
        // The caller holds the only reference to an allocated head of that order.
        if (f.RefCount == 1 && f.Order == order && (f.Flags & ~PageFlags.Head) == PageFlags.Allocated)
        {
            f.RefCount = 0;
            FreeTheBlock(idx, order);
            return;
        }
        FreeChecked(idx, order, caller);
    }

    private void FreeChecked(int idx, int order, string caller)
    {
        ref PageFrame f = ref _f[idx];
        string? bad = FreeCheckReason(idx, order);
        if (bad is not null) throw BadPage(idx, bad, caller);
        int left = Interlocked.Decrement(ref f.RefCount);
        if (left > 0)
        {
            // __free_pages(): others still hold the head; a non-compound block gives back its upper parts.
            if ((f.Flags & PageFlags.Head) == 0)
            {
                while (order-- > 0)
                {
                    int part = idx + (1 << order);
                    ref PageFrame p = ref _f[part];
                    p.Flags = PageFlags.Allocated;
                    p.Zone = f.Zone;
                    p.Order = (byte)order;
                    p.RefCount = 0;
                    FreeTheBlock(part, order);
                }
                f.Order = 0;
            }
            return;
        }
        FreeTheBlock(idx, order);
    }

    /// <summary>Why freeing <paramref name="idx"/> with <paramref name="order"/> is a bug, or null.</summary>
    private string? FreeCheckReason(int idx, int order)
    {
        ref PageFrame f = ref _f[idx];
        if ((f.Flags & PageFlags.Reserved) != 0) return "PAGE_FLAGS_CHECK_AT_FREE flag(s) set";
        if ((f.Flags & PageFlags.Tail) != 0) return "VM_BUG_ON_PAGE(PageTail(page))";
        if ((f.Flags & (PageFlags.Buddy | PageFlags.Pcp)) != 0 || f.RefCount <= 0 || (f.Flags & PageFlags.Allocated) == 0)
            return "VM_BUG_ON_PAGE(page_ref_count(page) == 0)";
        if ((f.Flags & PageFlags.Slab) != 0) return "PAGE_FLAGS_CHECK_AT_FREE flag(s) set";
        if (f.Order != order) return $"freed with order {order}, allocated with order {f.Order}";
        return null;
    }

    /// <summary>free_the_page(): order 0 (and from 5.14 the pcp orders) to the per-CPU lists, larger blocks to the buddy lists.</summary>
    private void FreeTheBlock(int idx, int order)
    {
        ref PageFrame f = ref _f[idx];
        if ((f.Flags & PageFlags.Head) != 0)
        {
            int n = 1 << order;
            for (int i = 1; i < n; i++) _f[idx + i] = default;
        }
        var z = ZoneOfIdx(idx)!;
        if (order == 0)
        {
            FreeUnrefPage(z, idx);
            return;
        }
        if (_pcp.Allowed(order))
        {
            FreeUnrefPageHigh(z, idx, order); // free_the_page(): pcp_allowed_order() blocks go to the lists (5.14 on)
            return;
        }
        int mt = (int)z.PageblockType(idx);
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock) z.FreeOnePage(idx, order, mt);
        SignalFree();
    }

    // ================================================================== misc

    private static void ThrowDisposed() => KernelLife.ThrowDead();

    private int BadGfpZone(Gfp gfp)
    {
        _log.Err($"kmem: invalid zone modifiers in gfp mask {gfp:X} ({GfpFlags.Format(gfp)}): at most one of __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM");
        throw new ArgumentException($"invalid GFP zone modifiers: {GfpFlags.Format(gfp)} (at most one of Dma, Dma32, HighMem)", nameof(gfp));
    }

    /// <summary>The first step of the machine's shutdown: every entry point throws from now on.</summary>
    public void BeginShutdown()
    {
        _disposed = true;
        SetGate(GateShutdown, true);
    }

    /// <summary>Holds every thread's per-CPU lists for good (see <see cref="DisposeThreadCaches"/>).</summary>
    public void Dispose()
    {
        BeginShutdown();
        DisposeThreadCaches();
    }
}
