// The NUMA boot lines, in each release's words and order: x86's SRAT affinity (or the faked node of a machine without
// one), numa_cleanup_meminfo()'s merges and alloc_node_data()'s NODE_DATA lines; free_area_init()'s per-node ranges,
// "Initmem setup node" and the unavailable-range counts; build_all_zonelists()'s fallback order and policy zone.
using Kmem.Boot;
using Kmem.Core;
using Kmem.Paging;

namespace Kmem;

public sealed partial class Machine
{
    private static string Hex10(ulong v) => "0x" + v.ToString("x8");

    /// <summary>
    /// x86's initmem_init() with CONFIG_NUMA (arch/x86/mm/numa.c, srat.c and drivers/acpi/numa): a one-node profile has no
    /// SRAT, so dummy_numa_init() fakes a node over [0, max_pfn); a profile with nodes has one SRAT entry per CPU
    /// ("SRAT: PXM %u -> APIC 0x%02x -> Node %u", the CPU number as APIC id, PXM = node) and per bank ("SRAT: Node %u
    /// PXM %u [mem %#010Lx-%#010Lx]", with drivers/acpi/numa.c's "ACPI: " prefix from 4.7, when the memory-affinity
    /// parser moved there for arm64). Kmem's banks stand for the firmware's ranges. numa_cleanup_meminfo() then joins the
    /// blocks of a node whose hole holds no other node's memory ("NUMA: Node %d [mem …] + [mem …] -> [mem …]"), and
    /// alloc_node_data() reports each pglist_data: "NODE_DATA(%d) allocated [mem …]" from 4.0; before it
    /// setup_node_data() printed "Initmem setup node %d [mem …]" and "  NODE_DATA [mem …]".
    /// </summary>
    private void PrintNumaInitLines(MemoryLayout layout)
    {
        var p = Profile;
        if (p.Arch != Arch.X86_64 || !p.Config.IsEnabled("NUMA")) return;
        var v = p.Version;
        ulong maxAddr = p.Dram[^1].End;
        var blocks = new List<(int Nid, ulong Start, ulong End)>();
        if (p.NodeCount == 1)
        {
            Log.Info("No NUMA configuration found");
            Log.Info($"Faking a node at [mem {Hex18(0)}-{Hex18(maxAddr - 1)}]");
            blocks.Add((0, 0, maxAddr));
        }
        else
        {
            for (int cpu = 0; cpu < p.Cpus; cpu++) Log.Info($"SRAT: PXM {p.NodeOfCpu(cpu)} -> APIC 0x{cpu:x2} -> Node {p.NodeOfCpu(cpu)}");
            string prefix = v.IsAtLeast(4, 7) ? "ACPI: " : "";
            foreach (var b in p.Dram)
            {
                Log.Info($"{prefix}SRAT: Node {b.Node} PXM {b.Node} [mem {Hex10(b.Base)}-{Hex10(b.End - 1)}]");
                blocks.Add((b.Node, b.Base, b.End));
            }
            for (int i = 0; i < blocks.Count; i++)
                for (int j = i + 1; j < blocks.Count; j++)
                {
                    var (ni, si, ei) = blocks[i];
                    var (nj, sj, ej) = blocks[j];
                    if (ni != nj) continue;
                    ulong s = Math.Min(si, sj), e = Math.Max(ei, ej);
                    int k = 0;
                    for (; k < blocks.Count; k++)
                        if (blocks[k].Nid != ni && s < blocks[k].End && blocks[k].Start < e) break;
                    if (k < blocks.Count) continue;
                    Log.Info($"NUMA: Node {ni} [mem {Hex10(si)}-{Hex10(ei - 1)}] + [mem {Hex10(sj)}-{Hex10(ej - 1)}] -> [mem {Hex10(s)}-{Hex10(e - 1)}]");
                    blocks[i] = (ni, s, e);
                    blocks.RemoveAt(j--);
                }
        }
        foreach (var nd in layout.Early.NodeData.Where(n => p.Dram.Any(b => b.Node == n.Nid)))
        {
            if (v.IsAtLeast(4, 0))
            {
                Log.Info($"NODE_DATA({nd.Nid}) allocated [mem {Hex10(nd.Base)}-{Hex10(nd.Base + nd.Size - 1)}]");
            }
            else
            {
                var blk = blocks.First(b => b.Nid == nd.Nid);
                Log.Info($"Initmem setup node {nd.Nid} [mem {Hex10(blk.Start)}-{Hex10(blk.End - 1)}]");
                Log.Info($"  NODE_DATA [mem {Hex10(nd.Base)}-{Hex10(nd.Base + nd.Size - 1)}]");
            }
            if (nd.OnNode != nd.Nid) Log.Info($"    NODE_DATA({nd.Nid}) on node {nd.OnNode}");
        }
    }

