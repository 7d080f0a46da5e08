// The kernel's order of the /reserved-memory nodes at boot: lib/sort.c's two heapsorts and the permutation they leave
// equal nodes in, fdt_init_reserved_mem() placing the dynamic nodes in that order (so the version changes the
// addresses), 6.5's node order and its bottom-up placement next to a neighbour, and the profile keys that carry it.
using Kmem.Boot;
using Xunit;

namespace Kmem.Tests;

public class ReservedMemoryOrderTests
{
    // ------------------------------------------------------------------ lib/sort.c

    [Fact]
    public void Both_heapsorts_reverse_two_equal_elements()
    {
        string[] a = ["A", "B"], b = ["A", "B"];
        KernelSort.ClassicHeapsort(a, (_, _) => 0);
        KernelSort.BottomUpHeapsort(b, (_, _) => 0);
        Assert.Equal(["B", "A"], a);
        Assert.Equal(["B", "A"], b);
    }

    [Fact]
    public void Three_equal_elements_come_out_as_the_second_the_third_and_the_first()
    {
        // Worked by hand through both lib/sort.c loops: the heap is left alone, then each extraction swaps the root to
        // the end and the sift finds nothing greater.
        string[] a = ["A", "B", "C"], b = ["A", "B", "C"];
        KernelSort.ClassicHeapsort(a, (_, _) => 0);
        KernelSort.BottomUpHeapsort(b, (_, _) => 0);
        Assert.Equal(["B", "C", "A"], a);
        Assert.Equal(["B", "C", "A"], b);
    }

    [Fact]
    public void Both_heapsorts_sort()
    {
        var rng = new Random(26);
        for (int n = 0; n < 40; n++)
        {
            int[] src = Enumerable.Range(0, n).Select(_ => rng.Next(8)).ToArray();
            int[] a = (int[])src.Clone(), b = (int[])src.Clone();
            KernelSort.ClassicHeapsort(a, (x, y) => x.CompareTo(y));
            KernelSort.BottomUpHeapsort(b, (x, y) => x.CompareTo(y));
            Assert.Equal(src.Order(), a);
            Assert.Equal(src.Order(), b);
        }
    }

    // ------------------------------------------------------------------ the order at boot

