// Where a vmalloc area's pages come from: order-0 pages one at a time or through the bulk allocator, per release and
// memory policy (vm_area_alloc_pages()), PMD-sized blocks for vmalloc_huge(), and the per-node page counts
// /proc/vmallocinfo prints (show_numa_info()).
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Vmalloc;

internal sealed unsafe partial class VmallocSpace
{
    /// <summary>PMD_SIZE on x86_64 and arm64 (4 KiB pages): the size of a huge vmalloc mapping.</summary>
    private const int PmdOrder = 9;

    /// <summary>
    /// vmalloc_huge() (VM_ALLOW_HUGE_VMAP, mm/vmalloc.c __vmalloc_node_range(), 6.6): where the architecture maps huge
    /// vmalloc (<paramref name="hugeAllowed"/>: HAVE_ARCH_HUGE_VMALLOC, not turned off by <c>nohugevmalloc</c>) and each
    /// online node's share of the size reaches PMD_SIZE, the area is PMD-aligned, its size rounded up to PMD_SIZE and
    /// its pages taken as order-9 blocks (alloc_pages(): the thread's policy, one block per interleave step) and split;
    /// if they cannot all be had, quietly, the ordinary order-0 area instead. <paramref name="huge"/> says which it got
    /// (is_vm_area_hugepages()). Returns 0 on failure.
    /// </summary>
    public nint VmallocHuge(ulong size, Gfp gfp, CallSite caller, bool hugeAllowed, out bool huge)
    {
        huge = false;
        ulong pmd = PageSize << PmdOrder;
        if (hugeAllowed && size / (ulong)_pa.NodeCount >= pmd && size <= ulong.MaxValue - pmd)
        {
            nint a = Vmalloc((size + pmd - 1) & ~(pmd - 1), gfp | Gfp.NoWarn, VmFlags.None, caller, PageAllocator.NumaNoNode, PmdOrder);
            if (a != 0)
            {
                huge = true;
                return a;
            }
        }
        return Vmalloc(size, gfp, VmFlags.None, caller);
    }

    /// <summary>
    /// vm_area_alloc_pages() for order-0 pages: how many of <paramref name="frames"/> it filled. Without CONFIG_NUMA (one
    /// node) page by page from the thread's lists. With it, as the release does: before 5.13 one page at a time,
    /// alloc_pages() (the thread's policy: an interleave policy alternates the pages) or alloc_pages_node(); from 5.13
    /// ("mm/vmalloc: switch to bulk allocator in __vmalloc_area_node()") the bulk allocator, 100 pages a call from 5.14
    /// ("mm/vmalloc: use batched page requests in bulk-allocator"), from the thread's node for NUMA_NO_NODE until 5.15
    /// made that alloc_pages_bulk_array_mempolicy() (the 5.13-5.14 regression of Eric Dumazet's report "numa spreading
    /// of large hash tables no longer a thing"; K: release of the fix from the report's date, 2021-09); a bulk call that
    /// comes back short ends the bulk, and the rest come one page at a time as before 5.13.
    /// </summary>
    private int AllocAreaPages(Gfp pageGfp, Span<int> frames, int node)
    {
        int nr = frames.Length, got = 0;
        var v = _pa.Version;
        if (_pa.NumaEnabled && v.IsAtLeast(5, 13))
        {
            int bulkNode = node >= 0 || v.IsAtLeast(5, 15) ? node : _pa.CurrentNode();
            while (got < nr)
            {
                int request = v.IsAtLeast(5, 14) ? Math.Min(100, nr - got) : nr - got;
                int n = _pa.AllocBulk(pageGfp, bulkNode, frames.Slice(got, request));
                got += n;
                if (n != request) break;
            }
        }
        for (; got < nr; got++)
        {
            int idx = node < 0 ? _pa.Alloc(pageGfp, 0) : _pa.AllocNode(node, pageGfp, 0);
            if (idx < 0) break;
            frames[got] = idx;
        }
        return got;
    }

    /// <summary>
    /// vm_area_alloc_pages() for high-order pages: one alloc_pages() (the thread's policy) or alloc_pages_node() per
    /// block, split_page() into order-0 pages so that each is its own page; how many of <paramref name="frames"/> it filled.
    /// </summary>
    private int AllocAreaBlocks(Gfp gfp, Span<int> frames, int node, int order)
    {
        int got = 0, n = 1 << order;
        while (got + n <= frames.Length)
        {
            int idx = node < 0 ? _pa.Alloc(gfp, order) : _pa.AllocNode(node, gfp, order);
            if (idx < 0) break;
            _pa.SplitPage(idx, order, "vmalloc");
            for (int i = 0; i < n; i++) frames[got + i] = idx + i;
            got += n;
        }
        return got;
    }

    /// <summary>show_numa_info(): the area's own pages counted by page_to_nid() (none for an area that owns no pages).</summary>
    private int[] PagesPerNode(Area a)
    {
        if (a.NrPages == 0) return [];
        var counts = new int[_pa.NodeCount];
        ulong first = (ulong)(a.Start - _start) >> PageShift;
        for (int k = 0; k < a.NrPages; k++)
        {
            int nid = _pa.NodeOfIdx((int)Volatile.Read(ref _pte[first + (ulong)k]) - 1);
            if (nid >= 0) counts[nid]++;
        }
        return counts;
    }
}
