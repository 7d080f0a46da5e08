// NUMA nodes (pglist_data): which zones each node owns, each CPU's node, the distance table, the zonelists
// build_all_zonelists() builds per node (node order by distance with node_load round-robin, the node's own
// zones first; __GFP_THISNODE's own-node list), and the calling thread's node (numa_node_id()), which the
// thread's per-CPU block carries so the fast path reads it with the lists. A one-node machine is node 0.
using System.Runtime.CompilerServices;
using Kmem.Core;

namespace Kmem.Paging;

/// <summary>The NUMA events zone_statistics() counts per zone (<c>enum numa_stat_item</c>), in /proc/zoneinfo's order.</summary>
internal enum NumaStat
{
    /// <summary><c>numa_hit</c>: allocated on the intended node.</summary>
    Hit,
    /// <summary><c>numa_miss</c>: allocated here though another node was intended.</summary>
    Miss,
    /// <summary><c>numa_foreign</c>: intended for this node but allocated elsewhere.</summary>
    Foreign,
    /// <summary><c>numa_interleave</c>: an interleave policy's page that landed on its intended node.</summary>
    Interleave,
    /// <summary><c>numa_local</c>: allocated here by a CPU of this node.</summary>
    Local,
    /// <summary><c>numa_other</c>: allocated here by a CPU of another node.</summary>
    Other,
}

/// <summary>One node's own state (the parts of <c>struct pglist_data</c> the zones do not hold).</summary>
internal sealed class PgData
{
    public PgData(int id) => Id = id;
    /// <summary><c>node_id</c>.</summary>
    public int Id { get; }
    /// <summary>The zonelist's node order (<c>node_order[]</c> of build_zonelists()), this node first when it has memory.</summary>
    public int[] FallbackOrder = [];
    /// <summary>Times this node's kswapd was woken.</summary>
    public long KswapdWakeups;
    /// <summary><c>kswapd_failures</c>: kswapd runs in a row that left the node unbalanced.</summary>
    public int KswapdFailures;
}

internal sealed unsafe partial class PageAllocator
{
    /// <summary>NUMA_NO_NODE: "any node", the calling thread's.</summary>
    public const int NumaNoNode = -1;

    /// <summary>MAX_NUMNODES of the modelled kernels (NODES_SHIFT 6): the weight find_next_best_node() gives distance over load.</summary>
    private const int MaxNumNodes = 64;

    /// <summary>PENALTY_FOR_NODE_WITH_CPUS: a node with CPUs of its own is a little less attractive as a fallback.</summary>
    private const int PenaltyForNodeWithCpus = 1;

    private readonly int[] _cpuNode;
    private readonly int[][] _distance;
    private PgData[] _nodes = [];
    private int[] _kswapdQueued = [];

    /// <summary><c>nr_online_nodes</c>.</summary>
    public int NodeCount { get; }

    /// <summary>Zones per node (every node has the machine's zone types): node n's zones are <c>Zones[n * ZonesPerNode ..]</c>.</summary>
    public int ZonesPerNode { get; }

    /// <summary>The nodes' own state, by node id.</summary>
    public IReadOnlyList<PgData> Nodes => _nodes;

    /// <summary>The zones of one node, in zone order (empty ones included).</summary>
    public ReadOnlySpan<Zone> NodeZones(int nid) => Zones.AsSpan(nid * ZonesPerNode, ZonesPerNode);

    /// <summary><c>cpu_to_node()</c>.</summary>
    public int NodeOfCpu(int cpu) => _cpuNode[cpu];

    /// <summary><c>node_distance()</c>.</summary>
    public int Distance(int from, int to) => _distance[from][to];

    /// <summary>The CPUs of a node (<c>cpumask_weight(cpumask_of_node())</c>), or all CPUs when it has none (zone_highsize()).</summary>
    public int CpusOfNode(int nid)
    {
        int n = 0;
        foreach (int c in _cpuNode) if (c == nid) n++;
        return n == 0 ? Cpus : n;
    }

    /// <summary>Whether a node has memory (<c>N_MEMORY</c>).</summary>
    public bool NodeHasMemory(int nid)
    {
        foreach (var z in NodeZones(nid)) if (z.Present > 0) return true;
        return false;
    }

