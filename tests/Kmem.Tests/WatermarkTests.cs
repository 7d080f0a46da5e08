// The kernel's sizing formulas, checked against the numbers the kernel itself publishes and
// against what each booted profile computes.
using Kmem.Paging;

namespace Kmem.Tests;

public class WatermarkTests
{
    // The table in init_per_zone_wmark_min()'s comment (mm/page_alloc.c).
    [Theory]
    [InlineData(16L << 10, 512)]
    [InlineData(64L << 10, 1024)]
    [InlineData(256L << 10, 2048)]
    [InlineData(1L << 20, 4096)]
    [InlineData(4L << 20, 8192)]
    [InlineData(16L << 20, 16384)]
    [InlineData(100, 128)]
    [InlineData(1L << 40, 262144)]
    public void MinFreeKbytes_follows_the_published_table(long lowmemKb, long expected) =>
        Assert.Equal(expected, Watermarks.MinFreeKbytes(lowmemKb));

    [Fact]
    public void Watermarks_match_an_observed_zone()
    {
        // Observed: Normal managed 655360, min 7732 -> low 9665, high 11598 (min_free_kbytes 67584).
        var marks = Watermarks.ZoneWatermarks(67584, [(776640, false), (655360, false)]);
        Assert.Equal((7732L, 9665L, 11598L), marks[1]);
    }

    [Fact]
    public void Highmem_zones_get_the_small_clamped_minimum()
    {
        var marks = Watermarks.ZoneWatermarks(4096, [(200000, false), (50000, true), (1000, true)]);
        Assert.Equal(48, marks[1].Min);   // 50000/1024
        Assert.Equal(32, marks[2].Min);   // clamped up to SWAP_CLUSTER_MAX
    }

    [Theory]
    [InlineData(262144, 63)]     // zones of 1 GiB and more
    [InlineData(10_000_000, 63)]
    [InlineData(64012, 15)]      // the rv1106 Normal zone
    [InlineData(3998, 0)]        // the x86_64 DMA zone
    [InlineData(30000, 7)]
    public void Pcp_batch_follows_zone_batchsize(long managed, int batch) => Assert.Equal(batch, Watermarks.PcpBatch(managed));

    [Fact]
    public void Lowmem_reserve_follows_the_ratios()
    {
        // DMA 3977, DMA32 782000, Normal 262144 with ratios 256, 256, 32.
        var r = Watermarks.LowmemReserve([(3977, 256), (782000, 256), (262144, 32)]);
        Assert.Equal(new long[] { 0, 782000 / 256, (782000 + 262144) / 256 }, r[0]);
        Assert.Equal(new long[] { 0, 0, 262144 / 256 }, r[1]);
        Assert.Equal(new long[] { 0, 0, 0 }, r[2]);
    }

    [Fact]
    public void Lowmem_reserve_skips_empty_lower_zones()
    {
        var r = Watermarks.LowmemReserve([(0, 256), (1000, 256), (5000, 32)]);
        Assert.Equal(0, r[0][2]);
        Assert.Equal(5000 / 256, r[1][2]);
    }

    [Theory]
    [InlineData("rv1106")]
    [InlineData("x86_64")]
    [InlineData("rk3588")]
    public void Booted_zones_use_the_formulas(string profile)
    {
        using var m = Machine.Boot(profile);
        var zones = m.Zones;
        long lowmem = zones.Where(z => z.Type is not (ZoneType.HighMem or ZoneType.Movable)).Sum(z => AtWatermarkSetup(m, z));
        Assert.Equal(Watermarks.MinFreeKbytes(lowmem * 4), m.Sysctl.Vm.MinFreeKbytes);
        var marks = Watermarks.ZoneWatermarks(m.Sysctl.Vm.MinFreeKbytes, zones.Select(z => (AtWatermarkSetup(m, z), z.Type == ZoneType.HighMem)).ToArray());
        for (int i = 0; i < zones.Count; i++)
        {
            Assert.Equal(marks[i].Min, zones[i].WatermarkMin);
            Assert.Equal(marks[i].Low, zones[i].WatermarkLow);
            Assert.Equal(marks[i].High, zones[i].WatermarkHigh);
            if (zones[i].Populated)
            {
                Assert.Equal(Math.Max(1, Watermarks.PcpBatch(AtWatermarkSetup(m, zones[i]))), zones[i].PcpBatch);
                // pageset_set_batch(): high = 6 × zone_batchsize() itself, 0 for a zone too small for a batch (issue 21).
                Assert.Equal(6 * Watermarks.PcpBatch(AtWatermarkSetup(m, zones[i])), zones[i].PcpHigh);
            }
        }
    }

