// /proc snapshot import: each file's reader (with malformed input naming file and line), the cross-checks, the
// derived machine, and exact free-list and pageblock reproduction on real snapshots and on a machine's own export.
using Kmem.Scenarios.ProcSnapshots;

namespace Kmem.Tests;

public class ProcSnapshotTests
{
    /// <summary>The part of a fixture after "# cat /proc/NAME" up to the next "# cat" line.</summary>
    internal static string Section(string fixture, string name)
    {
        var lines = TestSupport.Fixture(fixture).Split('\n');
        int start = Array.FindIndex(lines, l => l.TrimEnd() == $"# cat /proc/{name}");
        Assert.True(start >= 0, name);
        int end = Array.FindIndex(lines, start + 1, l => l.StartsWith("# cat /proc/", StringComparison.Ordinal));
        return string.Join('\n', lines[(start + 1)..(end < 0 ? lines.Length : end)]) + "\n";
    }

    private const string Arm32 = "pagetypeinfo_arm32_4.14_2GB_cma_order12.txt";
    private const string Vm66 = "zoneinfo_pagetypeinfo_x86_64_6.6-rc1_16G_numa2_lkml.txt";
    private const string Linuxmm2010 = "slabinfo_meminfo_buddyinfo_x86_64_numa2_2.6.3x_linuxmm2010.txt";

    /// <summary>The free and block tables of a pagetypeinfo text, as one comparable string per zone.</summary>
    private static List<string> Tables(string pagetypeinfo)
    {
        var p = FreeListFiles.ParsePageTypeInfo(pagetypeinfo);
        return p.Zones.Select(z =>
        {
            var free = string.Join(",", Enumerable.Range(0, 6).Select(mt => string.Join(" ", Enumerable.Range(0, p.MaxOrder).Select(o => z.Free[mt, o]))));
            return $"{z.Node}/{z.Zone}: {free} | {string.Join(" ", z.Blocks!)}";
        }).ToList();
    }

    private static List<string> Buddy(string buddyinfo) =>
        FreeListFiles.ParseBuddyInfo(buddyinfo).Select(r => $"{r.Node}/{r.Zone}: {string.Join(" ", r.Free)}").ToList();

    [Fact]
    public void PageTypeInfo_arm32_4_14_reads_header_orders_and_both_tables()
    {
        var p = FreeListFiles.ParsePageTypeInfo(TestSupport.Fixture(Arm32));
        Assert.Equal(12, p.PageblockOrder);
        Assert.Equal(13, p.MaxOrder);
        Assert.Equal(["DMA", "HighMem"], p.Zones.Select(z => z.Zone));
        var high = p.Zones[1];
        Assert.Equal(261, high.Free[(int)MigrateType.Cma, 0]);
        Assert.Equal(13, high.Free[(int)MigrateType.Cma, 12]);
        Assert.Equal([3L, 32, 0, 0, 57, 0], high.Blocks!);
    }

    [Fact]
    public void PageTypeInfo_6_6_reads_one_block_per_node()
    {
        var p = FreeListFiles.ParsePageTypeInfo(Section(Vm66, "pagetypeinfo"));
        Assert.Equal(9, p.PageblockOrder);
        Assert.Equal(11, p.MaxOrder);
        Assert.Equal(["0/DMA", "0/DMA32", "0/Normal", "1/Normal"], p.Zones.Select(z => $"{z.Node}/{z.Zone}"));
        Assert.Equal(3, p.Zones[3].Free[(int)MigrateType.Isolate, 10]);
        Assert.Equal(8, p.Zones[3].Blocks![(int)MigrateType.Isolate]);
    }

    [Theory]
    [InlineData("Page block order: 9\nPages per block:  256\n", 2, "256 pages per block")]
    [InlineData("Page block order: 2\nPages per block:  4\n\nFree pages count per migrate type at order 0 1 2\nNode 0, zone Normal, type Unmovable 1 2\n", 5, "2 counts for 3 orders")]
    [InlineData("Page block order: 2\nPages per block:  4\n\nFree pages count per migrate type at order 0 1 2\nNode 0, zone Normal, type Sticky 1 2 3\n", 5, "unknown migratetype 'Sticky'")]
    [InlineData("Page block order: 2\nPages per block:  4\n\nFree pages count per migrate type at order 0 1 2\nNode 0, zone Normal, type Unmovable 1 x 3\n", 5, "'x' is not a count")]
    [InlineData("Page block order: 2\nPages per block:  4\n\nFree pages count per migrate type at order 0 1 2\nNode 0, zone Normal, type Movable >100000 0 0\n", 5, "clamps counts")]
    [InlineData("Page block order: 2\nPages per block:  4\nhello\n", 3, "not a pagetypeinfo line")]
    public void PageTypeInfo_malformed_names_the_line(string text, int line, string problem)
    {
        var e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParsePageTypeInfo(text));
        Assert.Equal("pagetypeinfo", e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(problem, e.Problem);
        Assert.StartsWith($"pagetypeinfo:{line}: ", e.Message);
    }

