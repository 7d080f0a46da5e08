// The page allocator's /proc views, byte for byte: buddyinfo and pagetypeinfo (mm/vmstat.c), zoneinfo with the
// pagesets and stat lines of the modelled release, meminfo with the lines of its release and config (fs/proc/meminfo.c).
using System.Text;
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Diagnostics;

/// <summary>Kernel configuration choices that change which /proc lines exist (per architecture, release and config).</summary>
internal sealed record ViewConfig
{
    public long HugePageSizeKb { get; init; } = 2048;
    /// <summary>x86's arch_report_meminfo(): KiB mapped with 4 KiB pages, with the middle level's large pages and with
    /// 1 GiB pages (the 1G line only where it is non-zero).</summary>
    public (long K4, long M2, long G1)? DirectMap { get; init; }
    /// <summary>The name of the middle level's large page: "2M" (x86_64, i386 with PAE) or "4M" (i386 without PAE).</summary>
    public string DirectMapLarge { get; init; } = "2M";
    public long VmallocTotalKb { get; init; }
    public int Cpus { get; init; } = 1;
    /// <summary>The meminfo lines of the modelled release and configuration.</summary>
    public MemInfoFields MemInfo { get; init; } = new();
    /// <summary>The start of the vmalloc window and its busy areas (lowest first), for the walk meminfo did before 4.4;
    /// null where the machine has no vmalloc window.</summary>
    public Func<(nint Start, VmArea[] Areas)?>? VmallocAreas { get; init; }
    /// <summary>CONFIG_SWAP: zoneinfo's per-node nr_swapcached (from 5.14).</summary>
    public bool Swap { get; init; }
    /// <summary>cma_used_pages(): the pages the CMA areas' bitmaps hand out now (Rockchip's CmaAllocated line).</summary>
    public Func<long>? CmaUsedPages { get; init; }
    /// <summary>pcpu_nr_pages() in KiB: the populated pages of the per-CPU chunks (the first chunk where the boot modelled one).</summary>
    public long PercpuKb { get; init; }
    /// <summary>CONFIG_NUMA: zoneinfo's numa_* lines, the node devices of /sys/devices/system/node.</summary>
    public bool Numa { get; init; }
}

internal static class PageViews
{
    public static void Register(ProcFs fs, PageAllocator pa, ViewConfig cfg)
    {
        fs.Register("/proc/buddyinfo", () => BuddyInfo(pa));
        fs.Register("/sys/kernel/debug/extfrag/unusable_index", () => UnusableIndex(pa));
        fs.Register("/proc/pagetypeinfo", () => PageTypeInfo(pa));
        fs.Register("/proc/zoneinfo", () => ZoneInfo(pa, cfg));
        fs.Register("/proc/meminfo", () => MemInfo(pa, cfg));
        fs.Register("/proc/sys/vm/min_free_kbytes", () => $"{pa.MinFreeKbytes}\n");
        fs.Register("/proc/sys/vm/lowmem_reserve_ratio", () =>
            string.Join('\t', pa.Zones.Take(pa.ZonesPerNode).Select(z => Watermarks.DefaultLowmemReserveRatio(z.Type))) + "\n");
        fs.Register("/proc/sys/vm/watermark_scale_factor", () => $"{Watermarks.WatermarkScaleFactor}\n");
        NodeViews.Register(fs, pa, cfg);
    }

    /// <summary>One zone's numbers for /proc/buddyinfo and /proc/pagetypeinfo.</summary>
    internal sealed record ZoneFreeCounts(int Node, string Zone, long[,] FreePerTypeOrder, long[] BlocksPerType)
    {
        public long FreeBlocks(int order)
        {
            long n = 0;
            for (int mt = 0; mt < FreePerTypeOrder.GetLength(0); mt++) n += FreePerTypeOrder[mt, order];
            return n;
        }
    }