    /// <summary>256 MiB at 0 with three dynamic nodes in this order: alpha (16 MiB), linux,cma (a 32 MiB pool), beta (8 MiB).</summary>
    private static MachineProfile ThreeDynamicNodes(KernelVersion version) => MachineProfile.FromDeviceTree(DeviceTree.Parse(FdtBuilder.Build(
        FdtBuilder.ArmRoot().Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child("alpha", x => x.Cells("size", 16 << 20))
            .Child("linux,cma", x => x.Str("compatible", "shared-dma-pool").Flag("reusable").Cells("size", 32 << 20).Flag("linux,cma-default"))
            .Child("beta", x => x.Cells("size", 8 << 20))))), new DeviceTreeOptions { Version = version }).Profile;

    private static ulong At(Machine m, string name) => m.Layout.Memblock.Single(r => r.Name == name).Base;

    [Fact]
    public void From_6_5_the_dynamic_nodes_are_placed_in_node_order()
    {
        using var m = Machine.Boot(ThreeDynamicNodes(new KernelVersion(6, 6)));
        Assert.Equal(0x0f000000UL, At(m, "alpha"));                         // the top 16 MiB
        Assert.Equal(0x0d000000UL, m.Cma["linux,cma"].Base);                 // below it, 4 MiB aligned
        Assert.Equal(0x0c800000UL, At(m, "beta"));
        Assert.Contains("Reserved memory: created CMA memory pool at 0x0d000000, size 32 MiB", TestSupport.LogText(m));
    }

    [Fact]
    public void Before_6_5_the_heapsort_places_the_second_node_first_and_the_addresses_change()
    {
        // Three saved nodes of equal key (base 0, size 0): the heapsort leaves linux,cma, beta, alpha.
        foreach (var v in new[] { new KernelVersion(5, 10), new KernelVersion(4, 19) })
        {
            using var m = Machine.Boot(ThreeDynamicNodes(v));
            Assert.Equal(0x0e000000UL, m.Cma["linux,cma"].Base);
            Assert.Equal(0x0d800000UL, At(m, "beta"));
            Assert.Equal(0x0c800000UL, At(m, "alpha"));
        }
    }

    [Fact]
    public void Static_nodes_take_part_in_the_sort_and_move_the_dynamic_ones()
    {
        // 5.10 sorts by base then size. The saved array [a(0,0), s1(0x8000000), s2(0x9000000), b(0,0)] comes out of
        // the heapsort as b, a, s1, s2: the last dynamic node is placed first. 6.5 on keeps a before b.
        var p = MachineProfile.Parse(Json("5.10", """
            { "name": "a", "base": "auto", "size": "4M", "dt_order": 0 },
            { "name": "s1", "base": "0x8000000", "size": "1M", "dt_order": 1 },
            { "name": "s2", "base": "0x9000000", "size": "1M", "dt_order": 2 },
            { "name": "b", "base": "auto", "size": "4M", "dt_order": 3 }
            """));
        var saved = ReservedMemoryInit.Saved(p);
        Assert.Equal(["b", "a", "s1", "s2"], ReservedMemoryInit.InitOrder(p.Version, saved).Select(e => e.Name));
        Assert.Equal(["a", "b", "s1", "s2"], ReservedMemoryInit.InitOrder(new KernelVersion(6, 6), saved).Select(e => e.Name));
        using (var m = Machine.Boot(p))
        {
            Assert.Equal(0x0fc00000UL, At(m, "b"));
            Assert.Equal(0x0f800000UL, At(m, "a"));
        }
        using (var m = Machine.Boot(p with { Version = new KernelVersion(6, 6) }))
        {
            Assert.Equal(0x0fc00000UL, At(m, "a"));
            Assert.Equal(0x0f800000UL, At(m, "b"));
        }
    }

    [Fact]
    public void From_6_5_an_alloc_range_that_starts_at_a_reserved_node_is_filled_bottom_up()
    {
        // __reserved_mem_alloc_in_range(): the window starts where the static node ends, so 6.5 places the region right
        // after it; 6.1 takes the top of the window.
        string Reserved(string v) => Json(v, """
            { "name": "fw", "base": "0x2000000", "size": "1M", "dt_order": 0 },
            { "name": "buf", "base": "auto", "size": "1M", "alloc_ranges": [ { "base": "0x2100000", "size": "0x1000000" } ], "dt_order": 1 }
            """);
        using (var m = Machine.Boot(MachineProfile.Parse(Reserved("6.6")))) Assert.Equal(0x2100000UL, At(m, "buf"));
        using (var m = Machine.Boot(MachineProfile.Parse(Reserved("6.1")))) Assert.Equal(0x3000000UL, At(m, "buf"));
    }

    [Fact]
    public void A_dynamic_node_that_finds_no_room_is_left_out_with_the_kernels_line()
    {
        var p = MachineProfile.Parse(Json("5.10", """{ "name": "huge", "base": "auto", "size": "1M", "alloc_ranges": [ { "base": "0x20000000", "size": "0x1000000" } ] }"""));
        using var m = Machine.Boot(p);
        Assert.Contains("OF: reserved mem: failed to allocate memory for node 'huge'", TestSupport.LogText(m));
        Assert.DoesNotContain(m.Layout.Memblock, r => r.Name == "huge");
    }

    [Fact]
    public void The_derivation_gives_each_node_its_order_and_refuses_an_alignment_of_the_wrong_width()
    {
        var p = ThreeDynamicNodes(new KernelVersion(6, 6));
        Assert.Equal([0, 2], p.Reserved.Select(r => r.DtOrder));
        Assert.Equal(1, Assert.Single(p.Cma).DtOrder);
        var bad = FdtBuilder.ArmRoot().Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
            .Child("fb", x => x.Cells("size", 0x100000).Cells("alignment", 0, 0x100000)));
        var e = Assert.Throws<DeviceTreeException>(() => MachineProfile.FromDeviceTree(DeviceTree.Parse(FdtBuilder.Build(bad))));
        Assert.Equal("/reserved-memory/fb", e.NodePath);
        Assert.Contains("alignment is 2 cells, not #address-cells = 1", e.Message);
    }

    // ------------------------------------------------------------------ profile keys

    [Theory]
    [InlineData("""{ "name": "x", "base": "0x1000000", "size": "1M", "alignment": "0x1000" }""", "reserved[0]", "apply only to a region placed at boot")]
    [InlineData("""{ "name": "x", "base": "auto", "size": "1M", "alignment": "0x3000" }""", "reserved[0].alignment", "not a power of two")]
    [InlineData("""{ "name": "x", "base": "auto", "size": "1M", "alloc_ranges": [] }""", "reserved[0].alloc_ranges", "at least one window")]
    [InlineData("""{ "name": "x", "base": "auto", "size": "1M", "alloc_ranges": [ { "base": "0x0", "size": "0" } ] }""", "reserved[0].alloc_ranges[0].size", "must not be zero")]
    [InlineData("""{ "name": "x", "base": "auto", "size": "0" }""", "reserved[0].size", "must not be zero")]
    [InlineData("""{ "name": "x", "base": "0x1000", "size": "0" }""", "reserved[0].size", "must not be zero")]
    [InlineData("""{ "name": "x", "base": "auto", "size": "1M", "dt_order": -1 }""", "reserved[0].dt_order", "0..65535")]
    public void Bad_placement_keys_are_refused_naming_the_field(string entry, string field, string message)
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Json("5.10", entry)));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_zero_sized_node_with_its_order_is_a_placeholder_that_reserves_nothing()
    {
        var p = MachineProfile.Parse(Json("5.10", """{ "name": "logo@0", "base": "0x0", "size": "0", "dt_order": 0 }"""));
        using var m = Machine.Boot(p);
        Assert.DoesNotContain(m.Layout.Memblock, r => r.Name == "logo@0");
    }

    [Fact]
    public void Placement_keys_on_a_stated_cma_area_are_refused()
    {
        string json = Json("5.10", "").Replace("\"devices\": []", "\"cma\": [ { \"name\": \"a\", \"size\": \"4M\", \"dt_order\": 0 } ], \"devices\": []");
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json));
        Assert.Contains("belong to a device-tree reserved-memory node", e.Message);
    }

    private static string Json(string version, string reserved) => $$"""
        { "name": "order", "arch": "arm", "cpus": 1, "version": "{{version}}", "config": { "CMA": true, "DMA_CMA": true },
          "dram": [ { "base": "0x0", "size": "256M" } ], "reserved": [ {{reserved}} ], "devices": [] }
        """;
}