    [Fact]
    public void BuddyInfo_reads_the_2010_rows_and_refuses_a_ragged_row()
    {
        var rows = FreeListFiles.ParseBuddyInfo(Section(Linuxmm2010, "buddyinfo"));
        Assert.Equal(4, rows.Count);
        Assert.Equal(483348, rows[3].Free[0]);
        var e = Assert.Throws<ProcSnapshotException>(() => FreeListFiles.ParseBuddyInfo("Node 0, zone DMA 1 2 3\nNode 0, zone Normal 1 2\n"));
        Assert.Equal(("buddyinfo", 2), (e.File, e.Line));
    }

    [Fact]
    public void ZoneInfo_reads_spans_and_free_counts_of_6_6()
    {
        var z = StateFiles.ParseZoneInfo(Section(Vm66, "zoneinfo"));
        var dma32 = z.Single(x => x.Node == 0 && x.Zone == "DMA32");
        Assert.Equal(495317, dma32.Get("pages free"));
        Assert.Equal(1044480, dma32.Get("spanned"));
        Assert.Equal(520156, dma32.Get("present"));
        Assert.Equal(4096, dma32.Get("start_pfn"));
        Assert.Equal(8, z.Count);   // DMA, DMA32, Normal, Movable on each node, populated or not
        var e = Assert.Throws<ProcSnapshotException>(() => StateFiles.ParseZoneInfo("Node 0, zone Normal\n  pages free 12\n        spanned  lots\n"));
        Assert.Equal(("zoneinfo", 3), (e.File, e.Line));
    }

    [Fact]
    public void MemInfo_SlabInfo_VmallocInfo_Cmdline_Version_read_and_refuse()
    {
        var mi = StateFiles.ParseMemInfo(Section(Linuxmm2010, "meminfo"));
        Assert.Equal(33084008, mi["MemTotal"].Value);
        Assert.Equal(("meminfo", 2), Where(() => StateFiles.ParseMemInfo("MemTotal: 1 kB\nMemFree 2 kB\n")));
        var si = StateFiles.ParseSlabInfo(Section(Linuxmm2010, "slabinfo"));
        Assert.Contains(si, r => r.Name == "kmalloc-1024" && r.ObjPerSlab == 32 && r.PagesPerSlab == 8);
        Assert.Equal(("slabinfo", 2), Where(() => StateFiles.ParseSlabInfo("slabinfo - version: 2.1\nfoo 10 8 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n")));
        var vi = StateFiles.ParseVmallocInfo("0xffffc90000000000-0xffffc90000005000   20480 hpet_enable+0x3d/0xde phys=fed00000 ioremap\n");
        Assert.Equal(("hpet_enable+0x3d/0xde", 20480L), (vi[0].Caller, vi[0].Size));
        Assert.Equal(("vmallocinfo", 1), Where(() => StateFiles.ParseVmallocInfo("0x1000-0x3000 4096 x\n")));
        Assert.Equal("console=ttyS0 cma=64M", StateFiles.ParseCmdline("console=ttyS0 cma=64M\n"));
        Assert.Equal(("cmdline", 2), Where(() => StateFiles.ParseCmdline("a\nb\n")));
        var v = StateFiles.ParseVersion("Linux version 6.6.0-rc1-next-20230913 (mike@x86_64-host) (gcc 12) #1 SMP\n");
        Assert.Equal((6, 6, Arch.X86_64), (v.Version.Major, v.Version.Minor, v.Arch!.Value));
        Assert.Equal(("version", 1), Where(() => StateFiles.ParseVersion("Darwin 23\n")));
    }

    private static (string, int) Where(Action a)
    {
        var e = Assert.Throws<ProcSnapshotException>(a);
        return (e.File, e.Line);
    }

