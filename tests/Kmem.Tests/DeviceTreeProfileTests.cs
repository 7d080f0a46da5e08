// Each derivation rule of MachineProfile.FromDeviceTree on small hand-built trees: memory banks and cells, the CPU
// count and architecture, /memreserve/, reserved-memory (static, no-map by version, dynamic, CMA pools and the
// default area, zero-sized), bootargs with mem= and rk_dma_heap_cma=, platform device names and DMA properties;
// the JSON it prints loads and boots.
using Kmem.Boot;
using Xunit;

namespace Kmem.Tests;

public class DeviceTreeProfileTests
{
    private static DeviceTreeProfile Derive(FdtNode root, KernelVersion? version = null, params (ulong, ulong)[] rsv) =>
        MachineProfile.FromDeviceTree(DeviceTree.Parse(FdtBuilder.Build(root, rsv)), new DeviceTreeOptions { Version = version });

    [Fact]
    public void MemoryNodes_GiveTheBanks_WithTwoCellAddresses()
    {
        var root = new FdtNode("").Str("compatible", "acme,big").Cells("#address-cells", 2).Cells("#size-cells", 2)
            .Child("cpus", c => c.Cells("#address-cells", 1).Cells("#size-cells", 0)
                .Child("cpu@0", x => x.Str("device_type", "cpu").Str("compatible", "arm,cortex-a55"))
                .Child("cpu@100", x => x.Str("device_type", "cpu").Str("compatible", "arm,cortex-a55"))
                .Child("cpu@200", x => x.Str("device_type", "cpu").Str("compatible", "arm,cortex-a76").Str("status", "disabled")))
            .Child("memory@0", m => m.Str("device_type", "memory").Cells("reg", 0, 0x200000, 0, 0x3fe00000, 1, 0, 0, 0x40000000));
        var d = Derive(root);
        var p = d.Profile;
        Assert.Equal(Arch.Arm64, p.Arch);
        Assert.Equal(2, p.Cpus);
        Assert.Equal("big", p.Name);
        Assert.Equal([new DramBank(0x200000, 0x3fe00000), new DramBank(0x1_00000000, 0x40000000)], p.Dram);
        Assert.Contains(d.Notes, n => n.Key == "arch" && n.Node == "/cpus/cpu@0" && n.Text.Contains("arm,cortex-a55"));
        Assert.Contains("// /memory@0: reg: 0x100000000 size 0x40000000", d.Json);
    }

    [Theory]
    [InlineData("arm,cortex-a7", null, Arch.Arm)]
    [InlineData("arm,cortex-a53", null, Arch.Arm64)]
    [InlineData("riscv", "rv64imafdc", Arch.Riscv64)]
    [InlineData("riscv", "rv32imac", Arch.Riscv32)]
    public void CpuCompatible_GivesTheArchitecture(string compatible, string? isa, Arch expected)
    {
        var root = FdtBuilder.ArmRoot(0x80000000, 256UL << 20, compatible);
        if (isa is not null) root.Children[0].Children[0].Str("riscv,isa", isa);
        Assert.Equal(expected, Derive(root).Profile.Arch);
    }

    [Fact]
    public void UnknownCore_IsAnErrorNamingTheCpuNode()
    {
        var e = Assert.Throws<DeviceTreeException>(() => Derive(FdtBuilder.ArmRoot(cpu: "acme,core9")));
        Assert.Equal("/cpus/cpu@0", e.NodePath);
    }