    /// <summary>The nodes with memory as a kernel node list ("%*pbl": <c>0-1</c>, <c>0,2</c>): cpuset's mems_allowed.</summary>
    public string MemoryNodeList()
    {
        var parts = new List<string>();
        for (int n = 0; n < NodeCount; n++)
        {
            if (!NodeHasMemory(n)) continue;
            int end = n;
            while (end + 1 < NodeCount && NodeHasMemory(end + 1)) end++;
            parts.Add(end == n ? $"{n}" : $"{n}-{end}");
            n = end;
        }
        return string.Join(',', parts);
    }

    /// <summary><c>page_to_nid()</c> by frame index: the node of the zone the frame lies in, or -1 outside every zone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int NodeOfIdx(int idx) => ZoneOfIdx(idx) is { } z ? z.Node : -1;

    /// <summary><c>page_to_nid()</c> of an allocated frame, from the zone its descriptor records (no zone search).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int NodeOfFrame(int idx) => Zones[_f[idx].Zone].Node;

    /// <summary><c>numa_node_id()</c>: the node of the profile CPU the calling thread runs as.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int CurrentNode() => NodeCount == 1 ? 0 : PcpThreadCache.NodeOf(ThreadBlock());

    /// <summary>The profile CPU the calling thread runs as (its per-CPU block's).</summary>
    public int ThreadCpu() => ThreadCache().Cpu;

    /// <summary>
    /// Moves the calling thread to profile CPU <paramref name="cpu"/> (what <c>sched_setaffinity()</c> to one CPU does):
    /// its per-CPU lists are reported under that CPU from now on and it allocates from that CPU's node.
    /// </summary>
    public void MigrateCurrentThread(int cpu)
    {
        if ((uint)cpu >= (uint)Cpus) throw new ArgumentOutOfRangeException(nameof(cpu), cpu, $"CPU {cpu} is not online (the machine has {Cpus} CPUs)");
        var c = ThreadCache();
        lock (c.DrainLock)
        {
            c.Cpu = cpu;
            if (c.Mem != null) PcpThreadCache.SetNode(c.Mem, _cpuNode[cpu], c.Policy is not null, NodeCount);
        }
    }

    /// <summary>NR_VM_NUMA_EVENT_ITEMS.</summary>
    private const int NumaStatItems = 6;
    /// <summary>
    /// A thread's slots per zone: the six events, then <see cref="FastHitLocal"/> and <see cref="FastHitOther"/> (a
    /// zone's slots are 64 bytes).
    /// </summary>
    private const int NumaThreadSlots = 8;
    /// <summary>
    /// The thread slot the fast path counts in: an allocation that is both numa_hit and numa_local, counted once here
    /// and added to both events wherever they are read or folded (one increment on the fast path instead of two).
    /// </summary>
    private const int FastHitLocal = NumaStatItems;
    /// <summary>The same for an allocation that is numa_hit and numa_other (a thread of a memoryless node).</summary>
    private const int FastHitOther = NumaStatItems + 1;
    /// <summary>CONFIG_NUMA: whether zone_statistics() counts.</summary>
    private readonly bool _numaStats;
    /// <summary>Where a thread block's NUMA event counts start (in ints): <c>long[Zones.Length * 8]</c>, by zone index then <see cref="NumaStat"/> (and <see cref="FastHitLocal"/>).</summary>
    private readonly int _numaOffset;
    /// <summary>Serialises the readers of the NUMA events with the folding of a dead thread's counts into its zones.</summary>
    private readonly Lock _numaFold = new();

    /// <summary>Ints of one thread's block: the header, every populated zone's lists, then the NUMA event counts (CONFIG_NUMA).</summary>
    public int ThreadBlockInts { get; }

    /// <summary>CONFIG_NUMA (the NUMA events are counted, memory policies apply).</summary>
    public bool NumaEnabled => _numaStats;

    /// <summary>
    /// The fast path's zone_statistics(): the page came from the first zone of the thread's own zonelist (node row
    /// <paramref name="node"/>), the preferred zone, so it is a hit; local when that zone is the thread's node's (a thread
    /// of a memoryless node counts other). The common case, hit and local, is one increment of
    /// <see cref="FastHitLocal"/>. The counts are the thread's own (as the kernel's are per CPU), plain stores in its block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CountNumaFast(int* mem, Zone z, int node) => (*(long*)((byte*)mem + FastHitSlot(z, node)))++;

