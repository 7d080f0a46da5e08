// /proc formats: byte-exact against real dumps captured on real machines (shared fixtures copied
// into tests/), and the live views of booted machines checked line by line against the kernel's layout.
using System.Text.RegularExpressions;
using Kmem.Diagnostics;

namespace Kmem.Tests;

public class ProcFormatTests
{
    private static readonly string[] s_types = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate"];

    [Fact]
    public void Pagetypeinfo_matches_a_real_arm32_dump_byte_for_byte()
    {
        // ARM 32-bit 4.14, 2 GB, DMA + HighMem, pageblock order 12, MAX_ORDER 13.
        string text = TestSupport.Fixture("pagetypeinfo_arm32_4.14_2GB_cma_order12.txt");
        string dump = string.Concat(text.Split('\n').Where(l => !l.StartsWith('#')).Select(l => l + "\n"))[..^1];
        var zones = new List<PageViews.ZoneFreeCounts>();
        foreach (string zone in new[] { "DMA", "HighMem" })
        {
            var free = new long[6, 13];
            for (int mt = 0; mt < 6; mt++)
            {
                var row = Regex.Match(dump, $@"Node +0, zone +{zone}, type +{s_types[mt]} +([\d ]+)\n");
                var nums = row.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray();
                Assert.Equal(13, nums.Length);
                for (int o = 0; o < 13; o++) free[mt, o] = nums[o];
            }
            var blocks = Regex.Match(dump, $@"Node 0, zone +{zone} +([\d ]+)\n").Groups[1].Value
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray();
            zones.Add(new PageViews.ZoneFreeCounts(0, zone, free, blocks));
        }
        string rendered = PageViews.FormatPageTypeInfo(zones, pageblockOrder: 12, maxOrder: 13);
        Assert.Equal(KernelBytes(dump), rendered);
    }

    /// <summary>
    /// The bytes the kernel printed, from the mailed copy: the mail archive stripped the blank that ends every table
    /// row (pagetypeinfo prints each header and figure as "%6d ", "%6lu ", "%12s " or "%12lu ", so each row of the
    /// free and block tables ends in one space). That blank is put back; nothing else is changed.
    /// </summary>
    private static string KernelBytes(string dump)
    {
        static bool TableRow(string l) => l.StartsWith("Free pages count ", StringComparison.Ordinal) || l.StartsWith("Node ", StringComparison.Ordinal) || l.StartsWith("Number of blocks ", StringComparison.Ordinal);
        Assert.DoesNotContain(" \n", dump);                                   // the copy has no trailing blank left
        return string.Concat(dump.TrimEnd('\n').Split('\n').Select(l => (TableRow(l) ? l + " " : l) + "\n"));
    }

    [Fact]
    public void Buddyinfo_matches_a_real_x86_64_dump_byte_for_byte()
    {
        string text = TestSupport.Fixture("slabinfo_meminfo_buddyinfo_x86_64_numa2_2.6.3x_linuxmm2010.txt");
        var lines = text.Split('\n').SkipWhile(l => !l.StartsWith("# cat /proc/buddyinfo")).Skip(1).Where(l => l.StartsWith("Node ")).ToList();
        Assert.Equal(4, lines.Count);
        var zones = lines.Select(l =>
        {
            var m = Regex.Match(l, @"^Node (\d), zone +(\w+) +([\d ]+)$");
            var nums = m.Groups[3].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray();
            var free = new long[6, 11];
            for (int o = 0; o < 11; o++) free[0, o] = nums[o];
            return new PageViews.ZoneFreeCounts(int.Parse(m.Groups[1].Value), m.Groups[2].Value, free, new long[6]);
        }).ToList();
        string rendered = PageViews.FormatBuddyInfo(zones, 11);
        Assert.Equal(string.Join("\n", lines) + "\n", rendered);
    }

