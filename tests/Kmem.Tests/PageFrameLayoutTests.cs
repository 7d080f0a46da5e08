// The page descriptor's layout: its size and every field's offset, which the order-0 fast path relies on when it
// writes a descriptor as whole 64-bit words, and the owner-specific accessors over the shared fields.
using System.Runtime.CompilerServices;
using Kmem.Physical;

namespace Kmem.Tests;

public class PageFrameLayoutTests
{
    [Fact]
    public unsafe void The_descriptor_is_four_words_with_each_field_where_the_fast_path_writes_it()
    {
        Assert.Equal(32, sizeof(PageFrame));
        var f = new PageFrame();
        long Off<T>(ref T field) => (long)Unsafe.ByteOffset(ref Unsafe.As<PageFrame, byte>(ref f), ref Unsafe.As<T, byte>(ref field));
        Assert.Equal(0, Off(ref f.Flags));
        Assert.Equal(4, Off(ref f.RefCount));
        Assert.Equal(8, Off(ref f.MapCount));
        Assert.Equal(12, Off(ref f.Order));
        Assert.Equal(13, Off(ref f.Migratetype));
        Assert.Equal(14, Off(ref f.Zone));
        Assert.Equal(15, Off(ref f.Spare));
        Assert.Equal(16, Off(ref f.Next));
        Assert.Equal(20, Off(ref f.Prev));
        Assert.Equal(24, Off(ref f.Private));
        Assert.Equal(4, sizeof(PageFlags));
    }

    [Fact]
    public void An_order0_page_from_the_fast_path_has_the_descriptor_prep_new_page_writes()
    {
        using var m = Machine.Boot("x86_64");
        var pa = m.Pages;
        // Leave the descriptor dirty in every word the fast path rewrites, then take the page back from the per-CPU list.
        var p = m.AllocPage(Gfp.Kernel);
        int idx = (int)(p.Pfn - pa.BasePfn);
        m.FreePage(p);
        var q = m.AllocPage(Gfp.Kernel);
        Assert.Equal(p, q);                                               // the hot page of this thread's list
        ref PageFrame f = ref pa.Frame(idx);
        Assert.Equal(PageFlags.Allocated, f.Flags);
        Assert.Equal(1, f.RefCount);
        Assert.Equal(0, f.MapCount);
        Assert.Equal(0, f.Order);
        Assert.Equal((byte)MigrateType.Unmovable, f.Migratetype);
        Assert.Equal("Normal", pa.Zones[f.Zone].Name);             // GFP_KERNEL on x86_64: the Normal zone
        Assert.Equal(0, f.Spare);
        Assert.Equal(0, f.Private);
        m.FreePage(q);
    }

    [Fact]
    public void Owner_accessors_name_the_shared_fields()
    {
        var f = new PageFrame { MapCount = 7, Spare = 0x4b, Private = 123 };
        Assert.Equal(7, f.SlabCacheSlot);
        Assert.Equal(0x4b, f.KmallocMark);
        Assert.Equal(0x4b, f.SlabListState);
        Assert.Equal(123, f.CompoundHead);
        f.SlabCounters = 1L << 40;
        Assert.Equal(1L << 40, f.Private);
        f.CompoundHead = 9;
        f.SlabCacheSlot = 3;
        f.SlabListState = 2;
        Assert.Equal((9L, 3, (byte)2), (f.Private, f.MapCount, f.Spare));
    }

    [Fact]
    public void Every_page_handle_carries_the_index_of_its_pfn()
    {
        // The page entry points read a handle's frame index instead of working it out from the PFN: every way of making
        // a handle must give the two in step (the null page has neither).
        using var m = Machine.Boot("rv1106");
        var pages = new List<Page> { m.AllocPages(Gfp.Kernel, 2), m.AllocPagesNode(0, Gfp.Kernel, 0) };
        pages.Add(m.PfnToPage(pages[0].Pfn + 1));
        pages.Add(m.VirtToPage(m.PageAddress(pages[1])));
        var cma = m.Cma.Values.First();
        var c = m.CmaAlloc(cma, 4, 0);
        pages.Add(c);
        nint v = m.Vmalloc(3 * Machine.PageSize, Gfp.Kernel);
        pages.Add(m.VmallocToPage(v + Machine.PageSize));
        var movable = m.AllocMovable()!;
        pages.Add(movable.Page);
        foreach (var p in pages)
        {
            Assert.False(p.IsNull);
            Assert.Equal((long)(p.Pfn - m.Pages.BasePfn), p.Index);
            Assert.Equal(p, m.PfnToPage(p.Pfn));
        }
        Assert.True(default(Page).IsNull);
        Assert.True(Page.Null.IsNull);
        movable.Dispose();
        m.Vfree(v);
        m.CmaRelease(cma, c, 4);
        m.FreePage(pages[1]);
        m.FreePages(pages[0], 2);
        TestSupport.AssertConsistent(m);
    }
}
