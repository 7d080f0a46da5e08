// The buddy allocator through the public API: real memory, orders, zones by GFP, zeroing,
// compound pages, references, split and exact allocations, per-CPU lists and merging.
namespace Kmem.Tests;

public class PageAllocatorTests
{
    [Fact]
    public void Pages_are_real_memory_at_the_linear_address()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel, 2);
        Assert.False(p.IsNull);
        Assert.Equal(0UL, p.Pfn % 4);
        var span = m.PageSpan(p, 2);
        Assert.Equal(16384, span.Length);
        span.Fill(0x5A);
        nint addr = m.PageAddress(p);
        unsafe { Assert.Equal(0x5A, *(byte*)(addr + 16383)); }
        Assert.Equal(p, m.VirtToPage(addr + 5000 - 5000));
        Assert.Equal(p.Pfn + 1, m.VirtToPage(addr + 4096).Pfn);
        Assert.Equal(p.Pfn << 12, m.VirtToPhys(addr));
        Assert.Equal(addr + 123, m.PhysToVirt((p.Pfn << 12) + 123));
        Assert.Equal(p, m.PfnToPage(m.PageToPfn(p)));
        Assert.Equal(m.PfnToPhys(p.Pfn), m.PageToPhys(p));
        m.FreePages(p, 2);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Fixed_entry_points_work_as_documented()
    {
        using var m = Machine.Boot("x86_64");
        Page pg = m.AllocPages(Gfp.Kernel, order: 2);
        m.FreePages(pg, order: 2);
        nint a = m.GetFreePages(Gfp.Kernel, order: 0);
        Assert.NotEqual(0, a);
        m.FreePages(a, 0);
        nint z = m.GetZeroedPage(Gfp.Kernel);
        unsafe { Assert.True(new ReadOnlySpan<byte>((void*)z, 4096).IndexOfAnyExcept((byte)0) < 0); }
        m.FreePage(z);
        m.FreePages(0, 3); // free_pages(0, …) is ignored
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Allocations_come_from_the_zone_the_gfp_asks_for()
    {
        using var m = Machine.Boot("x86_64");
        var dma = m.AllocPage(Gfp.Kernel | Gfp.Dma);
        var dma32 = m.AllocPage(Gfp.Kernel | Gfp.Dma32);
        var normal = m.AllocPage(Gfp.Kernel);
        Assert.True(dma.Pfn < 4096, $"DMA page {dma}");
        Assert.True(dma32.Pfn >= 4096 && dma32.Pfn < 0x100000, $"DMA32 page {dma32}");
        Assert.True(normal.Pfn >= 0x100000, $"Normal page {normal}");
        m.FreePage(dma); m.FreePage(dma32); m.FreePage(normal);
    }

    [Fact]
    public void Zero_flag_zeroes_reused_memory()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        m.PageSpan(p).Fill(0xFF);
        m.FreePage(p);
        var q = m.AllocPage(Gfp.Kernel | Gfp.Zero);
        Assert.Equal(p, q); // the per-CPU list is LIFO: the hot page comes back
        Assert.True(m.PageSpan(q).IndexOfAnyExcept((byte)0) < 0);
        m.FreePage(q);
    }

    [Fact]
    public void Order_zero_pages_go_through_the_per_cpu_list()
    {
        using var m = Machine.Boot("rv1106");
        m.DrainAllPages(); // the boot's slab caches left pages on this thread's list
        var normal = m.Zones.Single(z => z.Name == "Normal");
        long free0 = normal.FreePages;
        var p = m.AllocPage(Gfp.Kernel);
        // rmqueue_bulk moved a whole batch to this thread's list; the zone counter dropped by a batch.
        Assert.Equal(free0 - normal.PcpBatch, normal.FreePages);
        Assert.Equal(normal.PcpBatch - 1, normal.PcpPages);
        m.FreePage(p);
        Assert.Equal(normal.PcpBatch, normal.PcpPages);
        m.DrainAllPages();
        Assert.Equal(0, normal.PcpPages);
        Assert.Equal(free0, normal.FreePages);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_per_cpu_list_is_bounded_by_high()
    {
        using var m = Machine.Boot("rv1106");
        var normal = m.Zones.Single(z => z.Name == "Normal");
        var pages = Enumerable.Range(0, 400).Select(_ => m.AllocPage(Gfp.Kernel)).ToList();
        foreach (var p in pages) m.FreePage(p);
        Assert.True(normal.PcpPages < normal.PcpHigh, $"{normal.PcpPages} pages on the list, high {normal.PcpHigh}");
        Assert.True(normal.PcpPages >= normal.PcpHigh - normal.PcpBatch);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Freeing_everything_restores_the_boot_free_lists()
    {
        using var m = Machine.Boot("rv1106");
        string boot = TestSupport.Buddy(m);
        var rnd = new Random(42);
        var held = new List<(Page, int)>();
        for (int i = 0; i < 3000; i++)
        {
            int order = rnd.Next(0, 6);
            var p = m.AllocPages(i % 3 == 0 ? Gfp.HighUserMovable : Gfp.Kernel, order);
            if (!p.IsNull) held.Add((p, order));
        }
        foreach (var (p, o) in held.OrderBy(_ => rnd.Next())) m.FreePages(p, o);
        Assert.Equal(boot, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Compound_pages_know_their_head()
    {
        using var m = Machine.Boot("rv1106");
        var head = m.AllocPages(Gfp.Kernel | Gfp.Comp, 3);
        var tail = m.PfnToPage(head.Pfn + 5);
        Assert.Equal(1, m.PageCount(tail));
        m.GetPage(tail);            // references go to the head
        Assert.Equal(2, m.PageCount(head));
        m.PutPage(head);
        Assert.Throws<BadPageStateException>(() => m.FreePages(tail, 0));
        m.PutPage(tail);            // the last reference frees all 8 pages
        TestSupport.AssertConsistent(m);
        Assert.Throws<BadPageStateException>(() => m.FreePages(head, 3));
    }

    [Fact]
    public void Extra_references_keep_a_page_alive()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel | Gfp.Comp, 1);
        m.GetPage(p);
        m.FreePages(p, 1);          // drops one reference only
        Assert.Equal(1, m.PageCount(p));
        m.PageSpan(p, 1).Fill(1);   // still ours
        m.FreePages(p, 1);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Non_compound_free_with_extra_reference_returns_the_upper_parts()
    {
        // __free_pages(): a held non-compound block gives back everything but its first page.
        using var m = Machine.Boot("rv1106");
        var normal = m.Zones.Single(z => z.Name == "Normal");
        var p = m.AllocPages(Gfp.Kernel, 2);
        m.DrainAllPages();
        long free = normal.FreePages;
        m.GetPage(p);
        m.FreePages(p, 2);
        m.DrainAllPages();
        Assert.Equal(free + 3, normal.FreePages);
        m.PutPage(p);
        m.DrainAllPages();
        Assert.Equal(free + 4, normal.FreePages);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Split_page_makes_independent_pages()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel, 2);
        m.SplitPage(p, 2);
        for (ulong i = 3; i < 4; i--) m.FreePage(m.PfnToPage(p.Pfn + i));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Exact_allocations_free_the_unused_tail()
    {
        using var m = Machine.Boot("rv1106");
        var normal = m.Zones.Single(z => z.Name == "Normal");
        m.DrainAllPages();
        long free = normal.FreePages + normal.PcpPages;
        nint a = m.AllocPagesExact(5 * 4096 + 1, Gfp.Kernel); // 6 pages out of an order-3 block
        Assert.NotEqual(0, a);
        Assert.Equal(free - 6, normal.FreePages + normal.PcpPages);
        m.FreePagesExact(a, 5 * 4096 + 1);
        Assert.Equal(free, normal.FreePages + normal.PcpPages);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Unmovable_allocations_never_land_in_cma()
    {
        using var m = TestSupport.Small();
        var cma = m.Cma["small-cma"];
        var held = new List<Page>();
        for (int i = 0; i < 20000; i++)
        {
            var p = m.AllocPage(Gfp.Kernel | Gfp.NoWarn | Gfp.NoRetry);
            if (p.IsNull) break;
            Assert.False(p.Pfn >= cma.BasePfn && p.Pfn < cma.BasePfn + cma.Count, $"unmovable page {p} in CMA");
            held.Add(p);
        }
        Assert.Equal(2048, m.Zones[0].FreeCmaPages);
        // movable allocations may use the CMA pageblocks
        var movable = new List<Page>();
        for (int i = 0; i < 1000; i++) { var p = m.AllocPage(Gfp.HighUserMovable | Gfp.NoWarn | Gfp.NoRetry); if (!p.IsNull) movable.Add(p); }
        Assert.Contains(movable, p => p.Pfn >= cma.BasePfn && p.Pfn < cma.BasePfn + cma.Count);
        foreach (var p in held.Concat(movable)) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Stealing_converts_a_whole_pageblock()
    {
        using var m = Machine.Boot("rv1106");
        var normal = m.Zones.Single(z => z.Name == "Normal");
        int before = normal.PageblockTypes.Count(t => t == MigrateType.Reclaimable);
        var p = m.AllocPages(Gfp.Kernel | Gfp.Reclaimable, 4); // no reclaimable block exists at boot: steal a movable one
        Assert.Equal(before + 1, normal.PageblockTypes.Count(t => t == MigrateType.Reclaimable));
        m.FreePages(p, 4);
        TestSupport.AssertConsistent(m);
    }
}
