// The machine's memory-map picture: gathers the owners the page descriptors cannot tell (CMA allocations by
// their owner's name, dma-bufs by exporter, DMA coherent buffers by device, the heaps' page pools, vmalloc's own
// pages) and hands them to the renderer in Diagnostics.
using Kmem.Core;
using Kmem.Diagnostics;
using Kmem.Physical;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>
    /// The physical memory as an SVG picture: pages (or pageblocks) coloured by owner, migratetype strips, zone starts,
    /// CMA areas, a legend and the free-block histogram.
    /// </summary>
    public string RenderMemoryMap(string? title = null)
    {
        using var life = Life.Enter();                     // reads page descriptors throughout
        var claims = new List<(int Frame, int Pages, string Owner)>();
        int Frame(ulong phys) => (int)((phys >> PhysicalMemory.PageShift) - Pages.BasePfn);
        foreach (var h in _rkHeaps.Values)
            foreach (var e in h.DmaBufEntries.Concat(h.ContigEntries))
                claims.Add((Frame(e.Start), (int)(e.Size >> PhysicalMemory.PageShift), $"CMA {h.Name}: {e.AllocBy}"));
        foreach (var b in _dmaBufs.Buffers())
            foreach (var (f, o) in b.Blocks) claims.Add((f, 1 << o, $"dma-buf: {b.ExpName}"));
        foreach (var heap in _heaps.Values.OfType<SystemHeap>())
            foreach (var pool in heap.Pools)
                foreach (int f in pool.Blocks()) claims.Add((f, 1 << pool.Order, "dma-buf heap page pool"));
        foreach (var d in Devices.Values)
        {
            ulong[] handles;
            LockOrder.Enter(LockRank.DmaDevice, d.Lock);
            lock (d.Lock) handles = d.Entries.Where(kv => kv.Value.Type == Kmem.Dma.DmaEntryType.Coherent).Select(kv => kv.Key).ToArray();
            foreach (var h in handles)
                foreach (var (f, o) in Dma.CoherentBlocks(d, h) ?? []) claims.Add((f, 1 << o, $"DMA coherent: {d.Name}"));
        }
        if (_vmalloc is not null)
            foreach (var a in _vmalloc.Areas().Where(a => a.NrPages > 0))
                for (int i = 0; i < a.MappedPages; i++)
                {
                    int f = _vmalloc.FrameAt(a.Address + ((nint)i << PhysicalMemory.PageShift));
                    if (f >= 0) claims.Add((f, 1, "vmalloc"));
                }
        // memblock's regions by the name of what reserved them, for the pages still PG_reserved (the init sections and
        // the per-CPU alloc_info page went back to the page allocator). CMA areas are drawn as CMA areas.
        foreach (var r in Layout.Memblock.Where(r => !Cma.Values.Any(c => c.Name == r.Name && c.Base == r.Base)))
        {
            for (ulong pfn = r.Base >> PhysicalMemory.PageShift; pfn < (r.End + PhysicalMemory.PageSize - 1) >> PhysicalMemory.PageShift; pfn++)
            {
                int f = (int)(pfn - Pages.BasePfn);
                if (f >= 0 && f < Pages.Frames.Count && Pages.PfnValid(pfn) && (Pages.Frame(f).Flags & PageFlags.Reserved) != 0)
                    claims.Add((f, 1, $"reserved: {r.Name}"));
            }
        }
        return MemoryMap.Render(new MemoryMapInput(Pages, Slab, Cma.Values.ToArray(), claims, title ?? $"{Profile.Name}: physical memory"));
    }
}
