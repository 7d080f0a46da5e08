// The kernel version and configuration as profile inputs: "version" and "config" are read and checked, each option
// defaults to the architecture's defconfig of the release, Kconfig's dependencies hold, the new architectures boot
// with their zones, "max_order" is read in its release's meaning, and --kernel overrides the profile's version.
namespace Kmem.Tests;

public class KernelInputsTests
{
    private static MachineProfile Parse(string arch, string extra = "", string ram = "512M") =>
        MachineProfile.Parse($$"""{"name":"t","arch":"{{arch}}","cpus":2,"dram":[{"base":"0x80000000","size":"{{ram}}"}]{{extra}}}""");

    [Theory]
    [InlineData("5.15", 5, 15, 0, "", "5.15.0")]
    [InlineData("6.6.30", 6, 6, 30, "", "6.6.30")]
    [InlineData("5.15.0-91-generic", 5, 15, 0, "-91-generic", "5.15.0-91-generic")]
    [InlineData("v4.14", 4, 14, 0, "", "4.14.0")]
    public void Versions_are_read_as_uname_prints_them(string text, int major, int minor, int patch, string suffix, string release)
    {
        var v = KernelVersion.Parse(text);
        Assert.Equal((major, minor, patch, suffix), (v.Major, v.Minor, v.Patch, v.Suffix));
        Assert.Equal(release, v.Release);
        Assert.True(v.IsAtLeast(major, minor));
        Assert.False(v.IsAtLeast(major, minor + 1));
    }

    [Fact]
    public void Versions_order_by_number_and_ignore_the_suffix()
    {
        Assert.True(KernelVersion.Parse("4.20") > KernelVersion.Parse("4.9"));
        Assert.True(KernelVersion.Parse("5.10.110") > KernelVersion.Parse("5.10"));
        Assert.Equal(KernelVersion.Parse("5.15.0-91-generic"), KernelVersion.Parse("5.15"));
        Assert.False(KernelVersion.TryParse("five", out _));
        Assert.Throws<FormatException>(() => KernelVersion.Parse("5"));
    }

