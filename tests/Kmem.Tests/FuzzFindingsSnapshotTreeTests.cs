// Pins, at their root, the fixes for what fuzzing the device-tree derivation and the /proc snapshot readers found
// (fuzz/regressions/fdt, fuzz/regressions/procsnap): each input is refused with the documented exception, naming the
// node or the file and line, instead of escaping as an index, overflow or format error or wrapping silently.
using Kmem.Scenarios.ProcSnapshots;
using Kmem.Boot;

namespace Kmem.Tests;

public class FuzzFindingsSnapshotTreeTests
{
    private static byte[] Regression(string target, string name) =>
        File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fuzz", "regressions", target, name));

    [Fact]
    public void Fdt_mem_below_one_page_on_arm64_is_refused_naming_chosen()
    {
        // mem=64 (bytes) on a 64-bit tree left no bank at all, and the derivation indexed the empty bank list.
        var tree = DeviceTree.Parse(Regression("fdt", "mem-below-one-page-on-arm64.dtb"));
        var e = Assert.Throws<DeviceTreeException>(() => MachineProfile.FromDeviceTree(tree));
        Assert.Equal("/chosen", e.NodePath);
        Assert.Contains("less than one whole page", e.Problem);
    }

    [Fact]
    public void PageTypeInfo_page_block_order_beyond_an_int_does_not_wrap()
    {
        // 4294967305 is 9 once cast to an int: it was read as page block order 9.
        var e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParsePageTypeInfo("Page block order: 4294967305\nPages per block:  512\n"));
        Assert.Equal(("pagetypeinfo", 1), (e.File, e.Line));
        Assert.Contains("out of range", e.Problem);
    }

    [Theory]
    [InlineData("0x1ffffffffffffffff-0x20000000000000000 4096 x\n")]
    [InlineData("0xffffc90000000000-0x1ffffc90000001000 4096 x\n")]
    public void VmallocInfo_address_beyond_64_bits_names_the_line(string text)
    {
        var e = Assert.Throws<ProcSnapshotException>(() => StateFiles.ParseVmallocInfo("# first\n" + text));
        Assert.Equal(("vmallocinfo", 2), (e.File, e.Line));
        Assert.Contains("beyond 64 bits", e.Problem);
    }

    [Theory]
    [InlineData("Linux version 99999999999.1.0 (x@y) (gcc) #1\n", "too large")]
    [InlineData("Linux version 6.99999999999 (x@y) (gcc) #1\n", "too large")]
    [InlineData("Linux version 6.6.99999999999 (x@y) (gcc) #1\n", "too large")]
    [InlineData("Linux version \u0666.\u0666 (x@y) (gcc) #1\n", "not a 'Linux version")]
    public void Version_numbers_beyond_an_int_or_not_ascii_are_refused(string text, string problem)
    {
        var e = Assert.Throws<ProcSnapshotException>(() => StateFiles.ParseVersion("\n" + text));
        Assert.Equal(("version", 2), (e.File, e.Line));
        Assert.Contains(problem, e.Problem);
    }

    [Fact]
    public void A_derived_machine_that_cannot_boot_is_a_snapshot_error()
    {
        // A snapshot of a HighMem zone alone derives an arm machine without lowmem: its boot threw ProfileException,
        // which ProcSnapshot.Boot does not document; the import now refuses it as a whole-snapshot error.
        string text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fuzz", "regressions", "procsnap", "highmem-zone-alone-does-not-boot.txt"));
        var snapshot = ProcSnapshot.Parse(Kmem.Fuzzing.FuzzTargets.Sections(text));
        var e = Assert.Throws<ProcSnapshotException>(() => snapshot.Boot());
        Assert.Equal(("", 0), (e.File, e.Line));
        Assert.Contains("does not boot", e.Problem);
        Assert.Contains("memblock", e.Problem);
        // A profile the user gives keeps its own exception.
        Assert.Throws<ProfileException>(() => snapshot.Boot(snapshot.DeriveProfile()));
    }

    [Fact]
    public void PageTypeInfo_without_zone_rows_is_refused()
    {
        // The header and the order columns alone parsed as a snapshot of no zone, and DeriveProfile took the Max of none.
        var e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParsePageTypeInfo(
            "Page block order: 8\nPages per block:  256\n\nFree pages count per migrate type at order 0 1 2 3 4 5 6 7 8\n"));
        Assert.Equal(("pagetypeinfo", 0), (e.File, e.Line));
        Assert.Contains("no zone rows", e.Problem);
    }

    [Theory]
    [InlineData("Node 0, zone Normal 4294967297 1\n", 1, "more than any zone holds")]
    [InlineData("Node 0, zone Normal 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1\n", 1, "21 orders")]
    public void BuddyInfo_counts_and_orders_are_bounded_so_the_sums_cannot_overflow(string text, int line, string problem)
    {
        // Two counts near 2^63 made the cross-checks' checked sums throw OverflowException, and a count shifted by an
        // order past 63 wrapped.
        var e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParseBuddyInfo(text));
        Assert.Equal(("buddyinfo", line), (e.File, e.Line));
        Assert.Contains(problem, e.Problem);
    }

    [Fact]
    public void PageTypeInfo_counts_and_order_columns_are_bounded()
    {
        string head = "Page block order: 2\nPages per block:  4\n\nFree pages count per migrate type at order 0 1 2\n";
        var e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParsePageTypeInfo(head + "Node 0, zone Normal, type Movable 9223372036854775807 0 0\n"));
        Assert.Equal(5, e.Line);
        Assert.Contains("more than any zone holds", e.Problem);
        string cols = string.Join(" ", Enumerable.Range(0, 21));
        e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParsePageTypeInfo($"Page block order: 2\nPages per block:  4\nFree pages count per migrate type at order {cols}\n"));
        Assert.Equal(3, e.Line);
        Assert.Contains("21 order columns", e.Problem);
    }

    [Fact]
    public void SlabInfo_bounds_its_counts_and_reads_many_caches_in_linear_time()
    {
        const string v = "slabinfo - version: 2.1\n";
        var e = Assert.Throws<ProcSnapshotException>(() => StateFiles.ParseSlabInfo(v + "a 1 9223372036854775807 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n"));
        Assert.Equal(2, e.Line);
        e = Assert.Throws<ProcSnapshotException>(() => StateFiles.ParseSlabInfo(v + "a 0 0 64 2097152 1 : tunables 0 0 0 : slabdata 0 0 0\n"));
        Assert.Contains("objects in 1 pages per slab", e.Problem);
        // 60 000 caches: the duplicate-name check was a scan of every row before (quadratic).
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var rows = StateFiles.ParseSlabInfo(v + string.Concat(Enumerable.Range(0, 60_000).Select(i => $"c{i} 64 64 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n")));
        Assert.Equal(60_000, rows.Count);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"{sw.Elapsed}");
    }

    [Fact]
    public void Fdt_many_dynamic_regions_derive_and_boot_in_linear_steps()
    {
        // Placing each dynamic region scanned every region taken so far at every step down: 1000 regions took 10 s,
        // 4000 over two minutes. The derivation now only records them; the boot places them through memblock.
        const int n = 2000;
        var root = FdtBuilder.ArmRoot().Child("reserved-memory", r =>
        {
            r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges");
            for (int i = 0; i < n; i++) r.Child($"dyn{i}", d => d.Cells("size", 0x1000).Cells("alignment", 0x1000));
        });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var p = MachineProfile.FromDeviceTree(DeviceTree.Parse(FdtBuilder.Build(root))).Profile;
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"{sw.Elapsed}");
        Assert.Equal(n, p.Reserved.Count(r => r.Name.StartsWith("dyn", StringComparison.Ordinal) && r.Dynamic));
        sw.Restart();
        using var m = Machine.Boot(p);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"{sw.Elapsed}");
        // Only the first MAX_RESERVED_REGIONS nodes are saved (fdt_reserved_mem_save_node()); the kernel says so for each other one.
        var placed = m.Layout.Memblock.Where(r => r.Name.StartsWith("dyn", StringComparison.Ordinal)).OrderBy(r => r.Base).ToList();
        int cap = ReservedMemoryInit.MaxReservedRegions(p.Version);
        Assert.Equal(cap, placed.Count);
        // (1936 such lines overflow the log buffer, which keeps the latest: the count is checked with 70 nodes in ReservedMemoryCapTests)
        Assert.Contains("OF: reserved mem: not enough space for all defined regions.", TestSupport.LogText(m));
        for (int i = 0; i < placed.Count; i++)
        {
            Assert.Equal(0UL, placed[i].Base % 0x1000);
            if (i > 0) Assert.True(placed[i - 1].Base + placed[i - 1].Size <= placed[i].Base, $"{placed[i - 1].Name} overlaps {placed[i].Name}");
        }
    }
}
