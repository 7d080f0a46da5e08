// The NUMA node devices (drivers/base/node.c): /sys/devices/system/node/nodeN/meminfo, numastat, distance, cpulist
// and cpumap, the node masks online/has_memory/has_cpu, and the NUMA sysctls of /proc/sys/vm (zone_reclaim_mode,
// numa_zonelist_order). All of them exist only with CONFIG_NUMA, and then for every node, node 0 of a one-node
// machine included (register_one_node() runs for each online node whatever their number).
using System.Text;
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Diagnostics;

internal static class NodeViews
{
    public static void Register(ProcFs fs, PageAllocator pa, ViewConfig cfg)
    {
        if (!cfg.Numa) return;
        for (int nid = 0; nid < pa.NodeCount; nid++)
        {
            int n = nid;
            string dir = $"/sys/devices/system/node/node{n}";
            fs.Register(dir + "/meminfo", () => MemInfo(pa, cfg, n));
            fs.Register(dir + "/numastat", () => NumaStat(pa, n));
            fs.Register(dir + "/distance", () => Distance(pa, n));
            fs.Register(dir + "/cpulist", () => CpuList(Enumerable.Range(0, pa.Cpus).Where(c => pa.NodeOfCpu(c) == n)) + "\n");
            fs.Register(dir + "/cpumap", () => CpuMap(pa, n) + "\n");
        }
        // node_states[] as print_nodes_state() shows them: a list of node ranges.
        fs.Register("/sys/devices/system/node/online", () => CpuList(Enumerable.Range(0, pa.NodeCount)) + "\n");
        fs.Register("/sys/devices/system/node/possible", () => CpuList(Enumerable.Range(0, pa.NodeCount)) + "\n");
        fs.Register("/sys/devices/system/node/has_memory", () => CpuList(Enumerable.Range(0, pa.NodeCount).Where(pa.NodeHasMemory)) + "\n");
        fs.Register("/sys/devices/system/node/has_cpu", () => CpuList(Enumerable.Range(0, pa.NodeCount).Where(n => Enumerable.Range(0, pa.Cpus).Any(c => pa.NodeOfCpu(c) == n))) + "\n");
        fs.Register("/proc/sys/vm/zone_reclaim_mode", () => $"{ZoneReclaimMode(pa)}\n");
        fs.Register("/proc/sys/vm/numa_zonelist_order", () => pa.Version.IsAtLeast(4, 14) ? "Node\n" : "default\n");
    }

    /// <summary>
    /// node_reclaim_mode at boot: 0, except that build_zonelists() turned it on when a node's distance exceeded
    /// RECLAIM_DISTANCE: 20 before 3.16, 30 from 3.16 ("mm: disable zone_reclaim_mode by default"), never from 5.8
    /// ("mm/page_alloc: do not auto-enable zone_reclaim_mode").
    /// </summary>
    internal static int ZoneReclaimMode(PageAllocator pa)
    {
        var v = pa.Version;
        if (v.IsAtLeast(5, 8)) return 0;
        int reclaimDistance = v.IsAtLeast(3, 16) ? 30 : 20;
        for (int a = 0; a < pa.NodeCount; a++)
            for (int b = 0; b < pa.NodeCount; b++)
                if (pa.Distance(a, b) > reclaimDistance) return 1;
        return 0;
    }

