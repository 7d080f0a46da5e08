// The page allocator per kernel release: pcp->high/batch formulas, high-order per-CPU lists from 5.14,
// zoneinfo's pagesets block, and the MAX_ORDER / MAX_PAGE_ORDER bounds and messages.
using System.Text.RegularExpressions;
using Kmem.Paging;

namespace Kmem.Tests;

public class PcpReleaseTests
{
    private static Machine Boot(string version, string profile = "x86_64") =>
        Machine.Boot(MachineProfile.Embedded(profile) with { Version = KernelVersion.Parse(version) });

    private static long PcpPages(Machine m) => m.Zones.Sum(z => z.PcpPages);

    [Fact]
    public void Pcp_sizes_follow_each_release_formula()
    {
        // A published 5.x zoneinfo (DMA zone, managed 3975): zone_batchsize() is 0, so high 0 and batch 1.
        Assert.Equal(0, Watermarks.PcpBatch(3975));
        Assert.Equal((0, 1, 0), Watermarks.PcpSizes(PcpHighFormula.SixTimesBatch, Watermarks.PcpBatch(3975), 216, 3975, 8));
        // A zone of 1 GiB or more: batch 63, high 378 up to 5.13, whatever the watermarks and CPUs.
        Assert.Equal((378, 63, 378), Watermarks.PcpSizes(PcpHighFormula.SixTimesBatch, Watermarks.PcpBatch(655360), 9665, 655360, 2));
        // 5.14: the low watermark shared by the node's CPUs, at least 4 × batch (a published 6.x zoneinfo: low 6890,
        // batch 63, high_min 1722 on a node of 4 CPUs).
        Assert.Equal((1722, 63, 1722), Watermarks.PcpSizes(PcpHighFormula.LowWatermark, 63, 6890, 248725, 4));
        Assert.Equal((4, 1, 4), Watermarks.PcpSizes(PcpHighFormula.LowWatermark, 0, 7, 3975, 4));
        // 6.7: high_max = managed / 8 / CPUs.
        Assert.Equal((1722, 63, 7772), Watermarks.PcpSizes(PcpHighFormula.AutoTune, 63, 6890, 248725, 4));
        Assert.Equal((4, 1, 124), Watermarks.PcpSizes(PcpHighFormula.AutoTune, 0, 7, 3975, 4));
    }

    [Fact]
    public void Policy_per_release_lists_and_names()
    {
        var p510 = PcpPolicy.For(KernelVersion.Parse("5.10"), thp: true, pageblockOrder: 9);
        Assert.Equal(3, p510.Lists);
        Assert.False(p510.Allowed(1));
        Assert.Equal("MAX_ORDER", p510.MaxOrderName);
        Assert.Equal("order 11 >= MAX_ORDER 11", p510.OrderCheck(11, 11));
        var p515 = PcpPolicy.For(KernelVersion.Parse("5.15"), thp: true, pageblockOrder: 9);
        Assert.Equal(15, p515.Lists); // 3 × (orders 0..3 + THP)
        Assert.True(p515.Allowed(3) && p515.Allowed(9) && !p515.Allowed(4));
        Assert.Equal(3 * 2 + 1, p515.Index((int)MigrateType.Movable, 2));
        Assert.Equal(12 + 2, p515.Index((int)MigrateType.Reclaimable, 9));
        Assert.Equal(9, p515.OrderOf(14));
        Assert.Equal(12, PcpPolicy.For(KernelVersion.Parse("5.15"), thp: false, pageblockOrder: 9).Lists);
        Assert.Equal(13, PcpPolicy.For(KernelVersion.Parse("6.1"), thp: true, pageblockOrder: 9).Lists);
        var p612 = PcpPolicy.For(KernelVersion.Parse("6.12"), thp: true, pageblockOrder: 9);
        Assert.Equal(14, p612.Lists);
        Assert.Equal(13, p612.Index((int)MigrateType.Movable, 9));
        Assert.Equal(12, p612.Index((int)MigrateType.Unmovable, 9));
        var p64 = PcpPolicy.For(KernelVersion.Parse("6.4"), thp: true, pageblockOrder: 9);
        Assert.Equal("order 11 > MAX_ORDER 10", p64.OrderCheck(11, 11));
        Assert.Equal("order 11 > MAX_PAGE_ORDER 10", PcpPolicy.For(KernelVersion.Parse("6.8"), true, 9).OrderCheck(11, 11));
    }

