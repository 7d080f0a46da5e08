// The NUMA topology a profile describes: the reader's checks on nodes, CPUs and distances, the zones each node gets,
// the zonelists build_all_zonelists() orders by distance (find_next_best_node with node_load), __GFP_THISNODE, the
// calling thread's node and a thread's move to another CPU.
using Kmem.Paging;
using Xunit;

namespace Kmem.Tests;

public class NumaTopologyTests
{
    /// <summary>An x86_64 6.6 profile with one 512 MiB bank per entry of <paramref name="bankNodes"/>, from 1 GiB up.</summary>
    private static string Json(int[] bankNodes, int[] cpuNodes, string extra = "", bool numa = true) =>
        "{ \"name\": \"numa-test\", \"arch\": \"x86_64\", \"cpus\": " + cpuNodes.Length + ", \"version\": \"6.6\"," +
        " \"cpu_nodes\": [" + string.Join(", ", cpuNodes) + "]," +
        " \"config\": { \"NUMA\": " + (numa ? "true" : "false") + " }," +
        " \"dram\": [" + string.Join(", ", bankNodes.Select((n, i) => $"{{ \"base\": \"0x{(1UL << 30) + ((ulong)i << 29):x}\", \"size\": \"512M\", \"node\": {n} }}")) + "]" +
        extra + " }";

    private static Machine Boot(int[] bankNodes, int[] cpuNodes, string extra = "") => Machine.Boot(MachineProfile.Parse(Json(bankNodes, cpuNodes, extra)));

    private static string Order(Machine m, int node) => string.Join(" ", m.Pages.Nodes[node].FallbackOrder);

