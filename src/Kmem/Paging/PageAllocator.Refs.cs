// Page references and reshaping: get_page/put_page, split_page and alloc_pages_exact, on top of the
// allocation and free paths of PageAllocator.cs.
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    // ================================================================== refcounts, split, exact

    /// <summary>get_page(): take another reference on the (head of the) page.</summary>
    public void GetPage(int idx, string caller)
    {
        int head = CompoundHead(idx);
        ref PageFrame f = ref _f[head];
        if ((f.Flags & PageFlags.Allocated) == 0 || f.RefCount <= 0)
            throw BadPage(head, "VM_BUG_ON_PAGE(page_ref_count(page) <= 0)", caller);
        Interlocked.Increment(ref f.RefCount);
    }

    /// <summary>put_page(): drop a reference; the last one frees the whole (compound or recorded-order) block.</summary>
    public void PutPage(int idx, string caller)
    {
        int head = CompoundHead(idx);
        ref PageFrame f = ref _f[head];
        if ((f.Flags & PageFlags.Allocated) == 0 || f.RefCount <= 0 || (f.Flags & PageFlags.Slab) != 0)
            throw BadPage(head, "VM_BUG_ON_PAGE(page_ref_count(page) == 0)", caller);
        // PG_reserved never changes while a page is allocated (only the pages an inactive CMA area hands out carry it).
        if ((f.Flags & PageFlags.Reserved) != 0)
        {
            PutReservedPage(ref f, head, caller);
            return;
        }
        // put_page() decrements first and frees on the value it got (put_page_testzero(), include/linux/mm.h, 5.10): a
        // count read before the decrement would let two puts racing at count 2 both think they are not the last.
        int left = Interlocked.Decrement(ref f.RefCount);
        if (left == 0) FreeTheBlock(head, f.Order);
    }

    /// <summary>
    /// put_page() of a page an inactive CMA area handed out (PG_reserved). Any reference but the last drops as usual. The
    /// last one is refused: free_pages_prepare() -> check_free_page() would find PG_reserved (PAGE_FLAGS_CHECK_AT_FREE) and
    /// call bad_page() instead of freeing it (mm/page_alloc.c, 5.10). The kernel leaves the page at count 0; Kmem keeps the
    /// reference, so the owner still holds it for cma_release() and nothing reaches the buddy allocator. The count never
    /// passes through 0 (a compare-and-swap from above 1 only): a get racing the refused put cannot take a reference that
    /// the refusal would then give back a second time.
    /// </summary>
    private void PutReservedPage(ref PageFrame f, int head, string caller)
    {
        while (true)
        {
            int count = Volatile.Read(ref f.RefCount);
            if (count <= 0) throw BadPage(head, "VM_BUG_ON_PAGE(page_ref_count(page) == 0)", caller);
            if (count == 1) throw BadPage(head, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set", caller);
            if (Interlocked.CompareExchange(ref f.RefCount, count - 1, count) == count) return;
        }
    }

    /// <summary>
    /// Why freeing <paramref name="idx"/> with <paramref name="order"/> (__free_pages()) would be a bad page state, in the
    /// words of the report, or null when it may be freed (or its count dropped): for callers that must check before they
    /// change anything.
    /// </summary>
    public string? FreeRefusal(int idx, int order) => FreeCheckReason(idx, order);

    public int PageCount(int idx) => _f[CompoundHead(idx)].RefCount;

    public int CompoundHead(int idx) => (_f[idx].Flags & PageFlags.Tail) != 0 ? _f[idx].CompoundHead : idx;

    /// <summary>split_page(): a non-compound order-N block becomes 2^N independent order-0 pages.</summary>
    public void SplitPage(int idx, int order, string caller)
    {
        ref PageFrame f = ref _f[idx];
        string? bad = FreeCheckReason(idx, order);
        if (bad is null && (f.Flags & PageFlags.Head) != 0) bad = "VM_BUG_ON_PAGE(PageCompound(page))";
        if (bad is not null) throw BadPage(idx, bad, caller);
        int n = 1 << order;
        for (int i = 0; i < n; i++)
        {
            ref PageFrame p = ref _f[idx + i];
            p.Flags = PageFlags.Allocated;
            p.Order = 0;
            p.RefCount = i == 0 ? f.RefCount : 1;
            p.Migratetype = f.Migratetype;
            p.Zone = f.Zone;
        }
    }

    /// <summary>alloc_pages_exact(): the smallest block that fits, with the unused tail pages freed.</summary>
    public int AllocExact(ulong size, Gfp gfp)
    {
        int order = GetOrder(size);
        if ((gfp & Gfp.Comp) != 0)
        {
            WarnOnce("alloc_pages_exact __GFP_COMP", "WARNING: alloc_pages_exact: __GFP_COMP is not allowed; ignored");
            gfp &= ~Gfp.Comp;
        }
        int idx = Alloc(gfp, order);
        if (idx < 0) return -1;
        SplitPage(idx, order, "alloc_pages_exact");
        long used = (long)((size + PhysicalMemory.PageSize - 1) / PhysicalMemory.PageSize);
        for (long i = used; i < 1L << order; i++) Free(idx + (int)i, 0, "alloc_pages_exact");
        return idx;
    }

    /// <summary>get_order(): the order of the smallest block of at least <paramref name="size"/> bytes.</summary>
    public static int GetOrder(ulong size)
    {
        if (size <= PhysicalMemory.PageSize) return 0;
        ulong pages = (size - 1) >> PhysicalMemory.PageShift;
        return 64 - System.Numerics.BitOperations.LeadingZeroCount(pages);
    }
}
