// The kernel's sizing formulas as pure functions: min_free_kbytes, per-zone watermarks, lowmem
// reserves, totalreserve_pages (Linux 5.10 mm/page_alloc.c) and the per-CPU list batch/high of each release.
namespace Kmem.Paging;

/// <summary>Watermark and per-CPU sizing formulas, exactly as Linux 5.10 computes them.</summary>
public static class Watermarks
{
    /// <summary><c>lowmem_reserve_ratio</c> defaults by zone type: DMA 256, DMA32 256, Normal 32, HighMem 0, Movable 0.</summary>
    public static int DefaultLowmemReserveRatio(ZoneType type) => type switch
    {
        ZoneType.Dma => 256,
        ZoneType.Dma32 => 256,
        ZoneType.Normal => 32,
        _ => 0,
    };

    /// <summary><c>watermark_scale_factor</c> default (10 = 0.1 %).</summary>
    public const int WatermarkScaleFactor = 10;

    /// <summary>
    /// <c>init_per_zone_wmark_min()</c>: <c>int_sqrt(lowmem_kbytes * 16)</c> clamped to 128..262144.
    /// </summary>
    public static long MinFreeKbytes(long lowmemKbytes)
    {
        long v = IntSqrt(lowmemKbytes * 16);
        return Math.Clamp(v, 128, 262144);
    }

    /// <summary>The kernel's <c>int_sqrt()</c>: floor of the square root.</summary>
    public static long IntSqrt(long x)
    {
        if (x < 2) return Math.Max(0, x);
        long r = (long)Math.Sqrt(x);
        while (r * r > x) r--;
        while ((r + 1) * (r + 1) <= x) r++;
        return r;
    }

    /// <summary>
    /// <c>__setup_per_zone_wmarks()</c>: for each zone (managed pages, highmem?) the min, low and high marks.
    /// </summary>
    public static (long Min, long Low, long High)[] ZoneWatermarks(long minFreeKbytes, IReadOnlyList<(long Managed, bool HighMem)> zones, int pageShift = 12)
    {
        long pagesMin = minFreeKbytes >> (pageShift - 10);
        long lowmemPages = 0;
        foreach (var z in zones) if (!z.HighMem) lowmemPages += z.Managed;
        var result = new (long, long, long)[zones.Count];
        for (int i = 0; i < zones.Count; i++)
        {
            var (managed, high) = zones[i];
            long tmp = lowmemPages == 0 ? 0 : pagesMin * managed / lowmemPages;
            long min;
            if (high)
            {
                // highmem zones get a small fixed reserve: clamp(managed/1024, SWAP_CLUSTER_MAX, 128)
                min = Math.Clamp(managed / 1024, 32, 128);
            }
            else
            {
                min = tmp;
            }
            long scaled = Math.Max(tmp >> 2, managed * WatermarkScaleFactor / 10000);
            result[i] = (min, min + scaled, min + scaled * 2);
        }
        return result;
    }

    /// <summary>
    /// <c>setup_per_zone_lowmem_reserve()</c>: <c>reserve[i][j]</c> is what zone i keeps back from a request
    /// whose highest usable zone is j (the sum of managed pages of zones i+1..j divided by ratio[i]).
    /// </summary>
    public static long[][] LowmemReserve(IReadOnlyList<(long Managed, int Ratio)> zones)
    {
        int n = zones.Count;
        var reserve = new long[n][];
        for (int i = 0; i < n; i++) reserve[i] = new long[n];
        for (int j = 0; j < n; j++)
        {
            long managed = zones[j].Managed;
            int idx = j;
            while (idx > 0)
            {
                idx--;
                var lower = zones[idx];
                // A ratio of 0 (HighMem, Movable) or an empty zone keeps no reserve, but its pages still count towards the
                // reserves of the zones below it: setup_per_zone_lowmem_reserve() sums every zone in between in 4.19 and again
                // from "mm/page_alloc: refactor setup_per_zone_lowmem_reserve()" (5.11, backported to 5.10.y). The 5.9-era
                // releases between skipped such zones' pages; Kmem does not model that window.
                reserve[idx][j] = lower.Ratio < 1 || lower.Managed == 0 ? 0 : managed / lower.Ratio;
                managed += lower.Managed;
            }
        }
        return reserve;
    }

    /// <summary>
    /// <c>calculate_totalreserve_pages()</c>: per zone, the largest lowmem reserve plus the high watermark,
    /// capped at the zone's managed pages, summed.
    /// </summary>
    public static long TotalReservePages(IReadOnlyList<(long Managed, long High, long[] Reserve)> zones)
    {
        long total = 0;
        foreach (var z in zones)
        {
            long max = 0;
            foreach (var r in z.Reserve) if (r > max) max = r;
            max += z.High;
            if (max > z.Managed) max = z.Managed;
            total += max;
        }
        return total;
    }

    /// <summary>
    /// <c>zone_batchsize()</c>: about a quarter of a MiB worth of pages, at most 256/4, rounded to 2^n - 1.
    /// </summary>
    public static int PcpBatch(long managedPages, int pageSize = 4096)
    {
        long batch = managedPages / 1024;
        long cap = (1024 * 1024) / pageSize;
        if (batch * pageSize > 1024 * 1024) batch = cap;
        batch /= 4;
        if (batch < 1) batch = 1;
        long b = batch + batch / 2;
        return (int)(RoundDownPowerOfTwo(b) - 1);
    }

    /// <summary><c>pageset_set_batch()</c>: high = 6 × batch.</summary>
    public static int PcpHigh(int batch) => 6 * batch;

    /// <summary>
    /// The per-CPU list sizes of a zone as a release sets them, from <c>zone_batchsize()</c> (<paramref name="rawBatch"/>,
    /// which is 0 for a zone under about 6 MiB):
    /// <list type="bullet">
    /// <item>up to 5.13, <c>pageset_set_batch()</c>: high = 6 × rawBatch, batch = max(1, rawBatch) — a tiny zone gets
    /// high 0 and batch 1, so none of its pages stay on the lists;</item>
    /// <item>from 5.14, <c>zone_set_pageset_high_and_batch()</c>: batch = max(1, rawBatch) and <c>zone_highsize()</c>
    /// high = max(low watermark / CPUs, 4 × batch) (all CPUs on the node: Kmem has one node);</item>
    /// <item>from 6.7 that high is high_min, and high_max = max(managed / 8 / CPUs, 4 × batch)
    /// (MIN_PERCPU_PAGELIST_HIGH_FRACTION 8).</item>
    /// </list>
    /// Returns (high, batch, highMax); highMax equals high before 6.7.
    /// </summary>
    internal static (int High, int Batch, int HighMax) PcpSizes(PcpHighFormula formula, int rawBatch, long lowWatermark, long managed, int cpus)
    {
        int batch = Math.Max(1, rawBatch);
        if (formula == PcpHighFormula.SixTimesBatch)
        {
            int h = PcpHigh(rawBatch);
            return (h, batch, h);
        }
        cpus = Math.Max(1, cpus);
        int high = (int)Math.Min(int.MaxValue, Math.Max(lowWatermark / cpus, (long)batch << 2));
        if (formula == PcpHighFormula.LowWatermark) return (high, batch, high);
        int highMax = (int)Math.Min(int.MaxValue, Math.Max(managed / 8 / cpus, (long)batch << 2));
        return (high, batch, highMax);
    }

    private static long RoundDownPowerOfTwo(long v)
    {
        if (v <= 0) return 1;
        long p = 1;
        while (p * 2 <= v) p *= 2;
        return p;
    }
}
