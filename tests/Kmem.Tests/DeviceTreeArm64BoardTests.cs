// An arm64 board's published tree checked against the same board's published boot log (Fixtures/SOURCES.md says
// where both come from): a Raspberry Pi 4 Model B booted by U-Boot, whose memory node and bootargs U-Boot fills in.
// The profile MachineProfile.FromDeviceTree derives must boot into the lines the real kernel printed: the CMA pool's
// base and size, the zone ranges (ZONE_DMA narrowed by the buses' dma-ranges), the memory map, the pages the zonelists
// count, and the Memory: line's total; the available figure differs by what a device tree does not say (the swiotlb
// bounce buffer and a few early allocations), and the test pins that difference.
using System.Text.RegularExpressions;
using Xunit;

namespace Kmem.Tests;

public partial class DeviceTreeArm64BoardTests
{
    private const string Dtb = "dtb_bcm2711_rpi_4_b_rpi-6.6.28_uboot_4G.dtb";
    private const string BootLog = "bootlog_rpi4_6.1.42_uboot_excerpt.txt";

    /// <summary>The published kernel lines without their timestamps (the header comments and U-Boot's lines left out).</summary>
    private static List<string> Published() => TestSupport.Fixture(BootLog).Split('\n')
        .Where(l => l.StartsWith('[')).Select(l => Timestamp().Replace(l, "").TrimEnd()).ToList();

    [GeneratedRegex(@"^\[\s*\d+\.\d+\] ")]
    private static partial Regex Timestamp();

    [GeneratedRegex(@"^Memory: (\d+)K/(\d+)K available \((\d+)K kernel code, (\d+)K rwdata, (\d+)K rodata, (\d+)K init, (\d+)K bss, (\d+)K reserved, (\d+)K cma-reserved\)$")]
    private static partial Regex MemoryLine();

