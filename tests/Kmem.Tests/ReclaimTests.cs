// GFP semantics under memory pressure: watermarks and the reserves atomic callers may use,
// NoRetry, NoWarn, the failure report, shrinkers and direct reclaim, NoFail waiting, kswapd.
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public class ReclaimTests
{
    /// <summary>Takes pages with <paramref name="gfp"/> until the allocator says no.</summary>
    private static List<Page> Exhaust(Machine m, Gfp gfp)
    {
        var held = new List<Page>();
        while (true)
        {
            var p = m.AllocPage(gfp | Gfp.NoWarn);
            if (p.IsNull) return held;
            held.Add(p);
        }
    }

    [Fact]
    public void Normal_callers_stop_at_the_watermark_and_atomic_callers_dip_below()
    {
        using var m = TestSupport.Small();
        var zone = m.Zones[0];
        var kernel = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        m.DrainAllPages();
        long freeNonCma = zone.FreePages - zone.FreeCmaPages;
        Assert.True(freeNonCma <= zone.WatermarkMin + 1, $"GFP_KERNEL stopped with {freeNonCma} non-CMA pages free, min {zone.WatermarkMin}");
        Assert.True(freeNonCma >= zone.WatermarkMin - zone.PcpBatch, $"{freeNonCma} free is far below min {zone.WatermarkMin}");

        var atomic = Exhaust(m, Gfp.Atomic);
        Assert.NotEmpty(atomic);
        m.DrainAllPages();
        freeNonCma = zone.FreePages - zone.FreeCmaPages;
        long atomicMin = zone.WatermarkMin - zone.WatermarkMin / 2;
        atomicMin -= atomicMin / 4; // HIGH then HARDER: 3/8 of min
        Assert.True(freeNonCma <= atomicMin + 1 && freeNonCma >= atomicMin - zone.PcpBatch, $"atomic stopped at {freeNonCma}, expected about {atomicMin}");

        var memalloc = Exhaust(m, Gfp.Atomic | Gfp.Memalloc);
        Assert.NotEmpty(memalloc);
        foreach (var p in kernel.Concat(atomic).Concat(memalloc)) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Failure_report_has_the_kernels_shape()
    {
        using var m = TestSupport.Small();
        var held = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        int len = m.Dmesg().Length;
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoRetry, 3).IsNull);
        string report = m.Dmesg()[len..];
        Assert.Matches(@"\] .+: page allocation failure: order:3, mode:0x10cc0\(GFP_KERNEL\|__GFP_NORETRY\), nodemask=\(null\),cpuset=/,mems_allowed=0\n", report);
        Assert.Contains("] Mem-Info:\n", report);
        Assert.Matches(@"\] Normal free:\d+kB min:\d+kB low:\d+kB high:\d+kB reserved_highatomic:0KB ", report);
        Assert.Matches(@"\] lowmem_reserve\[\]: 0 0 0\n", report);
        Assert.Matches(@"\] Normal: (\d+\*\d+kB (\([UMEHCI]+\) )?){11}= \d+kB\n", report);
        Assert.Matches(@"\] 8192 pages RAM\n", report);
        Assert.Contains("pages cma reserved", report);
        foreach (var p in held) m.FreePage(p);
    }

    [Fact]
    public void Failure_reports_are_rate_limited_and_NoWarn_is_silent()
    {
        using var m = TestSupport.Small();
        var held = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn, 4).IsNull);
        Assert.DoesNotContain("page allocation failure", m.Dmesg());
        for (int i = 0; i < 5; i++) Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoRetry, 4).IsNull);
        Assert.Single(Regex.Matches(m.Dmesg(), "page allocation failure"));
        foreach (var p in held) m.FreePage(p);
    }

    [Fact]
    public void A_blocking_allocation_runs_the_shrinkers()
    {
        using var m = TestSupport.Small();
        var hoard = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        var shrinker = new TestSupport.PageHoardShrinker(m, hoard);
        m.RegisterShrinker(shrinker);
        int hoarded = hoard.Count;
        var p = m.AllocPages(Gfp.Kernel, 2);
        Assert.False(p.IsNull);
        Assert.True(shrinker.Scans > 0);
        Assert.True(hoard.Count < hoarded);
        Assert.True(m.UnregisterShrinker(shrinker));
        Assert.False(m.UnregisterShrinker(shrinker));
        m.FreePages(p, 2);
        lock (hoard) { foreach (var h in hoard) m.FreePage(h); hoard.Clear(); } // kswapd may still be scanning
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void NoRetry_and_atomic_callers_never_reclaim()
    {
        using var m = TestSupport.Small();
        var hoard = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        var shrinker = new TestSupport.PageHoardShrinker(m, hoard);
        m.RegisterShrinker(shrinker);
        long directReclaims = m.Pages.ReclaimCount;
        foreach (var p in Exhaust(m, Gfp.Atomic)) lock (hoard) hoard.Add(p);
        var last = m.AllocPages(Gfp.Atomic | Gfp.NoWarn, 1);
        if (!last.IsNull) m.FreePages(last, 1); // kswapd (background reclaim, as in the kernel) may have freed memory meanwhile
        Assert.Equal(directReclaims, m.Pages.ReclaimCount); // but the atomic callers themselves never reclaimed
        lock (hoard) { foreach (var h in hoard) m.FreePage(h); hoard.Clear(); } // kswapd may still be scanning
    }

    [Fact]
    public void A_blocking_allocation_fails_after_bounded_retries()
    {
        using var m = TestSupport.Small();
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.FromMilliseconds(1);
        var held = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0).IsNull);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.RetryMayFail | Gfp.NoWarn, 5).IsNull);
        foreach (var p in held) m.FreePage(p);
    }

    [Fact]
    public void NoFail_waits_until_memory_is_freed()
    {
        using var m = TestSupport.Small();
        var held = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        held.AddRange(Exhaust(m, Gfp.Atomic | Gfp.Memalloc));
        var freer = new Thread(() =>
        {
            Thread.Sleep(200);
            for (int i = 0; i < 600; i++) m.FreePage(held[i]); // enough to lift the zone above its min watermark
            m.DrainLocalPages();
        });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        freer.Start();
        var p = m.AllocPages(Gfp.Kernel | Gfp.NoFail, 0);
        Assert.False(p.IsNull);
        Assert.True(sw.ElapsedMilliseconds >= 150, $"returned after {sw.ElapsedMilliseconds} ms");
        freer.Join();
        m.FreePage(p);
        foreach (var h in held.Skip(600)) m.FreePage(h);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Kswapd_reclaims_in_the_background()
    {
        using var m = TestSupport.Small();
        var hoard = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        var shrinker = new TestSupport.PageHoardShrinker(m, hoard);
        m.RegisterShrinker(shrinker);
        Assert.True(m.AllocPage(Gfp.Atomic | Gfp.NoWarn).Pfn > 0); // may dip below min; wakes kswapd
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (shrinker.Scans == 0 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.True(shrinker.Scans > 0);
    }
}
