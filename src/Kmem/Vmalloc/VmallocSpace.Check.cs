// The checks of the vmalloc window: what vfree() verifies of an area's pages before it changes anything, and
// the invariants of the whole window (busy, free and lazily freed ranges; the pages mapped) for VerifyIntegrity.
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Vmalloc;

internal sealed unsafe partial class VmallocSpace
{
    /// <summary>
    /// The first page of <paramref name="area"/> that vfree() could not free, with the bad-page reason, or -1. The
    /// kernel's __vunmap() (mm/vmalloc.c, 5.10) frees page after page and free_pages_prepare() reports each bad one as it
    /// comes, after the area is already gone; Kmem checks them all first, so that a refused vfree leaves the area busy and
    /// mapped and every page still the area's. A page mapped k times (vmap with VM_MAP_PUT_PAGES may list one twice) is
    /// put k times and needs k references. Called under the window's lock.
    /// </summary>
    private int FirstUnfreeable(Area area, out string? reason)
    {
        int n = area.Mapped;
        ulong first = (ulong)(area.Start - _start) >> PageShift;
        int[]? rented = n <= 1024 ? null : System.Buffers.ArrayPool<int>.Shared.Rent(n);
        Span<int> frames = rented is null ? stackalloc int[n] : rented.AsSpan(0, n);
        try
        {
            for (int k = 0; k < n; k++)
            {
                int f = frames[k] = (int)_pte[first + (ulong)k] - 1;
                reason = f < 0 ? null : _pa.FreeRefusal(f, 0);
                if (reason is not null) return f;
            }
            reason = null;
            if ((area.Flags & VmFlags.MapPutPages) == 0) return -1;   // vmalloc's own pages are distinct
            frames.Sort();
            for (int k = 0; k < n;)
            {
                int run = 1;
                while (k + run < n && frames[k + run] == frames[k]) run++;
                int refs = _pa.Frame(frames[k]).RefCount;
                if (run > 1 && refs < run)
                {
                    reason = $"VM_BUG_ON_PAGE(page_ref_count(page) == 0): mapped {run} times with {refs} reference(s)";
                    return frames[k];
                }
                k += run;
            }
            return -1;
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>Invariants: busy, free and lazily freed ranges tile the window; only busy areas' pages are mapped.</summary>
    public List<string> CheckInvariants()
    {
        var errors = new List<string>();
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            ThrowIfReleased();
            var all = new RangeSet();
            foreach (var (s, e) in _free.Ranges) if (!all.Add(s, e)) errors.Add($"vmalloc: free range 0x{s:x}-0x{e:x} overlaps");
            foreach (var (s, e) in _purge.Ranges) if (!all.Add(s, e)) errors.Add($"vmalloc: unpurged range 0x{s:x}-0x{e:x} overlaps a free one");
            nint prevEnd = _start;
            long mapped = 0;
            foreach (var a in _busy)
            {
                ulong off = (ulong)(a.Start - _start);
                if (a.Start < prevEnd) errors.Add($"vmalloc: area 0x{a.Start:x} overlaps the previous area or its guard page");
                prevEnd = a.Start + (nint)a.Size;
                if (!all.Add(off, off + a.Size)) errors.Add($"vmalloc: area 0x{a.Start:x} overlaps free or unpurged space");
                ulong guard = (a.Flags & VmFlags.NoGuard) != 0 ? 0UL : 1UL;
                if ((a.Flags & VmFlags.Ioremap) != 0)
                {
                    if (a.Mapped != 0) errors.Add($"vmalloc: ioremap area 0x{a.Start:x} maps {a.Mapped} RAM pages");
                }
                else if ((ulong)a.Mapped + guard != a.Size >> PageShift) errors.Add($"vmalloc: area 0x{a.Start:x} maps {a.Mapped} pages in {a.Size} bytes");
                mapped += a.Mapped;
                for (ulong k = 0; k < (ulong)a.Mapped; k++)
                {
                    int f = (int)_pte[(off >> PageShift) + k] - 1;
                    if (f < 0) { errors.Add($"vmalloc: page {k} of area 0x{a.Start:x} is not mapped"); break; }
                    // A reserved page is free memory's opposite but no one's to map, unless cma_alloc() of an inactive CMA
                    // area (CONFIG_CMA_INACTIVE) handed it out: then it is allocated too.
                    var ff = _pa.Frame(f).Flags;
                    if ((ff & (PageFlags.Buddy | PageFlags.Pcp)) != 0 || (ff & (PageFlags.Reserved | PageFlags.Allocated)) == PageFlags.Reserved)
                    {
                        errors.Add($"vmalloc: page {k} of area 0x{a.Start:x} maps frame {f}, which is free or reserved");
                        break;
                    }
                }
            }
            if (all.Count != 1 || all.Ranges[0] != (0UL, _size)) errors.Add("vmalloc: busy, free and unpurged ranges do not tile the window");
            long ptes = 0;
            for (ulong p = 0; p < _highWater >> PageShift; p++) if (_pte[p] != 0) ptes++;
            if (ptes != mapped) errors.Add($"vmalloc: {ptes} window pages are mapped but the areas map {mapped}");
            long vmallocPages = _busy.Where(a => (a.Flags & VmFlags.Alloc) != 0).Sum(a => (long)a.NrPages);
            if (vmallocPages != _pa.Stat.VmallocPages) errors.Add($"vmalloc: nr_vmalloc_pages {_pa.Stat.VmallocPages} but the areas hold {vmallocPages}");
        }
        return errors;
    }
}
