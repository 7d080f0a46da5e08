// Devices and CMA areas of a node: dev_to_node() from the profile, dma_alloc_coherent() from the device's node
// (alloc_pages_node(dev_to_node(dev), …)), and CMA areas declared for a node (cma_declare_contiguous_nid()).
using static Kmem.Tests.NumaAllocTests;

namespace Kmem.Tests;

public class NumaDeviceTests
{
    private static MachineProfile WithDevicesAndCma(string devices, string cma) =>
        MachineProfile.Parse(TwoNodeJson.TrimEnd().TrimEnd('}') + $", \"devices\": [{devices}], \"cma\": [{cma}] }}");

    [Fact]
    public void Coherent_buffers_come_from_the_devices_node_and_a_nodeless_device_uses_the_threads()
    {
        var p = WithDevicesAndCma("""
            { "name": "0000:00:03.0", "driver": "virtio-pci", "dma_mask": 64, "node": 1 },
            { "name": "0000:00:04.0", "driver": "virtio-pci", "dma_mask": 64 }
            """, "");
        using var m = Machine.Boot(p);
        var near = m.Devices["0000:00:03.0"];
        var any = m.Devices["0000:00:04.0"];
        Assert.Equal(1, near.Node);
        Assert.Equal(Machine.NumaNoNode, any.Node);
        OnCpu(m, 0, () =>
        {
            foreach (int size in new[] { 4096, 3 * 4096, 64 << 10 })
            {
                nint a = m.DmaAllocCoherent(near, size, Gfp.Kernel, out ulong h);
                Assert.Equal(1, m.PageToNid(m.VirtToPage(a)));
                m.DmaFreeCoherent(near, size, a, h);
                nint b = m.DmaAllocCoherent(any, size, Gfp.Kernel, out ulong h2);
                Assert.Equal(0, m.PageToNid(m.VirtToPage(b)));
                m.DmaFreeCoherent(any, size, b, h2);
            }
        });
        OnCpu(m, 3, () =>
        {
            nint b = m.DmaAllocCoherent(any, 4096, Gfp.Kernel, out ulong h);
            Assert.Equal(1, m.PageToNid(m.VirtToPage(b)));
            m.DmaFreeCoherent(any, 4096, b, h);
        });
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_cma_area_of_a_node_lies_in_that_nodes_memory_and_names_the_node()
    {
        var p = WithDevicesAndCma("", """{ "name": "n1", "size": "16M", "node": 1 }, { "name": "any", "size": "16M" }""");
        using var m = Machine.Boot(p);
        var n1 = m.Cma["n1"];
        Assert.Equal(1, n1.Node);
        // Top-down in node 1 (no memory above 4 GiB), below its NODE_DATA (x86's initmem_init() reserves it before
        // dma_contiguous_reserve()), so one 4 MiB CMA alignment step lower than the node's end.
        Assert.Equal(0x10000000UL - (16 << 20) - (4 << 20), n1.BasePfn << 12);
        Assert.Contains("cma: Reserved 16 MiB at 0x000000000ec00000 on node 1", m.Dmesg());
        Assert.Contains(" on node -1", m.Dmesg());
        // On the 16 GiB two-node machine the area goes bottom-up from node 1's start (above 4 GiB, 5.11 on).
        var big = MachineProfile.Embedded("x86_64-numa2");
        using var b = Machine.Boot(big with { Cma = [new CmaAreaSpec("n1", null, 64 << 20, 0) { Node = 1 }] });
        Assert.Equal(0x280000000UL, b.Cma["n1"].BasePfn << 12);
        Assert.Contains("cma: Reserved 64 MiB at 0x0000000280000000 on node 1", b.Dmesg());
    }

    [Theory]
    [InlineData("""{ "name": "0000:00:03.0", "node": 2 }""", "", "devices[0].node")]
    [InlineData("""{ "name": "0000:00:03.0", "node": "one" }""", "", "devices[0].node")]
    [InlineData("", """{ "name": "c", "size": "16M", "node": 2 }""", "cma[0].node")]
    [InlineData("", """{ "name": "c", "base": "0x04000000", "size": "16M", "node": 1 }""", "cma[0].node")]
    public void Bad_nodes_of_devices_and_cma_areas_are_refused(string devices, string cma, string field)
    {
        var e = Assert.Throws<ProfileException>(() => WithDevicesAndCma(devices, cma));
        Assert.Equal(field, e.Field);
    }
}

public class NumaCmaTests
{
    private static Machine Boot(string cmdline)
    {
        var p = MachineProfile.Parse(NumaAllocTests.TwoNodeJson.TrimEnd().TrimEnd('}') +
            """, "devices": [ { "name": "0000:00:03.0", "dma_mask": 64, "node": 1 }, { "name": "0000:00:04.0", "dma_mask": 64 } ] }""");
        var options = new Dictionary<string, object>(p.ConfigOptions) { ["DMA_CMA"] = true, ["DMA_NUMA_CMA"] = true };
        return Machine.Boot(p with { ConfigOptions = options, Cmdline = cmdline });
    }

    [Fact]
    public void Numa_cma_and_cma_pernuma_reserve_areas_per_node_and_devices_use_their_nodes()
    {
        using var m = Boot("numa_cma=1:16M,5:4M cma_pernuma=8M");
        string dmesg = m.Dmesg();
        Assert.Equal(["numa1", "pernuma0", "pernuma1"], m.Cma.Keys.Where(k => k.Contains("numa")).Order().ToArray());
        Assert.Equal(0, m.Cma["pernuma0"].Node);
        Assert.Equal(1, m.Cma["numa1"].Node);
        Assert.Contains("cma: Reserved 8 MiB at 0x0000000007400000 on node 0", dmesg);
        Assert.Contains("cma: Reserved 8 MiB at 0x000000000f400000 on node 1", dmesg);
        Assert.Contains("cma: Reserved 16 MiB at 0x000000000e400000 on node 1", dmesg);
        Assert.Contains("cma: invalid node 5 specified", dmesg);
        // A device of node 1 takes its buffers of more than a page from pernuma1, then numa1; one without a node from
        // neither (no default area here: the buddy allocator).
        var near = m.Devices["0000:00:03.0"];
        var any = m.Devices["0000:00:04.0"];
        var pernuma1 = m.Cma["pernuma1"];
        nint a = m.DmaAllocCoherent(near, 64 << 10, Gfp.Kernel, out ulong h);
        ulong pfn = m.VirtToPage(a).Pfn;
        Assert.InRange(pfn, pernuma1.BasePfn, pernuma1.BasePfn + pernuma1.Count - 1);
        nint b = m.DmaAllocCoherent(any, 64 << 10, Gfp.Kernel, out ulong h2);
        Assert.DoesNotContain(m.Cma.Values, c => m.VirtToPage(b).Pfn >= c.BasePfn && m.VirtToPage(b).Pfn < c.BasePfn + c.Count);
        m.DmaFreeCoherent(near, 64 << 10, a, h);
        m.DmaFreeCoherent(any, 64 << 10, b, h2);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Without_the_option_the_words_reserve_nothing()
    {
        var p = MachineProfile.Parse(NumaAllocTests.TwoNodeJson);
        using var m = Machine.Boot(p with { Cmdline = "numa_cma=1:16M cma_pernuma=8M" });
        Assert.DoesNotContain(m.Cma.Keys, k => k.Contains("numa"));
    }
}
