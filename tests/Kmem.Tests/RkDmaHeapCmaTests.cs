// rk_dma_heap_cma= and the CMA reservations of boot: the parameter's parsing (memparse sizes, @BASE, the last word
// wins, the vendor's error), rk_dma_heap_cma_setup()'s placement on RV1106 boards of 64, 128 and 256 MiB as the
// published Luckfox boot logs show it, device-tree linux,cma pools before it, fixed bases and the kernel's refusals,
// and the parameter on a kernel without the RK heaps.
using System.Text.Json.Nodes;

namespace Kmem.Tests;

public class RkDmaHeapCmaTests
{
    /// <summary>
    /// The rv1106 profile (its vendor config) on a board of <paramref name="ramMiB"/> MiB with the command line
    /// <paramref name="cmdline"/>, optionally a 10 MiB device-tree linux,cma pool, read through the profile reader.
    /// </summary>
    private static MachineProfile Board(int ramMiB, string cmdline, bool dtPool = false, params (string Name, object Value)[] config)
    {
        var json = JsonNode.Parse(MachineProfile.EmbeddedJson("rv1106"))!.AsObject();
        json["dram"] = new JsonArray(new JsonObject { ["base"] = "0x0", ["size"] = $"{ramMiB}M" });
        json["cmdline"] = cmdline;
        if (dtPool) json["cma"] = new JsonArray(new JsonObject { ["reserved_memory"] = true, ["size"] = "10M" });
        foreach (var (name, value) in config)
            json["config"]![name] = value switch { bool b => JsonValue.Create(b), int i => JsonValue.Create(i), _ => JsonValue.Create(value.ToString()) };
        return MachineProfile.Parse(json.ToJsonString());
    }

    private static Machine Boot(int ramMiB, string cmdline, bool dtPool = false, params (string Name, object Value)[] config) =>
        Machine.Boot(Board(ramMiB, cmdline, dtPool, config));

    /// <summary>The dmesg lines of the boot's CMA reservations, without timestamps.</summary>
    private static List<string> CmaLines(Machine m) => m.Dmesg().Split('\n')
        .Select(l => l.Length > 15 && l[0] == '[' ? l[(l.IndexOf(']') + 2)..] : l)
        .Where(l => l.StartsWith("cma:", StringComparison.Ordinal) || l.StartsWith("Reserved memory:", StringComparison.Ordinal)
                    || l.StartsWith("OF: reserved mem:", StringComparison.Ordinal)).ToList();

    // ------------------------------------------------------------------ published placements

    [Fact]
    public void A_64_MiB_board_with_24M_places_the_area_at_the_top_of_ram_as_the_Luckfox_Pico_Mini_logs_show()
    {
        // LuckfoxTECH/luckfox-pico issues #79 and #162: "cma: Reserved 24576 KiB at 0x02800000" (64 MiB, rk_dma_heap_cma=24M).
        using var m = Boot(64, "rk_dma_heap_cma=24M");
        Assert.Equal(["cma: Reserved 24576 KiB at 0x02800000"], CmaLines(m));
        var cma = m.Cma["rk-dma-heap-cma"];
        Assert.Equal(0x02800000UL, cma.Base);
        Assert.Equal(24UL << 20, cma.Size);
        Assert.Contains(", 24576K cma-reserved)", m.Dmesg());
    }

