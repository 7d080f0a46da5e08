// The system heap (ACK 5.10 drivers/dma-buf/heaps/system_heap.c) and its uncached variant: buffers of
// order-8, order-4 and order-0 blocks, largest first and never stepping back up within one buffer, one
// scatterlist entry per block; blocks come from per-order page pools and return there through the
// deferred-free worker (zeroed), or straight to the page allocator under pressure.
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem;

/// <summary>The <c>system</c> heap (and <c>system-uncached</c>).</summary>
public sealed class SystemHeap : DmaHeap
{
    /// <summary>orders[]: 1 MiB, 64 KiB and 4 KiB blocks.</summary>
    public static readonly int[] Orders = [8, 4, 0];

    /// <summary>HIGH_ORDER_GFP: (GFP_HIGHUSER | __GFP_ZERO | __GFP_NOWARN | __GFP_NORETRY) &amp; ~__GFP_RECLAIM (pools add __GFP_COMP).</summary>
    public const Gfp HighOrderGfp = (Gfp.HighUser | Gfp.Zero | Gfp.NoWarn | Gfp.NoRetry) & ~Gfp.Reclaim;

    /// <summary>LOW_ORDER_GFP: GFP_HIGHUSER | __GFP_ZERO.</summary>
    public const Gfp LowOrderGfp = Gfp.HighUser | Gfp.Zero;

    private readonly PagePool[] _pools;
    private readonly DeferredFree _deferred;

    internal SystemHeap(string name, DmaBufCore core, PagePool[] pools, DeferredFree deferred, bool uncached) : base(name, core)
    {
        _pools = pools;
        _deferred = deferred;
        Uncached = uncached;
    }

    /// <summary>True for <c>system-uncached</c>: CPU mappings are write-combined and the cache syncs are skipped.</summary>
    public bool Uncached { get; }

    /// <summary>
    /// get_pool_size(): the pools' bytes. Both heaps share the pools; only <c>system</c> reports them (ACK's uncached
    /// heap has no get_pool_size), so total_pools_kb counts them once.
    /// </summary>
    private protected override long PoolBytes => Uncached ? 0 : _pools.Sum(p => p.Pages) << PhysicalMemory.PageShift;

    /// <summary>Blocks pooled per order (lowmem, highmem), in <see cref="Orders"/> order.</summary>
    public IReadOnlyList<(int Order, int Low, int High)> PoolCounts
    {
        get
        {
            Core.Life.ThrowIfDead();
            return _pools.Select(p => (p.Order, p.Count.Low, p.Count.High)).ToArray();
        }
    }

    /// <summary>system_heap_do_allocate().</summary>
    private protected override DmaBuf? DoAllocate(long size, int fdFlags, ulong heapFlags)
    {
        var blocks = new List<(int Frame, int Order)>();
        long remaining = size;
        int maxOrder = Orders[0];
        while (remaining > 0)
        {
            // alloc_largest_available(): orders that fit what is left and do not exceed the last one obtained.
            int frame = -1, order = -1;
            foreach (var pool in _pools)
            {
                if (remaining < (PhysicalMemory.PageSize << pool.Order) || pool.Order > maxOrder) continue;
                frame = pool.Alloc();
                if (frame >= 0) { order = pool.Order; break; }
            }
            if (frame < 0)
            {
                foreach (var (f, o) in blocks) Pool(o).Free(f);          // zeroed pages: back to their pools
                return null;
            }
            blocks.Add((frame, order));
            remaining -= PhysicalMemory.PageSize << order;
            maxOrder = order;
        }
        var exporter = new SystemHeapBuffer(this, [.. blocks], size);
        return Core.Export(exporter, size, fdFlags);
    }

    internal PagePool Pool(int order) => _pools.First(p => p.Order == order);

    internal IReadOnlyList<PagePool> Pools => _pools;

    /// <summary>system_heap_dma_buf_release(): the buffer waits on the deferred-free list.</summary>
    internal void ReleaseBuffer(SystemHeapBuffer b)
    {
        var blocks = b.BlockArray;
        _deferred.Add(reason => FreeBlocks(blocks, reason), b.Size >> PhysicalMemory.PageShift);
    }

    /// <summary>system_heap_buf_free(): zero every page and pool the blocks, or free them under pressure.</summary>
    private unsafe void FreeBlocks((int Frame, int Order)[] blocks, DeferredFreeReason reason)
    {
        foreach (var (f, o) in blocks)
        {
            if (reason == DeferredFreeReason.UnderPressure)
            {
                Core.Pages.Free(f, o, "system_heap_buf_free");
                continue;
            }
            // Cleared through the host's view of the frames, HighMem ones included (the kernel maps them to clear them:
            // ACK's system_heap_zero_buffer() vmaps them); the address goes nowhere else.
            new Span<byte>((void*)Core.Pages.IdxToVirt(f), PhysicalMemory.PageSize << o).Clear();
            Pool(o).Free(f);
        }
    }
}