    /// <summary>Byte offset in a thread's block of the count a fast allocation from <paramref name="z"/> by a thread of <paramref name="node"/> adds to.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int FastHitSlot(Zone z, int node) => z.NumaStatsOffset + (z.Node == node ? FastHitLocal : FastHitOther) * sizeof(long);

    /// <summary>
    /// Fills <see cref="FastZoneEntry.NumaSlot"/> of every fast-path entry: what <see cref="CountNumaFast"/> would add to
    /// for a thread of the row's node, decided once. Without CONFIG_NUMA, a slot of the block that nothing reads.
    /// </summary>
    private void SetFastNumaSlots()
    {
        for (int i = 0; i < _fast.Length; i++) _fast[i].NumaSlot = FastNumaSlot(i);
    }

    /// <summary>The NUMA slot of fast-path entry <paramref name="i"/> (its zone and its row's node decide it).</summary>
    private int FastNumaSlot(int i)
    {
        int node = i / ZoneBitCombinations;
        Zone? z = _fast[i].Zone;
        return !_numaStats || z is null ? _numaOffset * sizeof(int) : FastHitSlot(z, node);
    }

    /// <summary>
    /// zone_statistics(preferred_zone, z, nr_account) (mm/page_alloc.c, 6.6; the same rules since 2.6): numa_hit on
    /// <paramref name="z"/> when it is on the preferred zone's node, else numa_miss on it and numa_foreign on the preferred
    /// zone; numa_local when <paramref name="z"/> is on the allocating CPU's node (numa_node_id()), else numa_other. One
    /// count per allocation whatever its order (rmqueue_pcplist()/rmqueue_buddy() pass 1), per page for the bulk allocator.
    /// </summary>
    private void ZoneStatistics(Zone preferred, Zone z, long n)
    {
        int* mem = ThreadBlock();
        long* s = (long*)(mem + _numaOffset);
        if (z.Node == preferred.Node) s[z.Index * NumaThreadSlots + (int)NumaStat.Hit] += n;
        else
        {
            s[z.Index * NumaThreadSlots + (int)NumaStat.Miss] += n;
            s[preferred.Index * NumaThreadSlots + (int)NumaStat.Foreign] += n;
        }
        s[z.Index * NumaThreadSlots + (z.Node == PcpThreadCache.NodeOf(mem) ? (int)NumaStat.Local : (int)NumaStat.Other)] += n;
    }

    /// <summary>__count_numa_event(): one event on a zone, in the calling thread's counts.</summary>
    private void CountNumaEvent(Zone z, NumaStat item)
    {
        if (!_numaStats) return;
        long* s = (long*)(ThreadBlock() + _numaOffset);
        s[z.Index * NumaThreadSlots + (int)item]++;
    }

    /// <summary>Moves a dead thread's NUMA event counts to the zones (its block is about to be freed).</summary>
    private void FoldNumaEvents(nint block)
    {
        if (!_numaStats) return;
        long* s = (long*)((int*)block + _numaOffset);
        for (int i = 0; i < Zones.Length; i++)
            for (int k = 0; k < NumaStatItems; k++)
            {
                long n = ThreadNumaEvent(s + i * NumaThreadSlots, (NumaStat)k);
                if (n != 0) Interlocked.Add(ref Zones[i].NumaEvents[k], n);
            }
    }

    /// <summary>
    /// Unlists dead threads' blocks and frees them, their NUMA events folded into the zones first, all under the fold
    /// lock: a reader (<see cref="NumaEventState"/>, same lock order: fold, list, block) sees each count either in the
    /// block or in the zone, never in neither.
    /// </summary>
    private void ReleaseDeadCaches(List<PcpThreadCache> dead)
    {
        lock (_numaFold)
        {
            lock (_cachesLock) foreach (var d in dead) _caches.Remove(d);
            foreach (var d in dead) d.Release(FoldNumaEvents);
        }
    }

    /// <summary>
    /// <c>zone_numa_event_state()</c> after fold_vm_numa_events(): one NUMA event count of a zone, the zone's folded
    /// counts plus every live thread's. 0 without CONFIG_NUMA (every view that prints them is CONFIG_NUMA's).
    /// </summary>
    public long NumaEventState(Zone z, NumaStat item)
    {
        if (!_numaStats) return 0;
        lock (_numaFold)
        {
            long n = Volatile.Read(ref z.NumaEvents[(int)item]);
            PcpThreadCache[] all;
            lock (_cachesLock) all = _caches.ToArray();
            foreach (var c in all)
                lock (c.DrainLock)
                    if (c.Mem != null) n += ThreadNumaEvent((long*)(c.Mem + _numaOffset) + z.Index * NumaThreadSlots, item);
            return n;
        }
    }

