// The kernel's handling of the /reserved-memory nodes at boot, in its order (drivers/of/of_reserved_mem.c and fdt.c):
// the scan reserves each static node's reg and saves every node (static with its first range, dynamic as base 0 size 0)
// in node order; fdt_init_reserved_mem() then sorts the saved nodes (__rmem_check_for_overlap()) and walks them, placing
// each dynamic node (__reserved_mem_alloc_size()) and initialising it (rmem_cma_setup() for a reusable shared-dma-pool)
// before the next. The sort is what decides which dynamic node is placed first, and it changed: up to 6.4 it is the
// kernel's heapsort (lib/sort.c), which is not stable, so the dynamic nodes (all base 0) come out in a permutation of
// node order that depends on the other nodes; from 6.5 ("of: reserved_mem: Use stable allocation order") ties are broken
// by the node's offset, i.e. node order. Before 5.10 the comparison is by base alone, from 5.10 by base then size.
using Kmem.Core;

namespace Kmem.Boot;

internal static class ReservedMemoryInit
{
    /// <summary>SMP_CACHE_BYTES (L1_CACHE_BYTES, 64 on the arm and arm64 kernels Kmem models): early_init_dt_alloc_reserved_memory_arch()'s alignment when the node gives none.</summary>
    private const ulong SmpCacheBytes = 64;

    /// <summary>One saved node of the kernel's reserved_mem[] array: a profile "reserved" entry or a reserved-memory CMA pool.</summary>
    internal sealed record Entry(string Name, int DtOrder, ulong Base, ulong Size, ReservedRange? Reserved, CmaAreaSpec? Cma)
    {
        public bool Dynamic => Reserved?.Dynamic ?? Cma!.Base is null;
        public ulong Alignment => Reserved?.Alignment ?? Cma!.Alignment;
        public IReadOnlyList<AllocRange> AllocRanges => Reserved?.AllocRanges ?? Cma!.AllocRanges;
    }

    /// <summary>
    /// The saved nodes in node order (fdt_scan_reserved_mem()): the profile's reserved-memory entries (reserved entries placed
    /// at boot or carrying a <c>dt_order</c>, and the CMA pools with <c>reserved_memory</c>), by <c>dt_order</c>; entries
    /// without one follow in the profile's order, reserved entries before CMA pools. A node with several reg ranges is saved
    /// once, with its first range.
    /// </summary>
    public static List<Entry> Saved(MachineProfile p)
    {
        var list = new List<Entry>();
        var seen = new HashSet<int>();
        foreach (var r in p.Reserved)
        {
            if (!r.Dynamic && r.DtOrder < 0) continue;
            if (r.DtOrder >= 0 && !seen.Add(r.DtOrder)) continue;
            list.Add(new Entry(r.Name, r.DtOrder, r.Dynamic ? 0 : r.Base, r.Dynamic ? 0 : r.Size, r, null));
        }
        foreach (var c in p.Cma)
            if (c.ReservedMemory) list.Add(new Entry(c.Name, c.DtOrder, c.Base ?? 0, c.Base is null ? 0 : c.Size, null, c));
        int next = list.Count == 0 ? 0 : Math.Max(0, list.Max(e => e.DtOrder) + 1);
        for (int i = 0; i < list.Count; i++)
            if (list[i].DtOrder < 0) list[i] = list[i] with { DtOrder = next++ };
        // OrderBy is stable: entries of equal order keep the profile's order.
        return list.OrderBy(e => e.DtOrder).ToList();
    }

    /// <summary>
    /// MAX_RESERVED_REGIONS, the size of the kernel's static reserved_mem[] array: 32 until "of: of_reserved_mem: Increase
    /// limit on number of reserved regions" (5.7, also taken into the 4.14 to 5.6 stable series, which Kmem does not tell
    /// apart), 64 from it.
    /// </summary>
    public static int MaxReservedRegions(KernelVersion version) => version.IsAtLeast(5, 7) ? 64 : 32;

