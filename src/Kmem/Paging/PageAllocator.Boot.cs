// The page allocator's boot: present and managed pages per zone from the banks and reservations, CMA pageblocks,
// and memblock_free_all() handing every free range to the buddy lists in the largest aligned blocks.
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    private void InitMemory()
    {
        // Present pages per zone, from the memory banks.
        foreach (var bank in _settings.Memory)
            foreach (var z in Zones)
                z.Present += (long)Overlap(bank.Start, bank.End, z.StartPfn, z.EndPfn);

        // Reserved pages: PG_reserved, never freed to the buddy allocator. With Rockchip's CONFIG_CMA_INACTIVE the CMA areas
        // stay so too: cma_activate_area() returns before init_cma_reserved_pageblock() (mm/cma.c), so their pages never
        // reach the buddy allocator nor the managed count, and no pageblock becomes MIGRATE_CMA.
        var reservedPerZone = new long[Zones.Length];
        foreach (var r in _settings.Reserved.Concat(_settings.Cma.Where(c => c.Inactive)))
        {
            // The boot plan clips every range to memory; a range past the frame table would write outside it.
            if (r.Start < BasePfn || r.End > BasePfn + (ulong)_settings.FrameCount || r.End < r.Start)
                throw new ArgumentException($"reserved range '{r.Name}' [0x{r.Start:x}, 0x{r.End:x}) lies outside the frame table");
            for (ulong pfn = r.Start; pfn < r.End; pfn++)
            {
                ref PageFrame f = ref _f[pfn - BasePfn];
                if ((f.Flags & PageFlags.Reserved) != 0) continue;
                f.Flags |= PageFlags.Reserved;
                f.RefCount = 1;
                int z = ZoneIndexOfPfn(pfn);
                if (z >= 0) reservedPerZone[z]++;
            }
        }
        for (int i = 0; i < Zones.Length; i++)
        {
            Zones[i].Managed = Zones[i].Present - reservedPerZone[i];
            PhysPages += Zones[i].Present;
            TotalRamPages += Zones[i].Managed;
        }

        // CMA areas: every pageblock becomes MIGRATE_CMA before its pages are released. totalcma_pages counts every area
        // (cma_init_reserved_mem()); zone->cma_pages only the activated ones.
        foreach (var c in _settings.Cma)
        {
            TotalCmaPages += (long)c.Count;
            if (c.Inactive) continue;
            ActiveCmaPages += (long)c.Count;
            for (ulong pfn = c.Start; pfn < c.End; pfn += 1UL << PageblockOrder)
            {
                var z = Zones[ZoneIndexOfPfn(pfn)];
                z.SetPageblockType((int)(pfn - BasePfn), MigrateType.Cma);
            }
            var zone = Zones[ZoneIndexOfPfn(c.Start)];
            zone.CmaPages += (long)c.Count;
        }

        // memblock_free_all(): hand every free range to the buddy allocator in the largest aligned blocks.
        foreach (var bank in _settings.Memory)
        {
            ulong pfn = bank.Start;
            while (pfn < bank.End)
            {
                if ((_f[pfn - BasePfn].Flags & PageFlags.Reserved) != 0) { pfn++; continue; }
                ulong end = pfn;
                while (end < bank.End && (_f[end - BasePfn].Flags & PageFlags.Reserved) == 0) end++;
                FreeBootRange(pfn, end);
                pfn = end;
            }
        }
    }

    private void FreeBootRange(ulong start, ulong end)
    {
        while (start < end)
        {
            var zone = Zones[ZoneIndexOfPfn(start)];
            ulong zoneEnd = Math.Min(end, zone.EndPfn);
            int order = MaxOrder - 1;
            while (order > 0 && ((start & ((1UL << order) - 1)) != 0 || start + (1UL << order) > zoneEnd)) order--;
            int idx = (int)(start - BasePfn);
            zone.FreeOnePage(idx, order, (int)zone.PageblockType(idx));
            start += 1UL << order;
        }
    }

    private static ulong Overlap(ulong a0, ulong a1, ulong b0, ulong b1)
    {
        ulong s = Math.Max(a0, b0), e = Math.Min(a1, b1);
        return e > s ? e - s : 0;
    }
}