    [Fact]
    public void A_256_MiB_board_puts_the_device_tree_pool_first_and_the_1M_heap_area_below_it()
    {
        // LuckfoxTECH/luckfox-pico issue #208 (Luckfox Pico Ultra W, 256 MiB, a 10 MiB linux,cma node, rk_dma_heap_cma=1M).
        using var m = Boot(256, "rk_dma_heap_cma=1M", dtPool: true);
        Assert.Equal([
            "Reserved memory: created CMA memory pool at 0x0f600000, size 10 MiB",
            "OF: reserved mem: initialized node linux,cma, compatible id shared-dma-pool",
            "cma: Reserved 1024 KiB at 0x0f500000",
        ], CmaLines(m));
        Assert.Equal(0x0f600000UL, m.Cma["linux,cma"].Base);
        Assert.Equal(0x0f500000UL, m.Cma["rk-dma-heap-cma"].Base);
        Assert.Contains(", 11264K cma-reserved)", m.Dmesg());   // totalcma_pages counts both areas
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_256_MiB_board_with_66M_places_the_area_directly_below_the_pool()
    {
        // The Luckfox Pico Ultra W on the 5.10.160 SDK: "cma: Reserved 67584 KiB at 0x0b400000", 77824K cma-reserved.
        using var m = Boot(256, "rk_dma_heap_cma=66M", dtPool: true);
        Assert.Equal("cma: Reserved 67584 KiB at 0x0b400000", CmaLines(m)[^1]);
        Assert.Contains(", 77824K cma-reserved)", m.Dmesg());
    }

    [Fact]
    public void A_128_MiB_board_with_66M_takes_the_top_66_MiB()
    {
        // Luckfox Pico Pro (issue #69): 67584K cma-reserved; 0x08000000 - 66 MiB = 0x03e00000 with no pool above it.
        using var m = Boot(128, "rk_dma_heap_cma=66M");
        Assert.Equal(["cma: Reserved 67584 KiB at 0x03e00000"], CmaLines(m));
        var memory = System.Text.RegularExpressions.Regex.Match(m.Dmesg(), @"Memory: (\d+)K/131072K available .* (\d+)K reserved, 67584K cma-reserved\)");
        Assert.True(memory.Success, m.Dmesg());
        Assert.Equal(131072, long.Parse(memory.Groups[1].Value) + long.Parse(memory.Groups[2].Value) + 67584);
    }

    [Fact]
    public void Under_cma_inactive_a_size_that_is_not_whole_MiB_keeps_page_alignment()
    {
        // Rockchip's mm/cma.c compiles the pageblock alignment out with CONFIG_CMA_INACTIVE: PAGE_SIZE stands.
        using var m = Boot(64, "rk_dma_heap_cma=1500K");
        Assert.Equal(["cma: Reserved 1500 KiB at 0x03e89000"], CmaLines(m));   // 0x04000000 - 1500 KiB
        Assert.Equal(375UL, m.Cma["rk-dma-heap-cma"].Count);
        // kernel.org's cma_declare_contiguous() raises both to 1 MiB (PAGE_SIZE << max(MAX_ORDER - 1, pageblock_order)).
        using var upstream = Boot(64, "rk_dma_heap_cma=1500K", config: ("CMA_INACTIVE", false));
        Assert.Equal(["cma: Reserved 2 MiB at 0x03e00000"], CmaLines(upstream));
    }

    [Fact]
    public void Without_the_parameter_the_area_takes_the_drivers_32_MiB_default()
    {
        using var m = Boot(64, "");
        Assert.Equal(["cma: Reserved 32768 KiB at 0x02000000"], CmaLines(m));
        using var zero = Boot(64, "rk_dma_heap_cma=0");                       // a size of 0 is the default too
        Assert.Equal(32UL << 20, zero.Cma["rk-dma-heap-cma"].Size);
    }

    [Fact]
    public void A_fixed_base_is_reserved_as_given()
    {
        using var m = Boot(64, "rk_dma_heap_cma=8M@0x1000000");
        Assert.Equal(["cma: Reserved 8192 KiB at 0x01000000"], CmaLines(m));
        // Under CMA_INACTIVE a page-aligned base need not be MiB-aligned.
        using var odd = Boot(64, "rk_dma_heap_cma=8M@0x1001000");
        Assert.Equal(0x01001000UL, odd.Cma["rk-dma-heap-cma"].Base);
        TestSupport.AssertConsistent(odd);
    }

    // ------------------------------------------------------------------ refusals

    [Fact]
    public void A_fixed_base_over_reserved_memory_fails_and_the_boot_goes_on_without_the_area()
    {
        // 0x4000 is swapper_pg_dir: memblock_is_region_reserved(), -EBUSY.
        using var m = Boot(64, "rk_dma_heap_cma=8M@0x4000");
        Assert.Equal(["cma: Failed to reserve 8192 KiB"], CmaLines(m));
        Assert.DoesNotContain("rk-dma-heap-cma", m.Cma.Keys);
        Assert.Empty(m.RkDmaHeaps);
        Assert.Contains(", 0K cma-reserved)", m.Dmesg());
        // The devices whose memory the area was get a clear error, with the reason in the log.
        var dev = m.Devices["ffa50000.rkvenc"];
        Assert.Equal("rk-dma-heap-cma", dev.MissingCmaArea);
        var e = Assert.Throws<DmaApiException>(() => m.DmaAllocCoherent(dev, 4096, Gfp.Kernel, out _));
        Assert.Equal(DmaApiError.NoCmaArea, e.Error);
        Assert.Contains("rkvenc ffa50000.rkvenc: dma_alloc_coherent: no CMA area 'rk-dma-heap-cma'", TestSupport.LogText(m));
    }

    [Fact]
    public void A_fixed_range_past_the_end_of_ram_is_refused_with_the_kernels_message()
    {
        // Past the end, wholly: the limit check (the end of DRAM).
        using var m = Boot(64, "rk_dma_heap_cma=8M@0x5000000");
        Assert.Equal(["cma: Size (0x00800000) of region at 0x05000000 exceeds limit (0x04000000)", "cma: Failed to reserve 8192 KiB"], CmaLines(m));
        Assert.Empty(m.Cma);
        // Across the end: without highmem the end of lowmem is the end of RAM, and cma_declare_contiguous_nid() checks the
        // low/high boundary first.
        using var across = Boot(64, "rk_dma_heap_cma=8M@0x3c00000");
        Assert.Equal(["cma: Region at 0x03c00000 defined on low/high memory boundary (0x04000000)", "cma: Failed to reserve 8192 KiB"], CmaLines(across));
        Assert.Empty(across.Cma);
    }

    [Fact]
    public void Without_cma_inactive_a_fixed_base_off_the_pageblock_alignment_is_refused()
    {
        using var m = Boot(64, "rk_dma_heap_cma=8M@0x1001000", config: ("CMA_INACTIVE", false));
        Assert.Equal(["cma: Region at 0x01001000 must be aligned to 0x00100000 bytes", "cma: Failed to reserve 8 MiB"], CmaLines(m));
    }

    [Fact]
    public void A_pool_that_does_not_fit_is_left_out_as_the_kernel_does()
    {
        var json = JsonNode.Parse(MachineProfile.EmbeddedJson("rv1106"))!.AsObject();
        json["dram"] = new JsonArray(new JsonObject { ["base"] = "0x0", ["size"] = "64M" });
        json["cmdline"] = "rk_dma_heap_cma=1M";
        // Two 31 MiB pools on 64 MiB: the one placed second finds no aligned room between the first and the kernel image.
        // On 5.10 the kernel's heapsort of the two saved nodes (both base 0, size 0) swaps them: pool-b is placed first.
        json["cma"] = new JsonArray(new JsonObject { ["reserved_memory"] = true, ["name"] = "pool-a", ["size"] = "31M" },
                                    new JsonObject { ["reserved_memory"] = true, ["name"] = "pool-b", ["size"] = "31M" });
        json["devices"] = new JsonArray();
        using var m = Machine.Boot(MachineProfile.Parse(json.ToJsonString()));
        Assert.Contains("OF: reserved mem: failed to allocate memory for node 'pool-a'", CmaLines(m));
        Assert.Equal(["pool-b", "rk-dma-heap-cma"], m.Cma.Keys.Order());
    }

    // ------------------------------------------------------------------ parsing

    [Theory]
    [InlineData("rk_dma_heap_cma=8M", 8UL << 20, 0UL)]
    [InlineData("rk_dma_heap_cma=8m@0x1000000", 8UL << 20, 0x1000000UL)]
    [InlineData("rk_dma_heap_cma=0x800000", 8UL << 20, 0UL)]
    [InlineData("rk_dma_heap_cma=010M", 8UL << 20, 0UL)]                       // memparse: a leading 0 is octal
    [InlineData("rk_dma_heap_cma=2048k@16M", 2UL << 20, 16UL << 20)]
    [InlineData("rk_dma_heap_cma=4M@0x1000000 rk_dma_heap_cma=8M", 8UL << 20, 0x1000000UL)]   // a later word without '@' keeps the base
    [InlineData("rk_dma_heap_cma=4M@0x1000000 rk_dma_heap_cma=6M@0x2000000", 6UL << 20, 0x2000000UL)]
    public void The_parameter_is_read_as_early_dma_heap_cma_reads_it(string cmdline, ulong size, ulong @base)
    {
        var cmd = Kmem.Boot.KernelCmdline.Parse(cmdline, "cmdline");
        Assert.Equal((size, @base), cmd.RkDmaHeapCma("cmdline"));
        Assert.Empty(cmd.Unknown);
    }

    [Theory]
    [InlineData("rk_dma_heap_cma", "rk_dma_heap_cma: Config string not provided")]
    [InlineData("rk_dma_heap_cma=", "rk_dma_heap_cma= is not SIZE[@BASE]")]
    [InlineData("rk_dma_heap_cma=abc", "rk_dma_heap_cma=abc is not SIZE[@BASE]")]
    [InlineData("rk_dma_heap_cma=8Mx", "rk_dma_heap_cma=8Mx is not SIZE[@BASE]")]
    [InlineData("rk_dma_heap_cma=8M@", "the base after '@' is not an address")]
    [InlineData("rk_dma_heap_cma=8M@0x10zz", "the base after '@' is not an address")]
    [InlineData("rk_dma_heap_cma=99999999999999999999", "is not SIZE[@BASE]")]
    [InlineData("rk_dma_heap_cma=8G", "does not fit a 32-bit kernel's unsigned long")]
    public void A_bad_value_is_a_profile_error_naming_the_parameter(string cmdline, string message)
    {
        var e = Assert.Throws<ProfileException>(() => Board(64, cmdline));
        Assert.Equal("cmdline", e.Field);
        Assert.Contains(message, e.Message);
        // Given at boot instead of in the profile: the same refusal.
        Assert.Throws<ProfileException>(() => Machine.Boot(Board(64, ""), cmdline));
    }

    [Fact]
    public void On_a_kernel_without_the_rk_heaps_the_parameter_is_an_unknown_one()
    {
        using var m = Machine.Boot("rk3588", "rk_dma_heap_cma=8M");
        Assert.DoesNotContain("rk-dma-heap-cma", m.Cma.Keys);
        Assert.Contains("] Unknown command line parameters: rk_dma_heap_cma=8M\n", m.Dmesg());
        // Nor is a value it could not read an error there: the kernel hands the word to init.
        using var bad = Machine.Boot("rk3588", "rk_dma_heap_cma=junk");
        Assert.Contains("] Unknown command line parameters: rk_dma_heap_cma=junk\n", bad.Dmesg());
        using var rv = Machine.Boot("rv1106", "rk_dma_heap_cma=32M@0x2800000");
        Assert.DoesNotContain("Unknown command line parameters", rv.Dmesg());
    }

    [Fact]
    public void A_cma_entry_and_the_parameter_for_the_same_area_are_refused()
    {
        var json = JsonNode.Parse(MachineProfile.EmbeddedJson("rv1106"))!.AsObject();
        json["cma"] = new JsonArray(new JsonObject { ["name"] = "rk-dma-heap-cma", ["base"] = "0x02800000", ["size"] = "32M" });
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json.ToJsonString()));
        Assert.Equal("cma[0]", e.Field);
        Assert.Contains("given both here and by rk_dma_heap_cma=32M@0x2800000", e.Message);
        // Without the parameter the entry states the area itself (no second, default-sized one).
        json["cmdline"] = "";
        using var m = Machine.Boot(MachineProfile.Parse(json.ToJsonString()));
        Assert.Equal(["cma: Reserved 32768 KiB at 0x02800000"], CmaLines(m));
    }

    [Fact]
    public void A_device_tree_pool_is_checked_for_the_cma_alignment()
    {
        var json = JsonNode.Parse(MachineProfile.EmbeddedJson("rv1106"))!.AsObject();
        json["cma"] = new JsonArray(new JsonObject { ["reserved_memory"] = true, ["size"] = "1500K" });
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json.ToJsonString()));
        Assert.Contains("Reserved memory: incorrect alignment of CMA region", e.Message);
        json["cma"] = new JsonArray(new JsonObject { ["reserved_memory"] = true, ["base"] = "0x0e080000", ["size"] = "1M" });
        e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json.ToJsonString()));
        Assert.Contains("Reserved memory: incorrect alignment of CMA region", e.Message);
        // A fixed, aligned node is reserved where it says.
        json["cma"] = new JsonArray(new JsonObject { ["reserved_memory"] = true, ["name"] = "cma@e000000", ["base"] = "0x0e000000", ["size"] = "8M" });
        using var m = Machine.Boot(MachineProfile.Parse(json.ToJsonString()));
        Assert.Equal("Reserved memory: created CMA memory pool at 0x0e000000, size 8 MiB", CmaLines(m)[0]);
        Assert.Equal("OF: reserved mem: initialized node cma@e000000, compatible id shared-dma-pool", CmaLines(m)[1]);
    }

    [Fact]
    public void The_config_option_exists_only_on_arm_kernels()
    {
        var p = MachineProfile.Embedded("x86_64");
        var e = Assert.Throws<ProfileException>(() => (p with { ConfigOptions = new Dictionary<string, object> { ["DMABUF_HEAPS_ROCKCHIP"] = true } }).Config);
        Assert.Contains("CONFIG_DMABUF_HEAPS_ROCKCHIP does not exist", e.Message);
        Assert.False(MachineProfile.Embedded("rk3588").Config.IsEnabled("DMABUF_HEAPS_ROCKCHIP"));
        Assert.True(MachineProfile.Embedded("rv1106").Config.IsEnabled("DMABUF_HEAPS_ROCKCHIP"));
    }
}