    /// <summary>
    /// One event of one zone in a thread's slots <paramref name="s"/>: numa_hit includes <see cref="FastHitLocal"/> and
    /// <see cref="FastHitOther"/>, numa_local the first, numa_other the second.
    /// </summary>
    private static long ThreadNumaEvent(long* s, NumaStat item)
    {
        long n = Volatile.Read(ref s[(int)item]);
        if (item is NumaStat.Hit or NumaStat.Local) n += Volatile.Read(ref s[FastHitLocal]);
        if (item is NumaStat.Hit or NumaStat.Other) n += Volatile.Read(ref s[FastHitOther]);
        return n;
    }

    /// <summary><c>sum_zone_numa_event_state()</c>: one NUMA event summed over a node's zones (nodeN/numastat).</summary>
    public long NodeNumaEventState(int nid, NumaStat item)
    {
        long n = 0;
        foreach (var z in NodeZones(nid)) n += NumaEventState(z, item);
        return n;
    }

    /// <summary>
    /// __alloc_pages_node(): from node <paramref name="nid"/>'s zonelist (its own zones first, then the fallback order;
    /// only its own with <c>__GFP_THISNODE</c>), or the calling thread's node when <paramref name="nid"/> is
    /// NUMA_NO_NODE (-1), never its memory policy. Order 0 takes the same per-CPU fast path as <see cref="Alloc(Gfp, int)"/>, from
    /// that node's first zone. The frame index of the block, or -1.
    /// </summary>
    public int AllocNode(int nid, Gfp gfp, int order)
    {
        if (_disposed) ThrowDisposed();
        if ((uint)nid >= (uint)NodeCount && nid != NumaNoNode)
            throw new ArgumentOutOfRangeException(nameof(nid), nid, $"node {nid} is not online (the machine has {NodeCount} node{(NodeCount == 1 ? "" : "s")})");
        if (FailPageAllocArmed && ShouldFailAllocPage(gfp, order)) return -1;
        if (order == 0)
        {
            int* mem = ThreadBlock();
            int idx = TryOrder0(mem, nid < 0 ? PcpThreadCache.NodeOf(mem) : nid, gfp);
            if (idx >= 0) return idx;
        }
        // NUMA_NO_NODE is numa_mem_id() here, never the thread's policy (which AllocGeneral applies for -1).
        return AllocGeneral(gfp, order, nid < 0 ? CurrentNode() : nid);
    }

    /// <summary>The zonelist a request from node <paramref name="nid"/> walks for highest zone <paramref name="hz"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Zone[] Zonelist(int nid, int hz, Gfp gfp) =>
        ((gfp & Gfp.ThisNode) != 0 ? _thisnodeZonelists : _zonelists)[nid * ZonesPerNode + hz];

    /// <summary>The zones a request from node <paramref name="nid"/> would try for <paramref name="gfp"/>, in order (for views and tests).</summary>
    public IReadOnlyList<Zone> ZonelistFor(int nid, Gfp gfp)
    {
        int hz = GfpZone(gfp);
        return hz < 0 ? [] : Zonelist(nid, hz, gfp);
    }

    /// <summary>
    /// The zonelist order (set_zonelist_order(), printed as "Built … zonelists in … order" before 4.14): "Zone" without
    /// NUMA; with NUMA "Node" on 64-bit and "Zone" on 32-bit from 3.16 ("mm: page_alloc: default node-ordering on
    /// 64-bit NUMA, zone-ordering on 32-bit"); before 3.16 default_zonelist_order()'s heuristic: Node order when a node
    /// has no ZONE_NORMAL or when DMA/DMA32 hold more than half of memory, or more than 70% of a node larger than the
    /// average. From 4.14 only node order exists ("mm, page_alloc: remove zonelist ordering"), and this says "Node".
    /// </summary>
    public string ZonelistOrder { get; private set; } = "Node";

