// Misuse of the page allocator: every case logs the kernel's report, raises a KmemException subtype
// (or fails as the kernel does), and leaves every list and counter exactly as it was.
namespace Kmem.Tests;

public class BadInputTests
{
    private static void Rejected<T>(Machine m, Action misuse, string logText) where T : Exception =>
        TestSupport.Rejected<T>(m, misuse, logText);

    [Fact]
    public void Double_free_of_an_order_zero_page()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        m.FreePage(p);
        Rejected<BadPageStateException>(m, () => m.FreePage(p), "BUG: Bad page state in process");
        Assert.Contains("page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)", m.Dmesg());
        Assert.Contains("Tainted: G    B", m.Dmesg());
    }

    [Fact]
    public void Double_free_of_a_high_order_block()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel, 3);
        m.FreePages(p, 3);
        Rejected<BadPageStateException>(m, () => m.FreePages(p, 3), $"pfn:{p.Pfn:x5}");
    }

    [Fact]
    public void Free_with_the_wrong_order_then_the_right_one()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel, 2);
        Rejected<BadPageStateException>(m, () => m.FreePages(p, 3), "freed with order 3, allocated with order 2");
        m.FreePages(p, 2);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Free_of_an_interior_page()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel, 2);
        Rejected<BadPageStateException>(m, () => m.FreePage(m.PfnToPage(p.Pfn + 1)), "page_ref_count(page) == 0");
        m.FreePages(p, 2);
    }

    [Fact]
    public void Free_of_a_compound_tail()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel | Gfp.Comp, 2);
        Rejected<BadPageStateException>(m, () => m.FreePage(m.PfnToPage(p.Pfn + 2)), "VM_BUG_ON_PAGE(PageTail(page))");
        m.FreePages(p, 2);
    }

    [Fact]
    public void Free_of_a_reserved_page()
    {
        using var m = Machine.Boot("rv1106");
        var kernelPage = m.PfnToPage(0x10); // inside the kernel image
        Rejected<BadPageStateException>(m, () => m.FreePage(kernelPage), "PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
        Assert.Contains("flags: 0x1000(reserved)", m.Dmesg());
    }

    [Fact]
    public void Free_of_a_page_that_was_never_allocated()
    {
        using var m = Machine.Boot("rv1106");
        var free = m.PfnToPage(0x9000);
        Rejected<BadPageStateException>(m, () => m.FreePages(free, 0), "BUG: Bad page state");
    }

    [Fact]
    public void Free_of_the_null_page()
    {
        using var m = Machine.Boot("rv1106");
        Rejected<InvalidAddressException>(m, () => m.FreePage(Page.Null), "NULL pointer");
    }

    [Fact]
    public void Impossible_order_on_free()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        Rejected<BadPageStateException>(m, () => m.FreePages(p, 9), "MAX_ORDER is 9");   // rv1106_defconfig: FORCE_MAX_ZONEORDER=9
        Rejected<BadPageStateException>(m, () => m.FreePages(p, -1), "MAX_ORDER");
        m.FreePage(p);
    }

    [Fact]
    public void Impossible_order_on_alloc_warns_once_and_fails()
    {
        using var m = Machine.Boot("rv1106");
        string before = TestSupport.State(m);
        Assert.True(m.AllocPages(Gfp.Kernel, 11).IsNull);
        Assert.True(m.AllocPages(Gfp.Kernel, 30).IsNull);
        Assert.True(m.AllocPages(Gfp.Kernel, -2).IsNull);
        Assert.Equal(before, TestSupport.State(m));
        string log = m.Dmesg();
        Assert.Contains("------------[ cut here ]------------", log);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(log, "order .* >= MAX_ORDER"));
        Assert.Contains("Tainted: G        W", log);
    }

    [Fact]
    public void NoWarn_silences_the_order_warning()
    {
        using var m = Machine.Boot("rv1106");
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 12).IsNull);
        Assert.DoesNotContain("cut here", m.Dmesg());
    }

    [Fact]
    public void Addresses_outside_memory_are_rejected()
    {
        using var m = Machine.Boot("x86_64");
        Rejected<InvalidAddressException>(m, () => m.PfnToPage(0xA0), "not backed by memory");          // the legacy hole
        Rejected<InvalidAddressException>(m, () => m.PfnToPage(0x200000), "not backed by memory");      // past the end
        Rejected<InvalidAddressException>(m, () => m.FreePages((nint)0x1000, 0), "not in this machine's linear map");
        nint a = m.GetFreePages(Gfp.Kernel, 0);
        Rejected<InvalidAddressException>(m, () => m.FreePages(a + 8, 0), "not page aligned");
        Rejected<InvalidAddressException>(m, () => m.VirtToPage(12345), "linear map");
        m.FreePages(a, 0);
    }

    [Fact]
    public void Contradictory_zone_modifiers_are_rejected()
    {
        using var m = Machine.Boot("x86_64");
        Rejected<ArgumentException>(m, () => m.AllocPage(Gfp.Kernel | Gfp.Dma | Gfp.Dma32), "at most one of __GFP_DMA");
    }

    [Fact]
    public void Pages_from_another_machine_are_rejected()
    {
        using var a = Machine.Boot("rv1106");
        using var b = Machine.Boot("rv1106");
        var p = a.AllocPage(Gfp.Kernel);
        Rejected<InvalidAddressException>(b, () => b.FreePage(p), "another machine");
        Rejected<InvalidAddressException>(b, () => b.FreePages(a.PageAddress(p), 0), "linear map");
        a.FreePage(p);
    }

    [Fact]
    public void Kfree_of_another_machines_object_is_rejected_even_on_the_fast_path()
    {
        using var a = Machine.Boot("x86_64");
        using var b = Machine.Boot("x86_64");
        nint p = a.Kmalloc(64, Gfp.Kernel);
        a.Kfree(a.Kmalloc(64, Gfp.Kernel));   // this thread's kfree hint now names a's kmalloc-64, whose CPU slab holds p
        long inUse = a.SlabCaches.Single(c => c.Name == "kmalloc-64").ObjectsInUse;
        Rejected<InvalidAddressException>(b, () => b.Kfree(p), "is not an address of this machine's memory");
        Assert.Equal(inUse, a.SlabCaches.Single(c => c.Name == "kmalloc-64").ObjectsInUse);
        a.Kfree(p);
        TestSupport.AssertConsistent(a);
        TestSupport.AssertConsistent(b);
    }

    [Fact]
    public void Put_and_get_on_free_pages_are_rejected()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        m.FreePage(p);
        Rejected<BadPageStateException>(m, () => m.GetPage(p), "page_ref_count(page) <= 0");
        Rejected<BadPageStateException>(m, () => m.PutPage(p), "page_ref_count(page) == 0");
        Rejected<BadPageStateException>(m, () => m.SplitPage(p, 0), "page_ref_count");
    }

    [Fact]
    public void Split_of_a_compound_page_is_rejected()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel | Gfp.Comp, 2);
        Rejected<BadPageStateException>(m, () => m.SplitPage(p, 2), "PageCompound");
        m.FreePages(p, 2);
    }

    [Fact]
    public void Bad_page_reports_are_rate_limited()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        m.FreePage(p);
        for (int i = 0; i < 70; i++) Assert.Throws<BadPageStateException>(() => m.FreePage(p));
        Assert.Equal(60, System.Text.RegularExpressions.Regex.Matches(m.Dmesg(), "BUG: Bad page state in process").Count);
        TestSupport.AssertConsistent(m);
    }
}
