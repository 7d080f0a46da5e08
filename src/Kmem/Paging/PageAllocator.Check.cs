// A full consistency check of the page allocator, for tests and for `kmem` diagnostics: every free
// list, every counter, merge maximality, and that no page is on two lists at once.
// Locks: each zone->lock alone, then _cachesLock alone for a snapshot of the per-thread lists.
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    /// <summary>Pages on buddy lists and per-CPU lists, and the problems found (empty when consistent).</summary>
    public sealed record CheckResult(long BuddyPages, long PcpPages, List<string> Errors, HashSet<int> FreeFrames);

    /// <summary>
    /// Checks every invariant. Call it while no other thread allocates or frees on this machine
    /// (the per-CPU lists are read without their owners' cooperation).
    /// </summary>
    public CheckResult CheckInvariants()
    {
        var errors = new List<string>();
        var covered = new HashSet<int>();
        long buddyPages = 0, pcpPages = 0;
        int[] claims = UsemapClaims();
        for (int i = 0; i < _fast.Length; i++)
            if (_fast[i].NumaSlot != FastNumaSlot(i))
                errors.Add($"fast-path entry {i} (node row {i / ZoneBitCombinations}): NUMA slot {_fast[i].NumaSlot}, but its zone {_fast[i].Zone?.Name ?? "(none)"} gives {FastNumaSlot(i)}");
        foreach (var z in Zones)
        {
            LockOrder.Enter(LockRank.Zone, z.Lock);
            lock (z.Lock)
            {
                long free = 0, cma = 0;
                for (int o = 0; o < MaxOrder; o++)
                {
                    for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
                    {
                        long n = 0;
                        int prev = -1;
                        for (int idx = z.FirstOnList(o, mt); idx >= 0; idx = _f[idx].Next)
                        {
                            ref PageFrame f = ref _f[idx];
                            ulong pfn = BasePfn + (ulong)idx;
                            string where = $"{z.Name} order {o} {PageTypes.MigrateTypeNames[mt]} pfn 0x{pfn:x}";
                            if (f.Prev != prev) errors.Add($"{where}: broken back link");
                            if ((f.Flags & PageFlags.Buddy) == 0) errors.Add($"{where}: on a free list without PG_buddy");
                            if (f.Order != o) errors.Add($"{where}: order field {f.Order}");
                            if (f.Migratetype != mt) errors.Add($"{where}: migratetype field {f.Migratetype}");
                            if ((pfn & ((1UL << o) - 1)) != 0) errors.Add($"{where}: misaligned block");
                            if (idx < z.StartIdx || idx + (1 << o) > z.EndIdx) errors.Add($"{where}: block outside the zone");
                            for (int i = 0; i < 1 << o; i++)
                                if (!covered.Add(idx + i)) { errors.Add($"{where}: page 0x{pfn + (ulong)i:x} is free twice"); break; }
                            if (o < MaxOrder - 1)
                            {
                                int buddy = (int)((long)(pfn ^ (1UL << o)) - (long)BasePfn);
                                if (z.Contains(buddy) && (_f[buddy].Flags & PageFlags.Buddy) != 0 && _f[buddy].Order == o)
                                {
                                    int bmt = _f[buddy].Migratetype;
                                    bool mayStaySplit = o >= PageblockOrder && bmt != mt &&
                                        (mt is (int)MigrateType.Cma or (int)MigrateType.Isolate || bmt is (int)MigrateType.Cma or (int)MigrateType.Isolate);
                                    if (!mayStaySplit) errors.Add($"{where}: free buddy at the same order was not merged");
                                }
                            }
                            n++;
                            prev = idx;
                            if (n > z.Spanned) { errors.Add($"{where}: list loops"); break; }
                        }
                        if (n != z.NrFree(o, mt)) errors.Add($"{z.Name} order {o} {PageTypes.MigrateTypeNames[mt]}: nr_free {z.NrFree(o, mt)} but {n} blocks listed");
                        if (mt != (int)MigrateType.Isolate) free += n << o;
                        if (mt == (int)MigrateType.Cma) cma += n << o;
                    }
                }
                uint orders = 0;
                for (int o = 0; o < z.MaxOrder; o++)
                    for (int mt = 0; mt < PageTypes.PcpTypes; mt++)
                        if (!z.ListEmpty(o, mt)) orders |= 1u << o;
                if (orders != z.PcpTypeOrders) errors.Add($"{z.Name}: orders with a per-CPU type's free block 0x{z.PcpTypeOrders:x} but lists give 0x{orders:x}");
                if (free != z.FreePages) errors.Add($"{z.Name}: NR_FREE_PAGES {z.FreePages} but lists hold {free}");
                CheckUsemap(z, claims, errors);
                if (z.Populated && _pcpPlaces[z.Index] is var place && (place.Offset, place.Cap, place.High) != (z.PcpOffset, z.PcpCap, z.PcpHigh))
                    errors.Add($"{z.Name}: the free path's copy of the lists' place ({place.Offset}, {place.Cap}, high {place.High}) is not the zone's ({z.PcpOffset}, {z.PcpCap}, high {z.PcpHigh})");
                if (cma != z.FreeCmaPages) errors.Add($"{z.Name}: NR_FREE_CMA_PAGES {z.FreeCmaPages} but CMA lists hold {cma}");
                buddyPages += free;
            }
        }
        PcpThreadCache[] caches;
        lock (_cachesLock) caches = _caches.ToArray();
        foreach (var c in caches)
        {
            if (c.Mem == null) continue;
            string? row = PcpThreadCache.RowError(c.Mem, c.Policy is not null, NodeCount);
            if (row is not null) errors.Add($"per-CPU block of CPU {c.Cpu}: {row}");
            foreach (var z in Zones)
            {
                if (!z.Populated) continue;
                var pcp = c.For(z);
                int count = 0;
                for (int list = 0; list < z.PcpLists; list++)
                {
                    int o = _pcp.OrderOf(list);
                    foreach (int idx in pcp.Pages(list))
                    {
                        count += 1 << o;
                        ref PageFrame f = ref _f[idx];
                        if ((f.Flags & PageFlags.Pcp) == 0 || f.RefCount != 0) errors.Add($"pcp page 0x{BasePfn + (ulong)idx:x}: flags {f.Flags} refcount {f.RefCount}");
                        if (o > 0 && f.Order != o) errors.Add($"pcp block 0x{BasePfn + (ulong)idx:x} on an order-{o} list has order {f.Order}");
                        if (!pcp.Zone.Contains(idx) || !pcp.Zone.Contains(idx + (1 << o) - 1)) errors.Add($"pcp page 0x{BasePfn + (ulong)idx:x} is not in zone {pcp.Zone.Name}");
                        for (int i = 0; i < 1 << o; i++)
                            if (!covered.Add(idx + i)) { errors.Add($"pcp page 0x{BasePfn + (ulong)(idx + i):x} is also free elsewhere"); break; }
                    }
                }
                if (count != pcp.Count) errors.Add($"pcp list of {pcp.Zone.Name}: count {pcp.Count} but {count} pages listed");
                pcpPages += count;
            }
        }
        return new CheckResult(buddyPages, pcpPages, errors, covered);
    }

    /// <summary>How many zones' spans cover each usemap block.</summary>
    private int[] UsemapClaims()
    {
        var claims = new int[PageblockOf(_frames.Count - 1) + 1];
        foreach (var z in Zones)
            if (z.EndIdx > z.StartIdx)
                for (long b = PageblockOf(z.StartIdx); b <= PageblockOf(z.EndIdx - 1); b++) claims[b]++;
        return claims;
    }

    /// <summary>
    /// The usemap's copy of each of <paramref name="z"/>'s pageblocks agrees with the zone's own entry on every frame of
    /// the block in the zone's span, or holds <see cref="PageblockUsemap.Shared"/> where another zone's span covers the
    /// block too (<paramref name="claims"/>).
    /// </summary>
    private void CheckUsemap(Zone z, int[] claims, List<string> errors)
    {
        for (int b = 0; b < z.PageblockCount; b++)
        {
            int idx = (int)Math.Max(z.PageblockStartIdx(b), z.StartIdx);
            int end = (int)Math.Min(z.PageblockStartIdx(b) + (1L << PageblockOrder), z.EndIdx);
            bool shared = claims[PageblockOf(idx)] > 1;
            byte want = shared ? PageblockUsemap.Shared : (byte)z.PageblockTypeAt(b);
            int bad = Usemap.FramesOf(idx, end - idx).IndexOfAnyExcept(want);
            if (bad >= 0)
                errors.Add($"{z.Name} pageblock at pfn 0x{BasePfn + (ulong)idx:x}: usemap {Usemap.TypeOf(idx + bad)} at pfn 0x{BasePfn + (ulong)(idx + bad):x} but the zone's type is {PageTypes.MigrateTypeNames[(int)z.PageblockTypeAt(b)]}{(shared ? " (a shared block)" : "")}");
        }
    }

    /// <summary>The usemap's block number of frame <paramref name="idx"/>.</summary>
    private long PageblockOf(int idx) => ((long)idx + Usemap.Bias) >> PageblockOrder;
}