    private string DefaultZonelistOrder()
    {
        if (_settings.Version.IsAtLeast(4, 14)) return "Node";
        if (!_settings.Numa) return "Zone";
        if (_settings.Version.IsAtLeast(3, 16)) return _settings.Is64Bit ? "Node" : "Zone";
        (long Low, long Total) Sizes(int nid)
        {
            long low = 0, total = 0;
            foreach (var z in NodeZones(nid))
            {
                if (!z.Populated) continue;
                if (z.Type is ZoneType.Dma or ZoneType.Dma32) low += z.Managed;
                total += z.Managed;
            }
            return (low, total);
        }
        long lowAll = 0, totalAll = 0;
        for (int nid = 0; nid < NodeCount; nid++)
        {
            foreach (var z in NodeZones(nid))
                if (!z.Populated && z.Type == ZoneType.Normal) return "Node";
            var (l, t) = Sizes(nid);
            lowAll += l;
            totalAll += t;
        }
        if (lowAll == 0 || lowAll > totalAll / 2) return "Node";
        int memoryNodes = Enumerable.Range(0, NodeCount).Count(NodeHasMemory);
        long average = totalAll / (memoryNodes + 1);
        for (int nid = 0; nid < NodeCount; nid++)
        {
            var (l, t) = Sizes(nid);
            if (l > 0 && t > average && l > t * 70 / 100) return "Node";
        }
        return "Zone";
    }

    /// <summary>
    /// build_all_zonelists(): for each node, the node order of find_next_best_node() (nearest first; among equals the
    /// lower id, a node without CPUs, then the least loaded, node_load spreading equal-distance groups), then the
    /// zonelist per highest zone: each node of that order with its populated zones from the highest down
    /// (build_zonelists_in_node_order()), and the node's own zones alone for __GFP_THISNODE.
    /// </summary>
    private void BuildAllZonelists()
    {
        _nodes = new PgData[NodeCount];
        _kswapdQueued = new int[NodeCount];
        var nodeLoad = new int[NodeCount];
        _zonelists = new Zone[NodeCount * ZonesPerNode][];
        _thisnodeZonelists = new Zone[NodeCount * ZonesPerNode][];
        ZonelistOrder = DefaultZonelistOrder();
        bool zoneOrder = ZonelistOrder == "Zone";
        for (int local = 0; local < NodeCount; local++)
        {
            var used = new bool[NodeCount];
            var order = new List<int>();
            int prev = local;
            for (int node; (node = FindNextBestNode(local, used, nodeLoad)) >= 0; prev = node)
            {
                if (Distance(local, node) != Distance(local, prev)) nodeLoad[node]++;
                order.Add(node);
            }
            _nodes[local] = new PgData(local) { FallbackOrder = order.ToArray() };
            for (int hz = 0; hz < ZonesPerNode; hz++)
            {
                var list = new List<Zone>();
                if (zoneOrder)
                {
                    // build_zonelists_in_zone_order() (before 4.14): each zone type from the highest down, across the
                    // nodes in their order, so a remote Normal comes before the local DMA32.
                    for (int t = hz; t >= 0; t--)
                        foreach (int n in order)
                            if (Zones[n * ZonesPerNode + t] is { Populated: true } z) list.Add(z);
                }
                else
                    foreach (int n in order) AddNodeZones(list, n, hz);
                _zonelists[local * ZonesPerNode + hz] = list.ToArray();
                var own = new List<Zone>();
                AddNodeZones(own, local, hz);
                _thisnodeZonelists[local * ZonesPerNode + hz] = own.ToArray();
            }
        }
    }

    /// <summary>build_zonerefs_node(): the node's populated zones at or below <paramref name="hz"/>, highest first.</summary>
    private void AddNodeZones(List<Zone> list, int nid, int hz)
    {
        for (int t = hz; t >= 0; t--)
        {
            var z = Zones[nid * ZonesPerNode + t];
            if (z.Populated) list.Add(z);
        }
    }

    /// <summary>find_next_best_node(): the local node first, then the cheapest memory node not yet used.</summary>
    private int FindNextBestNode(int node, bool[] used, int[] nodeLoad)
    {
        if (!used[node]) { used[node] = true; return node; }
        int best = -1, min = int.MaxValue;
        for (int n = 0; n < NodeCount; n++)
        {
            if (used[n] || !NodeHasMemory(n)) continue;
            int val = Distance(node, n) + (n < node ? 1 : 0);
            if (Array.IndexOf(_cpuNode, n) >= 0) val += PenaltyForNodeWithCpus;
            val = val * MaxNumNodes + nodeLoad[n];
            if (val < min) { min = val; best = n; }
        }
        if (best >= 0) used[best] = true;
        return best;
    }
}
