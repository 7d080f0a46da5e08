// The dma-buf heaps' page pools (ACK 5.10 drivers/dma-buf/heaps/page_pool.c): one pool per order with a
// lowmem and a highmem list, no size limit, pages counted in NR_KERNEL_MISC_RECLAIMABLE, trimmed only by
// their shrinker (low pages first, high pages too for kswapd or a highmem-capable request).
using Kmem.Paging;

namespace Kmem.DmaHeaps;

/// <summary>A pool of free, zeroed blocks of one order (<c>struct dmabuf_page_pool</c>).</summary>
internal sealed class PagePool
{
    private readonly PageAllocator _pa;
    private readonly Queue<int> _lowQ = new(), _highQ = new();
    private readonly Lock _lock = new();

    public PagePool(PageAllocator pa, Gfp gfp, int order)
    {
        _pa = pa;
        Gfp = gfp | Gfp.Comp;
        Order = order;
    }

    public Gfp Gfp { get; }
    public int Order { get; }

    /// <summary>The first frames of the pooled blocks (a snapshot, for the memory map).</summary>
    public int[] Blocks() { lock (_lock) return [.. _lowQ, .. _highQ]; }

    /// <summary>Blocks on the lowmem and highmem lists.</summary>
    public (int Low, int High) Count { get { lock (_lock) return (_lowQ.Count, _highQ.Count); } }

    /// <summary>Pages held (both lists).</summary>
    public long Pages { get { lock (_lock) return (long)(_lowQ.Count + _highQ.Count) << Order; } }

    /// <summary>PageHighMem(): dmabuf_page_pool_add() files a page on POOL_HIGHPAGE or POOL_LOWPAGE by it.</summary>
    private bool IsHigh(int frame) => _pa.IsHighMem(frame);

    /// <summary>dmabuf_page_pool_alloc(): the highmem list, then the lowmem list, else the page allocator. -1 when none.</summary>
    public int Alloc()
    {
        lock (_lock)
        {
            if (_highQ.Count > 0 || _lowQ.Count > 0)
            {
                int f = _highQ.Count > 0 ? _highQ.Dequeue() : _lowQ.Dequeue();
                _pa.Stat.ModKernelMiscReclaimable(-(1L << Order), Math.Max(0, _pa.NodeOfIdx(f)));
                return f;
            }
        }
        return _pa.Alloc(Gfp, Order);
    }

    /// <summary>dmabuf_page_pool_free(): onto the tail of the list for its memory kind (the block must be zero already).</summary>
    public void Free(int frame)
    {
        lock (_lock) (IsHigh(frame) ? _highQ : _lowQ).Enqueue(frame);
        _pa.Stat.ModKernelMiscReclaimable(1L << Order, Math.Max(0, _pa.NodeOfIdx(frame)));
    }

    /// <summary>The shrinker's count: low pages, plus high pages when <paramref name="high"/>.</summary>
    public long CountPages(bool high) { lock (_lock) return (long)(_lowQ.Count + (high ? _highQ.Count : 0)) << Order; }

    /// <summary>Frees up to <paramref name="nrToScan"/> pages back to the page allocator, low pages first; returns pages freed.</summary>
    public long Shrink(bool high, long nrToScan)
    {
        long freed = 0;
        while (freed < nrToScan)
        {
            int f;
            lock (_lock)
            {
                if (_lowQ.Count > 0) f = _lowQ.Dequeue();
                else if (high && _highQ.Count > 0) f = _highQ.Dequeue();
                else break;
            }
            _pa.Stat.ModKernelMiscReclaimable(-(1L << Order), Math.Max(0, _pa.NodeOfIdx(f)));
            _pa.Free(f, Order, "dmabuf_page_pool_shrink");
            freed += 1L << Order;
        }
        return freed;
    }

    /// <summary>Gives every block back (machine shutdown or heap teardown).</summary>
    public void Drain() => Shrink(true, long.MaxValue);
}