    /// <summary>
    /// The order fdt_init_reserved_mem() walks <paramref name="saved"/> in for <paramref name="version"/>: the array after
    /// __rmem_check_for_overlap()'s sort() (only when it holds two or more nodes).
    /// </summary>
    public static List<Entry> InitOrder(KernelVersion version, List<Entry> saved)
    {
        var a = saved.ToArray();
        if (a.Length < 2) return [.. a];
        // __rmem_cmp(): base; from 5.10 then size ("of: Fix reserved-memory overlap detection", which puts the dynamic
        // nodes before a static one at 0); from 6.5 then the node's offset.
        bool bySize = version.IsAtLeast(5, 10), byNode = version.IsAtLeast(6, 5);
        int Cmp(Entry x, Entry y)
        {
            if (x.Base != y.Base) return x.Base < y.Base ? -1 : 1;
            if (bySize && x.Size != y.Size) return x.Size < y.Size ? -1 : 1;
            if (byNode && x.DtOrder != y.DtOrder) return x.DtOrder < y.DtOrder ? -1 : 1;
            return 0;
        }
        if (version.IsAtLeast(5, 1)) KernelSort.BottomUpHeapsort(a, Cmp);
        else KernelSort.ClassicHeapsort(a, Cmp);
        return [.. a];
    }

    /// <summary>
    /// early_init_fdt_scan_reserved_mem() for the profile's reserved-memory nodes: the static CMA pools are reserved as the
    /// scan finds them (the other static nodes the caller reserved with the profile's "reserved" ranges), then the saved
    /// nodes are walked in the kernel's order, each dynamic one placed and each CMA pool created, with the kernel's lines.
    /// </summary>
    public static void Run(MachineProfile p, Memblock memblock, ulong dramEnd, CmaReservationList areas)
    {
        var all = Saved(p);
        int cap = MaxReservedRegions(p.Version);
        var saved = all.Take(cap).ToList();
        foreach (var e in all)
            if (e.Cma is { Base: { } cb } c) memblock.Reserve(cb, c.Size, c.Name);
        // fdt_reserved_mem_save_node(): a node found once reserved_mem[] is full is not saved: a static one stays reserved
        // (the scan reserved its reg first), a dynamic one is never placed, and no CMA pool is made of either.
        for (int i = cap; i < all.Count; i++)
            areas.BootLines.Add((LogLevel.Err, "OF: reserved mem: not enough space for all defined regions."));
        var placed = new List<(ulong Base, ulong End)>();
        foreach (var e in saved)
            if (!e.Dynamic) placed.Add((e.Base, e.Base + e.Size));
        foreach (var e in InitOrder(p.Version, saved))
        {
            ulong at = e.Base, size = e.Reserved?.Size ?? e.Cma!.Size;
            if (e.Dynamic)
            {
                if (Allocate(p, memblock, e, size, dramEnd, placed) is not { } got)
                {
                    // __reserved_mem_alloc_size(): no room; the node is left out.
                    areas.BootLines.Add((LogLevel.Info, $"OF: reserved mem: failed to allocate memory for node '{e.Name}'"));
                    continue;
                }
                at = got;
                placed.Add((at, at + size));
            }
            if (e.Cma is not { } cma) continue;
            // rmem_cma_setup(): a pool whose base or size is off the CMA alignment is refused (the reader checks the static
            // ones; a dynamic one was allocated with that alignment).
            areas.Add(new CmaArea(cma.Name, at >> KernelFacts.PageShift, size >> KernelFacts.PageShift, cma.OrderPerBit)
            {
                Inactive = cma.Inactive || p.Config.IsEnabled("CMA_INACTIVE"),
            });
            areas.BootLines.Add((LogLevel.Info, $"Reserved memory: created CMA memory pool at {Pa(p, at)}, size {size >> 20} MiB"));
            areas.BootLines.Add((LogLevel.Info, $"OF: reserved mem: initialized node {cma.Name}, compatible id shared-dma-pool"));
        }
    }