    [Fact]
    public void A_small_zone_keeps_no_pages_on_the_lists_before_5_14()
    {
        using var m = Boot("5.10");
        var dma = m.Zones[0];
        Assert.Equal("DMA", dma.Name);
        Assert.Equal(0, dma.PcpHigh);
        Assert.Equal(1, dma.PcpBatch);
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        string dmaBlock = zi[..zi.IndexOf("zone    DMA32", StringComparison.Ordinal)];
        Assert.Matches(@"\n    cpu: 0\n              count: 0\n              high:  0\n              batch: 1\n  vm stats threshold: \d+", dmaBlock);
        // The boot line prints zone_batchsize() itself, 0: the lists' batch of 1 is max(1, 0).
        Assert.Contains("DMA zone: 3998 pages, LIFO batch:0", m.Dmesg());
        var p = m.AllocPage(Gfp.Dma);
        Assert.False(p.IsNull);
        m.FreePage(p);
        Assert.Equal(0, dma.PcpPages); // freed straight back: count 1 >= high 0
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void From_5_14_high_is_the_low_watermark_shared_by_the_cpus()
    {
        using var m = Boot("5.15");
        int cpus = m.Profile.Cpus;
        foreach (var z in m.Zones.Where(z => z.Present > 0))
        {
            int batch = Math.Max(1, Watermarks.PcpBatch(z.Managed));
            Assert.Equal(batch, z.PcpBatch);
            Assert.Equal((int)Math.Max(z.WatermarkLow / cpus, 4L * batch), z.PcpHigh);
        }
        // The DMA zone now keeps a few pages per CPU: high is at least 4 × batch 1.
        var dma = m.Zones[0];
        Assert.True(dma.PcpHigh >= 4);
        m.DrainAllPages();
        var p = m.AllocPage(Gfp.Dma);
        m.FreePage(p);
        Assert.Equal(1, dma.PcpPages);
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        Assert.Contains($"\n              high:  {m.Zones[2].PcpHigh}\n              batch: 63\n", zi);
        Assert.DoesNotContain("high_min", zi);
    }

    [Fact]
    public void From_6_7_zoneinfo_prints_high_min_and_high_max()
    {
        using var m = Boot("6.8");
        var normal = m.Zones[2];
        var p = m.AllocPage(Gfp.Kernel);
        m.FreePage(p);
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        int cpus = m.Profile.Cpus;
        Assert.Equal((int)Math.Max(normal.Managed / 8 / cpus, 4L * normal.PcpBatch), m.Pages.Zones[2].PcpHighMax);
        var blocks = Regex.Matches(zi[zi.IndexOf("zone   Normal", StringComparison.Ordinal)..],
            @"\n    cpu: (\d+)\n              count:    \d+\n              high:     (\d+)\n              batch:    63\n              high_min: (\d+)\n              high_max: (\d+)\n  vm stats threshold: \d+");
        Assert.Equal(cpus, blocks.Count);
        foreach (Match b in blocks)
        {
            Assert.Equal(normal.PcpHigh.ToString(), b.Groups[3].Value);
            Assert.Equal(m.Pages.Zones[2].PcpHighMax.ToString(), b.Groups[4].Value);
            Assert.True(b.Groups[2].Value == "0" || b.Groups[2].Value == b.Groups[3].Value);
        }
        Assert.Contains(blocks, b => b.Groups[2].Value != "0"); // the CPU that freed a page
    }

    [Fact]
    public void High_order_blocks_go_through_the_lists_from_5_14_only()
    {
        foreach (var (version, cached) in new[] { ("5.10", false), ("5.13", false), ("5.15", true), ("6.1", true), ("6.12", true) })
        {
            using var m = Boot(version);
            m.DrainAllPages();
            long free0 = m.Zones.Sum(z => z.FreePages) + PcpPages(m);
            var p = m.AllocPages(Gfp.Kernel, 2);
            Assert.False(p.IsNull);
            long before = PcpPages(m);
            m.FreePages(p, 2);
            Assert.Equal(before + (cached ? 4 : 0), PcpPages(m));
            // Many blocks of every pcp order, freed in a mixed order: the lists overflow and flush round-robin.
            var held = new List<(Page Page, int Order)>();
            for (int i = 0; i < 300; i++)
            {
                int order = i % 4;
                var b = m.AllocPages(i % 3 == 0 ? Gfp.Kernel | Gfp.Movable : Gfp.Kernel, order);
                Assert.False(b.IsNull);
                held.Add((b, order));
            }
            for (int i = 0; i < held.Count; i += 2) m.FreePages(held[i].Page, held[i].Order);
            for (int i = 1; i < held.Count; i += 2) m.FreePages(held[i].Page, held[i].Order);
            Assert.Empty(m.VerifyIntegrity());
            m.DrainAllPages();
            Assert.Equal(0, PcpPages(m));
            Assert.Equal(free0, m.Zones.Sum(z => z.FreePages));
            Assert.Empty(m.VerifyIntegrity());
        }
    }

    [Fact]
    public void A_thp_order_block_uses_its_list_with_transparent_hugepages()
    {
        using var m = Machine.Boot(MachineProfile.Embedded("x86_64") with
        {
            Version = KernelVersion.Parse("5.15"),
            ConfigOptions = new Dictionary<string, object> { ["TRANSPARENT_HUGEPAGE"] = true },
        });
        Assert.Equal(9, m.Pages.Pcp.ThpOrder);
        m.DrainAllPages();
        var p = m.AllocPages(Gfp.Kernel | Gfp.Movable, 9);
        Assert.False(p.IsNull);
        // rmqueue_bulk() brought max(63 >> 9, 2) = 2 blocks: one went out, one stays on the Normal zone's THP list.
        Assert.Equal(512, m.Zones[2].PcpPages);
        Assert.Equal(512, PcpPages(m));
        m.FreePages(p, 9);
        // count 1024: at or above high, one block (the coldest, from the only non-empty list) goes back.
        Assert.Equal(m.Zones[2].PcpHigh <= 1024 ? 512 : 1024, PcpPages(m));
        Assert.Empty(m.VerifyIntegrity());
        m.DrainAllPages();
        Assert.Equal(0, PcpPages(m));
    }

    [Theory]
    [InlineData("5.10", "at mm/page_alloc.c __alloc_pages_nodemask: order 11 >= MAX_ORDER 11", "MAX_ORDER is 11")]
    [InlineData("6.4", "at mm/page_alloc.c __alloc_pages: order 11 > MAX_ORDER 10", "MAX_ORDER is 10")]
    [InlineData("6.8", "at mm/page_alloc.c __alloc_pages: order 11 > MAX_PAGE_ORDER 10", "MAX_PAGE_ORDER is 10")]
    public void Order_bounds_are_named_as_the_release_names_them(string version, string warning, string freeReport)
    {
        using var m = Boot(version);
        Assert.Equal(11, m.MaxOrder); // orders 0..10 in every release: only the macro's meaning moved
        Assert.True(m.AllocPages(Gfp.Kernel, 11).IsNull);
        Assert.False(m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 10).IsNull);
        Assert.Contains(warning, m.Dmesg());
        var p = m.AllocPage(Gfp.Kernel);
        Assert.Throws<BadPageStateException>(() => m.FreePages(p, 11));
        Assert.Contains(freeReport, m.Dmesg());
        m.FreePage(p);
    }

