// The views of a two-node machine against published two-node dumps: Mike Kravetz's 6.6 zoneinfo and pagetypeinfo
// (16 GiB VM, 2 nodes of 2 CPUs) line for line, a 2.6.3x two-node buddyinfo, the node devices, and the per-node
// layout and boot lines against published two-node boot logs.
using System.Text.RegularExpressions;
using Kmem.Diagnostics;
using Kmem.Paging;
using Xunit;

namespace Kmem.Tests;

public class NumaViewTests
{
    private const string KravetzFile = "zoneinfo_pagetypeinfo_x86_64_6.6-rc1_16G_numa2_lkml.txt";

    /// <summary>The fixture's zoneinfo and pagetypeinfo, each as the kernel printed it (the two source lines dropped).</summary>
    private static (string ZoneInfo, string PageTypeInfo) Kravetz()
    {
        string text = TestSupport.Fixture(KravetzFile);
        int z = text.IndexOf("# cat /proc/zoneinfo\n", StringComparison.Ordinal), p = text.IndexOf("# cat /proc/pagetypeinfo\n", StringComparison.Ordinal);
        string zoneinfo = text[(z + "# cat /proc/zoneinfo\n".Length)..p].TrimEnd('\n') + "\n";
        string pagetypeinfo = text[(p + "# cat /proc/pagetypeinfo\n".Length)..];
        return (zoneinfo, pagetypeinfo);
    }

    /// <summary>Every line with its numbers as '#': the labels, their padding and the order stay.</summary>
    private static List<string> Shape(string text, params string[] skip) =>
        text.TrimEnd('\n').Split('\n').Where(l => !skip.Any(s => l.TrimStart().StartsWith(s, StringComparison.Ordinal)))
            .Select(l => Regex.Replace(l, @"\d+", "#")).ToList();

    /// <summary>Every line with each padded number (its blanks and '>' included) as as many '#': the column widths stay.</summary>
    private static List<string> PaddedShape(string text) =>
        text.TrimEnd('\n').Split('\n').Select(l => Regex.Replace(l, @"[ >]*\d+", x => new string('#', x.Length))).ToList();

    /// <summary>The value of one labelled line inside a zone block of zoneinfo ("Node n, zone name" … next zone).</summary>
    private static string ZoneBlock(string zoneinfo, int node, string zone)
    {
        var m = Regex.Match(zoneinfo, $@"^Node {node}, zone +{zone}\n(?:(?!Node ).*\n)*", RegexOptions.Multiline);
        Assert.True(m.Success, $"Node {node} {zone}");
        return m.Value;
    }

    private static long Field(string block, string label) => long.Parse(Regex.Match(block, $@"\n +{Regex.Escape(label)} +(\d+)").Groups[1].Value);

    [Fact]
    public void Zoneinfo_has_the_layout_of_the_published_two_node_6_6_dump_line_for_line()
    {
        var (real, _) = Kravetz();
        using var m = Machine.Boot("x86_64-numa2");
        string ours = m.ProcFs.Read("/proc/zoneinfo");
        // Same lines in the same order: node 0's DMA, DMA32, Normal, Movable, then node 1's empty DMA and DMA32, its
        // Normal with the per-node stats, its Movable; per-node stats, numa_* lines, all four CPUs' pagesets. Only
        // nr_zspages (CONFIG_ZSMALLOC, not modelled) is left out of the comparison.
        Assert.Equal(Shape(real, "nr_zspages"), Shape(ours, "nr_zspages"));
        Assert.Equal(2, Regex.Matches(ours, "per-node stats").Count);
        Assert.Contains("Node 1, zone   Normal\n  per-node stats\n", ours);
        foreach (var (node, zone) in new[] { (0, "DMA"), (0, "DMA32"), (0, "Normal"), (1, "Normal") })
        {
            string r = ZoneBlock(real, node, zone), o = ZoneBlock(ours, node, zone);
            // The layout of the machine: the same spans, present pages and first PFN.
            Assert.Equal(Field(r, "spanned"), Field(o, "spanned"));
            Assert.Equal(Field(r, "present"), Field(o, "present"));
            Assert.Equal(Field(r, "start_pfn:"), Field(o, "start_pfn:"));
            // calculate_normal_threshold() from the same CPU count and (nearly) the same managed pages.
            Assert.Equal(Field(r, "vm stats threshold:"), Field(o, "vm stats threshold:"));
            // Both dumps' pagesets follow zone_highsize() with the node's 2 CPUs: high = max(low / 2, 4 × batch).
            foreach (var b in new[] { r, o })
            {
                var (high, batch, _) = Watermarks.PcpSizes(PcpHighFormula.LowWatermark, Watermarks.PcpBatch(Field(b, "managed")), Field(b, "low"), Field(b, "managed"), 2);
                Assert.Equal(high, Field(b, "high:"));
                Assert.Equal(batch, Field(b, "batch:"));
            }
        }
        // lowmem_reserve is per node: zeros for node 1's empty zones and for each node's top zone.
        foreach (var (node, zone) in new[] { (1, "DMA"), (1, "DMA32"), (1, "Normal"), (0, "Normal") })
            Assert.Contains("protection: (0, 0, 0, 0)", ZoneBlock(ours, node, zone));
        Assert.Matches(@"protection: \(0, [1-9]\d*, [1-9]\d*, [1-9]\d*\)", ZoneBlock(ours, 0, "DMA"));
    }