    /// <summary>The log's kernel is 6.1.42: the profile models 6.1 (the tree itself is the 6.6.28 build, see SOURCES.md).</summary>
    private static DeviceTreeProfile Derive() => MachineProfile.FromDeviceTree(
        DeviceTree.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", Dtb)), new DeviceTreeOptions { Version = new KernelVersion(6, 1) });

    [Fact]
    public void RaspberryPi4_DerivesTheBoardTheLogDescribes()
    {
        var d = Derive();
        var p = d.Profile;
        Assert.Equal(Arch.Arm64, p.Arch);                               // four "arm,cortex-a72" CPU nodes
        Assert.Equal(4, p.Cpus);
        // U-Boot's memory node: 948 MiB below the VideoCore's share, then 0x40000000-0xfbffffff (its "DRAM: 948 MiB
        // (effective 3.9 GiB)"); the log's "Early memory node ranges" are these two banks.
        Assert.Equal([new DramBank(0, 0x3b400000), new DramBank(0x40000000, 0xbc000000)], p.Dram);
        // The downstream linux,cma node: 64 MiB, reusable, the default area, alloc-ranges the first 768 MiB.
        var cma = Assert.Single(p.Cma);
        Assert.Equal(("linux,cma", 64UL << 20), (cma.Name, cma.Size));
        // /emmc2bus's dma-ranges reach only the first GiB: ZONE_DMA is 30 bits.
        Assert.Equal(0x40000000UL, p.DmaLimit);
        Assert.Contains(d.Notes, n => n.Key == "zones" && n.Node == "/emmc2bus" && n.Text.Contains("zone_dma_bits 30"));
        // /memreserve/ of the first page (the spin-table CPUs' release addresses).
        Assert.Contains(p.Reserved, r => r.Base == 0 && r.Size == 0x1000);
        // Every platform device the log's drivers name is derived under that name.
        var names = p.Devices.Select(x => x.Name).ToHashSet();
        var named = Published().Select(l => Regex.Match(l, @"\b(f[0-9a-f]{7}\.[a-z0-9-]+)\b")).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToList();
        Assert.Equal(["fe00b880.mailbox", "fd500000.pcie", "fe104000.rng", "fe200000.gpiomem", "fd580000.ethernet", "fe201000.serial", "fe215040.serial", "fe300000.mmcnr", "fe340000.mmc"], named);
        Assert.All(named, n => Assert.Contains(n, names));
    }

    [Fact]
    public void RaspberryPi4_BootsIntoThePublishedMemoryLines()
    {
        var published = Published();
        using var m = Machine.Boot(Derive().Profile);
        var kmem = TestSupport.LogText(m).Split('\n').Select(l => l.TrimEnd()).ToList();
        // Identical lines: the CMA pool placed top-down in alloc-ranges, the zones, the memory map, the holes, the
        // pages the zonelists count (the memmap of the holed DMA zone sized by its present pages, as with SPARSEMEM),
        // and the command line U-Boot put in /chosen.
        string[] same =
        [
            "Reserved memory: created CMA memory pool at 0x000000002c000000, size 64 MiB",
            "OF: reserved mem: initialized node linux,cma, compatible id shared-dma-pool",
            "  DMA      [mem 0x0000000000000000-0x000000003fffffff]",
            "  DMA32    [mem 0x0000000040000000-0x00000000fbffffff]",
            "  Normal   empty",
            "  node   0: [mem 0x0000000000000000-0x000000003b3fffff]",
            "  node   0: [mem 0x0000000040000000-0x00000000fbffffff]",
            "Initmem setup node 0 [mem 0x0000000000000000-0x00000000fbffffff]",
            "On node 0, zone DMA32: 19456 pages in unavailable ranges",
            "On node 0, zone DMA32: 16384 pages in unavailable ranges",
            "Built 1 zonelists, mobility grouping on.  Total pages: 996912",
            "Kernel command line: 8250.nr_uarts=1 root=/dev/mmcblk0p2 rootwait console=ttyS0,115200n8",
            "Dentry cache hash table entries: 524288 (order: 10, 4194304 bytes, linear)",
            "Inode-cache hash table entries: 262144 (order: 9, 2097152 bytes, linear)",
        ];
        foreach (var line in same)
        {
            Assert.Contains(line, published);
            Assert.Contains(line, kmem);
        }
        // The Memory: line: the same total and CMA; the kernel image is not in a device tree (0K here).
        var real = MemoryLine().Match(published.Single(l => l.StartsWith("Memory: ", StringComparison.Ordinal)));
        var ours = MemoryLine().Match(kmem.Single(l => l.StartsWith("Memory: ", StringComparison.Ordinal)));
        Assert.True(real.Success && ours.Success);
        Assert.Equal((4050944, 65536), (K(real, 2), K(real, 9)));
        Assert.Equal((K(real, 2), K(real, 9)), (K(ours, 2), K(ours, 9)));
        Assert.Equal(0, K(ours, 3));
    }

    [Fact]
    public void RaspberryPi4_WithTheLogsKernelImage_LeavesOnlyTheSwiotlbAndEarlyAllocationsOut()
    {
        var published = Published();
        var real = MemoryLine().Match(published.Single(l => l.StartsWith("Memory: ", StringComparison.Ordinal)));
        // The image's sections as the log prints them, loaded where U-Boot's booti moved it (0x200000).
        var p = Derive().Profile with
        {
            Kernel = new KernelImage(0x200000, (ulong)K(real, 3) << 10, (ulong)K(real, 4) << 10, (ulong)K(real, 5) << 10, (ulong)K(real, 6) << 10, (ulong)K(real, 7) << 10),
        };
        using var m = Machine.Boot(p);
        var ours = MemoryLine().Match(TestSupport.LogText(m).Split('\n').Single(l => l.StartsWith("Memory: ", StringComparison.Ordinal)));
        Assert.True(ours.Success);
        for (int g = 2; g <= 7; g++) Assert.Equal(K(real, g), K(ours, g));          // total and the five sections
        Assert.Equal(K(real, 9), K(ours, 9));
        // available + reserved + cma-reserved = total on both sides, so the whole gap is in "reserved". 64 MiB of it is the
        // swiotlb bounce buffer ("software IO TLB: mapped [mem 0x37400000-0x3b400000] (64MB)"), which Kmem does not
        // model; the rest (9720K) is early memblock allocations Kmem does not model on arm64 and a tree does not describe:
        // likely most of it the linear map's page tables at page granularity (rodata=full: 1978 tables, 7912K, for
        // 3956 MiB), then the SMP per-CPU first chunk, the image's segment padding and the tree U-Boot handed over.
        Assert.Equal(K(real, 2), K(ours, 1) + K(ours, 8) + K(ours, 9));
        Assert.Equal(K(real, 2), K(real, 1) + K(real, 8) + K(real, 9));
        int swiotlb = 64 << 10;
        Assert.Contains("software IO TLB: mapped [mem 0x0000000037400000-0x000000003b400000] (64MB)", published);
        Assert.Equal(9720, K(real, 8) - K(ours, 8) - swiotlb);
        Assert.Equal(K(real, 1) + swiotlb + 9720, K(ours, 1));
    }

    private static int K(Match m, int group) => int.Parse(m.Groups[group].Value, System.Globalization.CultureInfo.InvariantCulture);
}
