// The embedded rv1126 board: the RV1126 SDK's 4.19.111 kernel with rv1126_defconfig's memory options on 2 GiB, so
// ZONE_HIGHMEM above the 1 GiB of lowmem VMSPLIT_3G_OPT leaves: its zones, its boot lines, its meminfo, its devices,
// and GFP_HIGHUSER's zonelist (HighMem first, then Normal; DMA where a board has it).
namespace Kmem.Tests;

public class Rv1126ProfileTests
{
    private static long Field(string meminfo, string name) =>
        long.Parse(meminfo.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim().Split(' ')[0]);

    [Fact]
    public void It_boots_with_the_sdk_kernel_and_the_defconfig_memory_options()
    {
        Assert.Contains("rv1126", MachineProfile.EmbeddedNames);
        using var m = Machine.Boot("rv1126");
        var p = m.Profile;
        Assert.Equal(Arch.Arm, p.Arch);
        Assert.Equal(4, p.Cpus);
        Assert.Equal("4.19.111", p.Version.ToString());
        Assert.Equal(2UL << 30, p.TotalRam + 0x248000UL);     // 2 GiB less the trusted firmware's hole (0x08400000-0x08647fff)
        foreach (var on in new[] { "HIGHMEM", "VMSPLIT_3G_OPT", "SMP", "PREEMPT", "IOMMU_SUPPORT", "CMA", "DMA_CMA" })
            Assert.True(p.Config.IsEnabled(on), on);
        foreach (var off in new[] { "SLUB_DEBUG", "ZONE_DMA", "VM_EVENT_COUNTERS", "BASE_FULL" })
            Assert.False(p.Config.IsEnabled(off), off);
        Assert.Equal(8, p.Config.Number("CMA_SIZE_MBYTES"));
        Assert.Equal(0xB0000000UL, p.PageOffset);
        string log = TestSupport.LogText(m);
        Assert.Contains("Linux version 4.19.111-kmem (kmem@kmem)", log);
        Assert.Contains(" #1 SMP PREEMPT", log);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Lowmem_ends_at_1_GiB_where_the_3G_opt_split_and_the_vmalloc_reserve_put_high_memory()
    {
        using var m = Machine.Boot("rv1126");
        string log = TestSupport.LogText(m);
        // No ZONE_DMA on non-LPAE Rockchip (mach-rockchip selects it only with ARM_LPAE): Normal, then HighMem.
        Assert.Contains("Zone ranges:\n" +
                        "  Normal   [mem 0x0000000000000000-0x000000003fffffff]\n" +
                        "  HighMem  [mem 0x0000000040000000-0x000000007fffffff]\n", log);
        Assert.DoesNotContain("  DMA ", log);
        var zones = m.Zones.Where(z => z.Populated).ToArray();
        Assert.Equal(["Normal", "HighMem"], zones.Select(z => z.Name));
        Assert.Equal(0x40000UL, zones[1].StartPfn);
        Assert.Equal(0x40000L, zones[1].Spanned);
        Assert.Equal(0x40000UL << 12, MachineProfile.Embedded("rv1126").LowmemLimit);
        // free_area_init_core() charges the memmap to lowmem zones only.
        Assert.Contains("  Normal zone: 2048 pages used for memmap\n", log);
        Assert.DoesNotContain("HighMem zone: 2048 pages used for memmap", log);
        Assert.Contains("  HighMem zone: 262144 pages, LIFO batch:63\n", log);
    }

    [Fact]
    public void The_device_tree_cma_pools_lie_at_the_top_of_dram_in_highmem()
    {
        using var m = Machine.Boot("rv1126");
        string log = TestSupport.LogText(m);
        // Dynamic reusable pools are taken top-down from the end of DRAM, not limited to lowmem (of_reserved_mem.c:
        // early_init_dt_alloc_reserved_memory_arch with MEMBLOCK_ALLOC_ANYWHERE), aligned to 4 MiB. 4.19's heapsort of the
        // saved nodes (linux,cma, drm-logo, isp, all at base 0) hands isp out first: it takes the top of DRAM.
        string pools = string.Join("\n", log.Split('\n').Where(l => l.StartsWith("Reserved memory: created CMA", StringComparison.Ordinal)));
        Assert.Equal("Reserved memory: created CMA memory pool at 0x70000000, size 256 MiB\n" +
                     "Reserved memory: created CMA memory pool at 0x6f800000, size 8 MiB", pools);
        foreach (var name in new[] { "linux,cma", "isp" })
        {
            var area = m.Cma[name];
            Assert.True(area.Base >= 0x40000000UL, $"{name} at 0x{area.Base:x}");
            Assert.True(area.Inactive, $"{name} carries the vendor inactive property");
        }
        // The property, not a Kconfig option: the 4.19 tree has no CONFIG_CMA_INACTIVE.
        Assert.False(m.Profile.Config.IsEnabled("CMA_INACTIVE"));
        Assert.Contains("CmaFree:               0 kB", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void Only_an_inactive_node_stays_out_of_the_buddy_allocator()
    {
        // The same board with the isp pool active (no property): its 256 MiB are MIGRATE_CMA pages in the buddy allocator.
        var p = MachineProfile.Embedded("rv1126");
        var active = p with { Cma = [p.Cma[0], p.Cma[1] with { Inactive = false }] };
        using var m = Machine.Boot(active);
        Assert.True(m.Cma["linux,cma"].Inactive);
        Assert.False(m.Cma["isp"].Inactive);
        Assert.Matches(@"CmaFree:\s+26\d{4} kB", m.ProcFs.Read("/proc/meminfo"));   // 256 MiB free in the buddy allocator
        var got = m.CmaAlloc(m.Cma["isp"], 16, 0);
        Assert.False(got.IsNull);
        m.CmaRelease(m.Cma["isp"], got, 16);
        var inactive = m.CmaAlloc(m.Cma["linux,cma"], 16, 0);
        Assert.False(inactive.IsNull);
        m.CmaRelease(m.Cma["linux,cma"], inactive, 16);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_inactive_property_belongs_to_device_tree_nodes_only()
    {
        const string json = """
        { "name": "x", "arch": "arm", "cpus": 1, "dram": [ { "base": "0x60000000", "size": "256M" } ],
          "cma": [ { "name": "plain", "size": "16M", "inactive": true } ] }
        """;
        var ex = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json));
        Assert.Equal("cma[0].inactive", ex.Field);
    }

    [Fact]
    public void The_memory_line_ends_with_its_highmem_and_the_inactive_pools_count_in_neither()
    {
        using var m = Machine.Boot("rv1126");
        string line = TestSupport.LogText(m).Split('\n').Single(l => l.StartsWith("Memory: ", StringComparison.Ordinal));
        var high = m.Zones.Single(z => z.Name == "HighMem");
        Assert.EndsWith($", 270336K cma-reserved, {high.Managed * 4}K highmem)", line);
        // 1 GiB of HighMem less the two pools (8 + 256 MiB), which the vendor 'inactive' property keeps out of the buddy
        // allocator (and out of totalhigh_pages).
        Assert.Equal((1L << 20) - 270336, high.Managed * 4);
    }

    [Fact]
    public void Meminfo_high_and_low_lines_add_up_to_the_totals()
    {
        using var m = Machine.Boot("rv1126");
        var held = new List<Page>();
        for (int i = 0; i < 300; i++) held.Add(m.AllocPages(Gfp.HighUser, 0));
        for (int i = 0; i < 200; i++) held.Add(m.AllocPages(Gfp.Kernel, 0));
        m.DrainAllPages();
        string mi = m.ProcFs.Read("/proc/meminfo");
        long total = Field(mi, "MemTotal"), free = Field(mi, "MemFree");
        long highTotal = Field(mi, "HighTotal"), highFree = Field(mi, "HighFree"), lowTotal = Field(mi, "LowTotal"), lowFree = Field(mi, "LowFree");
        Assert.Equal(total, highTotal + lowTotal);
        Assert.Equal(free, highFree + lowFree);
        var high = m.Zones.Single(z => z.Name == "HighMem");
        Assert.Equal(high.Managed * 4, highTotal);
        Assert.Equal(high.FreePages * 4, highFree);
        Assert.Equal(highTotal - 300 * 4, highFree);           // the 300 GFP_HIGHUSER pages came from HighMem
        // buddyinfo's HighMem row holds the same free pages.
        var row = m.ProcFs.Read("/proc/buddyinfo").Split('\n').Single(l => l.Contains("HighMem")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[4..];
        Assert.Equal(high.FreePages, row.Select((n, order) => long.Parse(n) << order).Sum());
        foreach (var p in held) m.FreePage(p);
    }

    [Fact]
    public void Zoneinfo_shows_the_highmem_zone_with_its_own_watermarks()
    {
        using var m = Machine.Boot("rv1126");
        string zi = m.ProcFs.Read("/proc/zoneinfo");
        int at = zi.IndexOf("Node 0, zone  HighMem\n", StringComparison.Ordinal);
        Assert.True(at > zi.IndexOf("Node 0, zone   Normal\n", StringComparison.Ordinal));
        string high = zi[at..zi.IndexOf("Node 0, zone  Movable", at, StringComparison.Ordinal)];
        var z = m.Zones.Single(q => q.Name == "HighMem");
        Assert.Contains($"  pages free     {z.FreePages}\n", high);
        Assert.Contains("        spanned  262144\n        present  262144\n", high);
        Assert.Contains($"        managed  {z.Managed}\n", high);
        // __setup_per_zone_wmarks(): a HighMem zone's min is managed/1024 clamped to 32..128, not a share of min_free_kbytes.
        Assert.Contains($"        min      {Math.Clamp(z.Managed / 1024, 32, 128)}\n", high);
        Assert.Contains("  start_pfn:           262144\n", high);
        // Normal keeps a reserve against HighMem and Movable allocations (lowmem_reserve_ratio 32): the Movable column
        // counts HighMem's pages too, though HighMem keeps no reserve of its own (ratio 0).
        Assert.Contains($"        protection: (0, {z.Managed / 32}, {z.Managed / 32})\n", zi[..at]);
    }

    [Fact]
    public void Kmem_profiles_lists_it()
    {
        var (code, o, _) = TestSupport.Cli("profiles");
        Assert.Equal(0, code);
        string row = o.Split('\n').Single(l => l.Contains(" rv1126 "));
        Assert.Contains("4.19.111", row);
        Assert.Contains("Normal HighMem", row);
        Assert.Contains("linux,cma 8 MiB, isp 256 MiB", row);
    }

    [Fact]
    public void The_devices_of_rv1126_dtsi_are_there_with_their_iommus()
    {
        using var m = Machine.Boot("rv1126");
        foreach (var d in new[] { "ffb50000.rkisp", "ffb60000.rkispp", "ffbb0000.rkvenc", "ffb80000.rkvdec", "ffb90000.vepu", "ffb20000.iep", "ffb00000.vop" })
            Assert.True(m.Devices[d].HasIommu, d);
        foreach (var d in new[] { "ffaf0000.rk_rga", "ffbc0000.npu" })
        {
            Assert.False(m.Devices[d].HasIommu, d);
            Assert.Equal("linux,cma", m.Devices[d].CmaArea?.Name);
        }
        Assert.Equal("rockchip-vop", m.Devices["ffb00000.vop"].Driver);
    }

    [Fact]
    public void Gfp_highuser_takes_highmem_first_then_falls_back_to_normal()
    {
        using var m = Machine.Boot("rv1126");
        var first = m.AllocPages(Gfp.HighUser, 0);
        Assert.True(m.PageHighMem(first));
        Assert.Equal(0, m.PageAddress(first));                  // no address until mapped
        var kernel = m.AllocPages(Gfp.Kernel, 0);
        Assert.False(m.PageHighMem(kernel));
        // Exhaust HighMem with 4 MiB blocks: the zonelist then goes on to Normal.
        var blocks = new List<Page>();
        Page p;
        while (!(p = m.AllocPages(Gfp.HighUser | Gfp.NoWarn, 10)).IsNull && m.PageHighMem(p)) blocks.Add(p);
        Assert.False(p.IsNull);
        Assert.False(m.PageHighMem(p));
        Assert.True(p.Pfn < 0x40000UL);
        Assert.True(blocks.Count >= 180, $"{blocks.Count} HighMem blocks");
        m.FreePages(p, 10);
        foreach (var b in blocks) m.FreePages(b, 10);
        m.FreePage(first);
        m.FreePage(kernel);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void On_a_board_with_zone_dma_gfp_highuser_falls_back_from_normal_to_dma()
    {
        // A 1 GiB i386 PC: DMA below 16 MiB, Normal to 0x377fe000, HighMem above.
        using var m = Machine.Boot(MachineProfile.Parse("""
            { "name": "pc-i386-1g", "arch": "i386", "cpus": 1, "version": "4.19",
              "dram": [ { "base": "0x100000", "size": "0x3ff00000" } ] }
            """));
        Assert.Equal(["DMA", "Normal", "HighMem"], m.Zones.Where(z => z.Populated).Select(z => z.Name));
        var zoneOf = (Page q) => m.Zones.Single(z => z.Populated && q.Pfn >= z.StartPfn && q.Pfn < z.StartPfn + (ulong)z.Spanned).Name;
        var held = new List<(Page, int)>();
        var seen = new List<string>();
        while (true)
        {
            var q = m.AllocPages(Gfp.HighUser | Gfp.NoWarn, 0);
            if (q.IsNull) break;
            held.Add((q, 0));
            string z = zoneOf(q);
            if (seen.Count == 0 || seen[^1] != z) seen.Add(z);
            if (z == "DMA") break;
            // Big steps in between to get there sooner (the zones are followed by the single pages).
            var big = m.AllocPages(Gfp.HighUser | Gfp.NoWarn | Gfp.NoRetry, 8);
            if (!big.IsNull) held.Add((big, 8));
        }
        Assert.Equal(["HighMem", "Normal", "DMA"], seen);
        foreach (var (q, order) in held) m.FreePages(q, order);
        TestSupport.AssertConsistent(m);
    }
}