    [Fact]
    public void Pagetypeinfo_repeats_its_whole_block_per_node_as_the_published_6_6_dump()
    {
        var (_, real) = Kravetz();
        using var m = Machine.Boot("x86_64-numa2");
        string ours = m.ProcFs.Read("/proc/pagetypeinfo");
        Assert.Equal(PaddedShape(real), PaddedShape(ours));
        Assert.Equal(2, Regex.Matches(ours, "^Page block order: 9$", RegexOptions.Multiline).Count);
        // No blank line between node 0's last block-count row and node 1's header.
        Assert.Contains(" \nPage block order: 9\nPages per block:  512\n\nFree pages count per migrate type at order", ours);
        // The block counts cover each zone's span: 8, 1016, 3072 pageblocks on node 0, 4096 on node 1, in both.
        static long[] Blocks(string t) => Regex.Matches(t, @"^Node \d, zone +\w+ +([\d ]+)$", RegexOptions.Multiline)
            .Select(x => x.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Sum(long.Parse)).ToArray();
        Assert.Equal([8L, 1016, 3072, 4096], Blocks(real));
        Assert.Equal(Blocks(real), Blocks(ours));
    }

    [Fact]
    public void Buddyinfo_of_a_2_6_3x_two_node_host_has_the_same_layout()
    {
        // Chris Webb's 32 GB two-node KVM host (2.6.3x, ≥ 8 CPUs): node 0 with DMA, DMA32 and Normal, node 1 with Normal.
        // Kmem models 3.10 onwards, so the profile says 3.10, the oldest release whose buddyinfo it prints (the same
        // frag_show_print() format as 2.6.24: "Node %d, zone %8s " and 11 "%6lu " columns).
        string fixture = TestSupport.Fixture("slabinfo_meminfo_buddyinfo_x86_64_numa2_2.6.3x_linuxmm2010.txt");
        var real = fixture.Split('\n').SkipWhile(l => !l.StartsWith("# cat /proc/buddyinfo", StringComparison.Ordinal)).Skip(1).Where(l => l.StartsWith("Node ", StringComparison.Ordinal)).ToList();
        var p = MachineProfile.Parse("""
            { "name": "kvm-host-numa2", "arch": "x86_64", "cpus": 8, "cpu_nodes": [0, 0, 0, 0, 1, 1, 1, 1], "version": "3.10",
              "config": { "NUMA": true },
              "dram": [
                { "base": "0x1000", "size": "0x9e000", "node": 0 },
                { "base": "0x100000", "size": "0xbfee0000", "node": 0 },
                { "base": "0x100000000", "size": "0x340000000", "node": 0 },
                { "base": "0x440000000", "size": "0x400000000", "node": 1 } ],
              "kernel": { "base": "0x01000000", "code": "8M", "rwdata": "2M", "rodata": "2M", "init": "1M", "bss": "2M" } }
            """);
        using var m = Machine.Boot(p);
        var ours = m.ProcFs.Read("/proc/buddyinfo").TrimEnd('\n').Split('\n').ToList();
        Assert.Equal(real.Count, ours.Count);
        for (int i = 0; i < real.Count; i++)
        {
            Assert.Equal(real[i][..21], ours[i][..21]);                                  // "Node 1, zone   Normal "
            Assert.Equal(Regex.Replace(real[i], @"\d(?=\d*( |$))", "#").Length, ours[i].Length);
            Assert.Matches(@"^Node \d, zone +\w+ ( {0,5}\d+ ){11}$", ours[i]);
        }
    }

