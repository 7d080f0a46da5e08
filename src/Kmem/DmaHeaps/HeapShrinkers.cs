// The two shrinkers of the dma-buf heaps: the page pools' (count low pages, and high pages for a
// highmem-capable request; scan low pages first) and the deferred-free list's (free whole buffers
// straight to the page allocator). Both use DEFAULT_SEEKS and batch 0, as ACK 5.10.
namespace Kmem.DmaHeaps;

/// <summary>dmabuf_page_pool_shrinker.</summary>
internal sealed class PagePoolShrinker(IReadOnlyList<PagePool> pools) : Shrinker("dmabuf_page_pool")
{
    /// <summary>
    /// dmabuf_page_pool_do_shrink() (ACK drivers/dma-buf/heaps/page_pool.c, as ION's pool before it): highmem pages
    /// count and go too when kswapd asks (current_is_kswapd()) or the request could use them (__GFP_HIGHMEM).
    /// </summary>
    private static bool High(ShrinkControl sc) => sc.Kswapd || (sc.GfpMask & Gfp.HighMem) != 0;

    public override long CountObjects(ShrinkControl sc)
    {
        long n = pools.Sum(p => p.CountPages(High(sc)));
        return n == 0 ? ShrinkEmpty : n;
    }

    public override long ScanObjects(ShrinkControl sc)
    {
        long freed = 0;
        foreach (var p in pools)
        {
            if (freed >= sc.NrToScan) break;
            freed += p.Shrink(High(sc), sc.NrToScan - freed);
        }
        return freed;
    }
}

/// <summary>The deferred-free list's shrinker.</summary>
internal sealed class DeferredFreeShrinker(DeferredFree list) : Shrinker("dmabuf-deferred-free")
{
    public override long CountObjects(ShrinkControl sc)
    {
        long n = list.Pages;
        return n == 0 ? ShrinkEmpty : n;
    }

    public override long ScanObjects(ShrinkControl sc) => list.ShrinkUnderPressure(sc.NrToScan);
}