    [Fact]
    public void Live_buddyinfo_has_the_kernel_layout()
    {
        using var m = Machine.Boot("x86_64");
        var lines = m.ProcFs.Read("/proc/buddyinfo").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length); // the empty Movable zone is skipped
        Assert.All(lines, l => Assert.Matches(@"^Node 0, zone +(DMA|DMA32|Normal) ( {0,5}\d+ ){11}$", l));
        Assert.StartsWith("Node 0, zone      DMA ", lines[0]);
        Assert.StartsWith("Node 0, zone    DMA32 ", lines[1]);
    }

    [Fact]
    public void Live_pagetypeinfo_has_the_kernel_layout()
    {
        using var m = Machine.Boot(TestSupport.GenericArm());    // MAX_ORDER 11, CMA areas in the buddy allocator
        string t = m.ProcFs.Read("/proc/pagetypeinfo");
        Assert.StartsWith("Page block order: 10\nPages per block:  1024\n\nFree pages count per migrate type at order       0      1 ", t);
        Assert.Contains("Node    0, zone   Normal, type          CMA      0      0      0      0      0      0      0      0      0      0      8 \n", t);
        Assert.Contains("\nNumber of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n", t);
        // The block counts follow from the profile, not from an earlier run: memmap_init marks every pageblock
        // movable, CMA's activation turns its area's blocks to CMA, and the boot's first unmovable allocations (the
        // slab caches kmem_cache, kmem_cache_node, kmalloc-*) steal one movable block for unmovable pages.
        var normal = m.Zones.Single(z => z.Name == "Normal");
        long perBlock = 1L << 10, total = (normal.Spanned + perBlock - 1) / perBlock;
        long cma = m.Cma.Values.Sum(a => (long)a.Count) / perBlock;
        Assert.Equal(64, total);                                          // 256 MiB of 4 MiB blocks
        Assert.Equal(8, cma);                                             // the 32 MiB rk-dma-heap-cma area
        long unmovable = 1, movable = total - cma - unmovable;
        Assert.EndsWith($"Node 0, zone   Normal {unmovable,12} {movable,12} {0,12} {0,12} {cma,12} {0,12} \n", t);
    }

    [Fact]
    public void Live_meminfo_has_the_kernel_lines_in_order()
    {
        using var m = Machine.Boot("rv1106");
        string t = m.ProcFs.Read("/proc/meminfo");
        var labels = t.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[..l.IndexOf(':')]).ToList();
        Assert.Equal(new[] { "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
            "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked",
            "SwapTotal", "SwapFree", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem", "KReclaimable",
            "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "NFS_Unstable", "Bounce", "WritebackTmp",
            "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk", "Percpu", "CmaTotal", "CmaAllocated", "CmaReleased", "CmaFree" }, labels);
        Assert.All(t.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.Matches(@"^[A-Za-z_()]+: +\d+ kB$", l));
        Assert.All(t.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.Equal(27, l.Length)); // "%-16s%8lu kB"
        var normal = m.Zones.Single(z => z.Name == "Normal");
        Assert.Contains($"MemTotal:       {normal.Managed * 4,8} kB\n", t);
        Assert.Contains($"MemFree:        {normal.FreePages * 4,8} kB\n", t);
        Assert.Contains("VmallocTotal:    1032192 kB\n", t);   // 0xff800000 - VMALLOC_START 0xc0800000 (PAGE_OFFSET 0xb0000000 + 256 MiB + 8 MiB)
    }

    [Fact]
    public void Meminfo_lines_have_the_same_shape_as_a_real_dump()
    {
        string real = TestSupport.Fixture("meminfo_cma_raspberrypi_512M_pi_health.txt");
        var realLines = real.Split('\n').Where(l => Regex.IsMatch(l, @"^[A-Za-z_()]+: +\d+ kB$")).GroupBy(l => l[..l.IndexOf(':')]).ToDictionary(g => g.Key, g => g.First());
        using var m = Machine.Boot("rv1106");
        foreach (var line in m.ProcFs.Read("/proc/meminfo").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string label = line[..line.IndexOf(':')];
            if (!realLines.TryGetValue(label, out var r)) continue;
            Assert.Equal(r.Length, line.Length); // same label padding and value width (values below 10^8 kB)
            Assert.Equal(r.IndexOf(" kB", StringComparison.Ordinal), line.IndexOf(" kB", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void X86_64_meminfo_has_the_x86_and_thp_lines()
    {
        using var m = Machine.Boot("x86_64");
        string t = m.ProcFs.Read("/proc/meminfo");
        Assert.Contains("VmallocTotal:   34359738367 kB\n", t);
        Assert.Contains("HardwareCorrupted:     0 kB\n", t);
        Assert.Contains("AnonHugePages:         0 kB\n", t);
        Assert.Contains("HugePages_Total:       0\n", t);
        Assert.Contains("Hugepagesize:       2048 kB\n", t);
        Assert.Matches(@"DirectMap4k: +\d+ kB\nDirectMap2M: +\d+ kB\nDirectMap1G: +\d+ kB\n$", t);
        Assert.DoesNotContain("HighTotal", t);
    }

    [Fact]
    public void MemAvailable_follows_si_mem_available()
    {
        using var m = Machine.Boot("x86_64");
        long free = m.Zones.Sum(z => z.FreePages);
        long reserve = m.Zones.Sum(z => Math.Min(z.Managed, z.LowmemReserve.Max() + z.WatermarkHigh));
        Assert.Contains($"MemAvailable:   {(free - reserve) * 4,8} kB\n", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void Zoneinfo_prints_populated_and_empty_zones()
    {
        using var m = Machine.Boot("x86_64");
        string t = m.ProcFs.Read("/proc/zoneinfo");
        var zones = Regex.Matches(t, @"^Node 0, zone +(\w+)$", RegexOptions.Multiline).Select(x => x.Groups[1].Value).ToList();
        Assert.Equal(new[] { "DMA", "DMA32", "Normal", "Movable" }, zones);
        Assert.Single(Regex.Matches(t, "per-node stats"));
        var dma = m.Zones[0];
        Assert.Contains($"\n  pages free     {dma.FreePages}\n        min      {dma.WatermarkMin}\n        low      {dma.WatermarkLow}\n        high     {dma.WatermarkHigh}\n        spanned  4095\n        present  3998\n", t);
        Assert.Contains($"        protection: (0, {dma.LowmemReserve[1]}, {dma.LowmemReserve[2]}, {dma.LowmemReserve[3]})\n      nr_free_pages {dma.FreePages}\n", t);
        Assert.Equal(2, Regex.Matches(t[t.IndexOf("zone   Normal", StringComparison.Ordinal)..], @"\n    cpu: \d\n              count: \d+\n              high:  378\n              batch: 63\n  vm stats threshold: \d+").Count);
        Assert.EndsWith("Node 0, zone  Movable\n  pages free     0\n        min      0\n        low      0\n        high     0\n        spanned  0\n        present  0\n        managed  0\n        protection: (0, 0, 0, 0)\n", t);
        Assert.Contains("\n  node_unreclaimable:  0\n  start_pfn:           1048576\n", t);
    }

    [Fact]
    public void Unknown_paths_are_a_clear_error()
    {
        using var m = Machine.Boot("rv1106");
        var e = Assert.Throws<ProcPathException>(() => m.ProcFs.Read("/proc/nonsense"));
        Assert.Contains("No such file or directory", e.Message);
        Assert.Contains("/proc/buddyinfo", e.Message);
    }
}