    [Fact]
    public void Node_devices_have_the_kernel_format()
    {
        using var m = Machine.Boot("x86_64-numa2");
        Assert.Equal("10 20\n", m.ProcFs.Read("/sys/devices/system/node/node0/distance"));
        Assert.Equal("20 10\n", m.ProcFs.Read("/sys/devices/system/node/node1/distance"));
        Assert.Equal("2-3\n", m.ProcFs.Read("/sys/devices/system/node/node1/cpulist"));
        Assert.Equal("3\n", m.ProcFs.Read("/sys/devices/system/node/node0/cpumap"));
        Assert.Equal("0-1\n", m.ProcFs.Read("/sys/devices/system/node/online"));
        Assert.Equal("0\n", m.ProcFs.Read("/proc/sys/vm/zone_reclaim_mode"));
        Assert.Equal("Node\n", m.ProcFs.Read("/proc/sys/vm/numa_zonelist_order"));
        string stat = m.ProcFs.Read("/sys/devices/system/node/node0/numastat");
        Assert.Matches(@"^numa_hit \d+\nnuma_miss \d+\nnuma_foreign \d+\ninterleave_hit \d+\nlocal_node \d+\nother_node \d+\n$", stat);
        // numastat sums the node's zones' events, as zoneinfo shows them.
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        long hits = Regex.Matches(zi, @"^Node 1, zone +\w+\n(?:(?!Node ).*\n)*", RegexOptions.Multiline)
            .Sum(b => Regex.Match(b.Value, @"numa_hit +(\d+)") is { Success: true } h ? long.Parse(h.Groups[1].Value) : 0);
        Assert.Contains($"numa_hit {hits}\n", m.ProcFs.Read("/sys/devices/system/node/node1/numastat"));
        // node meminfo: MemTotal is the node's managed pages, every line "Node N Label:" padded to 16 then %8lu kB.
        string mi = m.ProcFs.Read("/sys/devices/system/node/node1/meminfo");
        long managed = m.Zones.Single(z => z.Node == 1 && z.Name == "Normal").Managed;
        Assert.Equal([0, 0, 0, 0, 1, 1, 1, 1], m.Zones.Select(z => z.Node));
        Assert.StartsWith($"Node 1 MemTotal:       {managed * 4,8} kB\nNode 1 MemFree:  ", mi);
        Assert.All(mi.TrimEnd('\n').Split('\n'), l => Assert.Matches(@"^Node 1 (\S+: *\d+ kB|HugePages_(Total|Free|Surp): +\d+)$", l));
        Assert.Contains("Node 1 FileHugePages:  ", mi);                                 // two blanks from 6.6
        Assert.EndsWith("Node 1 HugePages_Total:     0\nNode 1 HugePages_Free:      0\nNode 1 HugePages_Surp:      0\n", mi);
    }

    /// <summary>Each zone's "Node N, zone X" with its min, low and high watermarks, from a zoneinfo.</summary>
    private static Dictionary<string, (long Min, long Low, long High)> WatermarksOf(string zoneinfo) =>
        Regex.Matches(zoneinfo, @"^(Node \d+, zone +\w+)\n(?:.*\n)*?        min +(\d+)\n        low +(\d+)\n        high +(\d+)\n", RegexOptions.Multiline)
            .ToDictionary(m => m.Groups[1].Value, m => (long.Parse(m.Groups[2].Value), long.Parse(m.Groups[3].Value), long.Parse(m.Groups[4].Value)));

    [Fact]
    public void Watermarks_share_min_free_kbytes_over_both_nodes_as_the_published_dump_shows()
    {
        // __setup_per_zone_wmarks() splits min_free_kbytes (90112, THP's) over the lowmem zones of every node by managed
        // pages; Movable gets the HighMem-like 32. The dump's managed counts moved after boot (hugetlb vmemmap freeing)
        // and its early reservations are not all Kmem's, so populated zones agree within 2 %, empty ones exactly.
        var theirs = WatermarksOf(Kravetz().ZoneInfo);
        using var m = Machine.Boot("x86_64-numa2");
        var ours = WatermarksOf(m.ProcFs.Read("/proc/zoneinfo"));
        Assert.Equal(8, theirs.Count);
        Assert.Equal(theirs.Keys, ours.Keys);
        foreach (var (zone, t) in theirs)
        {
            var o = ours[zone];
            if (t.Min <= 32) { Assert.Equal(t, o); continue; }
            foreach (var (a, b) in new[] { (t.Min, o.Min), (t.Low, o.Low), (t.High, o.High) })
                Assert.True(Math.Abs(a - b) * 50 <= a, $"{zone}: {b} against the dump's {a} ({t} / {o})");
        }
        Assert.Equal(theirs.Values.Sum(w => w.Min), ours.Values.Sum(w => w.Min), 22528 / 500.0);
    }