    /// <summary>
    /// free_area_init(): "Early memory node ranges" with each memblock range and its node ("  node %3d: [mem …]"), then per
    /// node free_area_init_node()'s "Initmem setup node %d [mem …]" (mm's line from 4.0, when x86 stopped printing its own),
    /// for a node without memory "… as memoryless" from 5.14 ("mm: print a more descriptive message for memoryless nodes";
    /// before, an empty range), a memoryless node's late NODE_DATA (init_cpu_to_node()), and from 5.12 memmap_init()'s
    /// "On node %d, zone %s: %lld pages in unavailable ranges" ("mm: refactor initialization of struct page for holes in
    /// memory layout").
    /// </summary>
    private void PrintNodeRangeLines(MemoryLayout layout)
    {
        var p = Profile;
        var v = p.Version;
        Log.Info("Early memory node ranges");
        foreach (var b in p.Dram) Log.Info($"  node {b.Node,3}: [mem {Hex18(b.Base)}-{Hex18(b.End - 1)}]");
        bool mmLine = v.IsAtLeast(4, 0) || p.Arch != Arch.X86_64 || !p.Config.IsEnabled("NUMA");
        for (int nid = 0; nid < p.NodeCount; nid++)
        {
            var banks = p.Dram.Where(b => b.Node == nid).ToList();
            if (!mmLine) continue;
            if (banks.Count > 0) Log.Info($"Initmem setup node {nid} [mem {Hex18(banks.Min(b => b.Base))}-{Hex18(banks.Max(b => b.End) - 1)}]");
            else if (v.IsAtLeast(5, 14)) Log.Info($"Initmem setup node {nid} as memoryless");
            else Log.Info($"Initmem setup node {nid} [mem {Hex18(0)}-{Hex18(0)}]");
        }
        foreach (var nd in layout.Early.NodeData.Where(n => !p.Dram.Any(b => b.Node == n.Nid)))
        {
            Log.Info($"NODE_DATA({nd.Nid}) allocated [mem {Hex10(nd.Base)}-{Hex10(nd.Base + nd.Size - 1)}]");
            if (nd.OnNode != nd.Nid) Log.Info($"    NODE_DATA({nd.Nid}) on node {nd.OnNode}");
        }
        if (v.IsAtLeast(5, 12)) PrintUnavailableRanges(layout);
    }

    /// <summary>
    /// mm/mm_init.c memmap_init(): for each memory range (in order, with its node) and each populated zone of that node,
    /// the pages between the end of the last range seen (hole_pfn) and the start of this one inside the zone are
    /// initialised as reserved by init_unavailable_range() and counted for the zone the range starts in; a pageblock
    /// whose first PFN is not valid is skipped whole (SPARSEMEM: a section without memory; 32-bit arm checks memblock, so
    /// its holes are never counted). Last, the tail up to the end of the last section.
    /// </summary>
    private void PrintUnavailableRanges(MemoryLayout layout)
    {
        var p = Profile;
        if (p.Arch == Arch.Arm) return;
        ulong sectionPages = p.Is64Bit ? (128UL << 20) >> 12 : 0;
        var sections = new HashSet<ulong>();
        if (sectionPages > 0)
            foreach (var b in p.Dram)
                for (ulong s = (b.Base >> 12) / sectionPages; s <= ((b.End >> 12) - 1) / sectionPages; s++) sections.Add(s);
        ulong pageblock = 1UL << p.EffectivePageblockOrder;
        bool Valid(ulong pfn) => sectionPages == 0 ? pfn < (p.Dram[^1].End >> 12) : sections.Contains(pfn / sectionPages);
        void Report(ulong from, ulong to, (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node) z)
        {
            long count = 0;
            for (ulong pfn = from; pfn < to; pfn++)
            {
                if (!Valid(pfn & ~(pageblock - 1)))
                {
                    pfn = (pfn & ~(pageblock - 1)) + pageblock - 1;
                    continue;
                }
                count++;
            }
            if (count > 0) Log.Info($"On node {z.Node}, zone {PageTypes.ZoneNames[(int)z.Type]}: {count} pages in unavailable ranges");
        }
        ulong hole = 0;
        (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node)? last = null;
        foreach (var b in p.Dram)
        {
            ulong start = b.Base >> 12, end = b.End >> 12;
            foreach (var z in layout.Zones)
            {
                // populated_zone(): the zone has RAM (a span always does here: zones are cut from the node's banks).
                if (z.Node != b.Node || z.EndPfn <= z.StartPfn) continue;
                ulong zs = z.StartPfn, ze = z.EndPfn;
                ulong s = Math.Clamp(start, zs, ze), e = Math.Clamp(end, zs, ze);
                last = z;
                if (s >= e) continue;
                if (hole < s) Report(hole, s, z);
                hole = e;
            }
        }
        if (last is not { } lastZone) return;
        ulong tail = sectionPages == 0 ? p.Dram[^1].End >> 12 : ((p.Dram[^1].End >> 12) + sectionPages - 1) / sectionPages * sectionPages;
        if (hole < tail) Report(hole, tail, lastZone);
    }

    /// <summary>
    /// build_zonelists() with CONFIG_NUMA, from 5.16 ("mm/page_alloc: print node fallback order"): "Fallback order for Node
    /// %d: " then "%d " per node of the zonelist and a newline, so the line ends in a blank.
    /// </summary>
    private void PrintFallbackOrder()
    {
        var p = Profile;
        if (!p.Config.IsEnabled("NUMA") || !p.Version.IsAtLeast(5, 16)) return;
        var pa = Pages;
        for (int nid = 0; nid < pa.NodeCount; nid++)
            Log.Info($"Fallback order for Node {nid}: {string.Concat(pa.Nodes[nid].FallbackOrder.Select(n => $"{n} "))}");
    }

    /// <summary>
    /// build_all_zonelists() with CONFIG_NUMA: "Policy zone: %s", policy_zone being the highest populated zone below
    /// ZONE_MOVABLE of any node (check_highest_zone() from build_zonerefs_node()).
    /// </summary>
    private void PrintPolicyZone()
    {
        if (!Profile.Config.IsEnabled("NUMA")) return;
        var top = Pages.Zones.Where(z => z.Populated && z.Type != ZoneType.Movable).Max(z => (int?)z.ZoneIdx);
        if (top is { } idx) Log.Info($"Policy zone: {Pages.Zones[idx].Name}");
    }
}
