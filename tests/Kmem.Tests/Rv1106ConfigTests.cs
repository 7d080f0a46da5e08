// The default board runs Rockchip's rv1106_defconfig: every view follows from that config (orders 0..8, no
// highmem, no SLUB debugging, one CPU, the 3G_OPT memory split), as a Rockchip engineer sees on the real board.
using System.Text.RegularExpressions;
using Kmem;
using Xunit;

namespace Kmem.Tests;

public class Rv1106ConfigTests
{
    [Fact]
    public void The_profile_carries_the_vendor_config()
    {
        var c = MachineProfile.Embedded("rv1106").Config;
        Assert.Equal(9, c.Number("FORCE_MAX_ZONEORDER"));
        foreach (var off in new[] { "SMP", "HIGHMEM", "SLUB_DEBUG", "SWAP", "VM_EVENT_COUNTERS", "BASE_FULL", "IOMMU_SUPPORT", "MEMCG", "PREEMPT" })
            Assert.False(c.IsEnabled(off), off);
        foreach (var on in new[] { "VMSPLIT_3G_OPT", "CMA", "CMA_INACTIVE", "DMA_CMA", "SLUB" })
            Assert.True(c.IsEnabled(on), on);
        Assert.Equal(14, c.Number("LOG_BUF_SHIFT"));
        Assert.Equal(0, c.Number("CMA_SIZE_MBYTES"));
    }

    [Fact]
    public void Buddyinfo_and_pagetypeinfo_have_orders_0_to_8()
    {
        using var m = Machine.Boot();
        var buddy = m.ProcFs.Read("/proc/buddyinfo").TrimEnd('\n');
        Assert.Matches(@"^Node 0, zone   Normal( +\d+){9} $", buddy);
        string t = m.ProcFs.Read("/proc/pagetypeinfo");
        Assert.StartsWith("Page block order: 8\nPages per block:  256\n\nFree pages count per migrate type at order       0      1      2      3      4      5      6      7      8 \n", t);
        Assert.Equal(1L << 20, m.KmallocMaxSize);                  // KMALLOC_MAX_SIZE = 2^(MAX_ORDER - 1 + PAGE_SHIFT)
    }

    [Fact]
    public void Meminfo_has_no_highmem_lines_and_the_3g_opt_vmalloc_window()
    {
        using var m = Machine.Boot();
        string t = m.ProcFs.Read("/proc/meminfo");
        Assert.DoesNotContain("HighTotal", t);
        Assert.DoesNotContain("LowTotal", t);
        // VMALLOC_START = PAGE_OFFSET 0xb0000000 + 256 MiB of lowmem + 8 MiB, rounded to 8 MiB; VMALLOC_END 0xff800000.
        Assert.Contains($"VmallocTotal:   {(0xff800000L - 0xc0800000L) >> 10,8} kB\n", t);
        Assert.Equal(0xB0000000UL, m.Profile.PageOffset);
    }

    [Fact]
    public void The_banner_names_neither_SMP_nor_PREEMPT()
    {
        using var m = Machine.Boot();
        string log = m.Dmesg();
        Assert.Matches(new Regex(@"\] Linux version 5\.10\.110-kmem \(kmem@kmem\) \(\.NET [^)]+\) #1\n"), log);
        Assert.Contains("CPUs=1, Nodes=1", log);
        using var smp = Machine.Boot(MachineProfile.Embedded("rk3588"));
        Assert.Matches(@"\) #1 SMP\n", smp.Dmesg());
    }

    [Fact]
    public void Slub_debug_is_an_unknown_parameter_and_slabinfo_does_not_exist()
    {
        using var m = Machine.Boot("rv1106", "slub_debug=FZPU");
        Assert.Contains("] Unknown command line parameters: slub_debug=FZPU\n", m.Dmesg());
        Assert.All(m.SlabCaches, c => Assert.Equal(SlabFlags.None, c.Flags & SlabFlags.DebugFlags));
        Assert.Throws<ProcPathException>(() => m.ProcFs.Read("/proc/slabinfo"));
        Assert.Throws<ProcPathException>(() => m.ProcFs.Read("/sys/kernel/slab/kmalloc-64/red_zone"));
        Assert.Equal("64\n", m.ProcFs.Read("/sys/kernel/slab/kmalloc-64/object_size"));
        var (code, _, err) = TestSupport.Cli("cat", "/proc/slabinfo");
        Assert.NotEqual(0, code);
        Assert.Contains("/proc/slabinfo: No such file or directory", err);
    }

