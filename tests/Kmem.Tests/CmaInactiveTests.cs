// Rockchip's CONFIG_CMA_INACTIVE on the rv1106 board: the CMA area stays memblock-reserved, so MemTotal and the free
// counts leave it out, CmaFree stays 0, no pageblock is MIGRATE_CMA, the buddy allocator never hands out its pages;
// cma_alloc() takes a bitmap range directly and cma_release() gives it back to the area. The same calls on the board
// without the option (kernel.org's CMA) are the comparison.
using System.Globalization;

namespace Kmem.Tests;

public class CmaInactiveTests
{
    private static Machine Rv1106(bool inactive = true)
    {
        var p = MachineProfile.Embedded("rv1106");
        var m = Machine.Boot(p with { ConfigOptions = new Dictionary<string, object>(p.ConfigOptions) { ["CMA_INACTIVE"] = inactive, ["CMA_DEBUGFS"] = true } });
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    private static long Kb(Machine m, string key) =>
        long.Parse(m.ProcFs.Read("/proc/meminfo").Split('\n').First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);

    private static bool InArea(CmaArea c, Page p) => p.Pfn >= c.BasePfn && p.Pfn < c.BasePfn + c.Count;

    [Fact]
    public void The_area_is_in_CmaTotal_but_not_in_MemTotal_nor_CmaFree()
    {
        using var inactive = Rv1106();
        using var active = Rv1106(inactive: false);
        Assert.True(MachineProfile.Embedded("rv1106").Config.IsEnabled("CMA_INACTIVE"));
        Assert.Equal(32768, Kb(inactive, "CmaTotal"));
        Assert.Equal(0, Kb(inactive, "CmaFree"));
        Assert.Equal(32768, Kb(active, "CmaTotal"));
        Assert.Equal(32768, Kb(active, "CmaFree"));
        // MemTotal is totalram: the activated area is in it, the inactive one never is. Without CMA_INACTIVE the rk heap's
        // setup also calls dma_contiguous_early_fixup(), so paging_init() remaps the area with pages: 16 PTE tables (64 KiB).
        Assert.Equal(32768 - 16 * 4, Kb(active, "MemTotal") - Kb(inactive, "MemTotal"));
        Assert.Equal(inactive.Zones.Sum(z => z.Managed) * 4, Kb(inactive, "MemTotal"));
        // mem_init's line counts the area as cma-reserved either way, and its figures add up.
        var line = System.Text.RegularExpressions.Regex.Match(inactive.Dmesg(), @"Memory: (\d+)K/(\d+)K available .* (\d+)K reserved, (\d+)K cma-reserved\)");
        Assert.True(line.Success, inactive.Dmesg());
        long avail = long.Parse(line.Groups[1].Value), total = long.Parse(line.Groups[2].Value), reserved = long.Parse(line.Groups[3].Value);
        Assert.Equal(32768, long.Parse(line.Groups[4].Value));
        Assert.Equal(total, avail + reserved + 32768);
        // The area is still reserved at mem_init either way; the active kernel has reserved its 16 PTE tables on top.
        Assert.Contains($"Memory: {avail - 64}K/{total}K available", active.Dmesg());
        Assert.Contains($" {reserved + 64}K reserved, 32768K cma-reserved)", active.Dmesg());
    }

    [Fact]
    public void No_pageblock_is_MIGRATE_CMA_and_the_views_hold_no_free_cma()
    {
        using var m = Rv1106();
        var normal = m.Zones.Single(z => z.Name == "Normal");
        Assert.DoesNotContain(MigrateType.Cma, normal.PageblockTypes);
        Assert.Equal(0, normal.FreeCmaPages);
        Assert.Matches(@"\n\s+nr_free_cma\s+0\n", m.ProcFs.Read("/proc/zoneinfo"));
        // buddyinfo's blocks add up to the zone's free pages, which hold none of the area.
        m.DrainAllPages();
        var counts = m.ProcFs.Read("/proc/buddyinfo").Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[4..].Select(long.Parse).ToArray();
        Assert.Equal(9, counts.Length);                    // orders 0..8 (MAX_ORDER 9)
        Assert.Equal(normal.FreePages, counts.Select((n, o) => n << o).Sum());
        Assert.True(normal.FreePages <= normal.Managed);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_buddy_allocator_never_hands_out_area_pages()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var got = new List<Page>();
        // Movable requests are the ones an activated area serves: here they must run dry without touching it.
        while (true)
        {
            var p = m.AllocPages(Gfp.HighUserMovable | Gfp.NoWarn, 0);
            if (p.IsNull) break;
            Assert.False(InArea(cma, p), $"{p} is in {cma}");
            got.Add(p);
        }
        Assert.True(got.Count > 40000);
        // The area still serves cma_alloc() in full.
        var all = m.CmaAlloc(cma, (int)cma.Count, 0);
        Assert.False(all.IsNull);
        Assert.Equal(cma.BasePfn, all.Pfn);
        Assert.True(m.CmaRelease(cma, all, (int)cma.Count));
        foreach (var p in got) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Cma_alloc_takes_the_bitmap_range_and_release_gives_it_back_to_the_area()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        m.DrainAllPages();
        long memFree = Kb(m, "MemFree");
        var a = m.CmaAlloc(cma, 256, 0);
        var b = m.CmaAlloc(cma, 3, 0);
        Assert.Equal(cma.BasePfn, a.Pfn);                  // first fit from the bottom, back to back
        Assert.Equal(cma.BasePfn + 256, b.Pfn);
        Assert.Equal(259UL, cma.Used);
        Assert.Equal("259\n", m.ProcFs.Read("/sys/kernel/debug/cma/rk-dma-heap-cma/used"));
        Assert.Equal(cma.Count - 259, cma.MaxChunk);
        m.DrainAllPages();
        Assert.Equal(memFree, Kb(m, "MemFree"));           // nothing came from the buddy allocator
        Assert.Equal(0, Kb(m, "CmaFree"));
        Assert.Equal(0, m.PagesMigrated);
        Assert.Empty(m.VerifyIntegrity());
        // The pages are the caller's: written and read through the linear map.
        var span = m.PageSpan(a, 0);
        span.Fill(0x5a);
        Assert.All(m.PageSpan(a, 0).ToArray(), x => Assert.Equal(0x5a, x));
        Assert.True(m.CmaRelease(cma, a, 256));
        Assert.Equal(3UL, cma.Used);
        Assert.True(m.CmaRelease(cma, b, 3));
        Assert.Equal(0UL, cma.Used);
        m.DrainAllPages();
        Assert.Equal(memFree, Kb(m, "MemFree"));           // nor went to it
        Assert.Empty(m.VerifyIntegrity());
        // The same range again: the area hands out what it got back.
        var again = m.CmaAlloc(cma, 256, 0);
        Assert.Equal(cma.BasePfn, again.Pfn);
        m.CmaRelease(cma, again, 256);
    }

    [Fact]
    public void Freeing_an_area_page_to_the_buddy_allocator_is_a_bad_page_state()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var p = m.CmaAlloc(cma, 1, 0);
        // The page keeps PG_reserved: free_pages_prepare() refuses it and nothing reaches the free lists.
        var e = Assert.Throws<BadPageStateException>(() => m.FreePage(p));
        Assert.Contains("PAGE_FLAGS_CHECK_AT_FREE", e.Reason);
        m.GetPage(p);
        m.PutPage(p);                                      // a reference taken and dropped is fine
        Assert.Throws<BadPageStateException>(() => m.PutPage(p));
        Assert.True(m.CmaRelease(cma, p, 1));
        Assert.Empty(m.VerifyIntegrity());
        // A release of pages the area did not hand out is refused as on any kernel.
        Assert.Throws<InvalidAddressException>(() => m.CmaRelease(cma, p, 1));
    }

    [Fact]
    public void Coherent_memory_of_a_device_comes_from_its_inactive_area()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var dev = m.Devices["ffa50000.rkvenc"];
        nint cpu = m.DmaAllocCoherent(dev, 64 << 10, Gfp.Kernel, out ulong handle);
        Assert.NotEqual(0, cpu);
        Assert.InRange(handle, cma.Base, cma.Base + cma.Size - (64 << 10));
        Assert.Equal(16UL, cma.Used);
        unsafe { Assert.All(new Span<byte>((void*)cpu, 64 << 10).ToArray(), x => Assert.Equal(0, x)); }
        Assert.Empty(m.VerifyIntegrity());
        m.DmaFreeCoherent(dev, 64 << 10, cpu, handle);
        Assert.Equal(0UL, cma.Used);
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void The_memory_map_shows_the_inactive_area_apart_from_free_memory()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var p = m.CmaAlloc(cma, 1024, 0);
        string svg = m.RenderMemoryMap();
        Assert.Contains("CMA (free, inactive area)", svg);
        Assert.Contains("CMA rk-dma-heap-cma", svg);
        m.CmaRelease(cma, p, 1024);
    }
}
