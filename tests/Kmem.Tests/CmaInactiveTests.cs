// Rockchip's CONFIG_CMA_INACTIVE on the rv1106 board: the CMA area stays memblock-reserved, so MemTotal and the free
// counts leave it out, CmaFree stays 0, no pageblock is MIGRATE_CMA, the buddy allocator never hands out its pages;
// cma_alloc() takes a bitmap range directly and cma_release() gives it back to the area. The same calls on the board
// without the option (kernel.org's CMA) are the comparison.
using System.Globalization;
using Kmem.Physical;

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

    [Fact]
    public void Racing_puts_never_free_an_area_page_to_the_buddy_allocator()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var p = m.CmaAlloc(cma, 1, 0);
        // One thread takes and drops a reference in a loop (get/put pairs); the other puts the owner's reference over and
        // over. Every such put that would be the last one of this PG_reserved page is refused, the count left as it was;
        // when it meets the pair's reference instead it passes, and the pair's put becomes the last one, refused in turn.
        // A check before the decrement lets two racing puts at count 2 both pass it, and one then frees the page to the
        // buddy allocator.
        int stop = 0;
        long pairs = 0, refused = 0, lastPuts = 0;
        Exception? error = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool Running() => Volatile.Read(ref stop) == 0 && clock.Elapsed < TimeSpan.FromSeconds(3) && Volatile.Read(ref error) is null;
        void Guard(Action body)
        {
            try { body(); }
            catch (Exception e) { Interlocked.CompareExchange(ref error, e, null); }
        }
        var pair = new Thread(() => Guard(() =>
        {
            while (Running())
            {
                // A refused last put never takes the count through 0, so a get always finds the owner's reference.
                m.GetPage(p);
                try { m.PutPage(p); }
                catch (BadPageStateException) { Interlocked.Increment(ref refused); }
                pairs++;
            }
        }));
        var last = new Thread(() => Guard(() =>
        {
            while (Running())
            {
                try { m.PutPage(p); }
                catch (BadPageStateException) { Interlocked.Increment(ref refused); }
                lastPuts++;
            }
        }));
        pair.Start();
        last.Start();
        try
        {
            while (Running())
            {
                Thread.Sleep(10);
                if (m.Pages.Frame((int)(p.Pfn - m.Pages.BasePfn)).Flags != (PageFlags.Reserved | PageFlags.Allocated))
                    Volatile.Write(ref stop, 1);
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            pair.Join();
            last.Join();
        }
        Assert.Null(error);
        Assert.True(pairs > 1000 && lastPuts > 100, $"only {pairs} pairs and {lastPuts} last puts");
        Assert.Equal(1, m.PageCount(p));
        Assert.Empty(m.VerifyIntegrity());
        // Each of the owner's puts is refused, or takes the pair's reference and the pair's put is refused instead.
        Assert.Equal(lastPuts, refused);
        Assert.Contains("BUG: Bad page state", m.Dmesg());
        Assert.Contains("PAGE_FLAGS_CHECK_AT_FREE", m.Dmesg());
        // The page is still the area's, and the owner gives it back.
        Assert.True(m.CmaRelease(cma, p, 1));
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void Parallel_get_put_pairs_keep_the_page_and_the_last_put_is_refused()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var p = m.CmaAlloc(cma, 4, 0);
        var pages = Enumerable.Range(0, 4).Select(i => m.PfnToPage(p.Pfn + (ulong)i)).ToArray();
        Parallel.For(0, 4000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var q = pages[i & 3];
            m.GetPage(q);
            m.PutPage(q);
        });
        Assert.All(pages, q => Assert.Equal(1, m.PageCount(q)));
        // The owner's put is the last one: refused on every page, nothing freed, the count back at one.
        foreach (var q in pages)
        {
            var e = Assert.Throws<BadPageStateException>(() => m.PutPage(q));
            Assert.Equal(q.Pfn, e.Pfn);
            Assert.Equal(1, m.PageCount(q));
        }
        Assert.Empty(m.VerifyIntegrity());
        Assert.True(m.CmaRelease(cma, p, 4));
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void Cma_alloc_refuses_a_range_whose_pages_are_not_free_area_pages()
    {
        using var m = Rv1106();
        m.Sysctl.Kmem.CmaBusyRetryWait = TimeSpan.Zero;
        var cma = m.Cma["rk-dma-heap-cma"];
        var a = m.CmaAlloc(cma, 2, 0);
        int idx = (int)(a.Pfn - m.Pages.BasePfn);
        // Taking frames again that cma_alloc() already handed out (as a bitmap out of step with the pages would ask) is
        // refused with a bad page report naming the first such frame, and no frame of the range changes.
        Assert.False(m.Pages.TakeInactiveCmaRange(idx + 1, 2, "cma_alloc", out int bad));
        Assert.Equal(idx + 1, bad);
        Assert.Equal(PageFlags.Reserved | PageFlags.Allocated, m.Pages.Frame(idx + 1).Flags);
        Assert.Equal(1, m.Pages.Frame(idx + 1).RefCount);
        Assert.True(m.Pages.IsReservedOnly(idx + 2));
        Assert.Contains("BUG: Bad page state", m.Dmesg());
        Assert.Contains("already handed out by cma_alloc()", m.Dmesg());
        Assert.Empty(m.VerifyIntegrity());
        // An ordinary page of the buddy allocator is refused as well, and stays the caller's.
        var other = m.AllocPage(Gfp.Kernel);
        Assert.False(m.Pages.TakeInactiveCmaRange((int)(other.Pfn - m.Pages.BasePfn), 1, "cma_alloc", out _));
        Assert.Contains("not a reserved page of the inactive CMA area", m.Dmesg());
        m.FreePage(other);
        Assert.Empty(m.VerifyIntegrity());
        Assert.True(m.CmaRelease(cma, a, 2));
        // Frames taken behind the bitmap's back: cma_alloc() reports the clash, passes the range over like a busy one
        // and hands out the next free range instead.
        Assert.True(m.Pages.TakeInactiveCmaRange(idx + 1, 1, "test", out _));
        Assert.NotEmpty(m.VerifyIntegrity());
        var b = m.CmaAlloc(cma, 4, 0);
        Assert.Equal(cma.BasePfn + 2, b.Pfn);
        Assert.Equal(a.Pfn + 1, cma.LastBusyPfn);
        Assert.Equal(4UL, cma.Used);
        m.Pages.ReturnInactiveCmaRange(idx + 1, 1, "test");
        Assert.Empty(m.VerifyIntegrity());
        Assert.True(m.CmaRelease(cma, b, 4));
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void Vmap_refuses_area_pages_it_would_have_to_free()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var p = m.CmaAlloc(cma, 2, 0);
        var pages = new[] { p, m.PfnToPage(p.Pfn + 1) };
        int areas = m.VmallocAreas.Count;
        // With VM_MAP_PUT_PAGES vfree() would put the last reference of PG_reserved pages: a bad page state each. The vmap
        // is refused, in the log and with its own exception, and nothing is mapped.
        var e = Assert.Throws<ReservedPageException>(() => m.Vmap(pages, VmFlags.Map | VmFlags.MapPutPages));
        Assert.Equal(p.Pfn, e.Pfn);
        Assert.Contains($"vmap: VM_MAP_PUT_PAGES with a PG_reserved page (pfn:{p.Pfn:x5})", m.Dmesg());
        Assert.Equal(areas, m.VmallocAreas.Count);
        Assert.Empty(m.VerifyIntegrity());
        // A plain vmap of the same pages is what a driver does with a CMA buffer: mapped, unmapped, the pages kept.
        nint w = m.Vmap(pages);
        Assert.NotEqual(0, w);
        Assert.Equal(pages[1], m.VmallocToPage(w + 4096));
        Assert.Empty(m.VerifyIntegrity());
        m.Vunmap(w);
        Assert.Equal(1, m.PageCount(p));
        Assert.Empty(m.VerifyIntegrity());
        Assert.True(m.CmaRelease(cma, p, 2));
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void A_vfree_that_cannot_free_a_page_leaves_the_area_mapped_and_the_window_whole()
    {
        using var m = Rv1106();
        // Two pages vfree() can free and, last, the tail page of a compound block, which it cannot.
        var a = m.AllocPage(Gfp.Kernel);
        var b = m.AllocPage(Gfp.Kernel);
        var comp = m.AllocPages(Gfp.Kernel | Gfp.Comp, 1);
        var tail = m.PfnToPage(comp.Pfn + 1);
        nint w = m.Vmap([a, b, tail], VmFlags.Map | VmFlags.MapPutPages);
        Assert.NotEqual(0, w);
        Assert.Empty(m.VerifyIntegrity());
        // Every page is checked before anything changes: the bad page is reported, and the area stays busy and mapped
        // with all its pages still allocated.
        var e = Assert.Throws<BadPageStateException>(() => m.Vfree(w));
        Assert.Equal(tail.Pfn, e.Pfn);
        Assert.Contains("BUG: Bad page state", m.Dmesg());
        Assert.Empty(m.VerifyIntegrity());
        Assert.Contains(m.VmallocAreas, v => v.Address == w && v.NrPages == 3);
        Assert.Equal(a, m.VmallocToPage(w));
        Assert.Equal(tail, m.VmallocToPage(w + 8192));
        Assert.Equal(1, m.PageCount(a));
        Assert.Equal(1, m.PageCount(b));
        // A second try meets the same page again, not a missing area.
        Assert.Throws<BadPageStateException>(() => m.Vfree(w));
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void A_page_mapped_twice_needs_two_references_before_vfree_puts_them()
    {
        using var m = Rv1106();
        var a = m.AllocPage(Gfp.Kernel);
        nint w = m.Vmap([a, a], VmFlags.Map | VmFlags.MapPutPages);
        // vfree() would put the page twice with one reference: refused before the first put, the area kept whole.
        var e = Assert.Throws<BadPageStateException>(() => m.Vfree(w));
        Assert.Equal(a.Pfn, e.Pfn);
        Assert.Contains("mapped 2 times with 1 reference(s)", e.Reason);
        Assert.Equal(1, m.PageCount(a));
        Assert.Equal(a, m.VmallocToPage(w + 4096));
        Assert.Empty(m.VerifyIntegrity());
        // With the second reference taken the same vfree goes through, and the page is free.
        m.GetPage(a);
        m.Vfree(w);
        Assert.DoesNotContain(m.VmallocAreas, v => v.Address == w);
        Assert.Throws<BadPageStateException>(() => m.FreePage(a));
        Assert.Empty(m.VerifyIntegrity());
    }
}