    [Fact]
    public void Nodes_without_config_NUMA_are_refused()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], numa: false)));
        Assert.Equal("dram", e.Field);
        Assert.Contains("config NUMA is off", e.Message);
        // One node is fine either way.
        Assert.Equal(1, MachineProfile.Parse(Json([0, 0], [0, 0], numa: false)).NodeCount);
    }

    [Fact]
    public void A_node_without_memory_must_be_declared_memoryless()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 2], [0, 1, 2])));
        Assert.Equal("cpu_nodes[1]", e.Field);
        Assert.Contains("node 1 has no memory bank", e.Message);
        var p = MachineProfile.Parse(Json([0, 2], [0, 1, 2], ", \"memoryless_nodes\": [1]"));
        Assert.Equal(3, p.NodeCount);
        Assert.False(p.NodeHasMemory(1));
        var twice = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 2], [0, 1, 2], ", \"memoryless_nodes\": [1, 1]")));
        Assert.Contains("listed twice", twice.Message);
        var hasBank = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], ", \"memoryless_nodes\": [1]")));
        Assert.Equal("memoryless_nodes[0]", hasBank.Field);
    }

    [Fact]
    public void Bad_cpu_nodes_and_distances_are_refused_with_their_field()
    {
        Assert.Equal("cpu_nodes", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1]).Replace("\"cpus\": 2", "\"cpus\": 3"))).Field);
        Assert.Equal("cpu_nodes[1]", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, -1]))).Field);
        Assert.Equal("dram[0].node", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([64, 0], [0, 0]))).Field);
        Assert.Equal("distances[0][0]", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], ", \"distances\": [[20, 20], [20, 10]]"))).Field);
        Assert.Equal("distances[1][0]", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], ", \"distances\": [[10, 21], [10, 10]]"))).Field);
        Assert.Equal("distances[1]", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], ", \"distances\": [[10, 21], [21]]"))).Field);
        Assert.Equal("distances", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], ", \"distances\": [[10, 21]]"))).Field);
        Assert.Equal("distances[0][1]", Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1], [0, 1], ", \"distances\": [[10, 256], [21, 10]]"))).Field);
    }

    [Fact]
    public void A_profile_changed_with_with_is_checked_as_the_reader_checks_it()
    {
        var p = MachineProfile.Embedded("x86_64-numa2");
        void Refused(MachineProfile changed, string field)
        {
            var e = Assert.Throws<ProfileException>(() => Machine.Boot(changed).Dispose());
            Assert.Equal(field, e.Field);
        }
        Refused(p with { ConfigOptions = new Dictionary<string, object>(p.ConfigOptions) { ["NUMA"] = false } }, "dram");
        Refused(p with { Distances = [[10]] }, "distances[0]");
        Refused(p with { Distances = [[10, 5], [20, 10]] }, "distances[0][1]");
        Refused(p with { CpuNodes = [0, 0, 1, 200] }, "cpu_nodes[3]");
        Refused(p with { CpuNodes = [0, 1] }, "cpu_nodes");
        Refused(p with { MemorylessNodes = [1] }, "memoryless_nodes[0]");
        Refused(p with { Cma = [new CmaAreaSpec("far", null, 16 << 20, 0) { Node = 3 }] }, "cma[0].node");
        Refused(p with { Devices = [.. p.Devices, new DeviceSpec("0000:00:09.0", false, 64, true, null) { Node = 5 }] }, $"devices[{p.Devices.Count}].node");
        Refused(p with { Dram = [p.Dram[0], p.Dram[1] with { Node = 1 }, p.Dram[2], p.Dram[3]] }, "dram[1]"); // inside node 0's span
    }

    [Fact]
    public void A_node_span_that_another_node_enters_is_refused()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json([0, 1, 0], [0, 1])));
        Assert.Equal("dram[1]", e.Field);
        Assert.Contains("inside node 0's span", e.Message);
    }

    [Fact]
    public void Each_node_gets_the_zones_of_its_own_memory()
    {
        using var m = Boot([0, 0, 1, 1], [0, 1]);
        Assert.Equal(2, m.NodeCount);
        var pa = m.Pages;
        Assert.Equal(4, pa.ZonesPerNode);                      // DMA, DMA32, Normal, Movable on every node
        // Node 0: 1 GiB..2 GiB, all below 4 GiB: DMA32 only. Node 1: 2 GiB..3 GiB: DMA32 too.
        foreach (var z in pa.Zones) Assert.Equal(z.Index / 4, z.Node);
        Assert.Equal((1L << 30) >> 12, pa.NodeZones(0)[1].Present);
        Assert.Equal((1L << 30) >> 12, pa.NodeZones(1)[1].Present);
        Assert.Equal(0x80000UL, pa.NodeZones(1)[1].StartPfn);
        Assert.All(pa.Zones, z => Assert.Equal(z.Index % 4, z.ZoneIdx));
        Assert.False(pa.NodeZones(1)[2].Populated);
    }

    [Fact]
    public void Four_equidistant_nodes_take_turns_as_each_others_first_fallback()
    {
        // build_zonelists(): node_load spreads the first remote choice round the nodes (6.6 mm/page_alloc.c).
        using var m = Boot([0, 1, 2, 3], [0, 1, 2, 3]);
        Assert.Equal("0 1 2 3", Order(m, 0));
        Assert.Equal("1 2 3 0", Order(m, 1));
        Assert.Equal("2 3 0 1", Order(m, 2));
        Assert.Equal("3 0 1 2", Order(m, 3));
    }

    [Fact]
    public void The_nearest_node_comes_first_by_the_distance_table()
    {
        const string slit = ", \"distances\": [[10, 30, 20], [30, 10, 20], [20, 20, 10]]";
        using var m = Boot([0, 1, 2], [0, 1, 2], slit);
        Assert.Equal("0 2 1", Order(m, 0));
        Assert.Equal("1 2 0", Order(m, 1));
        Assert.Equal("2 0 1", Order(m, 2));
        Assert.Equal(30, m.NodeDistance(0, 1));
        Assert.Equal(10, m.NodeDistance(2, 2));
        // The zonelist of node 0 for GFP_KERNEL: its own zones, highest first, then node 2's, then node 1's.
        var list = m.Pages.ZonelistFor(0, Gfp.Kernel);
        Assert.Equal([0, 2, 1], list.Select(z => z.Node).ToArray());
        Assert.Single(m.Pages.ZonelistFor(1, Gfp.Kernel | Gfp.ThisNode));
    }

    [Fact]
    public void A_memoryless_node_allocates_from_its_nearest_node_and_never_with_THISNODE()
    {
        using var m = Boot([0, 2], [0, 1, 2], ", \"memoryless_nodes\": [1], \"distances\": [[10, 20, 30], [20, 10, 15], [30, 15, 10]]");
        Assert.Equal("1 2 0", Order(m, 1));
        Assert.Equal(2, m.Pages.ZonelistFor(1, Gfp.Kernel)[0].Node);
        Assert.Empty(m.Pages.ZonelistFor(1, Gfp.Kernel | Gfp.ThisNode));
        RunOn(m, 1, () =>
        {
            Assert.Equal(1, m.NumaNodeId);
            var p = m.AllocPage(Gfp.Kernel);
            Assert.Equal(2, m.PageToNid(p));
            m.FreePage(p);
            Assert.True(m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode | Gfp.NoWarn, 0).IsNull);
        });
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Threads_allocate_from_the_node_of_the_cpu_they_run_as()
    {
        using var m = Boot([0, 1], [0, 0, 1, 1]);
        for (int cpu = 0; cpu < 4; cpu++)
        {
            int node = cpu / 2;
            RunOn(m, cpu, () =>
            {
                Assert.Equal(cpu, m.CurrentCpu);
                Assert.Equal(node, m.NumaNodeId);
                Assert.Equal(node, m.CpuToNode(cpu));
                var pages = Enumerable.Range(0, 100).Select(_ => m.AllocPage(Gfp.Kernel)).ToList();
                var big = m.AllocPages(Gfp.Kernel, 4);
                Assert.All(pages, p => Assert.Equal(node, m.PageToNid(p)));
                Assert.Equal(node, m.PageToNid(big));
                // Moving to a CPU of the other node moves the thread's allocations with it.
                m.MigrateToCpu(3 - cpu);
                var moved = m.AllocPage(Gfp.Kernel);
                Assert.Equal(1 - node, m.PageToNid(moved));
                m.FreePage(moved);
                foreach (var p in pages) m.FreePage(p);
                m.FreePages(big, 4);
            });
        }
        m.DrainAllPages();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void AllocPagesNode_takes_the_named_node_and_checks_it()
    {
        using var m = Boot([0, 1], [0, 1]);
        for (int node = 0; node < 2; node++)
        {
            var p = m.AllocPagesNode(node, Gfp.Kernel, 2);
            Assert.Equal(node, m.PageToNid(p));
            m.FreePages(p, 2);
        }
        Assert.Equal(m.NumaNodeId, m.PageToNid(m.AllocPagesNode(Machine.NumaNoNode, Gfp.Kernel, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.AllocPagesNode(2, Gfp.Kernel, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.AllocPagesNode(-2, Gfp.Kernel, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.MigrateToCpu(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.CpuToNode(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.NodeDistance(0, 5));
        Assert.Throws<InvalidAddressException>(() => m.PageToNid(default));
    }

    [Fact]
    public void Before_4_14_a_zone_ordered_kernel_tries_every_nodes_Normal_before_the_local_DMA32()
    {
        // 3.10: default_zonelist_order() picks Zone order when DMA/DMA32 hold at most half of memory and no node above the
        // average is mostly DMA32 (node 0: 4 GiB below 4 GiB + 4 GiB above, node 1: 8 GiB). build_zonelists_in_zone_order().
        using var m = Machine.Boot(MachineProfile.Parse("""
            { "name": "zone-order", "arch": "x86_64", "cpus": 2, "cpu_nodes": [0, 1], "version": "3.10", "config": { "NUMA": true },
              "dram": [ { "base": "0x1000", "size": "0xbfeff000", "node": 0 }, { "base": "0x100000000", "size": "4G", "node": 0 },
                        { "base": "0x200000000", "size": "8G", "node": 1 } ] }
            """));
        Assert.Equal("Zone", m.Pages.ZonelistOrder);
        Assert.Contains("Built 2 zonelists in Zone order, mobility grouping on.", m.Dmesg());
        Assert.Equal(["1 Normal", "0 Normal", "0 DMA32", "0 DMA"], m.Pages.ZonelistFor(1, Gfp.Kernel).Select(z => $"{z.Node} {z.Name}"));
        Assert.Equal(["0 Normal", "1 Normal", "0 DMA32", "0 DMA"], m.Pages.ZonelistFor(0, Gfp.Kernel).Select(z => $"{z.Node} {z.Name}"));
        Assert.Equal(["0 Normal", "0 DMA32", "0 DMA"], m.Pages.ZonelistFor(0, Gfp.Kernel | Gfp.ThisNode).Select(z => $"{z.Node} {z.Name}"));
        // From 4.14 only node order is left: the same machine goes through node 0's zones first.
        using var later = Machine.Boot(TestSupport.AtRelease("x86_64-numa2", "4.14"));
        Assert.Equal("Node", later.Pages.ZonelistOrder);
        Assert.Equal(["0 Normal", "0 DMA32", "0 DMA", "1 Normal"], later.Pages.ZonelistFor(0, Gfp.Kernel).Select(z => $"{z.Node} {z.Name}"));
    }

    [Fact]
    public void On_a_two_node_i386_board_high_memory_starts_at_the_lowmem_limit_on_every_node()
    {
        // Node 0 holds lowmem and the start of HighMem, node 1 only HighMem: high_memory is one physical limit.
        using var m = Machine.Boot(MachineProfile.Parse("""
            { "name": "i386-numa2", "arch": "i386", "cpus": 2, "cpu_nodes": [0, 1], "version": "5.10", "config": { "NUMA": true },
              "dram": [ { "base": "0x0", "size": "1536M", "node": 0 }, { "base": "0x60000000", "size": "512M", "node": 1 } ] }
            """));
        Assert.Equal(["DMA", "Normal", "HighMem"], m.Pages.NodeZones(0).ToArray().Where(z => z.Populated).Select(z => z.Name));
        Assert.Equal(["HighMem"], m.Pages.NodeZones(1).ToArray().Where(z => z.Populated).Select(z => z.Name));
        var node0High = m.PfnToPage(0x40000);                   // 1 GiB: node 0, above the lowmem limit
        Assert.True(m.PageHighMem(node0High));
        Assert.Equal(0, m.PageAddress(node0High));
        Assert.False(m.PageHighMem(m.PfnToPage(0x1000)));
    }

    [Fact]
    public void A_one_node_machine_is_node_0_everywhere()
    {
        using var m = Machine.Boot();
        Assert.Equal(1, m.NodeCount);
        Assert.Equal(0, m.NumaNodeId);
        Assert.Equal(0, m.PageToNid(m.AllocPage(Gfp.Kernel)));
        Assert.Equal("0", Order(m, 0));
    }

    /// <summary>Runs <paramref name="body"/> on a new thread that runs as profile CPU <paramref name="cpu"/>.</summary>
    internal static void RunOn(Machine m, int cpu, Action body)
    {
        Exception? failure = null;
        var t = new Thread(() =>
        {
            try { m.MigrateToCpu(cpu); body(); }
            catch (Exception e) { failure = e; }
        });
        t.Start();
        t.Join();
        if (failure is not null) throw new Xunit.Sdk.XunitException($"on CPU {cpu}: {failure}");
    }
}
