// Issue 19, bounded work: an over-committed blocking allocation gives up at once when reclaim cannot help
// (should_reclaim_retry), but still waits and succeeds when a shrinker can give memory back; nested repeats
// have a total-step limit; profile checks stay O(n log n) for 600,000 devices.
using System.Diagnostics;
using System.Text;

namespace Kmem.Tests;

public class BoundedWorkTests
{
    [Fact]
    public void Over_committed_kernel_allocations_on_rv1106_fail_at_once()
    {
        using var m = Machine.Boot("rv1106");
        var pa = m.Pages;
        long retriesBefore = pa.ReclaimRetries, hopelessBefore = pa.ReclaimHopeless;
        var held = new List<Page>(70_000);
        int failures = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 70_000; i++)
        {
            var p = m.AllocPage(Gfp.Kernel | Gfp.NoWarn);
            if (p.IsNull) failures++;
            else held.Add(p);
        }
        sw.Stop();
        long retries = pa.ReclaimRetries - retriesBefore, hopeless = pa.ReclaimHopeless - hopelessBefore;
        // 256 MiB less what memblock kept (the kernel, mem_map, hashes …: about 9 MiB), the 32 MiB CMA area (not for
        // GFP_KERNEL) and the min watermark: about 54,500 pages.
        Assert.InRange(held.Count, 52_000, 62_000);
        Assert.InRange(failures, 8_000, 18_000);
        Assert.Equal(70_000, held.Count + failures);
        // Every failure gave up in its first round: nothing reclaimable could lift the zone above min.
        Assert.Equal(failures, hopeless);
        Assert.True(retries <= 16, $"{retries} reclaim rounds were waited out");
        // 3 s on a quiet machine in Release (docs/reliability.md); generous here for a loaded CI box and a Debug build.
        // Waiting out 16 rounds per failure, as before, took 12,000 x 85 ms: 17 minutes.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"70,000 allocations took {sw.Elapsed}");
        foreach (var p in held) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_blocking_allocation_that_reclaim_can_satisfy_still_succeeds()
    {
        using var m = TestSupport.Small();
        var held = new List<Page>();
        for (var p = m.AllocPage(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn); !p.IsNull; p = m.AllocPage(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn))
            held.Add(p);
        // Without a shrinker, nothing is reclaimable: the next blocking allocation fails in its first round.
        long hopeless = m.Pages.ReclaimHopeless;
        Assert.True(m.AllocPage(Gfp.Kernel | Gfp.NoWarn).IsNull);
        Assert.Equal(hopeless + 1, m.Pages.ReclaimHopeless);

        // A shrinker that holds pages it can give back: the same allocation now reclaims and succeeds.
        var hoard = held.GetRange(0, 64);
        held.RemoveRange(0, 64);
        var shrinker = new TestSupport.PageHoardShrinker(m, hoard, "test-release", emptyIsShrinkEmpty: true);
        m.RegisterShrinker(shrinker);
        var got = m.AllocPages(Gfp.Kernel, 0);
        Assert.False(got.IsNull);
        Assert.True(shrinker.Scans > 0);
        Assert.Equal(hopeless + 1, m.Pages.ReclaimHopeless);
        Assert.True(m.UnregisterShrinker(shrinker));
        m.FreePage(got);
        lock (hoard) { foreach (var h in hoard) m.FreePage(h); hoard.Clear(); }
        foreach (var p in held) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_shrinker_that_counts_but_frees_nothing_still_bounds_the_retries()
    {
        using var m = TestSupport.Small();
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.FromMilliseconds(1);
        var held = new List<Page>();
        for (var p = m.AllocPage(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn); !p.IsNull; p = m.AllocPage(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn))
            held.Add(p);
        var liar = new CountingOnlyShrinker();
        m.RegisterShrinker(liar);
        long retries = m.Pages.ReclaimRetries;
        Assert.True(m.AllocPage(Gfp.Kernel | Gfp.NoWarn).IsNull);
        // It claims enough to pass the watermark, so the kernel's rule retries, but only MAX_RECLAIM_RETRIES rounds.
        Assert.Equal(retries + PageAllocatorMaxRetries, m.Pages.ReclaimRetries);
        m.UnregisterShrinker(liar);
        foreach (var p in held) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    private const int PageAllocatorMaxRetries = Kmem.Paging.PageAllocator.MaxReclaimRetries;

    private sealed class CountingOnlyShrinker() : Shrinker("test-counts-only")
    {
        public override long CountObjects(ShrinkControl sc) => 100_000;
        public override long ScanObjects(ShrinkControl sc) => 0;
    }

    [Fact]
    public void Nested_repeats_beyond_the_step_limit_are_refused_naming_the_step()
    {
        const string json = """
        { "steps": [ { "op": "drain" },
          { "op": "repeat", "times": 100000, "steps": [ { "op": "repeat", "times": 100000, "steps": [ { "op": "drain" } ] } ] } ] }
        """;
        var e = Assert.Throws<WorkloadException>(() => Workload.Parse(json));
        Assert.Equal("steps[1].times", e.Location);
        Assert.Contains("100000 times a body of 100001 steps", e.Message);
        Assert.Contains($"{Workload.MaxTotalSteps}", e.Message);

        // Siblings add up too: three repeats of 40 million steps each are 120 million.
        string three = "{ \"steps\": [" + string.Join(",", Enumerable.Repeat("{ \"op\": \"repeat\", \"times\": 40000000, \"steps\": [ { \"op\": \"drain\" } ] }", 3)) + "] }";
        e = Assert.Throws<WorkloadException>(() => Workload.Parse(three));
        Assert.Equal("steps[2]", e.Location);

        // Just under the limit is accepted (and not run here).
        var ok = Workload.Parse("""{ "steps": [ { "op": "repeat", "times": 9999, "steps": [ { "op": "repeat", "times": 9999, "steps": [ { "op": "drain" } ] } ] } ] }""");
        Assert.Single(ok.Steps);
    }

    private static string ProfileWithDevices(int n, string? duplicateLast = null)
    {
        var sb = new StringBuilder(n * 40 + 512);
        sb.Append("""{"name":"many","arch":"arm64","cpus":4,"dram":[{"base":"0x40000000","size":"256M"}],""");
        sb.Append("\"cma\":[{\"name\":\"c\",\"size\":\"32M\"}],\"devices\":[");
        for (int i = 0; i < n; i++)
        {
            if (i > 0) sb.Append(',');
            string name = i == n - 1 && duplicateLast is not null ? duplicateLast : $"dev{i}";
            sb.Append("{\"name\":\"").Append(name).Append("\",\"cma\":\"c\"}");
        }
        return sb.Append("]}").ToString();
    }

    [Fact]
    public void A_profile_with_600000_devices_is_checked_in_seconds()
    {
        string json = ProfileWithDevices(600_000);
        var sw = Stopwatch.StartNew();
        var p = MachineProfile.Parse(json);
        Assert.Equal(600_000, p.Devices.Count);
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(ProfileWithDevices(600_000, duplicateLast: "dev17")));
        sw.Stop();
        Assert.Contains("devices[599999].name", e.Message);
        Assert.Contains("duplicate device 'dev17'", e.Message);
        // Seconds on a quiet machine; comparing every pair, as before, took hours. Generous for a loaded CI box.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(90), $"two profiles of 600,000 devices took {sw.Elapsed}");
    }

    [Fact]
    public void Overlaps_among_many_ranges_are_found_by_sorting()
    {
        // 2,000 reserved ranges and 2,000 CMA areas: the checks compare sorted neighbours, not every pair.
        var sb = new StringBuilder("""{"name":"r","arch":"arm64","cpus":1,"dram":[{"base":"0x40000000","size":"16G"}],"reserved":[""");
        for (int i = 0; i < 2000; i++) sb.Append(i > 0 ? "," : "").Append($"{{\"name\":\"r{i}\",\"base\":\"0x{0x40000000L + i * 0x400000L:x}\",\"size\":\"4K\"}}");
        sb.Append("],\"cma\":[");
        long cmaBase = 0x40000000L + 2000L * 0x400000L;
        for (int i = 0; i < 2000; i++) sb.Append(i > 0 ? "," : "").Append($"{{\"name\":\"c{i}\",\"base\":\"0x{cmaBase + i * 0x400000L:x}\",\"size\":\"4M\"}}");
        string good = sb.ToString() + "]}";
        Assert.Equal(2000, MachineProfile.Parse(good).Cma.Count);
        // The last area laid over the first one; and one laid over reserved range r1234.
        string clash = good[..good.LastIndexOf("{\"name\":\"c1999\"", StringComparison.Ordinal)] + $"{{\"name\":\"c1999\",\"base\":\"0x{cmaBase:x}\",\"size\":\"4M\"}}]}}";
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(clash));
        Assert.Contains("cma[1999]", e.Message);
        Assert.Contains("overlaps CMA area 'c0'", e.Message);
        string onReserved = good.Replace($"\"name\":\"c5\",\"base\":\"0x{cmaBase + 5 * 0x400000L:x}\"", $"\"name\":\"c5\",\"base\":\"0x{0x40000000L + 1234 * 0x400000L:x}\"", StringComparison.Ordinal);
        e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(onReserved));
        Assert.Contains("cma[5]", e.Message);
        Assert.Contains("overlaps reserved range 'r1234'", e.Message);
    }
}
