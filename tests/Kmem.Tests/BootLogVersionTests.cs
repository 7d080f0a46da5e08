// The boot log by kernel release and architecture: no line that Linux does not print, the wording each release
// uses (zonelist order before 4.14, cma-reserved from 3.19), i386's lowmem/highmem lines and the RISC-V start.
using System.Text.RegularExpressions;
using Kmem;
using Xunit;

namespace Kmem.Tests;

public class BootLogVersionTests
{
    // A 3 GiB i386 PC: the e820 map of a QEMU i440FX guest (below 640 KiB, then from 1 MiB).
    private const string I386 = """
        { "name": "pc-i386", "description": "QEMU Standard PC (i440FX + PIIX, 1996)", "arch": "i386", "cpus": 2, "version": "5.10",
          "dram": [ { "base": "0x1000", "size": "0x9e000" }, { "base": "0x100000", "size": "0xbfee0000" } ],
          "kernel": { "base": "0x01000000", "code": "8192K", "rwdata": "1200K", "rodata": "2400K", "init": "900K", "bss": "1500K" } }
        """;

    // A VisionFive 2 (4 GiB) as its published 6.2/6.3 boot logs show it: RAM from 0x40200000 (OpenSBI keeps the first
    // 2 MiB, "OF: fdt: Ignoring memory range 0x40000000 - 0x40200000").
    private const string Riscv64 = """
        { "name": "visionfive2", "description": "StarFive VisionFive 2 v1.3B", "arch": "riscv64", "cpus": 4, "version": "6.4",
          "dram": [ { "base": "0x40200000", "size": "0xffe00000" } ],
          "kernel": { "base": "0x40200000", "code": "9000K", "rwdata": "4000K", "rodata": "3000K", "init": "2200K", "bss": "480K" } }
        """;

    private static Machine BootJson(string json, Func<MachineProfile, MachineProfile>? change = null)
    {
        var p = MachineProfile.Parse(json);
        return Machine.Boot(change is null ? p : change(p));
    }

    [Theory]
    [InlineData("rv1106")]
    [InlineData("rk3588")]
    [InlineData("x86_64")]
    public void The_boot_log_has_no_line_Linux_does_not_print(string profile)
    {
        using var m = Machine.Boot(profile);
        string log = m.Dmesg();
        Assert.DoesNotContain("] mem_map: ", log);
        Assert.DoesNotContain("] min_free_kbytes: ", log);
        Assert.Contains("] Built 1 zonelists, mobility grouping on.  Total pages: ", log);
    }

    [Fact]
    public void Before_4_14_the_zonelists_line_names_the_order()
    {
        using (var m = MemInfoVersionTests.Boot("x86_64", "4.9"))
            Assert.Matches(@"\] Built 1 zonelists in Node order, mobility grouping on\.  Total pages: \d+\n", m.Dmesg());
        using (var m = MemInfoVersionTests.Boot("rv1106", "4.9"))
            Assert.Matches(@"\] Built 1 zonelists in Zone order, mobility grouping on\.  Total pages: 65024\n", m.Dmesg());
        using (var m = MemInfoVersionTests.Boot("x86_64", "4.14"))
            Assert.Matches(@"\] Built 1 zonelists, mobility grouping on\.  Total pages: \d+\n", m.Dmesg());
    }

    [Fact]
    public void Before_3_16_a_numa_kernel_chose_the_order_by_how_much_memory_is_below_4_GiB()
    {
        // The 4 GiB x86_64 profile has 3 GiB in DMA/DMA32, more than half: node order, as on 3.16 and later.
        using (var m = MemInfoVersionTests.Boot("x86_64", "3.10"))
            Assert.Contains(" zonelists in Node order,", m.Dmesg());
        // Without NUMA there is only the zone order.
        using (var m = MemInfoVersionTests.Boot("x86_64", "3.10", ("NUMA", false)))
            Assert.Contains(" zonelists in Zone order,", m.Dmesg());
    }

    [Fact]
    public void From_6_10_the_zones_print_no_memmap_lines_and_the_total_is_their_present_pages()
    {
        using (var m = MemInfoVersionTests.Boot("rk3588", "6.9"))
        {
            string log = m.Dmesg();
            Assert.Contains(" zone: ", log);
            Assert.Contains(" pages used for memmap\n", log);
            long total = long.Parse(Regex.Match(log, @"Total pages: (\d+)\n").Groups[1].Value);
            Assert.True(total < m.Zones.Sum(z => z.Present), "before 6.10 the memmap is taken out of the total");
        }
        using (var m = MemInfoVersionTests.Boot("rk3588", "6.10"))
        {
            string log = m.Dmesg();
            Assert.DoesNotContain("pages used for memmap", log);
            Assert.DoesNotContain("On node 0 totalpages", log);
            Assert.DoesNotContain("LIFO batch", log);
            Assert.Contains($"] Built 1 zonelists, mobility grouping on.  Total pages: {m.Zones.Sum(z => z.Present)}\n", log);
        }
    }

