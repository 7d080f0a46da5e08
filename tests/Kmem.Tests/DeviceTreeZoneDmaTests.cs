// The derivation rule for arm64's ZONE_DMA from a device tree: from 5.11 the kernel ends ZONE_DMA at the power of two
// covering the lowest CPU address every bus's dma-ranges reach (zone_sizes_init(), of_dma_get_max_cpu_address()),
// translating each range's parent address through the buses above; before, and on other architectures, the tree
// does not move it.
using Kmem.Boot;
using Xunit;

namespace Kmem.Tests;

public class DeviceTreeZoneDmaTests
{
    private static DeviceTreeProfile Derive(FdtNode root, KernelVersion version) =>
        MachineProfile.FromDeviceTree(DeviceTree.Parse(FdtBuilder.Build(root)), new DeviceTreeOptions { Version = version });

    /// <summary>An arm64 board with 2 GiB at 0 and one simple-bus whose dma-ranges map bus 0xc0000000 to CPU 0 for <paramref name="size"/>.</summary>
    private static FdtNode Board(ulong size, string status = "okay") =>
        FdtBuilder.ArmRoot(0, 2UL << 30, "arm,cortex-a53")
            .Child("soc", s => s.Str("compatible", "simple-bus").Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
                .Cells("dma-ranges", 0xc0000000, 0, size).Str("status", status)
                .Child("serial@7e201000", x => x.Str("compatible", "arm,pl011").Cells("reg", 0x7e201000, 0x200)));

    [Fact]
    public void Arm64_FromTheDmaRanges_ZoneDmaIsThePowerOfTwoTheyReach()
    {
        var d = Derive(Board(0x40000000), new KernelVersion(6, 1));
        Assert.Equal(0x40000000UL, d.Profile.DmaLimit);
        Assert.Equal(4UL << 30, d.Profile.Dma32Limit);
        Assert.Contains("\"zones\": { \"dma_limit\": \"0x40000000\" }", d.Json);
        var note = Assert.Single(d.Notes, n => n.Key == "zones");
        Assert.Equal("/soc", note.Node);
        Assert.Contains("0x3fffffff", note.Text);
        Assert.Contains("zone_dma_bits 30", note.Text);

        // 0x60000000 bytes reach 0x5fffffff: 31 bits, so 2 GiB.
        Assert.Equal(0x80000000UL, Derive(Board(0x60000000), new KernelVersion(6, 1)).Profile.DmaLimit);
        using var m = Machine.Boot(d.Profile);
        Assert.Contains("  DMA      [mem 0x0000000000000000-0x000000003fffffff]", TestSupport.LogText(m));
    }

    [Fact]
    public void Arm64_BeforeFiveEleven_OrWithTheBusDisabled_OrReachingFourGiB_TheTreeLeavesZoneDmaAlone()
    {
        // 5.5-5.10 fix zone_dma_bits at 30 whatever the tree says.
        var old = Derive(Board(0x60000000), new KernelVersion(5, 10));
        Assert.Equal(0x40000000UL, old.Profile.DmaLimit);
        Assert.DoesNotContain("\"zones\"", old.Json);
        // of_dma_get_max_cpu_address() walks only available nodes.
        var off = Derive(Board(0x40000000, "disabled"), new KernelVersion(6, 1));
        Assert.Equal(4UL << 30, off.Profile.DmaLimit);
        Assert.DoesNotContain(off.Notes, n => n.Key == "zones");
        // Ranges that reach 4 GiB leave the 32-bit default.
        var wide = Derive(FdtBuilder.ArmRoot(0, 2UL << 30, "arm,cortex-a53").Child("soc", s => s.Str("compatible", "simple-bus")
            .Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges").Cells("dma-ranges", 0, 0xc0000000, 0x40000000)), new KernelVersion(6, 1));
        Assert.Equal(4UL << 30, wide.Profile.DmaLimit);
        Assert.DoesNotContain("\"zones\"", wide.Json);
    }

    [Fact]
    public void Arm64_ANestedBusesRanges_AreTranslatedThroughTheBusAbove()
    {
        // The outer bus maps its 0x40000000 to CPU 0 for 1 GiB; the inner one maps its 0 to the outer's 0x40000000 for
        // 256 MiB: CPU 0..0x0fffffff, 28 bits (untranslated it would look like 0x4fffffff, 31 bits).
        var root = FdtBuilder.ArmRoot(0, 2UL << 30, "arm,cortex-a53")
            .Child("outer", o => o.Str("compatible", "simple-bus").Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
                .Cells("dma-ranges", 0x40000000, 0, 0x40000000)
                .Child("inner", i => i.Str("compatible", "simple-bus").Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
                    .Cells("dma-ranges", 0, 0x40000000, 0x10000000)));
        var d = Derive(root, new KernelVersion(6, 6));
        Assert.Equal(0x10000000UL, d.Profile.DmaLimit);
        Assert.Equal("/outer/inner", Assert.Single(d.Notes, n => n.Key == "zones").Node);
    }

    [Fact]
    public void Arm32_AndMalformedDmaRanges()
    {
        // 32-bit arm's ZONE_DMA is not set from dma-ranges here.
        var arm = FdtBuilder.ArmRoot().Child("soc", s => s.Str("compatible", "simple-bus").Cells("#address-cells", 1).Cells("#size-cells", 1)
            .Flag("ranges").Cells("dma-ranges", 0xc0000000, 0, 0x4000000));
        Assert.DoesNotContain(Derive(arm, new KernelVersion(6, 1)).Notes, n => n.Key == "zones");
        // A dma-ranges that is not whole entries names its node.
        var bad = FdtBuilder.ArmRoot(0, 2UL << 30, "arm,cortex-a53").Child("soc", s => s.Str("compatible", "simple-bus")
            .Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges").Cells("dma-ranges", 0xc0000000, 0));
        var e = Assert.Throws<DeviceTreeException>(() => Derive(bad, new KernelVersion(6, 1)));
        Assert.Contains("/soc", e.Message);
        Assert.Contains("dma-ranges", e.Message);
    }
}