/// <summary>MAX_RESERVED_REGIONS: nodes found once the kernel's reserved_mem[] array is full are not saved.</summary>
public class ReservedMemoryCapTests
{
    [Theory]
    [InlineData(4, 19, 32)]
    [InlineData(5, 10, 64)]
    public void Nodes_past_the_array_are_not_placed_and_each_is_reported(int major, int minor, int cap)
    {
        const int n = 70;
        var root = FdtBuilder.ArmRoot().Child("reserved-memory", r =>
        {
            r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges");
            for (int i = 0; i < n; i++) r.Child($"dyn{i}", d => d.Cells("size", 0x1000).Cells("alignment", 0x1000));
        });
        var p = MachineProfile.FromDeviceTree(DeviceTree.Parse(FdtBuilder.Build(root))).Profile with { Version = new KernelVersion(major, minor) };
        Assert.Equal(cap, ReservedMemoryInit.MaxReservedRegions(p.Version));
        using var m = Machine.Boot(p);
        var placed = m.Layout.Memblock.Where(r => r.Name.StartsWith("dyn", StringComparison.Ordinal)).Select(r => r.Name).ToHashSet();
        Assert.Equal(cap, placed.Count);
        // the first nodes in node order are the saved ones
        Assert.All(Enumerable.Range(0, cap), i => Assert.Contains($"dyn{i}", placed));
        Assert.Equal(n - cap, TestSupport.LogText(m).Split('\n').Count(l => l.Contains("OF: reserved mem: not enough space for all defined regions.", StringComparison.Ordinal)));
    }
}