    [Theory]
    [InlineData("5.10", true)]
    [InlineData("6.4", false)]
    public void The_command_line_comes_after_the_zone_ranges_and_around_the_zonelists(string version, bool afterZonelists)
    {
        using var m = Machine.Boot(MachineProfile.Embedded("rv1106") with { Version = KernelVersion.Parse(version), Cmdline = "console=ttyFIQ0 rootwait" });
        string log = m.Dmesg();
        int cmdline = log.IndexOf("] Kernel command line: console=ttyFIQ0 rootwait\n", StringComparison.Ordinal);
        int zones = log.IndexOf("] Zone ranges:", StringComparison.Ordinal), built = log.IndexOf("] Built 1 zonelists", StringComparison.Ordinal);
        int memory = log.IndexOf("] Memory: ", StringComparison.Ordinal);
        Assert.True(zones >= 0 && cmdline > zones && cmdline < memory, log);
        Assert.Equal(afterZonelists, cmdline > built);
    }

    [Theory]
    [InlineData("6.1", "")]
    [InlineData("6.6", " on node -1")]
    public void The_cma_reservation_names_the_node_from_6_6(string version, string suffix)
    {
        using var m = MemInfoVersionTests.Boot("arm", version);
        Assert.Contains($"] cma: Reserved 32 MiB at 0x02800000{suffix}\n", m.Dmesg());
    }

    [Fact]
    public void The_Memory_line_has_cma_reserved_from_3_19()
    {
        using (var m = MemInfoVersionTests.Boot("arm", "3.18"))
        {
            string log = m.Dmesg();
            Assert.Matches(@"\] Memory: \d+K/262144K available \(4000K kernel code, 301K rwdata, 1836K rodata, 164K init, 133K bss, \d+K reserved, 0K highmem\)\n", log);
            // The CMA pages are still reserved when mem_init() prints, so they are in "reserved".
            long reserved = long.Parse(Regex.Match(log, @" (\d+)K reserved").Groups[1].Value);
            Assert.True(reserved >= 32768, $"{reserved}K reserved must hold the 32 MiB CMA area");
        }
        using (var m = MemInfoVersionTests.Boot("arm", "3.19"))
            Assert.Matches(@"\d+K reserved, 32768K cma-reserved, 0K highmem\)\n", m.Dmesg());
    }

    [Fact]
    public void Linux_3_10_x86_prints_its_own_Memory_line_and_3_11_the_common_one()
    {
        using (var m = MemInfoVersionTests.Boot("x86_64", "3.10"))
        {
            string log = m.Dmesg();
            // x86_64 profile: RAM up to 0x140000000 (max_pfn 0x140000); holes below 4 KiB, 0x9f000-0x100000, 0xbffe0000-4 GiB
            // managed when mem_init() printed: before free_initmem() gave the init sections back
            var (initStart, initEnd) = m.Layout.Early.Init;
            long maxPfn = 0x140000, present = m.Zones.Sum(z => z.Present), managed = m.Zones.Sum(z => z.Managed) - (long)((initEnd - initStart) >> 12);
            Assert.Matches($@"\] Memory: \d+k/{maxPfn * 4}k available \(14336k kernel code, {(maxPfn - present) * 4}k absent, " +
                           $@"{(present - managed) * 4}k reserved, 7720k data, 2640k init\)\n", log);
        }
        using (var m = MemInfoVersionTests.Boot("x86_64", "3.11"))
            Assert.Matches(@"\] Memory: \d+K/\d+K available \(14336K kernel code, 2600K rwdata, 5120K rodata, 2640K init, 4600K bss, \d+K reserved\)\n", m.Dmesg());
        using (var m = BootJson(I386.Replace("\"5.10\"", "\"3.10\"")))
        {
            var (initStart, initEnd) = m.Layout.Early.Init;      // given back after mem_init() printed
            long lowReserved = m.Zones.Where(z => z.Name != "HighMem").Sum(z => z.Present - z.Managed) + (long)((initEnd - initStart) >> 12);
            long high = m.Zones.Single(z => z.Name == "HighMem").Managed;
            Assert.Matches($@"\] Memory: \d+k/{0xbffe0 * 4}k available \(8192k kernel code, {lowReserved * 4}k reserved, 3600k data, 900k init, {high * 4}k highmem\)\n", m.Dmesg());
        }
    }

