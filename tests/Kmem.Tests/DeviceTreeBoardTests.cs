// Real published board trees (Fixtures/SOURCES.md says where each comes from and how it was built): the reader
// takes the dtc-built blob, the derivation finds the board's CPU, RAM and platform devices under the names the
// kernel gives them, and the profile boots.
using Xunit;

namespace Kmem.Tests;

public class DeviceTreeBoardTests
{
    private static DeviceTree Load(string name) => DeviceTree.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", name));

    [Fact]
    public void LuckfoxPicoMini_Rv1103_DerivesAndBoots()
    {
        var tree = Load("dtb_rv1103g_luckfox_pico_mini_mainline_64M.dtb");
        Assert.Equal("Luckfox Pico Mini", tree.Root.GetString("model"));
        var d = MachineProfile.FromDeviceTree(tree);
        var p = d.Profile;
        Assert.Equal(Arch.Arm, p.Arch);
        Assert.Equal(1, p.Cpus);
        Assert.Equal([new DramBank(0, 64UL << 20)], p.Dram);
        Assert.Equal((ulong)tree.TotalSize, p.Fdt!.Size);
        var names = p.Devices.Select(x => x.Name).ToHashSet();
        // rv1106.dtsi's UART2 (the board's console, stdout-path serial2) and the SoC's enabled blocks, named as
        // of_device_make_bus_id() names them; a node without reg under a simple-mfd takes its parent's prefix.
        Assert.Contains("ff4c0000.serial", names);
        Assert.Contains("ff000000.syscon:grf-clock-controller", names);
        Assert.Contains("ff1f1000.interrupt-controller", names);      // the GIC's first reg entry, its distributor
        Assert.DoesNotContain(names, n => n.Contains("opp-table"));   // of_skipped_node_table
        Assert.Contains("ff3c0000.saradc", names);                    // disabled in rv1106.dtsi, enabled by the board (&saradc)
        Assert.DoesNotContain("ff4a0000.serial", names);              // disabled in rv1106.dtsi and left so
        Assert.DoesNotContain("ff990000.vop", names);
        int disabled = tree.Root.Children.Count(n => n.Has("reg") && n.GetStrings("compatible").Count > 0 && !n.IsAvailable);
        Assert.Equal(34, disabled);
        Assert.DoesNotContain(p.Devices, x => tree.Root.Children.Any(n => !n.IsAvailable && n.UnitAddress is { } u && x.Name == $"{Convert.ToUInt64(u, 16):x}.{n.Name}"));
        using var m = Machine.Boot(MachineProfile.Parse(d.Json));
        string log = TestSupport.LogText(m);
        Assert.Contains("Machine model: Luckfox Pico Mini", log);
        Assert.Contains("Memory: ", log);
        Assert.Contains("K/65536K available", log);
    }
}
