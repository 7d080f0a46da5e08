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
    public void NoRetry_callers_reclaim_once_and_atomic_callers_never()
    {
        using var m = TestSupport.Small();
        var held = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        // A shrinker that promises pages but frees none: reclaim always looks worth retrying, so only the caller's
        // flags can end the loop.
        var liar = new CountingOnlyShrinker();
        m.RegisterShrinker(liar);
        long reclaims = m.Pages.ReclaimCount, retries = m.Pages.ReclaimRetries;
        // __GFP_NORETRY: one round of direct reclaim (as __alloc_pages_slowpath does before its "goto nopage"), no retry.
        Assert.True(m.AllocPage(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn).IsNull);
        Assert.Equal(reclaims + 1, m.Pages.ReclaimCount);
        Assert.Equal(retries, m.Pages.ReclaimRetries);
        Assert.True(liar.Scans > 0);
        // Atomic callers cannot sleep: they never enter direct reclaim (kswapd, in the background, does not count here).
        held.AddRange(Exhaust(m, Gfp.Atomic));
        var last = m.AllocPages(Gfp.Atomic | Gfp.NoWarn, 1);           // kswapd may have freed memory meanwhile
        if (!last.IsNull) m.FreePages(last, 1);
        Assert.Equal(reclaims + 1, m.Pages.ReclaimCount);
        Assert.True(m.UnregisterShrinker(liar));
        foreach (var p in held) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_blocking_allocation_fails_after_bounded_retries()
    {
        using var m = TestSupport.Small();
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.FromMilliseconds(1);
        var held = Exhaust(m, Gfp.Kernel | Gfp.NoRetry);
        var liar = new CountingOnlyShrinker();
        m.RegisterShrinker(liar);
        // Reclaim never makes progress but always looks worth it: the kernel's rule stops after MAX_RECLAIM_RETRIES
        // retries, that is one first round and 16 more, each a round of direct reclaim.
        long reclaims = m.Pages.ReclaimCount, retries = m.Pages.ReclaimRetries;
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0).IsNull);
        Assert.Equal(MaxRetries, m.Pages.ReclaimRetries - retries);
        Assert.Equal(MaxRetries + 1, m.Pages.ReclaimCount - reclaims);
        // A costly order with __GFP_RETRY_MAYFAIL is bounded too (it also stops at once when no free block of its order
        // could pass the watermark): one round of reclaim per retry, plus the first.
        reclaims = m.Pages.ReclaimCount;
        retries = m.Pages.ReclaimRetries;
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.RetryMayFail | Gfp.NoWarn, 5).IsNull);
        long costlyRetries = m.Pages.ReclaimRetries - retries;
        Assert.InRange(costlyRetries, 0, MaxRetries);
        Assert.Equal(costlyRetries + 1, m.Pages.ReclaimCount - reclaims);
        // Without __GFP_RETRY_MAYFAIL a costly order gives up after its first round.
        reclaims = m.Pages.ReclaimCount;
        retries = m.Pages.ReclaimRetries;
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 5).IsNull);
        Assert.Equal((1L, 0L), (m.Pages.ReclaimCount - reclaims, m.Pages.ReclaimRetries - retries));
        Assert.True(m.UnregisterShrinker(liar));
        foreach (var p in held) m.FreePage(p);
    }

    private const int MaxRetries = Kmem.Paging.PageAllocator.MaxReclaimRetries;

    /// <summary>Counts objects it never frees: reclaim looks worth retrying and never makes progress.</summary>
    private sealed class CountingOnlyShrinker() : Shrinker("test-counts-only")
    {
        public int Scans;
        public override long CountObjects(ShrinkControl sc) => 100_000;
        public override long ScanObjects(ShrinkControl sc) { Interlocked.Increment(ref Scans); return 0; }
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
        // Exhausted without waking kswapd: runs that find nothing to reclaim count as kswapd_failures, and a node with
        // 16 of them is no longer woken (6.6 wakeup_kswapd()), which would leave this test to a race.
        var hoard = Exhaust(m, (Gfp.Kernel | Gfp.NoRetry) & ~Gfp.KswapdReclaim);
        var shrinker = new TestSupport.PageHoardShrinker(m, hoard);
        m.RegisterShrinker(shrinker);
        Assert.True(m.AllocPage(Gfp.Atomic | Gfp.NoWarn).Pfn > 0); // may dip below min; wakes kswapd
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (shrinker.Scans == 0 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.True(shrinker.Scans > 0);
    }
}
