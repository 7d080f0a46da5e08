// /proc/vmallocinfo by kernel release and pointer width: 8-digit kernel addresses on 32-bit boards, the callers
// as %pS prints them, the flag words and phys= format of each release, where "unpurged vm_area" lines go, the
// DMA atomic pools of each architecture and release, and the ioremap areas of the devices' register windows.
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public class VmallocVersionTests
{
    private static Machine Boot(string profile, string version, Dictionary<string, object>? config = null) =>
        Machine.Boot(MachineProfile.Embedded(profile) with
        {
            Version = KernelVersion.Parse(version),
            ConfigOptions = config ?? new Dictionary<string, object>(),
        });

    private static string[] Lines(Machine m) => m.ProcFs.Read("/proc/vmallocinfo").Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void A_32_bit_arm_board_prints_8_digit_kernel_addresses_from_vmalloc_start()
    {
        using var m = Machine.Boot("rv1106");
        var lines = Lines(m);
        foreach (var l in lines) Assert.Matches(@"^0x[0-9a-f]{8}-0x[0-9a-f]{8} [ \d]{7,} ", l);
        // 256 MiB of lowmem: VMALLOC_START = 0xc0000000 + 256 MiB + 8 MiB, the atomic pool first (256 KiB + guard).
        Assert.Equal("0xc0800000-0xc0841000  266240 dma_common_contiguous_remap+0x94/0xb0 dma-coherent", lines[0]);
        nint v = m.Vmalloc(3 * 4096);
        var area = m.VmallocAreas.Single(a => a.Address == v);
        ulong kernel = 0xc0800000UL + (ulong)(v - m.VmallocStart);
        Assert.Contains($"0x{kernel:x8}-0x{kernel + 4 * 4096:x8}   16384 {area.Caller} pages=3 vmalloc\n", m.ProcFs.Read("/proc/vmallocinfo"));
        m.Vfree(v);
    }

    [Fact]
    public void The_register_windows_of_platform_devices_are_ioremap_areas_with_their_physical_address()
    {
        using var m = Machine.Boot("rv1106");
        var lines = Lines(m);
        // Every device with a unit address, one page each (the default window) plus the guard page, in probe order.
        Assert.Equal("0xc0841000-0xc0843000    8192 __devm_ioremap+0x68/0xa8 phys=0xffa00000 ioremap", lines[1]);
        Assert.Equal("0xc0843000-0xc0845000    8192 __devm_ioremap+0x68/0xa8 phys=0xffa50000 ioremap", lines[2]);
        Assert.Contains("0xc0845000-0xc0847000    8192 __devm_ioremap+0x68/0xa8 phys=0xff660000 ioremap", lines);
        Assert.Contains("0xc0847000-0xc0849000    8192 __devm_ioremap+0x68/0xa8 phys=0xff990000 ioremap", lines);
        Assert.Equal(4, lines.Count(l => l.EndsWith(" ioremap")));                 // rkisp-vir0 has no unit address
        var io = m.VmallocAreas.Where(a => (a.Flags & VmFlags.Ioremap) != 0).ToList();
        Assert.All(io, a => Assert.Equal(0, a.NrPages));
        Assert.Equal(0xffa00000UL, io[0].Phys);
        // Registers are not RAM: they count nowhere in meminfo, and vfree/vunmap refuse them.
        Assert.Contains("VmallocUsed:           0 kB", m.ProcFs.Read("/proc/meminfo"));
        Assert.Throws<InvalidAddressException>(() => m.Vfree(io[0].Address));
        Assert.Throws<InvalidAddressException>(() => m.Vunmap(io[0].Address));
        Assert.Contains("iounmap() releases it", m.Dmesg());
        Assert.Equal(4, m.VmallocAreas.Count(a => (a.Flags & VmFlags.Ioremap) != 0));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_4_9_arm_board_prints_its_own_atomic_pool_as_user_and_phys_without_0x()
    {
        // As a published 4.9.129 ARMv6 camera's vmallocinfo: "atomic_pool_init+0x0/0x134 user" and
        // "devm_ioremap_nocache+0x3c/0x70 phys=f0d00000 ioremap".
        using var m = Boot("rv1106", "4.9");
        var lines = Lines(m);
        Assert.Equal("0xd0800000-0xd0841000  266240 atomic_pool_init+0x0/0x134 user", lines[0]);
        Assert.Equal("0xd0841000-0xd0843000    8192 devm_ioremap_nocache+0x3c/0x70 phys=ffa00000 ioremap", lines[1]);
        Assert.Contains("DMA: preallocated 256 KiB pool for atomic coherent allocations", m.Dmesg());
    }

    [Fact]
    public void Coherent_remaps_are_user_areas_before_5_3_and_dma_coherent_from_it()
    {
        foreach (var (version, word) in new[] { ("5.2", " user"), ("5.3", " dma-coherent") })
        {
            using var m = Boot("rv1106", version);
            Assert.EndsWith(word, Lines(m)[0]);
            Assert.DoesNotContain(version == "5.2" ? "dma-coherent" : " user", m.ProcFs.Read("/proc/vmallocinfo"));
        }
        // 5.3 to 5.7: VM_DMA_COHERENT, but the caller handed down is still printed.
        using var m57 = Boot("rv1106", "5.7");
        Assert.StartsWith("0xd0800000-0xd0841000  266240 atomic_pool_init+0x0/0x134 dma-coherent", Lines(m57)[0]);
    }

    [Fact]
    public void A_coherent_remap_is_named_after_dma_alloc_attrs_before_5_8()
    {
        static MachineProfile Board(string version) => MachineProfile.Parse($$"""
            { "name": "b", "arch": "arm64", "cpus": 2, "version": "{{version}}", "dram": [ { "base": "0x40000000", "size": "512M" } ],
              "devices": [ { "name": "fe000000.codec", "iommu": false, "dma_mask": 32, "coherent": false } ] }
            """);
        foreach (var (version, line) in new[] { ("5.4", " dma_alloc_attrs+0x7c/0xe4 dma-coherent"), ("5.8", " dma_common_contiguous_remap+0x94/0xb0 dma-coherent") })
        {
            using var m = Machine.Boot(Board(version));
            var dev = m.Devices["fe000000.codec"];
            nint cpu = m.DmaAllocCoherent(dev, 3 * 4096, Gfp.Kernel, out ulong handle);
            ulong k = (ulong)cpu;
            Assert.Contains($"0x{k:x16}-0x{k + 4 * 4096:x16}   16384{line}\n", m.ProcFs.Read("/proc/vmallocinfo"));
            m.DmaFreeCoherent(dev, 3 * 4096, cpu, handle);
        }
    }

    [Fact]
    public void A_riscv32_kernel_prints_addresses_from_0xa0000000_and_an_arm_pool_from_cma_has_no_area()
    {
        // riscv32: VMALLOC_END = PAGE_OFFSET (0xc0000000), VMALLOC_SIZE = 512 MiB.
        using (var rv = Machine.Boot(MachineProfile.Parse("""
            { "name": "rv32", "arch": "riscv32", "cpus": 1, "version": "6.4", "dram": [ { "base": "0x80000000", "size": "256M" } ] }
            """)))
        {
            var first = Lines(rv)[0];
            Assert.StartsWith("0xa0000000-0xa", first);
            Assert.Contains(" dma_common_contiguous_remap+0x5a/0x78 dma-coherent", first);
        }
        // 32-bit ARM with a default CMA area: atomic_pool_init takes the pool from it and remaps it in place.
        using var arm = Machine.Boot(MachineProfile.Parse("""
            { "name": "armcma", "arch": "arm", "cpus": 1, "dram": [ { "base": "0x60000000", "size": "256M" } ],
              "cma": [ { "name": "reserved", "base": "0x68000000", "size": "16M" } ] }
            """));
        Assert.Contains("DMA: preallocated 256 KiB pool for atomic coherent allocations", arm.Dmesg());
        Assert.DoesNotContain("dma_common_contiguous_remap", arm.ProcFs.Read("/proc/vmallocinfo"));
    }

    [Fact]
    public void Unpurged_areas_are_absent_before_4_13_in_place_until_5_4_and_at_the_end_from_5_4()
    {
        foreach (var version in new[] { "4.9", "4.14", "5.10" })
        {
            using var m = Boot("rv1106", version);
            nint a = m.Vmalloc(4096), b = m.Vmalloc(4096), c = m.Vmalloc(2 * 4096);
            m.Vfree(a);
            m.Vfree(c);
            var lines = Lines(m);
            var unpurged = lines.Where(l => l.EndsWith(" unpurged vm_area")).ToList();
            int bLine = Array.FindIndex(lines, l => l.Contains(" pages=1 vmalloc") && !l.Contains("unpurged"));
            switch (version)
            {
                case "4.9":
                    Assert.Empty(unpurged);
                    break;
                case "4.14":
                    // Each freed area in its own line, at its address: a before b, c after it.
                    Assert.Equal(2, unpurged.Count);
                    Assert.EndsWith("    8192 unpurged vm_area", lines[bLine - 1]);
                    Assert.EndsWith("   12288 unpurged vm_area", lines[bLine + 1]);
                    break;
                default:
                    Assert.Equal(2, unpurged.Count);
                    Assert.Equal(lines.Length - 2, Array.IndexOf(lines, unpurged[0]));
                    break;
            }
            m.Vfree(b);
        }
    }

    [Fact]
    public void A_3_10_kernel_prints_the_old_phys_format_and_no_lazily_freed_areas()
    {
        using var m = Boot("rv1106", "3.10");
        var lines = Lines(m);
        Assert.Contains("0xd0841000-0xd0843000    8192 devm_ioremap_nocache+0x3c/0x70 phys=ffa00000 ioremap", lines);
        nint v = m.Vmalloc(4096);
        m.Vfree(v);
        Assert.DoesNotContain("unpurged", m.ProcFs.Read("/proc/vmallocinfo"));
    }

    [Fact]
    public void Arm64_pools_by_release_own_pool_then_remap_c_then_kernel_dma_pool_from_5_8()
    {
        using (var old = Boot("rk3588", "4.14"))
        {
            Assert.Contains("DMA: preallocated 256 KiB pool for atomic allocations", old.Dmesg());
            // Before 5.3 a NUMA kernel vmallocs its dentry and inode hashes in vfs_caches_init(), before the pool's initcall.
            Assert.StartsWith("alloc_large_system_hash", Lines(old)[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]);
            Assert.Single(Lines(old), l => Regex.IsMatch(l, @"^0x[0-9a-f]{16}-0x[0-9a-f]{16}  266240 atomic_pool_init\+0x0/0x208 user$"));
            Assert.Contains(Lines(old), l => Regex.IsMatch(l, @"    8192 devm_ioremap_nocache\+0x3d/0x80 phys=0x00000000fdab0000 ioremap$"));
        }
        // arm64 5.0-5.4 had ZONE_DMA32, not ZONE_DMA ("arm64: replace ZONE_DMA with ZONE_DMA32"): the board's 4 GiB DMA zone is
        // that release's DMA32 zone.
        string json54 = MachineProfile.EmbeddedJson("rk3588").Replace("\"zones\": { \"dma_limit\": \"4G\", \"dma32_limit\": null },", "");
        using (var remapC = Machine.Boot(MachineProfile.Parse(json54) with { Version = KernelVersion.Parse("5.4") }))
        {
            // kernel/dma/remap.c's single pool, its own postcore_initcall from 5.4.
            Assert.Contains("DMA: preallocated 256 KiB pool for atomic allocations", remapC.Dmesg());
            Assert.Matches(@"^0x[0-9a-f]{16}-0x[0-9a-f]{16}  266240 do_one_initcall\+0x50/0x218 dma-coherent$", Lines(remapC)[0]);
            Assert.Single(Lines(remapC), l => l.Contains("do_one_initcall"));
        }
        using var m = Boot("rk3588", "6.6");
        Assert.Contains("DMA: preallocated", m.Dmesg());
        Assert.Contains("GFP_KERNEL pool for atomic allocations", m.Dmesg());
        var lines = Lines(m);
        var pools = lines.Where(l => l.Contains(" dma_common_contiguous_remap+0x94/0xb0 ")).ToList();
        Assert.NotEmpty(pools);
        Assert.All(pools, l => Assert.EndsWith(" dma-coherent", l));
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^0x[0-9a-f]{16}-0x[0-9a-f]{16}    8192 __devm_ioremap\+0x7c/0xf8 phys=0x00000000fdab0000 ioremap$"));
    }

    [Fact]
    public void Ioremap_areas_are_aligned_to_their_size_and_the_profile_sets_the_window()
    {
        string json = """
        {
          "name": "io", "arch": "arm", "cpus": 1,
          "dram": [ { "base": "0x60000000", "size": "64M" } ],
          "devices": [
            { "name": "10000000.small", "reg_size": "0x100" },
            { "name": "20000000.big", "reg_size": "64K" },
            { "name": "30000000.none", "reg_size": 0 },
            { "name": "virtual-dev" }
          ]
        }
        """;
        using var m = Machine.Boot(MachineProfile.Parse(json));
        var lines = Lines(m).Where(l => l.EndsWith(" ioremap")).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Matches(@"    8192 __devm_ioremap\+0x68/0xa8 phys=0x10000000 ioremap$", lines[0]);
        Assert.Matches(@"   69632 __devm_ioremap\+0x68/0xa8 phys=0x20000000 ioremap$", lines[1]);
        Assert.Equal(0u, Convert.ToUInt32(lines[1][2..10], 16) % 0x10000);        // aligned to its 64 KiB
    }

    [Fact]
    public void A_register_window_needs_a_unit_address_outside_ram()
    {
        static string Profile(string device) => $$"""
        { "name": "io", "arch": "arm", "cpus": 1, "dram": [ { "base": "0x60000000", "size": "64M" } ], "devices": [ {{device}} ] }
        """;
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Profile("""{ "name": "isp", "reg_size": "4K" }""")));
        Assert.Contains("no unit address", e.Message);
        e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Profile("""{ "name": "61000000.isp", "reg_size": "4K" }""")));
        Assert.Contains("overlaps RAM", e.Message);
        Assert.Throws<ProfileException>(() => MachineProfile.Parse(Profile("""{ "name": "10000000.isp", "reg_size": "lots" }""")));
        // Without reg_size a default window inside RAM is simply not made.
        using var m = Machine.Boot(MachineProfile.Parse(Profile("""{ "name": "61000000.isp" }""")));
        Assert.DoesNotContain(" ioremap", m.ProcFs.Read("/proc/vmallocinfo"));
    }

    [Fact]
    public void X86_64_has_atomic_pools_from_5_8_only_with_memory_encryption_and_never_remapped()
    {
        using (var plain = Boot("x86_64", "5.15"))
            Assert.DoesNotContain("pool for atomic allocations", plain.Dmesg());
        using var sme = Boot("x86_64", "5.15", new() { ["AMD_MEM_ENCRYPT"] = true });
        Assert.Contains("DMA: preallocated", sme.Dmesg());
        Assert.Contains("GFP_KERNEL|GFP_DMA pool for atomic allocations", sme.Dmesg());
        Assert.DoesNotContain("dma_common_contiguous_remap", sme.ProcFs.Read("/proc/vmallocinfo"));
        using var old = Boot("x86_64", "5.7", new() { ["AMD_MEM_ENCRYPT"] = true });
        Assert.DoesNotContain("pool for atomic allocations", old.Dmesg());
    }

    [Fact]
    public void Riscv_has_kernel_dma_pools_from_5_8_remapped_by_dma_common_contiguous_remap()
    {
        static MachineProfile Rv(string version) => MachineProfile.Parse($$"""
            { "name": "rv", "arch": "riscv64", "cpus": 4, "version": "{{version}}", "dram": [ { "base": "0x80000000", "size": "1G" } ] }
            """);
        using var m = Machine.Boot(Rv("6.4"));
        Assert.Contains(Lines(m), l => l.Contains(" dma_common_contiguous_remap+0x5a/0x78 dma-coherent"));
        using var m54 = Machine.Boot(Rv("5.7"));
        Assert.DoesNotContain("dma_common_contiguous_remap", m54.ProcFs.Read("/proc/vmallocinfo"));
        Assert.DoesNotContain("pool for atomic allocations", m54.Dmesg());
    }
}