    [Fact]
    public void Memreserve_AndStaticRegions_AreReserved()
    {
        var root = FdtBuilder.ArmRoot().Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child("ramoops@8000000", x => x.Str("compatible", "ramoops").Cells("reg", 0x8000000, 0x100000))
            .Child("empty@9000000", x => x.Cells("reg", 0x9000000, 0))
            .Child("off@a000000", x => x.Cells("reg", 0xa000000, 0x1000).Str("status", "disabled")));
        var d = Derive(root, null, (0x4000000, 0x10000));
        Assert.Contains(new ReservedRange("memreserve0", 0x4000000, 0x10000), d.Profile.Reserved);
        Assert.Contains(new ReservedRange("ramoops@8000000", 0x8000000, 0x100000) { DtOrder = 0 }, d.Profile.Reserved);
        // A reg of size 0 reserves nothing, but the kernel's scan saves the node: it keeps its place in the order.
        Assert.Contains(new ReservedRange("empty@9000000", 0x9000000, 0) { DtOrder = 1 }, d.Profile.Reserved);
        Assert.Equal(3, d.Profile.Reserved.Count);
        Assert.Contains(d.Notes, n => n.Node == "/reserved-memory/empty@9000000" && n.Text.Contains("Reserved memory: failed to reserve memory for node 'empty@9000000'"));
    }

    [Fact]
    public void NoMap_IsRemovedBefore512_AndKeptReservedFrom512()
    {
        FdtNode Tree() => FdtBuilder.ArmRoot().Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child("tee@1000000", x => x.Cells("reg", 0x1000000, 0x200000).Flag("no-map")));
        var old = Derive(Tree(), new KernelVersion(5, 11)).Profile;
        Assert.Equal([new DramBank(0, 0x1000000), new DramBank(0x1200000, (256UL << 20) - 0x1200000)], old.Dram);
        Assert.Equal([new ReservedRange("tee@1000000", 0x1000000, 0) { DtOrder = 0 }], old.Reserved);   // saved, reserves nothing
        var later = Derive(Tree(), new KernelVersion(5, 12)).Profile;
        Assert.Equal([new DramBank(0, 256UL << 20)], later.Dram);
        Assert.Equal([new ReservedRange("tee@1000000", 0x1000000, 0x200000) { DtOrder = 0 }], later.Reserved);
    }

    [Fact]
    public void DynamicRegion_IsPlacedTopDownInsideAllocRanges()
    {
        var root = FdtBuilder.ArmRoot().Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child("fb", x => x.Cells("size", 0x300000).Cells("alignment", 0x100000).Cells("alloc-ranges", 0x2000000, 0x1000000))
            .Child("top", x => x.Cells("size", 0x1000)));
        var p = Derive(root).Profile;
        var fb = p.Reserved.Single(r => r.Name == "fb");
        Assert.True(fb.Dynamic);
        Assert.Equal((0x100000UL, 0), (fb.Alignment, fb.DtOrder));
        Assert.Equal([new AllocRange(0x2000000, 0x1000000)], fb.AllocRanges);
        Assert.True(p.Reserved.Single(r => r.Name == "top").Dynamic);
        // The boot places them (ReservedMemoryInit), in the kernel's order of the nodes.
        using var m = Machine.Boot(p);
        Assert.Contains(new MemblockRegion(0x2d00000, 0x3000000, "fb"), m.Layout.Memblock);          // 0x3000000 - 3 MiB, 1 MiB aligned
        Assert.Contains(new MemblockRegion((256UL << 20) - 0x1000, 256UL << 20, "top"), m.Layout.Memblock);
    }

    private static FdtNode CmaTree(ulong? cmaBase, bool isDefault) => FdtBuilder.ArmRoot(0, 512UL << 20)
        .Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child(cmaBase is null ? "linux,cma" : $"cma@{cmaBase:x}", x =>
            {
                x.Str("compatible", "shared-dma-pool").Flag("reusable");
                if (cmaBase is { } b) x.Cells("reg", b, 0x4000000); else x.Cells("size", 0x4000000);
                if (isDefault) x.Flag("linux,cma-default");
                x.Cells("phandle", 0x20);
            })
            .Child("zero", x => x.Str("compatible", "shared-dma-pool").Flag("reusable").Cells("size", 0)))
        .Child("isp@ffa00000", i => i.Str("compatible", "rockchip,rv1106-rkisp").Cells("reg", 0xffa00000, 0x7f00).Cells("memory-region", 0x20))
        .Child("vop@ff990000", i => i.Str("compatible", "rockchip,rv1106-vop").Cells("reg", 0xff990000, 0x1000));

    [Fact]
    public void SharedDmaPool_BecomesACmaArea_AndBoots()
    {
        var d = Derive(CmaTree(0x10000000, isDefault: true));
        var area = Assert.Single(d.Profile.Cma);
        Assert.Equal(new CmaAreaSpec("cma@10000000", 0x10000000, 0x4000000, 0) { ReservedMemory = true, DtOrder = 0 }, area);
        Assert.Equal("cma@10000000", d.Profile.Devices.Single(x => x.Name == "ffa00000.isp").Cma);   // memory-region
        Assert.Equal("cma@10000000", d.Profile.Devices.Single(x => x.Name == "ff990000.vop").Cma);   // the default area
        Assert.Contains(d.Notes, n => n.Node == "/reserved-memory/zero" && n.Text.Contains("invalid size property in 'zero' node"));
        using var m = Machine.Boot(MachineProfile.Parse(d.Json));
        Assert.Contains("Reserved memory: created CMA memory pool at 0x10000000, size 64 MiB", TestSupport.LogText(m));
    }

    [Fact]
    public void DynamicCmaPool_IsPlacedAtBoot_AndANonDefaultPoolServesOnlyItsDevices()
    {
        var d = Derive(CmaTree(null, isDefault: false));
        Assert.Null(Assert.Single(d.Profile.Cma).Base);
        Assert.Equal("linux,cma", d.Profile.Devices.Single(x => x.Name == "ffa00000.isp").Cma);
        Assert.Null(d.Profile.Devices.Single(x => x.Name == "ff990000.vop").Cma);
        using var m = Machine.Boot(d.Profile);
        Assert.Contains("Reserved memory: created CMA memory pool at 0x1c000000, size 64 MiB", TestSupport.LogText(m));
    }

    [Fact]
    public void MisalignedCmaPool_IsNotCreated()
    {
        var root = FdtBuilder.ArmRoot().Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child("linux,cma", x => x.Str("compatible", "shared-dma-pool").Flag("reusable").Cells("size", 0x123000)));
        var d = Derive(root);
        Assert.Empty(d.Profile.Cma);
        Assert.Contains(d.Notes, n => n.Text.Contains("incorrect alignment of CMA region"));
    }

    [Fact]
    public void Bootargs_BecomeTheCmdline_WithMemAndRkDmaHeapCmaApplied()
    {
        var root = FdtBuilder.ArmRoot(0, 256UL << 20);
        root.Props.RemoveAll(x => x.Name == "compatible");
        root.Str("compatible", "rockchip,rv1106g-evb", "rockchip,rv1106")
            .Child("chosen", c => c.Str("bootargs", "console=ttyFIQ0 mem=128M rk_dma_heap_cma=24M slub_max_order=1"));
        var d = Derive(root);
        Assert.Equal([new DramBank(0, 128UL << 20)], d.Profile.Dram);
        Assert.Equal("console=ttyFIQ0 mem=128M rk_dma_heap_cma=24M slub_max_order=1", d.Profile.Cmdline);
        Assert.True(d.Profile.Config.IsEnabled("DMABUF_HEAPS_ROCKCHIP"));
        using var m = Machine.Boot(d.Profile);
        Assert.Contains("cma: Reserved 24 MiB at", TestSupport.LogText(m));
    }

    [Fact]
    public void MemOnArm64_CapsTheRam()
    {
        var root = FdtBuilder.ArmRoot(0x40000000, 1UL << 30, "arm,cortex-a53").Child("chosen", c => c.Str("bootargs", "mem=512M"));
        Assert.Equal([new DramBank(0x40000000, 512UL << 20)], Derive(root).Profile.Dram);
    }

    [Fact]
    public void Devices_AreNamedByTheirTranslatedAddress_DisabledOnesSkipped()
    {
        var root = FdtBuilder.ArmRoot()
            .Child("soc", s => s.Str("compatible", "simple-bus").Cells("#address-cells", 1).Cells("#size-cells", 1)
                .Cells("ranges", 0x0, 0xfe000000, 0x1000000).Flag("dma-coherent").Cells("dma-ranges", 0, 0, 0x40000000)
                .Child("serial@10000", u => u.Str("compatible", "ns16550a").Cells("reg", 0x10000, 0x100))
                .Child("gpu@20000", u => u.Str("compatible", "acme,gpu").Cells("reg", 0x20000, 0x1000).Cells("iommus", 1))
                .Child("dead@30000", u => u.Str("compatible", "acme,dead").Cells("reg", 0x30000, 0x100).Str("status", "disabled"))
                .Child("nocompat@40000", u => u.Cells("reg", 0x40000, 0x100)))
            .Child("bus", b => b.Str("compatible", "acme,bus").Cells("#address-cells", 1).Cells("#size-cells", 1)
                .Child("inner@5000", u => u.Str("compatible", "acme,inner").Cells("reg", 0x5000, 0x100)))
            .Child("vir0", v => v.Str("compatible", "acme,virtual"));
        var p = Derive(root).Profile;
        var names = p.Devices.Select(x => x.Name).ToList();
        Assert.Equal(["soc", "fe010000.serial", "fe020000.gpu", "bus", "vir0"], names);
        var serial = p.Devices.Single(x => x.Name == "fe010000.serial");
        Assert.True(serial.Coherent);                   // dma-coherent on the bus above
        Assert.Equal(30, serial.DmaMaskBits);           // dma-ranges reach 1 GiB
        Assert.Equal(0x100UL, serial.RegSize);
        Assert.True(p.Devices.Single(x => x.Name == "fe020000.gpu").Iommu);   // iommus, with the defconfig's IOMMU_SUPPORT
        Assert.False(serial.Iommu);
    }

    [Fact]
    public void MemLessThanAPage_IsAnErrorNamingChosen()
    {
        var root = FdtBuilder.ArmRoot().Child("chosen", c => c.Str("bootargs", "mem=1K"));
        var e = Assert.Throws<DeviceTreeException>(() => Derive(root));
        Assert.Equal("/chosen", e.NodePath);
        Assert.Contains("mem=1K", e.Message);
    }

    [Fact]
    public void NoMemoryNode_IsAnError()
    {
        var root = new FdtNode("").Cells("#address-cells", 1).Cells("#size-cells", 1)
            .Child("cpus", c => c.Child("cpu@0", x => x.Str("device_type", "cpu").Str("compatible", "arm,cortex-a7")));
        var e = Assert.Throws<DeviceTreeException>(() => Derive(root));
        Assert.Contains("no memory node", e.Message);
    }
}