    [Fact]
    public void Derive_arm32_4_14_from_pagetypeinfo_and_rebuild_it_exactly()
    {
        string pti = TestSupport.Fixture(Arm32);
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti });
        var p = s.DeriveProfile();
        Assert.Equal(Arch.Arm, p.Arch);
        Assert.Equal(13, p.MaxOrder);
        Assert.Equal(12, p.EffectivePageblockOrder);
        Assert.Contains(s.Derived, d => d.Contains("HighMem zone") && d.Contains("architecture arm"));
        Assert.Contains(s.Derived, d => d.StartsWith("CMA: 912 MiB", StringComparison.Ordinal));
        var (m, import) = s.Boot();
        using (m)
        {
            Assert.Equal(Tables(pti), Tables(m.ProcFs.Read("/proc/pagetypeinfo")));
            Assert.True(import.RecordedPages > 0);
            // meminfo's free lines follow from the free lists (MemTotal is the derived machine's, not in the files).
            var mi = StateFiles.ParseMemInfo(m.ProcFs.Read("/proc/meminfo"));
            var p2 = FreeListFiles.ParsePageTypeInfo(pti);
            long FreeKb(Func<int, bool> type) => p2.Zones.Sum(z => Enumerable.Range(0, 6).Where(type).Sum(mt => Enumerable.Range(0, 13).Sum(o => z.Free[mt, o] << o))) * 4;
            Assert.Equal(FreeKb(mt => mt != (int)MigrateType.Isolate), mi["MemFree"].Value);
            Assert.Equal(FreeKb(mt => mt == (int)MigrateType.Cma), mi["CmaFree"].Value);
            Assert.Equal(57L * 16 * 1024, mi["CmaTotal"].Value);
            import.Release();
            Assert.NotEqual(Tables(pti), Tables(m.ProcFs.Read("/proc/pagetypeinfo")));
        }
    }

    [Fact]
    public void Derive_x86_64_6_6_from_zoneinfo_and_pagetypeinfo_and_rebuild_it_exactly()
    {
        string pti = Section(Vm66, "pagetypeinfo");
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti, ["zoneinfo"] = Section(Vm66, "zoneinfo") });
        // The zoneinfo counters were read moments apart from pagetypeinfo: warnings, line by line, never fatal.
        Assert.False(s.HasFatalFindings);
        Assert.All(s.Findings, f => Assert.Equal("zoneinfo", f.File));
        var p = s.DeriveProfile();
        Assert.Equal(2, p.NodeCount);
        Assert.Contains(s.Derived, d => d.Contains("start_pfn from zoneinfo"));
        var (m, _) = s.Boot();
        using (m) Assert.Equal(Tables(pti), Tables(m.ProcFs.Read("/proc/pagetypeinfo")));
    }

    [Fact]
    public void The_6_6_snapshot_on_the_embedded_profile_of_that_VM()
    {
        string pti = Section(Vm66, "pagetypeinfo");
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti });
        var (m, import) = s.Boot(MachineProfile.Embedded("x86_64-numa2"));
        using (m)
        {
            Assert.Equal(Tables(pti), Tables(m.ProcFs.Read("/proc/pagetypeinfo")));
            Assert.Equal(["recorded:node0:DMA", "recorded:node0:DMA32", "recorded:node0:Normal", "recorded:node1:Normal"],
                import.Recorded.Select(r => r.Name).Order());
        }
    }

    [Fact]
    public void Linuxmm2010_buddyinfo_on_a_two_node_machine_and_its_warnings()
    {
        string bi = Section(Linuxmm2010, "buddyinfo");
        var s = ProcSnapshot.Parse(new Dictionary<string, string>
        {
            ["buddyinfo"] = bi, ["meminfo"] = Section(Linuxmm2010, "meminfo"), ["slabinfo"] = Section(Linuxmm2010, "slabinfo"),
        });
        Assert.False(s.HasFatalFindings);
        // MemFree against the free lists is a warning naming meminfo's line.
        Assert.Contains(s.Findings, f => !f.Fatal && f.File == "meminfo" && f.Line == 2 && f.Message.StartsWith("MemFree 2291464 kB", StringComparison.Ordinal));
        Assert.Throws<ProcSnapshotException>(() => s.DeriveProfile()); // buddyinfo alone does not size the zones
        var (m, _) = s.Boot(MachineProfile.Embedded("x86_64-numa2"));
        using (m) Assert.Equal(Buddy(bi), Buddy(m.ProcFs.Read("/proc/buddyinfo")));
    }

    [Fact]
    public void Buddyinfo_against_pagetypeinfo_is_fatal_line_by_line_and_nothing_is_built()
    {
        string pti = TestSupport.Fixture(Arm32);
        string bi = "Node 0, zone      DMA     71    236    140     32     18      7      2      1      1      3      2      4      9\n" +
                    "Node 0, zone  HighMem    316    962    794    212     54     22      6      0      0      0      0      2     13\n";
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti, ["buddyinfo"] = bi });
        var fatal = s.Findings.Where(f => f.Fatal).ToList();
        Assert.Single(fatal);   // DMA order 2: 140 against 137 + 1 + 1
        Assert.Equal("buddyinfo:1: error: node 0 zone DMA order 2: 140 free blocks; pagetypeinfo lines 9-14 add up to 139", fatal[0].ToString());
        using var m = Machine.Boot(s.DeriveProfile());
        string before = TestSupport.State(m);
        var e = Assert.Throws<ProcSnapshotException>(() => s.Apply(m));
        Assert.Contains("contradict", e.Message);
        Assert.Equal(before, TestSupport.State(m));
    }

    [Fact]
    public void A_machine_that_cannot_hold_the_state_is_left_as_it_was()
    {
        string pti = Section(Vm66, "pagetypeinfo");
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti });
        using var m = Machine.Boot("x86_64");   // one node: the node-1 zone is not there
        string before = TestSupport.State(m);
        var e = Assert.Throws<ProcSnapshotException>(() => s.Apply(m));
        Assert.Contains("node 1 has no populated zone Normal", e.Message);
        Assert.Equal(before, TestSupport.State(m));
    }
}