    /// <summary>
    /// __reserved_mem_alloc_size(): the node's alignment (SMP_CACHE_BYTES when none; a reusable shared-dma-pool at least the
    /// CMA alignment), in each alloc-ranges window in turn or anywhere in memory (MEMBLOCK_ALLOC_ANYWHERE: not limited to
    /// lowmem), top-down, never in the first page (memblock_find_in_range_node()). From 6.5 a window that starts next to a
    /// region placed already is searched bottom-up and one that ends next to one top-down (__reserved_mem_alloc_in_range()).
    /// </summary>
    private static ulong? Allocate(MachineProfile p, Memblock memblock, Entry e, ulong size, ulong dramEnd, List<(ulong Base, ulong End)> placed)
    {
        ulong align = e.Alignment;
        if (e.Cma is not null) align = Math.Max(align, p.CmaAlignment);
        if (align == 0) align = SmpCacheBytes;
        const ulong Page = KernelFacts.PageSize;
        if (e.AllocRanges.Count == 0) return memblock.AllocRange(size, align, Page, dramEnd, e.Name);
        foreach (var r in e.AllocRanges)
        {
            ulong start = r.Base, end = r.Base + r.Size < r.Base ? ulong.MaxValue : r.Base + r.Size;
            bool bottomUp = false, topDown = false;
            if (p.Version.IsAtLeast(6, 5))
                foreach (var (b, x) in placed)
                {
                    if (start >= b && start <= x) bottomUp = true;
                    if (end >= b && end <= x) topDown = true;
                }
            ulong lo = Math.Max(start, Page), hi = Math.Min(end, dramEnd);
            if (hi <= lo) continue;
            ulong? got = bottomUp && !topDown
                ? memblock.AllocRangeBottomUp(size, align, lo, hi, e.Name)
                : memblock.AllocRange(size, align, lo, hi, e.Name);
            if (got is not null) return got;
        }
        return null;
    }

    private static string Pa(MachineProfile p, ulong v) => "0x" + v.ToString(p.Is64Bit ? "x16" : "x8");
}

/// <summary>The kernel's sort() (lib/sort.c), a heapsort that is not stable: the order it leaves equal elements in is part
/// of what the kernel does with them.</summary>
internal static class KernelSort
{
    /// <summary>lib/sort.c before 5.1: build the heap by sifting down from num/2 - 1, then swap the root to the end and sift
    /// down again, two comparisons a level, stopping when the parent is not less than the larger child.</summary>
    public static void ClassicHeapsort<T>(T[] a, Comparison<T> cmp)
    {
        int n = a.Length;
        for (int i = n / 2 - 1; i >= 0; i--) SiftDown(a, cmp, i, n);
        for (int i = n - 1; i > 0; i--)
        {
            (a[0], a[i]) = (a[i], a[0]);
            SiftDown(a, cmp, 0, i);
        }

        static void SiftDown(T[] a, Comparison<T> cmp, int r, int n)
        {
            while (2 * r + 1 < n)
            {
                int c = 2 * r + 1;
                if (c < n - 1 && cmp(a[c], a[c + 1]) < 0) c++;
                if (cmp(a[r], a[c]) >= 0) break;
                (a[r], a[c]) = (a[c], a[r]);
                r = c;
            }
        }
    }

    /// <summary>lib/sort.c from 5.1 ("lib/sort: use more efficient bottom-up heapsort variant"): follow the larger child
    /// (the left one on a tie) down to a leaf, back up to where the element belongs, then rotate it into place.</summary>
    public static void BottomUpHeapsort<T>(T[] a, Comparison<T> cmp)
    {
        int n = a.Length, start = n / 2;
        if (start == 0) return;
        for (; ; )
        {
            if (start > 0) start--;
            else if (--n > 0) (a[0], a[n]) = (a[n], a[0]);
            else break;
            int b = start, c, d;
            while ((d = (c = 2 * b + 1) + 1) < n) b = cmp(a[c], a[d]) >= 0 ? c : d;
            if (d == n) b = c;
            while (b != start && cmp(a[start], a[b]) >= 0) b = (b - 1) / 2;
            c = b;
            while (b != start)
            {
                b = (b - 1) / 2;
                (a[b], a[c]) = (a[c], a[b]);
            }
        }
    }
}
