// What-if on a /proc snapshot from the command line: `--after DIR` boots the machine the copied files describe (or the
// --profile machine) with their state rebuilt, for cat, slabtop, map and run alike; a malformed or self-contradicting
// snapshot is refused with its file and line before anything runs.
namespace Kmem.Tests;

public sealed class WhatIfSnapshotCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"kmem-whatif-snap-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public WhatIfSnapshotCliTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>The two-node x86_64 6.6 VM's zoneinfo and pagetypeinfo, split into the files a user copies.</summary>
    private string Snapshot66()
    {
        string[] lines = TestSupport.Fixture("zoneinfo_pagetypeinfo_x86_64_6.6-rc1_16G_numa2_lkml.txt").Split('\n');
        int pti = Array.IndexOf(lines, "# cat /proc/pagetypeinfo");
        string dir = Path.Combine(_dir, "snap66");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "zoneinfo"), string.Join('\n', lines[3..pti]) + "\n");
        File.WriteAllText(Path.Combine(dir, "pagetypeinfo"), string.Join('\n', lines[(pti + 1)..]).TrimEnd('\n') + "\n");
        return dir;
    }

    [Fact]
    public void Cat_after_a_snapshot_prints_its_free_lists_on_the_machine_the_files_describe()
    {
        string dir = Snapshot66();
        var (code, o, e) = TestSupport.Cli("cat", "/proc/buddyinfo", "--after", dir);
        Assert.True(code == 0, e);
        Assert.Equal(
            "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n" +
            "Node 0, zone    DMA32      1      0      1      2      2      3      3      3      4      4    480 \n" +
            "Node 0, zone   Normal    780    322    160     71     29     19     15     10      8      4   1160 \n" +
            "Node 1, zone   Normal   1747    519    188     97     49     22     19     14      8      8   1865 \n", o);
        Assert.Contains($"kmem: rebuilt the /proc snapshot {dir} (pagetypeinfo, zoneinfo)", e);
        Assert.Contains("zoneinfo:146: warning: node 0 zone Normal: pages free 1360836; pagetypeinfo counts 1197880", e);
        // The snapshot's pagetypeinfo comes back as it was read.
        var (_, pti, _) = TestSupport.Cli("cat", "/proc/pagetypeinfo", "--after", dir);
        Assert.Contains("Node    1, zone   Normal, type      Movable   1287    502    171     85     34     14     13      8      2      5   1861 \n", pti);
        Assert.Contains("Node 1, zone   Normal          101         3977           10            0            0            8 \n", pti);
    }

    [Fact]
    public void Run_after_a_snapshot_says_which_step_fails_and_the_fragmentation_before_and_after()
    {
        string dir = Snapshot66();
        var (code, o, e) = TestSupport.Cli("run", "numa-spill", "--after", dir);
        Assert.True(code == 0, e);
        Assert.Contains("step steps[2] alloc_pages (node0-local): ok, 16384 allocated", o);
        Assert.Contains("fragmentation (extfrag unusable_index, per order) before:", o);
        // Node 1's order-9 step fails more often on the imported state than on a fresh machine of the same kind: the
        // snapshot's memory is mostly held and its free memory fragmented.
        var (_, fresh, _) = TestSupport.Cli("run", "numa-spill", "--profile", "x86_64-numa2");
        Assert.True(Failed(o) > Failed(fresh), $"{Failed(o)} failures after the snapshot, {Failed(fresh)} fresh");
    }

    private static int Failed(string output)
    {
        var match = System.Text.RegularExpressions.Regex.Match(output, @"step steps\[6\] alloc_pages \(node1-thisnode\): (?:FAILED (\d+) of 4096|ok)");
        Assert.True(match.Success, output);
        return match.Groups[1].Success ? int.Parse(match.Groups[1].Value) : 0;
    }

    [Fact]
    public void Slabtop_and_map_take_a_snapshot_and_a_profile_given_is_used()
    {
        string dir = Snapshot66(), svg = Path.Combine(_dir, "map.svg");
        var (code, _, e) = TestSupport.Cli("slabtop", "--after", dir, "--lines", "3");
        Assert.True(code == 0, e);
        (code, _, e) = TestSupport.Cli("map", "--after", dir, "--out", svg);
        Assert.True(code == 0, e);
        Assert.True(new FileInfo(svg).Length > 1000);
        // With --profile the snapshot must fit that machine: rv1106 has neither its zones nor its orders.
        (code, _, e) = TestSupport.Cli("cat", "/proc/buddyinfo", "--after", dir, "--profile", "rv1106");
        Assert.Equal(2, code);
        Assert.Contains("pagetypeinfo", e);
    }

    [Fact]
    public void A_malformed_or_contradictory_snapshot_is_named_by_file_and_line_and_nothing_runs()
    {
        string bad = Path.Combine(_dir, "bad");
        Directory.CreateDirectory(bad);
        File.WriteAllText(Path.Combine(bad, "buddyinfo"), "Node 0, zone DMA 1 2 3\nNode 0 zone Normal 1 2 3\n");
        var (code, o, e) = TestSupport.Cli("run", "numa-spill", "--after", bad, "--profile", "x86_64");
        Assert.Equal(2, code);
        Assert.Contains("buddyinfo:2:", e);
        Assert.Equal("", o);
        // buddyinfo and pagetypeinfo that count different free blocks: refused line by line.
        string dir = Snapshot66();
        File.WriteAllText(Path.Combine(dir, "buddyinfo"),
            "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n" +
            "Node 0, zone    DMA32      1      0      1      2      2      3      3      3      4      4    481 \n" +
            "Node 0, zone   Normal    780    322    160     71     29     19     15     10      8      4   1160 \n" +
            "Node 1, zone   Normal   1747    519    188     97     49     22     19     14      8      8   1865 \n");
        (code, o, e) = TestSupport.Cli("cat", "/proc/buddyinfo", "--after", dir);
        Assert.Equal(2, code);
        Assert.Contains("buddyinfo:2: error:", e);
        Assert.Equal("", o);
    }
}
