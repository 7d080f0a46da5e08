// cma= on the kernel command line: dma_contiguous_reserve()'s default area "reserved" (CONFIG_DMA_CMA), placed before
// the RK heap's area, fixed at a start or top-down in a range, the last word winning; refused beside a stated default
// area and on a CONFIG_CMA_INACTIVE kernel, an unknown parameter without CONFIG_DMA_CMA.
namespace Kmem.Tests;

public class CmaCmdlineTests
{
    private static Machine Rv1106Upstream(string cmdline)
    {
        var p = MachineProfile.Embedded("rv1106");
        return Machine.Boot(p with { ConfigOptions = new Dictionary<string, object>(p.ConfigOptions) { ["CMA_INACTIVE"] = false } }, cmdline);
    }

    private static string[] CmaLines(Machine m) => m.Dmesg().Split('\n').Where(l => l.Contains("] cma: ")).Select(l => l[(l.IndexOf("] cma: ") + 2)..]).ToArray();

    [Fact]
    public void Cma_on_the_command_line_makes_the_default_area_before_the_rk_heap_area()
    {
        // dma_contiguous_reserve() runs before rk_dma_heap_cma_setup() in arm_memblock_init(); arm without ZONE_DMA has no limit.
        using var m = Rv1106Upstream("cma=16M");
        Assert.Equal(["cma: Reserved 16 MiB at 0x0f000000", "cma: Reserved 32 MiB at 0x02800000"], CmaLines(m));
        Assert.Equal(0x0f000000UL, m.Cma["reserved"].Base);
        Assert.Contains("reserved", m.DmaHeaps.Keys);                 // the CMA heap serves the default area
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("cma=16M@0x4000000", 0x04000000UL)]                   // a start alone: fixed there
    [InlineData("cma=8M@64M-128M", 0x07800000UL)]                     // a range: top-down inside it
    [InlineData("cma=1M cma=8M@64M-128M", 0x07800000UL)]              // the last word wins
    public void A_start_and_an_end_place_the_default_area(string cmdline, ulong @base)
    {
        using var m = Rv1106Upstream(cmdline);
        Assert.Equal(@base, m.Cma["reserved"].Base);
    }

    [Fact]
    public void Cma_is_refused_where_it_would_clash_and_unknown_without_dma_cma()
    {
        // rv1106's vendor kernel (CMA_INACTIVE): dma_contiguous_reserve() would pass alignment 0, not modelled.
        var e = Assert.Throws<ProfileException>(() => Machine.Boot("rv1106", "cma=16M"));
        Assert.Contains("CONFIG_CMA_INACTIVE", e.Message);
        // rk3588 states its default area in "cma": a second one from cma= is refused.
        e = Assert.Throws<ProfileException>(() => Machine.Boot("rk3588", "cma=64M"));
        Assert.Equal("cma[0]", e.Field);
        e = Assert.Throws<ProfileException>(() => Rv1106Upstream("cma"));
        Assert.Contains("cma: Config string not provided", e.Message);
        e = Assert.Throws<ProfileException>(() => Rv1106Upstream("cma=16M@0x4000000-"));
        Assert.Contains("the end after '-' is not an address", e.Message);
        // x86_64 is built without CONFIG_DMA_CMA: the word goes to init.
        using var x86 = Machine.Boot("x86_64", "cma=16M");
        Assert.DoesNotContain("reserved", x86.Cma.Keys);
        Assert.Contains("Unknown command line parameters: cma=16M", x86.Dmesg());
    }
}