    [Fact]
    public void A_device_behind_an_iommu_is_refused_without_IOMMU_SUPPORT()
    {
        string json = MachineProfile.EmbeddedJson("rv1106").Replace("\"name\": \"ff660000.npu\", \"iommu\": false", "\"name\": \"ff660000.npu\", \"iommu\": true");
        Assert.Contains("\"iommu\": true", json);
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json));
        Assert.Contains("IOMMU_SUPPORT", e.Message);
    }

    [Fact]
    public void The_memory_splits_are_one_choice_and_move_lowmem()
    {
        var generic = TestSupport.GenericArm();
        Assert.Equal(0xC0000000UL, generic.PageOffset);
        var twoG = TestSupport.AtRelease("arm", "5.10", ("VMSPLIT_2G", true));
        Assert.Equal(0x80000000UL, twoG.PageOffset);
        // With HIGHMEM, lowmem ends at vmalloc_min (0xef800000) - PAGE_OFFSET past the first bank: 768 MiB, 1 GiB with 3G_OPT.
        Assert.Equal(768UL << 20, TestSupport.AtRelease("arm", "5.10").LowmemLimit);
        Assert.Equal(1UL << 30, TestSupport.AtRelease("arm", "5.10", ("VMSPLIT_3G_OPT", true)).LowmemLimit);
        var e = Assert.Throws<ProfileException>(() => TestSupport.AtRelease("arm", "5.10", ("VMSPLIT_3G_OPT", true), ("VMSPLIT_1G", true)).Config);
        Assert.Contains("one choice", e.Message);
    }

    [Fact]
    public void Meminfo_has_the_vendor_cma_lines_of_a_real_Pico_Max()
    {
        string real = TestSupport.Fixture("meminfo_luckfox_pico_max_rv1106_5.10.110.txt");
        var realLines = real.Split('\n').Where(l => Regex.IsMatch(l, @"^[A-Za-z0-9_()]+: +\d+ kB$")).ToList();
        // The same 256 MiB board and heap: rk_dma_heap_cma=66M, placed top-down.
        using var m = Machine.Boot(MachineProfile.Embedded("rv1106") with { Cmdline = "rk_dma_heap_cma=66M" });
        string ours = m.ProcFs.Read("/proc/meminfo");
        var labels = ours.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[..l.IndexOf(':')]).ToList();
        // Every line the dump shows is there, in the dump's order.
        var realLabels = realLines.Select(l => l[..l.IndexOf(':')]).ToList();
        Assert.Equal(realLabels, labels.Where(realLabels.Contains).ToList());
        foreach (var exact in new[] { "VmallocTotal:", "CmaTotal:", "CmaFree:", "VmallocChunk:", "Percpu:" })   // Percpu: the UP first chunk, 32 KiB
            Assert.Contains(realLines.Single(l => l.StartsWith(exact, StringComparison.Ordinal)) + "\n", ours);
        // CmaAllocated is what the bitmap hands out; CmaReleased the rest of CmaTotal.
        var heap = m.Cma["rk-dma-heap-cma"];
        Assert.Equal(0x0be00000UL, heap.Base);                  // 0x10000000 - 66 MiB: no device-tree pool above it
        long Kb(string label) => long.Parse(Regex.Match(ours, $@"^{label}: +(\d+) kB$", RegexOptions.Multiline).Groups[1].Value);
        Assert.Equal(0, Kb("CmaAllocated"));
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"];
        var buf = rk.BufferAlloc(12 * 1024)!;
        string after = m.ProcFs.Read("/proc/meminfo");
        Assert.Contains("CmaAllocated:         12 kB\nCmaReleased:       67572 kB\nCmaFree:               0 kB\n", after);
        rk.BufferFree(buf);
        Assert.Contains("CmaAllocated:          0 kB\n", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void An_image_fdt_or_area_past_RAM_is_refused_before_anything_is_written()
    {
        // The printed sections fit, but _stext.._end with its page alignment and unwind tables would end past 64 MiB.
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse("""
            { "name": "edge", "arch": "arm", "cpus": 1, "dram": [ { "base": "0", "size": "64M" } ],
              "kernel": { "base": "0x3E00000", "code": "1980K", "init": "64K" } }
            """));
        Assert.Equal("kernel.base", e.Field);
        Assert.Throws<ProfileException>(() => MachineProfile.Parse("""
            { "name": "edge", "arch": "arm", "cpus": 1, "dram": [ { "base": "0", "size": "64M" } ],
              "kernel": { "base": "0x8000", "code": "0xffffffffffffffff", "init": "2" } }
            """));
        // A profile changed with "with" reaches the boot plan unchecked by the reader: the plan refuses what lies past RAM.
        var rv = MachineProfile.Embedded("rv1106");
        var pool = new CmaAreaSpec("linux,cma", 0xF0000000UL, 1UL << 20, 0) { ReservedMemory = true };
        Assert.Throws<ProfileException>(() => Machine.Boot(rv with { Cma = [pool] }));
        Assert.Throws<ProfileException>(() => Machine.Boot(rv with { Fdt = new DeviceTreeBlob(0x20000000UL, 0xd306, null) }));
        Assert.Throws<ProfileException>(() => Machine.Boot(rv with { Kernel = rv.Kernel! with { Base = 0x0FFF0000UL } }));
        using var ok = Machine.Boot(rv);                                   // and nothing was left behind
        TestSupport.AssertConsistent(ok);
    }

    [Fact]
    public void The_profile_list_shows_the_areas_the_command_lines_make()
    {
        var (code, o, e) = TestSupport.Cli("profiles");
        Assert.True(code == 0, e);
        foreach (var name in new[] { "luckfox-pico-mini-a", "luckfox-pico-pro", "luckfox-pico-ultra-w" }) Assert.Contains(name, o);
        Assert.Contains("rk-dma-heap-cma 32 MiB", o);                   // rv1106: rk_dma_heap_cma=32M@0x2800000
        Assert.Contains("rk-dma-heap-cma 24 MiB", o);                   // the Pico Mini A's 24M
        Assert.Contains("linux,cma 10 MiB", o);                         // the Ultra W's device-tree pool
    }
}
