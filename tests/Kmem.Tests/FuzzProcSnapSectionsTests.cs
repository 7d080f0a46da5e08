// The procsnap fuzzing target's input format (fuzz/Kmem.Fuzz/FuzzTargets.cs): several /proc files in one input, split
// the way `tail` prints them, and the targets added for the device tree, the /proc snapshot and the grep form.
using Kmem.Fuzzing;

namespace Kmem.Tests;

public class FuzzProcSnapSectionsTests
{
    [Fact]
    public void Tail_headers_split_the_input_into_known_files()
    {
        string text = "ignored before the first header\n==> /proc/buddyinfo <==\nNode 0, zone Normal 1 2\n\n==> cmdline <==\nconsole=ttyS0\n"
                      + "==> /tmp/board/notes <==\nnot a snapshot file\n==> version\nstays in cmdline\n";
        var files = FuzzTargets.Sections(text);
        Assert.Equal(["buddyinfo", "cmdline"], files.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("Node 0, zone Normal 1 2\n", files["buddyinfo"]);
        Assert.Equal("console=ttyS0\n", files["cmdline"]);
    }

    [Fact]
    public void A_file_given_twice_keeps_its_last_section_and_CRLF_headers_count()
    {
        var files = FuzzTargets.Sections("==> meminfo <==\r\nMemTotal: 1 kB\n==> meminfo <==\nMemTotal: 2 kB\n==> version <==");
        Assert.Equal("MemTotal: 2 kB\n", files["meminfo"]);
        Assert.Equal("", files["version"]);
        Assert.Empty(FuzzTargets.Sections("no header at all\n==>  <==\n"));
    }

    [Fact]
    public void The_new_targets_refuse_with_their_documented_exceptions()
    {
        Assert.False(FuzzTargets.Run("fdt", new byte[] { 0xd0, 0x0d, 0xfe, 0xed }));
        Assert.False(FuzzTargets.Run("fdt", "not a blob"));
        Assert.False(FuzzTargets.Run("procsnap", "==> cmdline <==\nconsole=ttyS0\n"));
        Assert.False(FuzzTargets.Run("procsnap", "==> buddyinfo <==\nNode 0, zone Normal 1 x\n"));
        // the grep form needs the rv1106's RK-DMA-HEAP area: outside it, the replay refuses it
        Assert.False(FuzzTargets.Run("rkdma", "Alloc by (x ) [0x00001000-0x00001fff] 0x00001000 (4 KiB)\n"));
        Assert.True(FuzzTargets.Run("rkdma", "Alloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\n"));
    }

    [Fact]
    public void A_small_snapshot_is_booted_and_a_large_one_only_derived()
    {
        // The 64 MiB board's own export boots (the whole chain runs); the published 2 GiB board is parsed and derived only.
        string dir = Path.Combine(AppContext.BaseDirectory, "Fuzz", "corpus", "procsnap");
        var small = ProcSnapshot.Parse(FuzzTargets.Sections(File.ReadAllText(Path.Combine(dir, "mini-a-boot.txt"))));
        Assert.True(small.DeriveProfile().TotalRam <= FuzzTargets.MaxBootRam);
        Assert.True(FuzzTargets.Run("procsnap", File.ReadAllBytes(Path.Combine(dir, "mini-a-boot.txt"))));
        var large = ProcSnapshot.Parse(FuzzTargets.Sections(File.ReadAllText(Path.Combine(dir, "real-arm32-4.14-2G-cma-pagetypeinfo.txt"))));
        Assert.True(large.DeriveProfile().TotalRam > FuzzTargets.MaxBootRam);
        Assert.True(FuzzTargets.Run("procsnap", File.ReadAllBytes(Path.Combine(dir, "real-arm32-4.14-2G-cma-pagetypeinfo.txt"))));
    }
}
