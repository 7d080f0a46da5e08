// The "pages used for memmap" each zone's boot line names and the "Total pages" the zonelists count:
// calc_memmap_size() sizes a zone's memmap by its spanned pages, or, with SPARSEMEM (arm64's and x86_64's only memory
// model), by its present pages when the holes exceed a sixteenth of them; a FLATMEM arch (32-bit arm here) keeps
// the span.
using Xunit;

namespace Kmem.Tests;

public class MemmapSizeTests
{
    /// <summary>948 MiB at 0 and 3008 MiB at 1 GiB: a 1 GiB ZONE_DMA with a 76 MiB hole (19456 pages, more than a sixteenth of
    /// its 242688 present pages), as on a 4 GB Raspberry Pi 4.</summary>
    private static Machine Boot(string arch, string zones) => Machine.Boot(MachineProfile.Parse($$"""
        { "name": "holes", "arch": "{{arch}}", "cpus": 4, "version": "6.1",
          "dram": [ { "base": "0", "size": "0x3b400000" }, { "base": "0x40000000", "size": "0x{{(arch == "arm64" ? "bc000000" : "40000000")}}" } ],
          "zones": {{zones}} }
        """));

    [Fact]
    public void Arm64_AZoneWithLargeHoles_CountsTheMemmapOfItsPresentPages()
    {
        using var m = Boot("arm64", """{ "dma_limit": "0x40000000" }""");
        string log = TestSupport.LogText(m);
        Assert.Contains("  DMA zone: 3792 pages used for memmap\n", log);        // 242688 present × 64 bytes, not 262144 spanned
        Assert.Contains("  DMA32 zone: 12032 pages used for memmap\n", log);     // no hole: its span
        Assert.Contains("Total pages: 996912\n", log);                            // 1012736 − 3792 − 12032, the Pi 4's log
    }

    [Fact]
    public void Arm64_SmallHoles_AndFlatmemArm_KeepTheSpan()
    {
        // The same banks in one 4 GiB ZONE_DMA: 1032192 spanned, 1012736 present, the hole under a sixteenth.
        using (var one = Boot("arm64", "{}"))
            Assert.Contains("  DMA zone: 16128 pages used for memmap\n", TestSupport.LogText(one));
        // 32-bit arm (FLATMEM): 64 MiB, a 64 MiB hole, 64 MiB in one lowmem zone keep the span's memmap, 49152 pages of
        // 32-byte struct pages (384), where SPARSEMEM would take the 32768 present (256).
        using var arm = Machine.Boot(MachineProfile.Parse("""
            { "name": "holes32", "arch": "arm", "cpus": 1, "version": "6.1",
              "dram": [ { "base": "0", "size": "64M" }, { "base": "0x8000000", "size": "64M" } ] }
            """));
        string log = TestSupport.LogText(arm);
        Assert.Contains("  Normal zone: 384 pages used for memmap\n", log);
    }
}