    [Theory]
    [InlineData("\"3.9\"", "outside")]
    [InlineData("\"6.13\"", "outside")]
    [InlineData("\"2.6.32\"", "outside")]
    [InlineData("\"latest\"", "not a kernel version")]
    [InlineData("5.15", "must be a string")]
    public void Bad_versions_are_refused_with_the_field(string value, string problem)
    {
        var e = Assert.Throws<ProfileException>(() => Parse("arm64", $",\"version\":{value}"));
        Assert.Equal("version", e.Field);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Without_version_a_profile_models_5_10_and_its_defconfig()
    {
        var p = Parse("arm64");
        Assert.Equal(KernelVersion.Default, p.Version);
        Assert.Equal("5.10", p.Version.ToString());
        Assert.True(p.Config.IsEnabled("NUMA"));
        Assert.True(p.Config.IsEnabled("CMA"));
        Assert.True(p.Config.IsEnabled("MEMCG_KMEM"));
        Assert.False(p.Config.IsEnabled("HIGHMEM"));                 // arm64 has no such option
        Assert.False(p.Config.ContainsKey("HIGHMEM"));
        Assert.Equal("n", p.Config["RANDOM_KMALLOC_CACHES"]);         // 6.6's option is not in 5.10
        Assert.False(p.Config.ContainsKey("RANDOM_KMALLOC_CACHES"));
    }

    [Theory]
    [InlineData("x86_64", "NUMA", true)]
    [InlineData("x86_64", "MEMCG", false)]
    [InlineData("x86_64", "CMA", false)]
    [InlineData("i386", "HIGHMEM", true)]
    [InlineData("i386", "NUMA", false)]
    [InlineData("arm", "HIGHMEM", true)]
    [InlineData("arm", "CMA", true)]
    [InlineData("arm", "ZONE_DMA", false)]
    [InlineData("riscv64", "ZONE_DMA32", true)]
    [InlineData("riscv64", "ZONE_DMA", false)]
    [InlineData("riscv64", "MEMCG", true)]
    [InlineData("riscv32", "ZONE_DMA32", false)]
    public void Each_architecture_starts_from_its_defconfig(string arch, string option, bool on)
    {
        string ram = arch is "i386" or "riscv32" or "arm" ? "256M" : "512M";
        var p = MachineProfile.Parse($$"""{"name":"t","arch":"{{arch}}","cpus":2,"dram":[{"base":"0x0","size":"{{ram}}"}]}""");
        Assert.Equal(on, p.Config.IsEnabled(option));
    }

    [Fact]
    public void Options_exist_from_their_release_and_max_order_is_renamed_in_6_1()
    {
        var old = KernelConfig.Defconfig(Arch.Arm64, KernelVersion.Parse("4.9"));
        Assert.False(old.ContainsKey("SLAB_FREELIST_HARDENED"));      // 4.14
        Assert.False(old.ContainsKey("ZONE_DMA32"));                  // arm64 from 5.5
        Assert.Equal(11, old.Number("FORCE_MAX_ZONEORDER"));
        var newer = KernelConfig.Defconfig(Arch.Arm64, KernelVersion.Parse("6.6"));
        Assert.True(newer.ContainsKey("RANDOM_KMALLOC_CACHES"));
        Assert.False(newer.ContainsKey("SLOB"));                      // removed in 6.4
        Assert.Equal(10, newer.Number("ARCH_FORCE_MAX_ORDER"));       // inclusive from 6.4
        Assert.Null(newer.Number("FORCE_MAX_ZONEORDER"));
    }

    [Fact]
    public void Config_options_override_the_defconfig_and_unknown_ones_are_kept()
    {
        var p = Parse("arm64", ""","version":"6.6","config":{"NUMA":false,"CONFIG_SLAB_FREELIST_HARDENED":true,"HZ":250,"CMDLINE":"quiet"}""");
        Assert.False(p.Config.IsEnabled("NUMA"));
        Assert.True(p.Config.IsEnabled("SLAB_FREELIST_HARDENED"));
        Assert.Equal(250, p.Config.Number("HZ"));
        string dot = p.Config.ToDotConfig();
        Assert.Contains("# CONFIG_NUMA is not set\n", dot);
        Assert.Contains("CONFIG_SLAB_FREELIST_HARDENED=y\n", dot);
        Assert.Contains("CONFIG_HZ=250\n", dot);
        Assert.Contains("CONFIG_CMDLINE=\"quiet\"\n", dot);
        Assert.Null(KernelConfig.Describe("HZ"));          // kept, not acted on
        Assert.NotNull(KernelConfig.Describe("NUMA"));
        Assert.Contains("NUMA", KernelConfig.ModelledOptions);
    }

    [Theory]
    [InlineData("arm64", "\"HIGHMEM\":true", "does not exist")]
    [InlineData("arm64", "\"RANDOM_KMALLOC_CACHES\":true", "does not exist in Linux 5.10")]
    [InlineData("arm64", "\"SLAB\":true", "SLUB only")]
    [InlineData("arm64", "\"SLUB\":false", "SLUB only")]
    [InlineData("arm64", "\"NUMA\":3", "boolean")]
    [InlineData("arm64", "\"FORCE_MAX_ZONEORDER\":\"big\"", "whole number")]
    [InlineData("arm64", "\"DMA_CMA\":true,\"CMA\":false", "needs CONFIG_CMA")]
    [InlineData("x86_64", "\"ZONE_DMA\":true,\"ZONE_DMA32\":true,\"FORCE_MAX_ZONEORDER\":9", "does not exist")]
    [InlineData("riscv64", "\"ZONE_DMA\":true", "does not exist")]
    [InlineData("arm64", "\"numa\":true", "not a CONFIG_ option name")]
    [InlineData("arm64", "\"NUMA\":[1]", "must be true, false")]
    public void Impossible_configs_are_refused_with_the_option(string arch, string config, string problem)
    {
        var e = Assert.Throws<ProfileException>(() => Parse(arch, $",\"config\":{{{config}}}"));
        Assert.StartsWith("config", e.Field);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Kconfig_dependencies_follow_a_turned_off_option()
    {
        var p = Parse("arm64", ""","config":{"MEMCG":false,"CMA":false,"SMP":false}""");
        Assert.False(p.Config.IsEnabled("MEMCG_KMEM"));
        Assert.False(p.Config.IsEnabled("DMA_CMA"));
        Assert.False(p.Config.IsEnabled("SLUB_CPU_PARTIAL"));
        var q = Parse("x86_64", ""","config":{"MEMCG_KMEM":true}""");          // needs MEMCG, which follows
        Assert.True(q.Config.IsEnabled("MEMCG"));
    }

    [Fact]
    public void Zones_follow_the_config_and_the_zones_key_can_only_move_or_remove_them()
    {
        var noDma = Parse("x86_64", ""","config":{"ZONE_DMA":false}""", "2G");
        Assert.Equal(new[] { ZoneType.Dma32, ZoneType.Normal, ZoneType.Movable }, noDma.ZoneTypes);
        var removed = Parse("x86_64", ""","zones":{"dma_limit":null}""", "2G");
        Assert.False(removed.Config.IsEnabled("ZONE_DMA"));
        var e = Assert.Throws<ProfileException>(() => Parse("x86_64", ""","config":{"ZONE_DMA":false},"zones":{"dma_limit":"16M"}""", "2G"));
        Assert.Equal("zones.dma_limit", e.Field);
        e = Assert.Throws<ProfileException>(() => Parse("x86_64", ""","config":{"ZONE_DMA":true},"zones":{"dma_limit":null}""", "2G"));
        Assert.Equal("zones.dma_limit", e.Field);
        e = Assert.Throws<ProfileException>(() => Parse("riscv64", ""","zones":{"lowmem_limit":"512M"}"""));
        Assert.Equal("zones.lowmem_limit", e.Field);
    }

    [Theory]
    [InlineData("riscv64", "0x80000000", "4G", new[] { ZoneType.Dma32, ZoneType.Normal, ZoneType.Movable })]
    [InlineData("riscv32", "0x80000000", "256M", new[] { ZoneType.Normal, ZoneType.Movable })]
    [InlineData("i386", "0x0", "2G", new[] { ZoneType.Dma, ZoneType.Normal, ZoneType.HighMem, ZoneType.Movable })]
    public void New_architectures_boot_with_their_zones_and_allocate(string arch, string bas, string size, ZoneType[] zones)
    {
        var p = MachineProfile.Parse($$"""{"name":"t","arch":"{{arch}}","cpus":2,"dram":[{"base":"{{bas}}","size":"{{size}}"}]}""");
        Assert.Equal(zones, p.ZoneTypes);
        using var m = Machine.Boot(p);
        Assert.Equal(zones.Where(z => z != ZoneType.Movable), m.Zones.Where(z => z.Present > 0).Select(z => z.Type));
        nint obj = m.Kmalloc(100, Gfp.Kernel);
        Assert.NotEqual(0, obj);
        m.Kfree(obj);
        var page = m.AllocPages(Gfp.Kernel, 2);
        Assert.False(page.IsNull);
        m.FreePages(page, 2);
        Assert.Empty(m.VerifyIntegrity());
        Assert.Contains($"Linux version 5.10.0-kmem", m.Dmesg());
    }

    [Fact]
    public void I386_lowmem_ends_where_the_3g_split_and_the_vmalloc_reserve_put_it()
    {
        using var m = Machine.Boot(MachineProfile.Parse("""{"name":"pc","arch":"i386","cpus":1,"dram":[{"base":"0x0","size":"2G"}]}"""));
        var normal = m.Zones.Single(z => z.Type == ZoneType.Normal);
        var high = m.Zones.Single(z => z.Type == ZoneType.HighMem);
        Assert.Equal(0x377feUL, normal.StartPfn + (ulong)normal.Spanned);
        Assert.Equal(0x377feUL, high.StartPfn);
        Assert.Contains("Normal   [mem 0x0000000001000000-0x00000000377fdfff]", m.Dmesg());
        Assert.Equal(4, m.Profile.Is64Bit ? 8 : 4);
    }

    [Fact]
    public void Without_highmem_a_32_bit_kernel_refuses_ram_it_cannot_map()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(
            """{"name":"t","arch":"arm","cpus":1,"dram":[{"base":"0x0","size":"1G"}],"config":{"HIGHMEM":false}}"""));
        Assert.Equal("dram", e.Field);
        Assert.Contains("HIGHMEM", e.Message);
        var ok = MachineProfile.Parse("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":"0x0","size":"256M"}],"config":{"HIGHMEM":false}}""");
        Assert.DoesNotContain(ZoneType.HighMem, ok.ZoneTypes);
    }

    [Theory]
    [InlineData("5.10", "\"max_order\":11", 11)]
    [InlineData("6.6", "\"max_order\":10", 11)]                            // inclusive from 6.4: orders 0..10
    [InlineData("6.6", "\"config\":{\"ARCH_FORCE_MAX_ORDER\":8}", 9)]
    [InlineData("5.10", "\"config\":{\"FORCE_MAX_ZONEORDER\":9}", 9)]      // exclusive before 6.4: orders 0..8
    [InlineData("5.10", "\"config\":{\"ARCH_FORCE_MAX_ORDER\":9}", 9)]     // the later spelling reaches the same option
    [InlineData("6.6", "", 11)]
    public void Max_order_is_read_in_the_meaning_of_the_profile_release(string version, string key, int orders)
    {
        var p = Parse("arm", $",\"version\":\"{version}\"{(key.Length > 0 ? "," + key : "")}", "256M");
        Assert.Equal(orders, p.MaxOrder);
        using var m = Machine.Boot(p);
        string buddy = m.ProcFs.Read("/proc/buddyinfo");
        Assert.Equal(orders, buddy.Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length - 4);
    }

    [Fact]
    public void A_profile_changed_with_with_is_checked_again_at_boot()
    {
        var p = MachineProfile.Embedded("rk3588") with { ConfigOptions = new Dictionary<string, object> { ["SLAB_FREELIST_HARDENED"] = true } };
        Assert.True(p.Config.IsEnabled("SLAB_FREELIST_HARDENED"));
        var back = p with { Version = KernelVersion.Parse("4.9") };             // the option came in 4.14
        var e = Assert.Throws<ProfileException>(() => Machine.Boot(back));
        Assert.Contains("SLAB_FREELIST_HARDENED", e.Message);
    }

    [Fact]
    public void The_cli_takes_kernel_and_prints_it_in_the_banner()
    {
        var (code, o, e) = TestSupport.Cli("boot", "--kernel", "5.15");
        Assert.True(code == 0, e);
        Assert.Contains("Linux version 5.15.0-kmem (kmem@kmem)", o);
        (code, o, e) = TestSupport.Cli("dmesg", "-p", "x86_64", "-k", "4.19.250");
        Assert.True(code == 0, e);
        Assert.Contains("Linux version 4.19.250-kmem", o);
        (code, _, e) = TestSupport.Cli("boot", "--kernel", "2.6.32");
        Assert.Equal(2, code);
        Assert.Contains("outside the releases Kmem models", e);
        (code, _, e) = TestSupport.Cli("boot", "--kernel", "soon");
        Assert.Equal(2, code);
        Assert.Contains("not a kernel version", e);
    }

    [Fact]
    public void The_cli_prints_the_configuration_a_profile_resolves_to()
    {
        var (code, o, e) = TestSupport.Cli("profiles", "--config", "rk3588", "--kernel", "6.6");
        Assert.True(code == 0, e);
        Assert.StartsWith("# Linux/arm64 6.6.0 kernel configuration", o);
        Assert.Contains("CONFIG_ARCH_FORCE_MAX_ORDER=10\n", o);
        Assert.Contains("# CONFIG_ZONE_DMA32 is not set\n", o);               // the profile removes the zone
        (code, o, _) = TestSupport.Cli("profiles", "--config", "rv1106");
        Assert.Equal(0, code);
        Assert.Contains("CONFIG_FORCE_MAX_ZONEORDER=9\n", o);             // Rockchip's rv1106_defconfig
        Assert.Contains("# CONFIG_HIGHMEM is not set\n", o);
        Assert.Contains("CONFIG_VMSPLIT_3G_OPT=y\n", o);
        (code, _, e) = TestSupport.Cli("profiles", "--kernel", "6.6");
        Assert.Equal(2, code);
        Assert.Contains("--kernel applies only with --config", e);
        (code, o, _) = TestSupport.Cli("profiles");
        Assert.Contains("kernel", o);
        Assert.Contains("5.10", o);
    }

    [Fact]
    public void A_profile_changed_with_with_is_refused_an_unmodelled_release_or_a_zone_its_release_lacks()
    {
        var e = Assert.Throws<ProfileException>(() => Machine.Boot(MachineProfile.Embedded("x86_64") with { Version = new KernelVersion(7, 0) }));
        Assert.Equal("version", e.Field);
        // rk3588 gives a 4 GiB ZONE_DMA; arm64 5.0-5.4 had ZONE_DMA32 instead ("arm64: replace ZONE_DMA with ZONE_DMA32").
        e = Assert.Throws<ProfileException>(() => Machine.Boot(MachineProfile.Embedded("rk3588") with { Version = KernelVersion.Parse("5.4") }));
        Assert.Equal("zones.dma_limit", e.Field);
    }

    [Theory]
    [InlineData("4.19", "DMA      [mem 0x0000000080000000-0x00000000ffffffff]", null)]
    [InlineData("5.4", null, "DMA32    [mem 0x0000000080000000-0x00000000ffffffff]")]
    [InlineData("5.10", "DMA      [mem 0x0000000080000000-0x00000000bfffffff]", "DMA32    [mem 0x00000000c0000000-0x00000000ffffffff]")]
    [InlineData("6.6", "DMA      [mem 0x0000000080000000-0x00000000ffffffff]", "DMA32    empty")]
    public void Arm64_zones_follow_the_release(string version, string? dma, string? dma32)
    {
        var p = Parse("arm64", $",\"version\":\"{version}\"", "4G");
        using var m = Machine.Boot(p);
        string log = m.Dmesg();
        if (dma is not null) Assert.Contains(dma, log);
        else Assert.DoesNotContain(" DMA      ", log);
        if (dma32 is not null) Assert.Contains(dma32, log);
        else Assert.DoesNotContain("DMA32", log);
        Assert.Empty(m.VerifyIntegrity());
    }

    [Theory]
    [InlineData("\"FORCE_MAX_ZONEORDER\":4294967306", "outside 1..16")]
    [InlineData("\"FORCE_MAX_ZONEORDER\":\"lots\"", "not a whole number")]
    [InlineData("\"CMDLINE\":\"a\\\"b\"", "quotes")]
    public void Config_values_that_would_wrap_or_break_the_dot_config_are_refused(string config, string problem)
    {
        var e = Assert.Throws<ProfileException>(() => Parse("arm", $",\"config\":{{{config}}}", "256M"));
        Assert.StartsWith("config", e.Field);
        Assert.Contains(problem, e.Message);
        Assert.Equal(9, Parse("arm", ",\"config\":{\"FORCE_MAX_ZONEORDER\":\"9\"}", "256M").MaxOrder);
    }

    [Fact]
    public void A_lowmem_limit_past_what_the_split_leaves_is_refused()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(
            """{"name":"t","arch":"i386","cpus":1,"dram":[{"base":"0x0","size":"2G"}],"zones":{"lowmem_limit":"1G"}}"""));
        Assert.Equal("zones.lowmem_limit", e.Field);
        e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(
            """{"name":"t","arch":"arm","cpus":1,"dram":[{"base":"0x0","size":"2G"}],"zones":{"lowmem_limit":"0x3f000000"}}"""));
        Assert.Equal("zones.lowmem_limit", e.Field);
    }

    [Fact]
    public void I386_with_pae_and_hugetlb_has_2_mib_pageblocks()
    {
        var pae = MachineProfile.Parse("""{"name":"t","arch":"i386","cpus":1,"dram":[{"base":"0x0","size":"512M"}],"config":{"X86_PAE":true,"HUGETLB_PAGE":true}}""");
        Assert.Equal(9, pae.EffectivePageblockOrder);
        var plain = MachineProfile.Parse("""{"name":"t","arch":"i386","cpus":1,"dram":[{"base":"0x0","size":"512M"}],"config":{"HUGETLB_PAGE":true}}""");
        Assert.Equal(10, plain.EffectivePageblockOrder);
    }
}