    /// <summary>A bitmap list ("%*pbl"): ranges "a-b" and single numbers, comma-separated.</summary>
    internal static string CpuList(IEnumerable<int> bits)
    {
        var sorted = bits.OrderBy(b => b).ToList();
        var parts = new List<string>();
        for (int i = 0; i < sorted.Count;)
        {
            int j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(j == i ? $"{sorted[i]}" : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(',', parts);
    }

    /// <summary>
    /// A bitmap mask ("%*pb" over nr_cpu_ids bits): hex, the digits nr_cpu_ids needs, a comma between 32-bit words.
    /// </summary>
    internal static string CpuMap(PageAllocator pa, int nid)
    {
        int cpus = pa.Cpus;
        var words = new List<string>();
        for (int w = (cpus - 1) / 32; w >= 0; w--)
        {
            uint bits = 0;
            for (int c = w * 32; c < Math.Min(cpus, (w + 1) * 32); c++)
                if (pa.NodeOfCpu(c) == nid) bits |= 1u << (c - w * 32);
            int digits = w == (cpus - 1) / 32 ? ((cpus - w * 32) + 3) / 4 : 8;
            words.Add(bits.ToString("x").PadLeft(digits, '0'));
        }
        return string.Join(',', words);
    }

    /// <summary>node_read_distance(): the node's distance to every online node, space-separated.</summary>
    internal static string Distance(PageAllocator pa, int nid) =>
        string.Join(' ', Enumerable.Range(0, pa.NodeCount).Select(n => pa.Distance(nid, n))) + "\n";

    /// <summary>
    /// node_read_numastat(): the node's zones' NUMA events summed (sum_zone_numa_event_state(); before 5.14
    /// sum_zone_numa_state()), under the names the file has kept since 2.6 (interleave_hit, local_node, other_node).
    /// </summary>
    internal static string NumaStat(PageAllocator pa, int nid)
    {
        long Sum(Paging.NumaStat item)
        {
            long n = 0;
            foreach (var z in pa.NodeZones(nid)) n += pa.NumaEventState(z, item);
            return n;
        }
        return $"numa_hit {Sum(Paging.NumaStat.Hit)}\nnuma_miss {Sum(Paging.NumaStat.Miss)}\nnuma_foreign {Sum(Paging.NumaStat.Foreign)}\n" +
               $"interleave_hit {Sum(Paging.NumaStat.Interleave)}\nlocal_node {Sum(Paging.NumaStat.Local)}\nother_node {Sum(Paging.NumaStat.Other)}\n";
    }

    /// <summary>
    /// node_read_meminfo() of the modelled release: every line "Node %d Label:" padded to 16 columns then "%8lu kB"
    /// (KernelStack is kept in kB already). MemTotal/MemFree are si_meminfo_node()'s managed and free pages of the node's
    /// zones, MemUsed their difference; the slab lines are the node's own counters. Lines by release: KReclaimable 4.20
    /// (NR_KERNEL_MISC_RECLAIMABLE), SwapCached 5.14 (always printed; only its value, NR_SWAPCACHE, needs CONFIG_SWAP), ShadowCallStack 5.8 with its config
    /// (no blank after the colon), SecPageTables 6.0, THP's AnonHugePages, ShmemHugePages/ShmemPmdMapped (4.8) and
    /// FileHugePages/FilePmdMapped (5.4: one blank after the colon, two from 6.6 — Hugh Dickins' alignment fix of August
    /// 2023), Unaccepted 6.5 with CONFIG_UNACCEPTED_MEMORY; then hugetlb_report_node_meminfo() (default hstate).
    /// </summary>
    internal static string MemInfo(PageAllocator pa, ViewConfig cfg, int nid)
    {
        var f = cfg.MemInfo;
        var v = pa.Version;
        var sb = new StringBuilder();
        void Kb(string label, long pages) => sb.Append($"Node {nid} {label,-16}{pages * 4,8} kB\n");
        long total = 0, free = 0, highTotal = 0, highFree = 0;
        foreach (var z in pa.NodeZones(nid))
        {
            long zf = Volatile.Read(ref z.FreePages);
            total += z.Managed;
            free += zf;
            if (z.Type == ZoneType.HighMem) { highTotal += z.Managed; highFree += zf; }
        }
        long sR = pa.Stat.NodeSlabReclaimablePages(nid), sU = pa.Stat.NodeSlabUnreclaimablePages(nid);
        Kb("MemTotal:", total);
        Kb("MemFree:", free);
        Kb("MemUsed:", total - free);
        if (v.IsAtLeast(5, 14)) Kb("SwapCached:", 0);
        foreach (var l in new[] { "Active:", "Inactive:", "Active(anon):", "Inactive(anon):", "Active(file):", "Inactive(file):", "Unevictable:", "Mlocked:" })
            Kb(l, 0);
        if (f.HighMem)
        {
            Kb("HighTotal:", highTotal);
            Kb("HighFree:", highFree);
            Kb("LowTotal:", total - highTotal);
            Kb("LowFree:", free - highFree);
        }
        foreach (var l in new[] { "Dirty:", "Writeback:", "FilePages:", "Mapped:", "AnonPages:", "Shmem:" }) Kb(l, 0);
        sb.Append($"Node {nid} KernelStack:    {0,8} kB\n");
        if (f.ShadowCallStack) sb.Append($"Node {nid} ShadowCallStack:{0,8} kB\n");
        Kb("PageTables:", 0);
        if (f.SecPageTables) Kb("SecPageTables:", 0);
        foreach (var l in new[] { "NFS_Unstable:", "Bounce:", "WritebackTmp:" }) Kb(l, 0);
        if (f.KReclaimable) Kb("KReclaimable:", sR + pa.Stat.NodeKernelMiscReclaimablePages(nid));
        Kb("Slab:", sR + sU);
        Kb("SReclaimable:", sR);
        Kb("SUnreclaim:", sU);
        if (f.AnonHugePages) Kb("AnonHugePages:", 0);
        if (f.ShmemHugePages)
        {
            Kb("ShmemHugePages:", 0);
            Kb("ShmemPmdMapped:", 0);
        }
        if (f.FileHugePages)
        {
            string pad = v.IsAtLeast(6, 6) ? "  " : " ";
            sb.Append($"Node {nid} FileHugePages:{pad}{0,8} kB\n");
            sb.Append($"Node {nid} FilePmdMapped:{pad}{0,8} kB\n");
        }
        if (f.Unaccepted) Kb("Unaccepted:", 0);
        if (f.Hugetlb)
        {
            sb.Append($"Node {nid} HugePages_Total: {0,5}\n");
            sb.Append($"Node {nid} HugePages_Free:  {0,5}\n");
            sb.Append($"Node {nid} HugePages_Surp:  {0,5}\n");
        }
        return sb.ToString();
    }
}