    [Fact]
    public void Numastat_counts_local_and_remote_allocations_on_the_node_that_served_them()
    {
        using var m = Machine.Boot("x86_64-numa2");
        long Stat(int node, string key) =>
            long.Parse(Regex.Match(m.ProcFs.Read($"/sys/devices/system/node/node{node}/numastat"), $@"(?m)^{key} (\d+)$").Groups[1].Value);
        long hit = Stat(1, "numa_hit"), local = Stat(1, "local_node"), other = Stat(1, "other_node"), miss = Stat(1, "numa_miss");
        NumaTopologyTests.RunOn(m, 2, () => { for (int i = 0; i < 100; i++) m.FreePage(m.AllocPage(Gfp.Kernel)); });
        NumaTopologyTests.RunOn(m, 0, () => { for (int i = 0; i < 50; i++) m.FreePage(m.AllocPagesNode(1, Gfp.Kernel, 0)); });
        // zone_statistics(): node 1 was the preferred node each time (a hit); the CPU was node 1's 100 times (local)
        // and node 0's 50 times (other).
        Assert.Equal(hit + 150, Stat(1, "numa_hit"));
        Assert.Equal(local + 100, Stat(1, "local_node"));
        Assert.Equal(other + 50, Stat(1, "other_node"));
        Assert.Equal(miss, Stat(1, "numa_miss"));
    }

    [Fact]
    public void Node_meminfo_prints_SwapCached_from_5_14_even_without_swap()
    {
        var p = MachineProfile.Embedded("x86_64-numa2");
        using var m = Machine.Boot(p with { ConfigOptions = new Dictionary<string, object>(p.ConfigOptions) { ["SWAP"] = false } });
        Assert.Contains($"Node 0 {"SwapCached:",-16}{0,8} kB\nNode 0 Active:", m.ProcFs.Read("/sys/devices/system/node/node0/meminfo"));
        using var old = Machine.Boot(TestSupport.AtRelease("x86_64-numa2", "5.10"));
        Assert.DoesNotContain("SwapCached", old.ProcFs.Read("/sys/devices/system/node/node0/meminfo"));
    }

    [Fact]
    public void Node_devices_exist_only_with_config_numa()
    {
        // node0 exists on a one-node kernel built with NUMA (x86_64's defconfig), not without it.
        using var numa = Machine.Boot("x86_64");
        Assert.Equal("10\n", numa.ProcFs.Read("/sys/devices/system/node/node0/distance"));
        Assert.Contains("      numa_hit     ", numa.ProcFs.Read("/proc/zoneinfo"));
        using var plain = Machine.Boot("rv1106");
        Assert.ThrowsAny<Exception>(() => plain.ProcFs.Read("/sys/devices/system/node/node0/meminfo"));
        Assert.ThrowsAny<Exception>(() => plain.ProcFs.Read("/proc/sys/vm/zone_reclaim_mode"));
        Assert.DoesNotContain("numa_hit", plain.ProcFs.Read("/proc/zoneinfo"));
    }

    [Fact]
    public void Memoryless_nodes_print_nothing_in_buddyinfo_and_pagetypeinfo()
    {
        string json = MachineProfile.EmbeddedJson("x86_64-numa2")
            .Replace("\"cpu_nodes\": [0, 0, 1, 1]", "\"cpu_nodes\": [0, 0, 1, 2], \"memoryless_nodes\": [2]")
            .Replace("\"distances\": [[10, 20], [20, 10]],", "");
        using var m = Machine.Boot(MachineProfile.Parse(json));
        Assert.DoesNotContain("Node 2", m.ProcFs.Read("/proc/buddyinfo"));
        Assert.DoesNotContain("Node 2", m.ProcFs.Read("/proc/pagetypeinfo"));
        // zoneinfo prints the memoryless node's zones, all empty, with no per-node stats.
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        Assert.Contains("Node 2, zone   Normal\n  pages free     0\n", zi);
        Assert.Contains("Initmem setup node 2 as memoryless", m.Dmesg());
        Assert.Matches(@"NODE_DATA\(2\) allocated \[mem 0x[0-9a-f]{8,}-0x[0-9a-f]{8,}\]\n.*    NODE_DATA\(2\) on node [01]\n", m.Dmesg());
    }