    /// <summary>The counts of every populated zone, read under each zone's lock.</summary>
    public static List<ZoneFreeCounts> Snapshot(PageAllocator pa)
    {
        var list = new List<ZoneFreeCounts>();
        foreach (var z in pa.Zones)
        {
            if (!z.Populated) continue;
            var free = new long[PageTypes.MigrateTypes, pa.MaxOrder];
            var blocks = new long[PageTypes.MigrateTypes];
            LockOrder.Enter(LockRank.Zone, z.Lock);
            lock (z.Lock)
            {
                for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
                    for (int o = 0; o < pa.MaxOrder; o++) free[mt, o] = z.NrFree(o, mt);
                for (int b = 0; b < z.PageblockCount; b++)
                {
                    long probe = Math.Max(z.PageblockStartIdx(b), z.StartIdx);
                    if (!pa.PfnValid(pa.BasePfn + (ulong)probe)) continue; // pfn_to_online_page() == NULL
                    blocks[(int)z.PageblockTypeAt(b)]++;
                }
            }
            list.Add(new ZoneFreeCounts(z.Node, z.Name, free, blocks));
        }
        return list;
    }

    /// <summary>
    /// extfrag unusable_index (mm/vmstat.c): per order, the share of free memory in blocks too small for it,
    /// (free_pages − (suitable blocks &lt;&lt; order)) × 1000 / free_pages, printed "%d.%03d " (1.000 with nothing free).
    /// </summary>
    public static string UnusableIndex(PageAllocator pa)
    {
        var sb = new StringBuilder();
        foreach (var z in Snapshot(pa))
        {
            sb.Append($"Node {z.Node}, zone {z.Zone,8} ");
            long freePages = 0;
            for (int o = 0; o < pa.MaxOrder; o++) freePages += z.FreeBlocks(o) << o;
            for (int order = 0; order < pa.MaxOrder; order++)
            {
                long suitable = 0;
                for (int o = order; o < pa.MaxOrder; o++) suitable += z.FreeBlocks(o) << (o - order);
                long index = freePages == 0 ? 1000 : (freePages - (suitable << order)) * 1000 / freePages;
                sb.Append($"{index / 1000}.{index % 1000:D3} ");
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>/proc/buddyinfo: populated zones only, node by node (frag_start()/frag_next() walk the online pgdats).</summary>
    public static string BuddyInfo(PageAllocator pa) => FormatBuddyInfo(Snapshot(pa), pa.MaxOrder);

    /// <summary>frag_show_print(): "Node %d, zone %8s " then "%6lu " per order.</summary>
    public static string FormatBuddyInfo(IEnumerable<ZoneFreeCounts> zones, int maxOrder)
    {
        var sb = new StringBuilder();
        foreach (var z in zones)
        {
            sb.Append($"Node {z.Node}, zone {z.Zone,8} ");
            for (int o = 0; o < maxOrder; o++) sb.Append($"{z.FreeBlocks(o),6} ");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>/proc/pagetypeinfo: free blocks per type and order, then pageblocks per type.</summary>
    public static string PageTypeInfo(PageAllocator pa) => FormatPageTypeInfo(Snapshot(pa), pa.PageblockOrder, pa.MaxOrder);

    /// <summary>
    /// /proc/pagetypeinfo: pagetypeinfo_show() is the seq_file's ->show for each online pgdat (mm/vmstat.c, since 2.6.24),
    /// so the whole block (header, free table, block-count table) repeats per node with no blank line between nodes; a
    /// node without memory prints nothing (<c>if (!node_state(pgdat->node_id, N_MEMORY)) return 0;</c>).
    /// </summary>
    public static string FormatPageTypeInfo(IReadOnlyList<ZoneFreeCounts> zones, int pageblockOrder, int maxOrder)
    {
        var sb = new StringBuilder();
        foreach (var node in zones.GroupBy(z => z.Node).OrderBy(g => g.Key))
            FormatPageTypeInfoNode(sb, node.ToList(), pageblockOrder, maxOrder);
        return sb.ToString();
    }

    /// <summary>pagetypeinfo_show() of one node: header, pagetypeinfo_showfree() and pagetypeinfo_showblockcount().</summary>
    private static void FormatPageTypeInfoNode(StringBuilder sb, IReadOnlyList<ZoneFreeCounts> zones, int pageblockOrder, int maxOrder)
    {
        sb.Append($"Page block order: {pageblockOrder}\n");
        sb.Append($"Pages per block:  {1L << pageblockOrder}\n");
        sb.Append('\n');
        sb.Append($"{"Free pages count per migrate type at order",-43} ");
        for (int o = 0; o < maxOrder; o++) sb.Append($"{o,6} ");
        sb.Append('\n');
        foreach (var z in zones)
        {
            for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
            {
                sb.Append($"Node {z.Node,4}, zone {z.Zone,8}, type {PageTypes.MigrateTypeNames[mt],12} ");
                for (int o = 0; o < maxOrder; o++)
                {
                    long n = z.FreePerTypeOrder[mt, o];
                    sb.Append(n >= 100000 ? $">{100000,6} " : $"{n,6} ");
                }
                sb.Append('\n');
            }
        }
        sb.Append($"\n{"Number of blocks type ",-23}");
        foreach (var name in PageTypes.MigrateTypeNames) sb.Append($"{name,12} ");
        sb.Append('\n');
        foreach (var z in zones)
        {
            sb.Append($"Node {z.Node}, zone {z.Zone,8} ");
            foreach (var c in z.BlocksPerType) sb.Append($"{c,12} ");
            sb.Append('\n');
        }
    }

    /// <summary>The per-node stat names of 5.10 (node_stat_item order); <see cref="NodeStats"/> adapts them to a release.</summary>
    private static readonly string[] s_nodeStats =
    [
        "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
        "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file", "workingset_nodes",
        "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon", "workingset_activate_file",
        "workingset_restore_anon", "workingset_restore_file", "workingset_nodereclaim", "nr_anon_pages", "nr_mapped",
        "nr_file_pages", "nr_dirty", "nr_writeback", "nr_writeback_temp", "nr_shmem", "nr_shmem_hugepages",
        "nr_shmem_pmdmapped", "nr_file_hugepages", "nr_file_pmdmapped", "nr_anon_transparent_hugepages",
        "nr_vmscan_write", "nr_vmscan_immediate_reclaim", "nr_dirtied", "nr_written", "nr_kernel_misc_reclaimable",
        "nr_foll_pin_acquired", "nr_foll_pin_released", "nr_kernel_stack",
    ];

    private static readonly string[] s_zoneStats =
    [
        "nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file", "nr_zone_active_file",
        "nr_zone_unevictable", "nr_zone_write_pending", "nr_mlock", "nr_page_table_pages", "nr_bounce", "nr_free_cma",
    ];

    private static int Fls(long x) => x <= 0 ? 0 : 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)x);

    /// <summary>
    /// The per-node stats zoneinfo prints for a release (5.10's list, and from 5.11 on):
    /// nr_page_table_pages becomes a node stat after nr_kernel_stack (5.11, "mm: memcontrol: account pagetables per node"),
    /// nr_swapcached at the end with CONFIG_SWAP (5.14, NR_SWAPCACHE), nr_throttled_written after nr_written (5.16,
    /// reclaim throttling), nr_sec_page_table_pages after nr_page_table_pages (6.0, "mm: add NR_SECONDARY_PAGETABLE to count
    /// secondary page table uses"). Releases before 5.10 print 5.10's list (their differences are not modelled).
    /// </summary>
    internal static IReadOnlyList<string> NodeStats(KernelVersion v, bool swap)
    {
        if (!v.IsAtLeast(5, 11)) return s_nodeStats;
        var list = new List<string>(s_nodeStats);
        if (v.IsAtLeast(5, 16)) list.Insert(list.IndexOf("nr_written") + 1, "nr_throttled_written");
        list.Add("nr_page_table_pages");
        if (v.IsAtLeast(6, 0)) list.Add("nr_sec_page_table_pages");
        if (swap && v.IsAtLeast(5, 14)) list.Add("nr_swapcached");
        return list;
    }

    /// <summary>The per-zone stats of a release: nr_page_table_pages leaves them in 5.11 (it becomes a node stat).</summary>
    internal static IReadOnlyList<string> ZoneStats(KernelVersion v) =>
        v.IsAtLeast(5, 11) ? s_zoneStats.Where(n => n != "nr_page_table_pages").ToArray() : s_zoneStats;

    /// <summary>The zoneinfo names of <c>enum numa_stat_item</c> (vmstat_text[], CONFIG_NUMA).</summary>
    private static readonly string[] s_numaStats = ["numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other"];

    /// <summary>
    /// The node stat a zoneinfo line shows for one node: the counters Kmem keeps per node (slab pages, kernel misc
    /// reclaimable); the rest are user-memory counters Kmem has no pages for (0).
    /// </summary>
    private static long NodeStatValue(PageAllocator pa, string name, int nid) => name switch
    {
        "nr_slab_reclaimable" => pa.Stat.NodeSlabReclaimablePages(nid),
        "nr_slab_unreclaimable" => pa.Stat.NodeSlabUnreclaimablePages(nid),
        "nr_kernel_misc_reclaimable" => pa.Stat.NodeKernelMiscReclaimablePages(nid),
        _ => 0,
    };

    /// <summary>
    /// /proc/zoneinfo (mm/vmstat.c zoneinfo_show(), one call per online pgdat): every zone of every node, populated or not
    /// (walk_zones_in_node() with assert_populated false). The node's stats come under its first populated zone
    /// (is_zone_first_populated(), 4.8 on), so node 1 of an x86_64 machine has them under its Normal, not under its empty
    /// DMA/DMA32. With CONFIG_NUMA the zone's numa_* events follow its stats: after them from 4.14 (their own
    /// numa_stat_item array, "mm: update NUMA counter threshold size"), before nr_free_cma while they were zone stats.
    /// node_unreclaimable is the node's (pgdat->kswapd_failures >= MAX_RECLAIM_RETRIES).
    /// </summary>
    public static string ZoneInfo(PageAllocator pa, ViewConfig cfg)
    {
        var sb = new StringBuilder();
        var rel = pa.Version;
        var nodeStats = NodeStats(rel, cfg.Swap);
        var zoneStats = ZoneStats(rel);
        bool numaOwnArray = rel.IsAtLeast(4, 14);
        for (int nid = 0; nid < pa.NodeCount; nid++)
        {
            Zone? first = null;
            foreach (var z in pa.NodeZones(nid))
                if (z.Populated) { first = z; break; }
            bool unreclaimable = Volatile.Read(ref pa.Nodes[nid].KswapdFailures) >= PageAllocator.MaxReclaimRetries;
            foreach (var z in pa.NodeZones(nid))
            {
                sb.Append($"Node {nid}, zone {z.Name,8}");
                if (ReferenceEquals(z, first))
                {
                    sb.Append("\n  per-node stats");
                    foreach (var name in nodeStats) sb.Append($"\n      {name,-12} {NodeStatValue(pa, name, nid)}");
                }
                sb.Append($"\n  pages free     {z.FreePages}");
                // "mm/page_alloc.c: show watermark_boost of zone in zoneinfo" (5.16); Kmem never boosts.
                if (rel.IsAtLeast(5, 16)) sb.Append("\n        boost    0");
                sb.Append($"\n        min      {z.WmarkMin}");
                sb.Append($"\n        low      {z.WmarkLow}");
                sb.Append($"\n        high     {z.WmarkHigh}");
                sb.Append($"\n        spanned  {z.Spanned}");
                sb.Append($"\n        present  {z.Present}");
                sb.Append($"\n        managed  {z.Managed}");
                // "mm/page_alloc: count CMA pages per zone and print them in /proc/zoneinfo" (5.12).
                if (rel.IsAtLeast(5, 12)) sb.Append($"\n        cma      {z.CmaPages}");
                sb.Append($"\n        protection: ({string.Join(", ", z.LowmemReserve)})");
                if (!z.Populated)
                {
                    sb.Append('\n');
                    continue;
                }
                foreach (var name in zoneStats)
                {
                    if (cfg.Numa && !numaOwnArray && name == "nr_free_cma") AppendNumaEvents(sb, pa, z);
                    long v = name switch
                    {
                        "nr_free_pages" => z.FreePages,
                        "nr_free_cma" => z.FreeCmaPages,
                        _ => 0,
                    };
                    sb.Append($"\n      {name,-12} {v}");
                }
                if (cfg.Numa && numaOwnArray) AppendNumaEvents(sb, pa, z);
                AppendPagesets(sb, pa, cfg, z);
                sb.Append($"\n  node_unreclaimable:  {(unreclaimable ? 1 : 0)}");
                sb.Append($"\n  start_pfn:           {z.StartPfn}");
                sb.Append('\n');
            }
        }
        return sb.ToString();
    }

    /// <summary>zone_numa_event_state() (zone_numa_state_snapshot() before 5.14) of each numa_stat_item.</summary>
    private static void AppendNumaEvents(StringBuilder sb, PageAllocator pa, Zone z)
    {
        for (int i = 0; i < s_numaStats.Length; i++)
            sb.Append($"\n      {s_numaStats[i],-12} {pa.NumaEventState(z, (NumaStat)i)}");
    }

    /// <summary>
    /// The pagesets: for_each_online_cpu, so every CPU of the machine appears in every populated zone of every node
    /// (per_cpu_pageset is per zone and CPU), with the vm stats threshold inside the loop.
    /// </summary>
    private static void AppendPagesets(StringBuilder sb, PageAllocator pa, ViewConfig cfg, Zone z)
    {
        sb.Append("\n  pagesets");
        long mem = z.Managed >> (27 - 12);
        int threshold = Math.Min(125, 2 * Fls(cfg.Cpus) * (1 + Fls(mem)));
        bool autoTune = pa.Pcp.Formula == PcpHighFormula.AutoTune;
        for (int cpu = 0; cpu < cfg.Cpus; cpu++)
        {
            sb.Append($"\n    cpu: {cpu}");
            if (autoTune)
            {
                // 6.7 ("mm: tune PCP high automatically"): high_min/high_max, the labels padded to line up. pcp->high
                // is 0 until the CPU first frees a page (nr_pcp_high() clamps it into [high_min, high_max] then);
                // Kmem keeps it at high_min from the CPU's first list on (the auto-tuning itself is not modelled).
                sb.Append($"\n              count:    {pa.PcpCount(z.Index, cpu)}");
                sb.Append($"\n              high:     {(pa.PcpUsed(cpu) ? z.PcpHigh : 0)}");
                sb.Append($"\n              batch:    {z.PcpBatch}");
                sb.Append($"\n              high_min: {z.PcpHigh}");
                sb.Append($"\n              high_max: {z.PcpHighMax}");
            }
            else
            {
                sb.Append($"\n              count: {pa.PcpCount(z.Index, cpu)}");
                sb.Append($"\n              high:  {z.PcpHigh}");
                sb.Append($"\n              batch: {z.PcpBatch}");
            }
            sb.Append($"\n  vm stats threshold: {threshold}");
        }
    }

    private static void Kb(StringBuilder sb, string label, long pages) => sb.Append($"{label,-16}{pages * 4,8} kB\n");

    /// <summary>si_mem_available() (from 4.5): free minus reserves, plus what reclaim could give back.</summary>
    public static long MemAvailablePages(PageAllocator pa) => MemAvailablePages(pa, new MemInfoFields());

    /// <summary>si_mem_available() as the release computes it: from 3.14 the zones' low watermarks are kept back, from 4.5
    /// totalreserve_pages; reclaimable slab (and from 4.17 the kernel's misc reclaimable memory) counts half, at most low.</summary>
    public static long MemAvailablePages(PageAllocator pa, MemInfoFields f)
    {
        long free = pa.Zones.Sum(z => Volatile.Read(ref z.FreePages));
        long wmarkLow = pa.Zones.Sum(z => z.WmarkLow);
        long available = free - (f.Available == MemAvailableRule.LowWatermarks ? wmarkLow : pa.TotalReservePages);
        long reclaimable = pa.Stat.SlabReclaimablePages + (f.MiscReclaimableAvailable ? pa.Stat.KernelMiscReclaimablePages : 0);
        available += reclaimable - Math.Min(reclaimable / 2, wmarkLow);
        return Math.Max(0, available);
    }

    /// <summary>get_vmalloc_info() before 4.4, in bytes: the areas' sizes and the largest gap of the window between them.</summary>
    private static (ulong Used, ulong Chunk) VmallocWalk(ViewConfig cfg)
    {
        ulong total = (ulong)cfg.VmallocTotalKb << 10;
        if (cfg.VmallocAreas?.Invoke() is not { } v || v.Areas.Length == 0) return (0, total);
        ulong used = 0, chunk = 0, prevEnd = 0;
        foreach (var a in v.Areas)
        {
            ulong start = (ulong)(a.Address - v.Start);
            used += a.Size;
            chunk = Math.Max(chunk, start - prevEnd);
            prevEnd = start + a.Size;
        }
        return (used, Math.Max(chunk, total > prevEnd ? total - prevEnd : 0));
    }

    /// <summary>/proc/meminfo with the lines, in the order, of the modelled release and configuration (fs/proc/meminfo.c,
    /// hugetlb_report_meminfo(), x86's arch_report_meminfo()); the rules are in <see cref="MemInfoFields"/>.</summary>
    public static string MemInfo(PageAllocator pa, ViewConfig cfg)
    {
        var f = cfg.MemInfo;
        var sb = new StringBuilder();
        long totalram = pa.TotalRamPages;
        long free = pa.Zones.Sum(z => Volatile.Read(ref z.FreePages));
        long sR = pa.Stat.SlabReclaimablePages, sU = pa.Stat.SlabUnreclaimablePages;
        Kb(sb, "MemTotal:", totalram);
        Kb(sb, "MemFree:", free);
        if (f.Available != MemAvailableRule.None) Kb(sb, "MemAvailable:", MemAvailablePages(pa, f));
        foreach (var l in new[] { "Buffers:", "Cached:", "SwapCached:", "Active:", "Inactive:", "Active(anon):", "Inactive(anon):",
                     "Active(file):", "Inactive(file):", "Unevictable:", "Mlocked:" })
            Kb(sb, l, 0);
        if (f.HighMem)
        {
            long totalHigh = pa.Zones.Where(z => z.Type == ZoneType.HighMem).Sum(z => z.Managed);
            long freeHigh = pa.Zones.Where(z => z.Type == ZoneType.HighMem).Sum(z => Volatile.Read(ref z.FreePages));
            Kb(sb, "HighTotal:", totalHigh);
            Kb(sb, "HighFree:", freeHigh);
            Kb(sb, "LowTotal:", totalram - totalHigh);
            Kb(sb, "LowFree:", free - freeHigh);
        }
        Kb(sb, "SwapTotal:", 0);
        Kb(sb, "SwapFree:", 0);
        if (f.Zswap)
        {
            Kb(sb, "Zswap:", 0);
            Kb(sb, "Zswapped:", 0);
        }
        foreach (var l in new[] { "Dirty:", "Writeback:", "AnonPages:", "Mapped:", "Shmem:" }) Kb(sb, l, 0);
        if (f.KReclaimable) Kb(sb, "KReclaimable:", sR + pa.Stat.KernelMiscReclaimablePages);
        Kb(sb, "Slab:", sR + sU);
        Kb(sb, "SReclaimable:", sR);
        Kb(sb, "SUnreclaim:", sU);
        sb.Append($"KernelStack:    {0,8} kB\n");
        if (f.ShadowCallStack) sb.Append($"ShadowCallStack:{0,8} kB\n");
        Kb(sb, "PageTables:", 0);
        if (f.SecPageTables) Kb(sb, "SecPageTables:", 0);
        foreach (var l in new[] { "NFS_Unstable:", "Bounce:", "WritebackTmp:" }) Kb(sb, l, 0);
        Kb(sb, "CommitLimit:", totalram * 50 / 100);
        Kb(sb, "Committed_AS:", 0);
        sb.Append($"VmallocTotal:   {cfg.VmallocTotalKb,8} kB\n");
        switch (f.Vmalloc)
        {
            case VmallocUsage.Pages:
                Kb(sb, "VmallocUsed:", pa.Stat.VmallocPages);
                Kb(sb, "VmallocChunk:", 0);
                break;
            case VmallocUsage.Zero:
                Kb(sb, "VmallocUsed:", 0);
                Kb(sb, "VmallocChunk:", 0);
                break;
            default:
                var (used, chunk) = VmallocWalk(cfg);
                sb.Append($"VmallocUsed:    {used >> 10,8} kB\n");
                sb.Append($"VmallocChunk:   {chunk >> 10,8} kB\n");
                break;
        }
        if (f.Percpu) sb.Append($"{"Percpu:",-16}{cfg.PercpuKb,8} kB\n");
        if (f.HardwareCorrupted) sb.Append($"HardwareCorrupted: {0,5} kB\n");
        if (f.AnonHugePages) Kb(sb, "AnonHugePages:", 0);
        if (f.ShmemHugePages)
        {
            Kb(sb, "ShmemHugePages:", 0);
            Kb(sb, "ShmemPmdMapped:", 0);
        }
        if (f.FileHugePages)
        {
            Kb(sb, "FileHugePages:", 0);
            Kb(sb, "FilePmdMapped:", 0);
        }
        if (f.Cma)
        {
            Kb(sb, "CmaTotal:", pa.TotalCmaPages);
            if (f.CmaAllocated)
            {
                long used = cfg.CmaUsedPages?.Invoke() ?? 0;
                Kb(sb, "CmaAllocated:", used);
                Kb(sb, "CmaReleased:", pa.TotalCmaPages - used);
            }
            Kb(sb, "CmaFree:", pa.Zones.Sum(z => Volatile.Read(ref z.FreeCmaPages)));
        }
        if (f.Unaccepted) Kb(sb, "Unaccepted:", 0);
        if (f.Hugetlb)
        {
            sb.Append($"HugePages_Total:   {0,5}\nHugePages_Free:    {0,5}\nHugePages_Rsvd:    {0,5}\nHugePages_Surp:    {0,5}\n");
            sb.Append($"Hugepagesize:   {cfg.HugePageSizeKb,8} kB\n");
            if (f.HugetlbTotal) sb.Append($"Hugetlb:        {0,8} kB\n");
        }
        if (cfg.DirectMap is { } dm)
        {
            sb.Append($"DirectMap4k:    {dm.K4,8} kB\n");
            sb.Append($"DirectMap{cfg.DirectMapLarge}:    {dm.M2,8} kB\n");
            if (dm.G1 > 0) sb.Append($"DirectMap1G:    {dm.G1,8} kB\n");
        }
        return sb.ToString();
    }
}
