// GFP flags: the kernel's bit values, composites and the %pGg / show_gfp_flags formatting.
namespace Kmem.Tests;

public class GfpTests
{
    [Theory]
    [InlineData(Gfp.Kernel, 0xcc0u)]
    [InlineData(Gfp.Atomic, 0xa20u)]
    [InlineData(Gfp.NoWait, 0x800u)]
    [InlineData(Gfp.NoIo, 0xc00u)]
    [InlineData(Gfp.NoFs, 0xc40u)]
    [InlineData(Gfp.User, 0x100cc0u)]
    [InlineData(Gfp.HighUser, 0x100cc2u)]
    [InlineData(Gfp.HighUserMovable, 0x100ccau)]
    [InlineData(Gfp.KernelAccount, 0x400cc0u)]
    [InlineData(Gfp.TransHugeLight, 0x1c20cau)]
    [InlineData(Gfp.TransHuge, 0x1c24cau)]
    [InlineData(Gfp.Dma, 0x1u)]
    [InlineData(Gfp.Dma32, 0x4u)]
    public void Composites_have_the_kernel_values(Gfp gfp, uint value) => Assert.Equal(value, (uint)gfp);

    [Theory]
    [InlineData(0x40cc0u, "GFP_KERNEL|__GFP_COMP")]
    [InlineData(0xcc0u, "GFP_KERNEL")]
    [InlineData(0xdc0u, "GFP_KERNEL|__GFP_ZERO")]
    [InlineData(0xa20u, "GFP_ATOMIC")]
    [InlineData(0x100ccau, "GFP_HIGHUSER_MOVABLE")]
    [InlineData(0x2800u, "GFP_NOWAIT|__GFP_NOWARN")]
    [InlineData(0x1521c2u, "__GFP_HIGHMEM|__GFP_IO|__GFP_FS|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_ZERO|__GFP_HARDWALL")]
    [InlineData(0x400cc0u, "GFP_KERNEL_ACCOUNT")]
    [InlineData(0x1u, "GFP_DMA")]
    [InlineData(0x1000000u, "0x1000000")]
    public void Format_matches_the_kernel(uint value, string expected) => Assert.Equal(expected, GfpFlags.Format((Gfp)value));

    [Fact]
    public void Empty_mask_prints_none_in_traces() => Assert.Equal("none", GfpFlags.FormatTrace(Gfp.None));

    [Theory]
    [InlineData("GFP_KERNEL|__GFP_ZERO", 0xdc0u)]
    [InlineData("0xcc0", 0xcc0u)]
    [InlineData("Kernel|Zero", 0xdc0u)]
    [InlineData("GFP_HIGHUSER_MOVABLE", 0x100ccau)]
    public void TryParse_accepts_kernel_and_dotnet_names(string text, uint value)
    {
        Assert.True(GfpFlags.TryParse(text, out var gfp));
        Assert.Equal(value, (uint)gfp);
    }

    [Theory]
    [InlineData("")]
    [InlineData("GFP_BOGUS")]
    [InlineData("0xZZ")]
    [InlineData("7")]
    public void TryParse_rejects_garbage(string text) => Assert.False(GfpFlags.TryParse(text, out _));

    [Fact]
    public void Every_format_parses_back()
    {
        var rnd = new Random(5);
        for (int i = 0; i < 2000; i++)
        {
            var gfp = (Gfp)((uint)rnd.Next() & 0x7FFFFF);
            Assert.True(GfpFlags.TryParse(GfpFlags.FormatTrace(gfp), out var back));
            Assert.Equal(gfp, back);
        }
    }
}
