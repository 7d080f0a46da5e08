// The IOVA space of an IOMMU domain: device addresses handed out top-down below the device's DMA mask,
// size-aligned as alloc_iova_fast() does (requests under 32 pages rounded up to a power of two).
using System.Numerics;
using Kmem.Core;

namespace Kmem.Dma;

/// <summary>An IOVA allocator over page frame numbers of the device address space.</summary>
internal sealed class IovaDomain
{
    private readonly RangeSet _free = new();
    private readonly Lock _lock = new();

    public IovaDomain(ulong dmaMask)
    {
        // iova domain start_pfn 1: device address 0 is never handed out.
        ulong pages = dmaMask == ulong.MaxValue ? 1UL << 52 : (dmaMask + 1) >> 12;
        _free.Add(1, pages);
    }

    /// <summary>The pages an IOVA for <paramref name="pages"/> pages takes (iova_len).</summary>
    public static ulong IovaLength(ulong pages) => pages < 32 ? BitOperations.RoundUpToPowerOf2(pages) : pages;

    /// <summary>alloc_iova_fast(): the first IOVA page of a range of <see cref="IovaLength"/> pages, or 0 when the space is full.</summary>
    public ulong Alloc(ulong pages)
    {
        ulong len = IovaLength(pages);
        ulong align = BitOperations.RoundUpToPowerOf2(len);
        LockOrder.Enter(LockRank.Iova, _lock);
        lock (_lock) return _free.TryTakeHighest(len, align, ulong.MaxValue, out ulong pfn) ? pfn : 0;
    }

    /// <summary>free_iova_fast().</summary>
    public void Free(ulong pfn, ulong pages)
    {
        LockOrder.Enter(LockRank.Iova, _lock);
        lock (_lock) _free.Add(pfn, pfn + IovaLength(pages));
    }

    /// <summary>Free IOVA pages.</summary>
    public ulong FreePages { get { LockOrder.Enter(LockRank.Iova, _lock); lock (_lock) return _free.Total; } }
}