    /// <summary>The lines of one zone's block with the figures blanked, one CPU's pageset kept, NUMA and zsmalloc stats dropped.</summary>
    private static List<string> Shape(string zoneinfo, string zone)
    {
        int start = zoneinfo.IndexOf($"Node 0, zone {zone,8}", StringComparison.Ordinal);
        int end = zoneinfo.IndexOf("\nNode 0, zone", start + 1, StringComparison.Ordinal);
        var lines = zoneinfo[start..(end < 0 ? zoneinfo.Length : end)].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var shape = new List<string>();
        bool secondCpu = false;
        foreach (var line in lines)
        {
            if (line.StartsWith("    cpu: ", StringComparison.Ordinal) && line != "    cpu: 0") secondCpu = true;
            if (line.StartsWith("  node_unreclaimable", StringComparison.Ordinal)) secondCpu = false;
            if (secondCpu) continue;
            string t = line.TrimStart();
            if (t.StartsWith("numa_", StringComparison.Ordinal) || t.StartsWith("nr_zspages", StringComparison.Ordinal)) continue;
            shape.Add(Regex.Replace(line, @"\d+", "#"));
        }
        return shape;
    }

    [Fact]
    public void Zoneinfo_of_6_6_has_the_shape_of_a_real_6_6_machine()
    {
        // A published 6.6 zoneinfo (x86_64 VM, 2 nodes of 2 CPUs): every line of the DMA zone's block (per-node stats,
        // boost and cma lines, zone stats, one CPU's pageset) in the same order, figures aside. Its NUMA counters and
        // nr_zspages (CONFIG_ZSMALLOC) are not modelled.
        string real = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "zoneinfo_x86_64_6.6-rc1_16G_numa2_lkml.txt"));
        using var m = Boot("6.6");
        string ours = m.ProcFs.Read("/proc/zoneinfo");
        foreach (var zone in new[] { "DMA", "DMA32", "Normal", "Movable" })
            Assert.Equal(Shape(real, zone), Shape(ours, zone));
        // 5.10 has none of the 5.11-6.0 additions, and nr_page_table_pages among the zone stats.
        using var old = Boot("5.10");
        string t = old.ProcFs.Read("/proc/zoneinfo");
        Assert.DoesNotContain("boost", t);
        Assert.DoesNotContain("        cma ", t);
        Assert.DoesNotContain("nr_throttled_written", t);
        Assert.Matches(@"nr_mlock +\d+\n      nr_page_table_pages \d+\n      nr_bounce", t);
    }

    [Fact]
    public void The_real_6_6_pagesets_follow_zone_highsize()
    {
        // Each populated zone of the published 6.6 dump: batch = max(1, zone_batchsize(managed)) and
        // high = max(low watermark / CPUs of the node, 4 × batch), with the node's 2 CPUs.
        string real = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "zoneinfo_x86_64_6.6-rc1_16G_numa2_lkml.txt"));
        var zones = Regex.Matches(real, @"Node 0, zone +(\w+)\n(?:.*\n)*?        low      (\d+)\n(?:.*\n)*?        managed  (\d+)\n(?:.*\n)*?              high:  (\d+)\n              batch: (\d+)");
        Assert.Equal(3, zones.Count);
        foreach (Match z in zones)
        {
            long low = long.Parse(z.Groups[2].Value), managed = long.Parse(z.Groups[3].Value);
            var (high, batch, _) = Watermarks.PcpSizes(PcpHighFormula.LowWatermark, Watermarks.PcpBatch(managed), low, managed, 2);
            Assert.Equal(int.Parse(z.Groups[5].Value), batch);
            Assert.Equal(int.Parse(z.Groups[4].Value), high);
        }
        // Under the 5.10 rules the same DMA zone would have kept nothing: high 0, batch 1.
        Assert.Equal((0, 1, 0), Watermarks.PcpSizes(PcpHighFormula.SixTimesBatch, Watermarks.PcpBatch(3840), 26, 3840, 2));
    }

    [Fact]
    public async Task High_order_lists_survive_drains_from_another_thread()
    {
        using var m = Boot("6.1");
        using var stop = new CancellationTokenSource();
        var drainer = Task.Run(() => { while (!stop.IsCancellationRequested) m.DrainAllPages(); });
        var workers = Enumerable.Range(0, 2).Select(w => Task.Run(() =>
        {
            var held = new Queue<(Page Page, int Order)>();
            for (int i = 0; i < 3000; i++)
            {
                int order = (i * 7 + w) % 4;
                var p = m.AllocPages(Gfp.Kernel, order);
                Assert.False(p.IsNull);
                held.Enqueue((p, order));
                if (held.Count > 40) { var (q, o) = held.Dequeue(); m.FreePages(q, o); }
            }
            while (held.Count > 0) { var (q, o) = held.Dequeue(); m.FreePages(q, o); }
        })).ToArray();
        await Task.WhenAll(workers);
        stop.Cancel();
        await drainer;
        Assert.Empty(m.VerifyIntegrity());
        m.DrainAllPages();
        Assert.Equal(0, PcpPages(m));
    }

    [Fact]
    public void Show_mem_prints_the_boost_from_5_16()
    {
        using var m510 = Boot("5.10");
        using var m61 = Boot("6.1");
        Assert.DoesNotContain("boost:", m510.Pages.ShowMem());
        // x86_64 has CONFIG_NUMA: show_node() names the node.
        Assert.Matches(@"\nNode 0 Normal free:\d+kB boost:0kB min:\d+kB", m61.Pages.ShowMem());
    }
}