    [Fact]
    public void An_i386_pc_prints_its_highmem_and_lowmem_before_the_zone_ranges()
    {
        using var m = BootJson(I386);
        string log = m.Dmesg();
        // max_pfn 0xbffe0, max_low_pfn 0x377fe (MAXMEM): pages_to_mb() truncates (0xbffe0 - 0x377fe) >> 8 and 0x377fe >> 8
        Assert.Contains($"] {(0xbffe0 - 0x377fe) >> 8}MB HIGHMEM available.\n", log);
        Assert.Contains("] 887MB LOWMEM available.\n", log);
        Assert.Contains("]   mapped low ram: 0 - 377fe000\n", log);
        Assert.Contains("]   low ram: 0 - 377fe000\n", log);
        Assert.True(log.IndexOf("LOWMEM available", StringComparison.Ordinal) < log.IndexOf("Zone ranges:", StringComparison.Ordinal));
        Assert.Contains("BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable", log);
        Assert.Contains("]   DMA      [mem 0x0000000000001000-0x0000000000ffffff]\n", log);
        Assert.Contains("]   Normal   [mem 0x0000000001000000-0x00000000377fdfff]\n", log);
        Assert.Contains("]   HighMem  [mem 0x00000000377fe000-0x00000000bffdffff]\n", log);
        Assert.DoesNotContain("Booting Linux on physical CPU", log);
        Assert.Matches(@"\] Memory: \d+K/\d+K available \(.*, \d+K highmem\)\n", log);
    }

    [Fact]
    public void An_i386_meminfo_has_the_highmem_lines_and_4M_or_PAE_2M_direct_mappings()
    {
        using (var m = BootJson(I386))
        {
            string t = m.ProcFs.Read("/proc/meminfo");
            Assert.Contains("HighTotal:", t);
            // lowmem 0x377fe000: the first 4 MiB and the tail past the last 4 MiB boundary on 4 KiB pages
            long k4 = 4096 + (0x377fe000L - 0x37400000L) / 1024, m4 = (0x37400000L - 0x400000L) / 1024;
            Assert.EndsWith($"DirectMap4k:    {k4,8} kB\nDirectMap4M:    {m4,8} kB\n", t);
        }
        using (var m = BootJson(I386, p => p with { ConfigOptions = new Dictionary<string, object> { ["X86_PAE"] = true, ["HUGETLB_PAGE"] = true } }))
        {
            string t = m.ProcFs.Read("/proc/meminfo");
            long k4 = 2048 + (0x377fe000L - 0x37600000L) / 1024, m2 = (0x37600000L - 0x200000L) / 1024;
            Assert.EndsWith($"Hugepagesize:       2048 kB\nHugetlb:               0 kB\nDirectMap4k:    {k4,8} kB\nDirectMap2M:    {m2,8} kB\n", t);
        }
        using (var m = BootJson(I386, p => p with { ConfigOptions = new Dictionary<string, object> { ["HUGETLB_PAGE"] = true } }))
            Assert.Contains("Hugepagesize:       4096 kB\n", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void A_riscv64_board_starts_with_its_machine_model_and_has_dma32_and_normal_zones()
    {
        using var m = BootJson(Riscv64);
        string log = m.Dmesg();
        Assert.DoesNotContain("Booting Linux on physical CPU", log);
        Assert.DoesNotContain("BIOS-e820", log);
        Assert.Contains("] Machine model: StarFive VisionFive 2 v1.3B\n", log);
        // The lines of the published logs (LKML, VisionFive 2 on 6.3-rc1; StarFive's 6.2 kernel), in their order
        string[] real =
        [
            "] Machine model: StarFive VisionFive 2 v1.3B\n",
            "] Zone ranges:\n",
            "]   DMA32    [mem 0x0000000040200000-0x00000000ffffffff]\n",
            "]   Normal   [mem 0x0000000100000000-0x000000013fffffff]\n",
            "] Movable zone start for each node\n",
            "] Early memory node ranges\n",
            "]   node   0: [mem 0x0000000040200000-0x000000013fffffff]\n",
            "] Initmem setup node 0 [mem 0x0000000040200000-0x000000013fffffff]\n",
        ];
        int at = 0;
        foreach (var line in real)
        {
            int i = log.IndexOf(line, at, StringComparison.Ordinal);
            Assert.True(i >= 0, $"missing or out of order: {line}");
            at = i;
        }
        Assert.Contains("Linux version 6.4.0", log[..log.IndexOf("Machine model", StringComparison.Ordinal)]);
        Assert.DoesNotContain("]   DMA      ", log);
        Assert.DoesNotContain("DirectMap", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void A_riscv32_board_has_only_a_normal_zone()
    {
        const string json = """
            { "name": "rv32-virt", "description": "riscv-virtio,qemu", "arch": "riscv32", "cpus": 1, "version": "6.4",
              "dram": [ { "base": "0x80000000", "size": "256M" } ],
              "kernel": { "base": "0x80400000", "code": "4000K", "rwdata": "600K", "rodata": "1200K", "init": "500K", "bss": "200K" } }
            """;
        using var m = BootJson(json);
        string log = m.Dmesg();
        Assert.Contains("] Machine model: riscv-virtio,qemu\n", log);
        Assert.Contains("] Zone ranges:\n]   Normal   [mem 0x0000000080000000-0x000000008fffffff]\n] Movable zone start for each node\n",
            Regex.Replace(log, @"\[ *\d+\.\d+\]", "]").Replace("]]", "]"));
        Assert.DoesNotContain("DMA32", log);
        Assert.DoesNotContain("Booting Linux on physical CPU", log);
    }
}