    [Fact]
    public void Show_mem_reports_each_node()
    {
        using var m = Machine.Boot("x86_64-numa2");
        string report = m.Pages.ShowMem();
        Assert.Matches(@"\nNode 0 active_anon:0kB .* all_unreclaimable\? no\nNode 1 active_anon:0kB .* all_unreclaimable\? no\n", report);
        Assert.Matches(@"\nNode 0 DMA free:\d+kB boost:0kB min:", report);
        Assert.Matches(@"\nNode 1 Normal free:\d+kB boost:0kB min:", report);
        Assert.Matches(@"\nNode 1 Normal: (\d+\*\d+kB (\([UMEHCI]+\) )?){11}= \d+kB\n", report);
        // Without CONFIG_NUMA there is no node prefix on the zone lines.
        using var arm = Machine.Boot("rv1106");
        Assert.Matches(@"\nNormal free:\d+kB", arm.Pages.ShowMem());
    }

    [Fact]
    public void Node_unreclaimable_is_the_nodes_kswapd_failures()
    {
        using var m = Machine.Boot("x86_64-numa2");
        Volatile.Write(ref m.Pages.Nodes[1].KswapdFailures, PageAllocator.MaxReclaimRetries);
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        Assert.Contains("  node_unreclaimable:  0", ZoneBlock(zi, 0, "Normal"));
        Assert.Contains("  node_unreclaimable:  1", ZoneBlock(zi, 1, "Normal"));
        Assert.Contains("Node 1 active_anon:0kB", m.Pages.ShowMem());
        Assert.Matches(@"Node 1 active_anon:.* all_unreclaimable\? yes", m.Pages.ShowMem());
        Volatile.Write(ref m.Pages.Nodes[1].KswapdFailures, 0);
    }

    [Fact]
    public void Numa_lines_sit_where_each_release_prints_them()
    {
        // 4.14 on: their own array after the zone stats; before, zone stats ahead of nr_free_cma.
        using var now = Machine.Boot(MachineProfile.Embedded("x86_64-numa2") with { Version = KernelVersion.Parse("5.10") });
        Assert.Matches(@"nr_free_cma  \d+\n      numa_hit     \d+\n(      numa_\w+ +\d+\n){5}  pagesets\n", now.ProcFs.Read("/proc/zoneinfo"));
        using var old = Machine.Boot(MachineProfile.Embedded("x86_64-numa2") with { Version = KernelVersion.Parse("4.9") });
        Assert.Matches(@"      numa_hit     \d+\n(      numa_\w+ +\d+\n){5}      nr_free_cma  \d+\n  pagesets\n", old.ProcFs.Read("/proc/zoneinfo"));
        // Node meminfo before 6.6: one blank after FileHugePages: (5.4 on); before 5.14 no SwapCached; before 6.0 no SecPageTables.
        string mi = now.ProcFs.Read("/sys/devices/system/node/node0/meminfo");
        Assert.Contains("Node 0 FileHugePages:        0 kB\n", mi);
        Assert.DoesNotContain("SwapCached", mi);
        Assert.DoesNotContain("SecPageTables", mi);
        Assert.Contains("Node 0 KReclaimable:", mi);
        Assert.Equal("default\n", old.ProcFs.Read("/proc/sys/vm/numa_zonelist_order"));
    }

    [Fact]
    public void The_memory_map_draws_a_strip_per_node()
    {
        using var m = Machine.Boot("x86_64-numa2");
        var doc = System.Xml.Linq.XDocument.Parse(m.RenderMemoryMap());
        var texts = doc.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value).ToList();
        Assert.Contains("Node 0", texts);
        Assert.Contains("Node 1", texts);
        var titles = doc.Descendants().Where(e => e.Name.LocalName == "title").Select(e => e.Value).ToList();
        Assert.Contains("Node 1", titles);                       // rows of node 1 in the node strip
        // Node 1 starts after node 0's zones: its label is below node 0's Normal.
        double Y(string label) => doc.Descendants().Where(e => e.Name.LocalName == "text" && e.Value == label)
            .Select(e => double.Parse((string)e.Attribute("y")!, System.Globalization.CultureInfo.InvariantCulture)).First();
        Assert.True(Y("Node 1") > Y("Node 0"));
        using var one = Machine.Boot("x86_64");
        Assert.DoesNotContain("Node 0", one.RenderMemoryMap());
    }
}
