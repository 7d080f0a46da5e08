// free_reserved_area(): pages memblock kept at boot handed to the buddy allocator later, one by one, each adding to
// its zone's managed pages and to totalram (free_initmem() gives back the kernel's init sections this way).
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    /// <summary>
    /// mm/page_alloc.c free_reserved_area() over [<paramref name="startPfn"/>, <paramref name="endPfn"/>): for each page
    /// still PG_reserved, free_reserved_page(): ClearPageReserved(), init_page_count(), __free_page(), and
    /// adjust_managed_page_count(page, 1). Returns the pages freed.
    /// </summary>
    public long FreeReservedArea(ulong startPfn, ulong endPfn)
    {
        if (startPfn > endPfn || startPfn < BasePfn || endPfn > BasePfn + (ulong)_frames.Count)
            throw new ArgumentOutOfRangeException(nameof(startPfn), $"pfns 0x{startPfn:x}-0x{endPfn:x} are outside the memory map");
        long freed = 0;
        for (ulong pfn = startPfn; pfn < endPfn; pfn++)
        {
            int idx = (int)(pfn - BasePfn);
            ref PageFrame f = ref _f[idx];
            if ((f.Flags & PageFlags.Reserved) == 0) continue;
            int zi = ZoneIndexOfPfn(pfn);
            if (zi < 0) continue;
            var z = Zones[zi];
            f.Flags = PageFlags.Allocated;
            f.RefCount = 1;
            f.Order = 0;
            f.Zone = (byte)zi;
            LockOrder.Enter(LockRank.Zone, z.Lock);
            lock (z.Lock) z.Managed++;
            TotalRamPages++;
            Free(idx, 0, "free_reserved_area");
            freed++;
        }
        return freed;
    }
}
