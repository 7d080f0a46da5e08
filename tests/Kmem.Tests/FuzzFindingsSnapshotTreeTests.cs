// Pins, at their root, the fixes for what fuzzing the device-tree derivation and the /proc snapshot readers found
// (fuzz/regressions/fdt, fuzz/regressions/procsnap): each input is refused with the documented exception, naming the
// node or the file and line, instead of escaping as an index, overflow or format error or wrapping silently.
using Kmem.Scenarios.ProcSnapshots;

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
}