    /// <summary>
    /// A zone's managed pages when the watermarks were set (init_per_zone_wmark_min(), an initcall): before free_initmem()
    /// gave the kernel's init sections back at the end of boot.
    /// </summary>
    private static long AtWatermarkSetup(Machine m, ZoneInfo z)
    {
        var (start, end) = m.Layout.Early.Init;
        ulong s = Math.Max(start >> 12, z.StartPfn), e = Math.Min(end >> 12, z.StartPfn + (ulong)z.Spanned);
        return z.Managed - (e > s ? (long)(e - s) : 0);
    }

    [Fact]
    public void Rv1106_numbers()
    {
        using var m = Machine.Boot("rv1106");
        var normal = m.Zones.Single(z => z.Name == "Normal");
        Assert.Equal(65536, normal.Present);
        // Everything memblock kept ("reserved" of the Memory: line) is unmanaged but for the init sections freed at the end.
        long reserved = long.Parse(System.Text.RegularExpressions.Regex.Match(m.Dmesg(), @" (\d+)K reserved").Groups[1].Value);
        long init = (long)(m.Profile.Kernel!.Init >> 12);
        // CONFIG_CMA_INACTIVE keeps the 32 MiB rk-dma-heap-cma area (cma-reserved) out of the zone too.
        long cma = long.Parse(System.Text.RegularExpressions.Regex.Match(m.Dmesg(), @" (\d+)K cma-reserved").Groups[1].Value);
        Assert.Equal(65536 - reserved / 4 - cma / 4 + init, normal.Managed);
        long managedAtSetup = AtWatermarkSetup(m, normal);
        Assert.Equal(normal.Managed - init, managedAtSetup);
        Assert.Equal(Watermarks.IntSqrt(managedAtSetup * 4 * 16), m.Sysctl.Vm.MinFreeKbytes);
        Assert.Equal(m.Sysctl.Vm.MinFreeKbytes / 4, normal.WatermarkMin);
        Assert.Equal(15, normal.PcpBatch);
        Assert.Equal(90, normal.PcpHigh);
    }

    [Fact]
    public void X86_64_zone_sizes_follow_the_memory_map()
    {
        using var m = Machine.Boot("x86_64");
        var z = m.Zones.ToDictionary(z => z.Name);
        Assert.Equal(new[] { "DMA", "DMA32", "Normal", "Movable" }, m.Zones.Select(x => x.Name));
        Assert.Equal(1UL, z["DMA"].StartPfn);
        Assert.Equal(4095, z["DMA"].Spanned);
        Assert.Equal(0x9e + 0xf00, z["DMA"].Present); // [0x1000, 0x9f000) and [1 MiB, 16 MiB)
        Assert.Equal(4096UL, z["DMA32"].StartPfn);
        Assert.Equal(0x100000 - 4096, z["DMA32"].Spanned);
        Assert.Equal(0xbffe0 - 4096, z["DMA32"].Present);
        Assert.Equal(0x100000UL, z["Normal"].StartPfn);
        Assert.Equal(0x40000, z["Normal"].Present);
        Assert.False(z["Movable"].Populated);
        // lowmem_reserve: DMA protects itself from DMA32 and Normal requests (set up before free_initmem()).
        long dma32 = AtWatermarkSetup(m, z["DMA32"]), normal = AtWatermarkSetup(m, z["Normal"]);
        Assert.Equal(dma32 / 256, z["DMA"].LowmemReserve[1]);
        Assert.Equal((dma32 + normal) / 256, z["DMA"].LowmemReserve[2]);
        Assert.Equal(normal / 256, z["DMA32"].LowmemReserve[2]);
    }

    [Fact]
    public void Setting_min_free_kbytes_recomputes_watermarks()
    {
        using var m = Machine.Boot("rv1106");
        m.Sysctl.Vm.MinFreeKbytes = 8192;
        var normal = m.Zones.Single(z => z.Name == "Normal");
        Assert.Equal(2048, normal.WatermarkMin);
        Assert.Equal("8192\n", m.ProcFs.Read("/proc/sys/vm/min_free_kbytes"));
        Assert.Throws<SysctlException>(() => m.Sysctl.Vm.MinFreeKbytes = -1);
    }
}
