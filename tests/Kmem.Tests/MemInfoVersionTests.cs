// /proc/meminfo by kernel release and configuration: each line appears from the release that introduced it and only
// with its config option, byte for byte in the kernel's layout, checked against real dumps of other releases.
using System.Text.RegularExpressions;
using Kmem;
using Xunit;

namespace Kmem.Tests;

public class MemInfoVersionTests
{
    /// <summary>An embedded board at another release, its own config changed by <paramref name="config"/>.</summary>
    internal static Machine Boot(string profile, string version, params (string Name, object Value)[] config) =>
        Machine.Boot(TestSupport.AtRelease(profile, version, config));

    private static List<string> Labels(string meminfo) =>
        meminfo.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => Regex.IsMatch(l, @"^[A-Za-z0-9_()]+: "))
            .Select(l => l[..l.IndexOf(':')]).ToList();

    private static string MemInfo(string profile, string version, params (string, object)[] config)
    {
        using var m = Boot(profile, version, config);
        return m.ProcFs.Read("/proc/meminfo");
    }

    [Fact]
    public void Linux_3_10_x86_64_has_the_3_10_lines_in_order()
    {
        var labels = Labels(MemInfo("x86_64", "3.10"));
        Assert.Equal(new[] { "MemTotal", "MemFree", "Buffers", "Cached", "SwapCached", "Active", "Inactive", "Active(anon)",
            "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty", "Writeback",
            "AnonPages", "Mapped", "Shmem", "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "NFS_Unstable", "Bounce",
            "WritebackTmp", "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk", "HardwareCorrupted",
            "AnonHugePages", "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize",
            "DirectMap4k", "DirectMap2M", "DirectMap1G" }, labels);
    }

    [Fact]
    public void Linux_6_6_x86_64_with_zswap_cma_and_unaccepted_memory_has_every_line_in_order()
    {
        var labels = Labels(MemInfo("x86_64", "6.6", ("ZSWAP", true), ("CMA", true), ("UNACCEPTED_MEMORY", true)));
        Assert.Equal(new[] { "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
            "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked", "SwapTotal", "SwapFree",
            "Zswap", "Zswapped", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem", "KReclaimable", "Slab", "SReclaimable",
            "SUnreclaim", "KernelStack", "PageTables", "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp", "CommitLimit",
            "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk", "Percpu", "HardwareCorrupted", "AnonHugePages",
            "ShmemHugePages", "ShmemPmdMapped", "FileHugePages", "FilePmdMapped", "CmaTotal", "CmaFree", "Unaccepted",
            "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize", "Hugetlb",
            "DirectMap4k", "DirectMap2M", "DirectMap1G" }, labels);
    }

    // Each line against the release before the one that introduced it (x86_64 defconfig: THP, hugetlbfs and
    // MEMORY_FAILURE on; ZSWAP, CMA and UNACCEPTED_MEMORY given where the line needs them).
    [Theory]
    [InlineData("MemAvailable", "3.13", "3.14")]
    [InlineData("ShmemHugePages", "4.7", "4.8")]
    [InlineData("ShmemPmdMapped", "4.7", "4.8")]
    [InlineData("Hugetlb", "4.15", "4.16")]
    [InlineData("Percpu", "4.18", "4.19")]
    [InlineData("KReclaimable", "4.19", "4.20")]
    [InlineData("FileHugePages", "5.3", "5.4")]
    [InlineData("FilePmdMapped", "5.3", "5.4")]
    [InlineData("Zswap", "5.18", "5.19")]
    [InlineData("Zswapped", "5.18", "5.19")]
    [InlineData("SecPageTables", "5.19", "6.0")]
    [InlineData("CmaTotal", "3.18", "3.19")]
    [InlineData("Unaccepted", "6.4", "6.5")]
    public void A_line_comes_in_with_its_release(string label, string before, string from)
    {
        (string, object)[] config = label switch
        {
            "Zswap" or "Zswapped" => [("ZSWAP", true)],
            "CmaTotal" => [("CMA", true)],
            _ => [],
        };
        Assert.DoesNotContain(label, Labels(MemInfo("x86_64", before, config)));
        if (label == "Unaccepted") config = [("UNACCEPTED_MEMORY", true)];   // the option itself comes with 6.5
        Assert.Contains(label, Labels(MemInfo("x86_64", from, config)));
    }

    [Theory]
    [InlineData("CMA", "CmaTotal")]
    [InlineData("ZSWAP", "Zswap")]
    [InlineData("TRANSPARENT_HUGEPAGE", "AnonHugePages")]
    [InlineData("TRANSPARENT_HUGEPAGE", "FileHugePages")]
    [InlineData("HUGETLB_PAGE", "HugePages_Total")]
    [InlineData("HUGETLB_PAGE", "Hugetlb")]
    [InlineData("MEMORY_FAILURE", "HardwareCorrupted")]
    public void A_config_line_follows_its_option(string option, string label)
    {
        Assert.Contains(label, Labels(MemInfo("x86_64", "6.1", (option, true))));
        Assert.DoesNotContain(label, Labels(MemInfo("x86_64", "6.1", (option, false))));
    }

    [Fact]
    public void Highmem_lines_follow_CONFIG_HIGHMEM_and_ShadowCallStack_its_option()
    {
        Assert.Contains("HighTotal", Labels(MemInfo("arm", "5.10")));
        Assert.DoesNotContain("HighTotal", Labels(MemInfo("arm", "5.10", ("HIGHMEM", false))));
        Assert.DoesNotContain("CmaTotal", Labels(MemInfo("x86_64", "5.10", ("CMA", false))));   // as x86_64_defconfig has it
        string scs = MemInfo("rk3588", "5.10", ("SHADOW_CALL_STACK", true));
        Assert.Contains("KernelStack:           0 kB\nShadowCallStack:       0 kB\nPageTables:", scs);
        Assert.DoesNotContain("ShadowCallStack", MemInfo("rk3588", "5.10"));
    }

    [Fact]
    public void A_rhel7_dump_has_the_lines_of_mainline_3_14_and_3_10_lacks_only_the_backported_MemAvailable()
    {
        var real = Labels(TestSupport.Fixture("meminfo_rhel71_x86_64_insights.txt"));
        // That box had no 1 GiB direct mapping; Kmem's x86_64 profile maps its top gigabyte with one.
        var kmem314 = Labels(MemInfo("x86_64", "3.14")).Where(l => l != "DirectMap1G").ToList();
        Assert.Equal(real, kmem314);
        var kmem310 = Labels(MemInfo("x86_64", "3.10")).Where(l => l != "DirectMap1G").ToList();
        Assert.Equal(real.Where(l => l != "MemAvailable"), kmem310);
    }

    [Fact]
    public void A_6x_distribution_dump_has_the_lines_of_6_6_with_its_options()
    {
        var real = Labels(TestSupport.Fixture("meminfo_x86_64_6x_unaccepted_presto.txt"));
        Assert.Equal(real, Labels(MemInfo("x86_64", "6.6", ("ZSWAP", true), ("CMA", true), ("UNACCEPTED_MEMORY", true))));
    }

    [Fact]
    public void A_raspberry_pi_dump_has_the_lines_of_a_6_1_arm_kernel_without_highmem()
    {
        string text = TestSupport.Fixture("meminfo_cma_raspberrypi_512M_pi_health.txt");
        var first = Labels(text[..text.IndexOf("# host with overlayfs", StringComparison.Ordinal)]);
        Assert.Equal(first, Labels(MemInfo("arm", "6.1", ("HIGHMEM", false), ("ZSWAP", true))));
    }

    [Theory]
    [InlineData("x86_64", "3.10")]
    [InlineData("x86_64", "6.6")]
    [InlineData("arm", "4.14")]
    [InlineData("arm", "6.1")]
    public void Every_line_has_the_kernel_layout_of_a_real_dump(string profile, string version)
    {
        var real = new[] { "meminfo_rhel71_x86_64_insights.txt", "meminfo_x86_64_6x_unaccepted_presto.txt", "meminfo_cma_raspberrypi_512M_pi_health.txt" }
            .SelectMany(f => TestSupport.Fixture(f).Split('\n')).Where(l => Regex.IsMatch(l, @"^[A-Za-z0-9_()]+: ")).ToList();
        // The layout of a field is seen on values below 10^8 kB (larger ones widen it, in the kernel as in Kmem).
        var narrow = real.Where(l => l.Length <= 27).GroupBy(l => l[..l.IndexOf(':')]).ToDictionary(g => g.Key, g => g.First());
        var config = new List<(string, object)> { ("CMA", true) };
        if (KernelVersion.Parse(version).IsAtLeast(5, 19)) config.Add(("ZSWAP", true));
        if (profile == "arm") config.Add(("HIGHMEM", false));     // none of the dumps has the highmem lines
        string t = MemInfo(profile, version, [.. config]);
        foreach (var line in t.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string label = line[..line.IndexOf(':')];
            Assert.Contains(real, r => r.StartsWith(label + ":", StringComparison.Ordinal));
            if (line.Length > 27 || !narrow.TryGetValue(label, out var r)) continue;
            Assert.True(r.IndexOf(" kB", StringComparison.Ordinal) == line.IndexOf(" kB", StringComparison.Ordinal), $"{line} / {r}");
            Assert.True(r.Length == line.Length, $"{line} / {r}");
        }
    }

    [Fact]
    public void Before_4_4_VmallocUsed_and_VmallocChunk_walk_the_areas_and_from_4_4_to_5_2_they_are_zero()
    {
        using (var m = Boot("x86_64", "3.10"))
        {
            nint v = m.Vmalloc(5 * 4096);
            string t = m.ProcFs.Read("/proc/meminfo");
            long used = m.VmallocAreas.Sum(a => (long)a.Size) >> 10;
            Assert.Contains($"VmallocUsed:    {used,8} kB\n", t);
            Assert.True(used >= 24, "the 5-page area and its guard page");
            long total = long.Parse(Regex.Match(t, @"VmallocTotal: +(\d+) kB").Groups[1].Value);
            long chunk = long.Parse(Regex.Match(t, @"VmallocChunk: +(\d+) kB").Groups[1].Value);
            Assert.InRange(chunk, total - used - 8L * 1024 * 1024, total - used);   // the window past the last area
            m.Vfree(v);
        }
        using (var m = Boot("x86_64", "4.4"))
        {
            nint v = m.Vmalloc(5 * 4096);
            string t = m.ProcFs.Read("/proc/meminfo");
            Assert.Contains("VmallocUsed:           0 kB\nVmallocChunk:          0 kB\n", t);
            m.Vfree(v);
        }
        using (var m = Boot("x86_64", "5.3"))
        {
            nint v = m.Vmalloc(5 * 4096);
            Assert.Contains("VmallocUsed:          20 kB\nVmallocChunk:          0 kB\n", m.ProcFs.Read("/proc/meminfo"));
            m.Vfree(v);
        }
    }

    [Fact]
    public void MemAvailable_keeps_back_low_watermarks_before_4_5_and_totalreserve_from_4_5()
    {
        using (var m = Boot("x86_64", "4.4"))
        {
            long free = m.Zones.Sum(z => z.FreePages), low = m.Zones.Sum(z => z.WatermarkLow);
            long sR = long.Parse(Regex.Match(m.ProcFs.Read("/proc/meminfo"), @"SReclaimable: +(\d+) kB").Groups[1].Value) / 4;
            Assert.Contains($"MemAvailable:   {(free - low + sR - Math.Min(sR / 2, low)) * 4,8} kB\n", m.ProcFs.Read("/proc/meminfo"));
        }
        using (var m = Boot("x86_64", "4.5"))
        {
            long free = m.Zones.Sum(z => z.FreePages), low = m.Zones.Sum(z => z.WatermarkLow);
            long reserve = m.Zones.Sum(z => Math.Min(z.Managed, z.LowmemReserve.Max() + z.WatermarkHigh));
            long sR = long.Parse(Regex.Match(m.ProcFs.Read("/proc/meminfo"), @"SReclaimable: +(\d+) kB").Groups[1].Value) / 4;
            Assert.Contains($"MemAvailable:   {(free - reserve + sR - Math.Min(sR / 2, low)) * 4,8} kB\n", m.ProcFs.Read("/proc/meminfo"));
        }
    }
}
