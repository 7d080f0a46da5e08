// Zone choice and fallback: HighMem on a 1 GiB 32-bit board, and the x86_64 zonelist falling back
// from Normal to DMA32 while lowmem_reserve keeps the DMA zone for DMA callers.
namespace Kmem.Tests;

public class ZoneFallbackTests
{
    private const string Arm1G = """
    { "name": "arm1g", "arch": "arm", "cpus": 1, "dram": [ { "base": "0x80000000", "size": "1G" } ] }
    """;

    [Fact]
    public void A_32_bit_board_above_768_MiB_has_highmem()
    {
        using var m = Machine.Boot(MachineProfile.Parse(Arm1G));
        var zones = m.Zones.ToDictionary(z => z.Name);
        Assert.Equal(768L << 8, zones["Normal"].Spanned);
        Assert.Equal(256L << 8, zones["HighMem"].Present);
        Assert.Equal(Math.Clamp(zones["HighMem"].Managed / 1024, 32, 128), zones["HighMem"].WatermarkMin);
        Assert.Contains("  HighMem  [mem 0x00000000b0000000-0x00000000bfffffff]", m.Dmesg());
        Assert.Matches(@"K highmem\)", m.Dmesg());

        var high = m.AllocPage(Gfp.HighUser);
        var low = m.AllocPage(Gfp.Kernel);
        Assert.True(high.Pfn >= 0xb0000, $"GFP_HIGHUSER page {high} should come from HighMem");
        Assert.True(low.Pfn < 0xb0000, $"GFP_KERNEL page {low} must stay in lowmem");
        string meminfo = m.ProcFs.Read("/proc/meminfo");
        Assert.Contains($"HighTotal:      {zones["HighMem"].Managed * 4,8} kB\n", meminfo);
        Assert.Contains($"LowTotal:       {zones["Normal"].Managed * 4,8} kB\n", meminfo);
        m.FreePage(high);
        m.FreePage(low);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Highmem_callers_fall_back_to_lowmem_but_not_the_reverse()
    {
        using var m = Machine.Boot(MachineProfile.Parse(Arm1G));
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var held = new List<Page>();
        while (true)
        {
            var p = m.AllocPages(Gfp.HighUser | Gfp.NoRetry | Gfp.NoWarn, 5);
            if (p.IsNull) break;
            held.Add(p);
        }
        Assert.Contains(held, p => p.Pfn < 0xb0000); // HighMem ran out, Normal served the rest
        Assert.Contains(held, p => p.Pfn >= 0xb0000);
        foreach (var p in held) m.FreePages(p, 5);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void X86_64_falls_back_from_normal_to_dma32_and_protects_dma()
    {
        using var m = Machine.Boot("x86_64");
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var zones = m.Zones.ToDictionary(z => z.Name);
        var held = new List<Page>();
        while (true)
        {
            var p = m.AllocPages(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn, 8);
            if (p.IsNull) break;
            held.Add(p);
        }
        Assert.Contains(held, p => p.Pfn >= 0x100000);
        Assert.Contains(held, p => p.Pfn >= 4096 && p.Pfn < 0x100000);
        // The DMA zone stays above its watermark plus the reserve it keeps against Normal callers.
        m.DrainAllPages();
        Assert.True(zones["DMA"].FreePages > zones["DMA"].LowmemReserve[2], $"DMA free {zones["DMA"].FreePages}");
        var dma = m.AllocPage(Gfp.Kernel | Gfp.Dma);
        Assert.False(dma.IsNull);
        Assert.True(dma.Pfn < 4096);
        m.FreePage(dma);
        foreach (var p in held) m.FreePages(p, 8);
        TestSupport.AssertConsistent(m);
    }
}
