// The early-boot memory plan (memblock's job): zone boundaries per architecture, the kernel image
// and reserved ranges, CMA areas (placed top-down when "auto"), and the mem_map allocation.
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Boot;

internal sealed class MemoryLayout
{
    private const int PageShift = KernelFacts.PageShift;

    public required ulong SpanStart { get; init; }
    public required ulong SpanEnd { get; init; }
    public required PfnRange[] Memory { get; init; }
    public required PfnRange[] Reserved { get; init; }
    public required (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node)[] Zones { get; init; }
    public required List<CmaArea> CmaAreas { get; init; }
    public required ulong MemMapBytes { get; init; }
    public required ulong MemMapBase { get; init; }

    /// <summary>What the early boot steps leave for the boot log (hash tables, per-CPU lines) and for free_initmem().</summary>
    public required EarlyBoot Early { get; init; }

    /// <summary>The named memblock regions (CMA areas included), in the order they were reserved.</summary>
    public required IReadOnlyList<MemblockRegion> Memblock { get; init; }

    public static MemoryLayout Plan(MachineProfile p)
    {
        ulong spanStart = p.Dram[0].Base, spanEnd = p.Dram[^1].End;
        var memory = p.Dram.Select(b => new PfnRange(b.Base >> PageShift, b.End >> PageShift, "memory")).ToArray();
        var memblock = new Memblock(p.Dram.Select(b => (b.Base, b.End)));
        var cmd = KernelCmdline.Parse(p.Cmdline, "cmdline");
        var early = new EarlyBoot();
        bool arm = p.Arch == Arch.Arm && p.Kernel is not null;
        // arm_memblock_init(): the image, swapper_pg_dir and the FDT, then the device tree's static reserved-memory regions
        // (the profile's "reserved" entries); other architectures reserve the image as one block.
        if (arm) EarlyAllocations.ReserveArmImage(p, memblock, early);
        else if (p.Kernel is { } k)
        {
            ulong kb = k.Base & ~0xFFFUL, ke = (k.Base + k.Size + 0xFFF) & ~0xFFFUL;
            memblock.Reserve(kb, ke - kb, "kernel");
            // free_initmem(): the init sections, taken here to follow text, rodata and data in the image.
            ulong initBegin = (k.Base + k.Code + k.RoData + k.RwData + 0xFFF) & ~0xFFFUL;
            early.Init = (initBegin, Math.Min(ke, (initBegin + k.Init + 0xFFF) & ~0xFFFUL));
        }
        foreach (var r in p.Reserved.Where(r => !r.Dynamic)) memblock.Reserve(r.Base & ~0xFFFUL, ((r.Base + r.Size + 0xFFF) & ~0xFFFUL) - (r.Base & ~0xFFFUL), r.Name);

        // memblock allocations are made top-down below the current limit.
        ulong limit = p.Arch switch
        {
            Arch.Arm or Arch.I386 => p.LowmemLimit ?? spanEnd,
            Arch.Arm64 => p.Dma32Limit ?? p.DmaLimit ?? spanEnd,
            _ => spanEnd,
        };
        memblock.CurrentLimit = limit;

        // x86 setup_arch(): initmem_init() (numa_register_memblks()) gives each node with memory its pglist_data before
        // dma_contiguous_reserve() and paging_init().
        bool nodeData = p.Arch == Arch.X86_64 && p.Config.IsEnabled("NUMA");
        if (nodeData) EarlyAllocations.NodeDataAlloc(p, memblock, early, memoryless: false);

        // The device tree's dynamic reserved-memory nodes and CMA pools in the kernel's order (early_init_fdt_scan_reserved_mem()),
        // then the other CMA areas (arm_memblock_init(): dma_contiguous_reserve(), then vendor areas).
        var cmaAreas = CmaReservations.Place(p, memblock, limit);

        var zones = ZoneSpans(p);
        (early.NrKernelPages, early.NrAllPages) = KernelPages(p, zones);
        // paging_init(): page tables, vectors and the zero page on arm, then bootmem_init()'s mem_map.
        if (arm) EarlyAllocations.ArmPagingInit(p, memblock, cmaAreas, Math.Min(limit, spanEnd));
        ulong memmapBytes, memmapBase;
        if (!p.Is64Bit)
        {
            (memmapBase, memmapBytes) = EarlyAllocations.FlatMemMap(p, memblock, zones);
        }
        else
        {
            (memmapBase, memmapBytes) = EarlyAllocations.SparseMemMap(p, memblock, limit);
        }
        // init_cpu_to_node(), after paging_init(): a memoryless node with CPUs gets its pglist_data from another node.
        if (nodeData) EarlyAllocations.NodeDataAlloc(p, memblock, early, memoryless: true);
        // From 6.10 free_area_init() counts nr_kernel_pages from memblock's free ranges (calc_nr_kernel_pages(),
        // "mm/mm_init.c: add new function calc_nr_all_pages()") instead of present pages less the memmap.
        if (p.Version.IsAtLeast(6, 10)) (early.NrKernelPages, early.NrAllPages) = FreeMemblockPages(p, memblock, zones);
        // setup_arch() after paging_init(): resources and the unflattened device tree (arm).
        if (arm) EarlyAllocations.ArmSetupArchTail(p, memblock);
        // start_kernel(): command-line copies, per-CPU first chunk, log buffer, early hash tables.
        EarlyAllocations.StartKernel(p, memblock, early, cmd);

        // Every region lies in RAM: the reader checks what a profile states, but a profile changed with "with" (an image,
        // FDT or CMA area moved) reaches the plan unchecked, and a range past RAM has no page frames.
        foreach (var r in memblock.Reserved)
            if (!memblock.IsMemory(r.Base, r.Size))
                throw new ProfileException(r.Name, $"0x{r.Base:x}-0x{r.End - 1:x} ({r.Name}) is not inside a memory bank");
        foreach (var c in cmaAreas)
            if (!memblock.IsMemory(c.Base, c.Size))
                throw new ProfileException($"cma '{c.Name}'", $"0x{c.Base:x}-0x{c.Base + c.Size - 1:x} is not inside a memory bank");

        return new MemoryLayout
        {
            SpanStart = spanStart,
            SpanEnd = spanEnd,
            Memory = memory,
            // CMA areas are memblock-reserved too; the page allocator takes them from CmaAreas (activated, or kept aside).
            Reserved = memblock.Reserved.Where(r => !cmaAreas.Any(c => c.Name == r.Name && c.Base == r.Base)).Select(r => new PfnRange(r.Base >> PageShift, (r.End + 0xFFF) >> PageShift, r.Name)).ToArray(),
            Zones = zones,
            CmaAreas = cmaAreas,
            MemMapBytes = memmapBytes,
            MemMapBase = memmapBase,
            Early = early,
            Memblock = memblock.Reserved.ToArray(),
        };
    }

    /// <summary>
    /// free_area_init_core() before 6.10: nr_kernel_pages sums, over the zones below HighMem, the present pages less the
    /// memmap pages (calc_memmap_size(): PAGE_ALIGN(spanned × sizeof(struct page))) when they fit; nr_all_pages adds HighMem.
    /// </summary>
    private static (long Kernel, long All) KernelPages(MachineProfile p, (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node)[] zones)
    {
        long kernel = 0, all = 0;
        foreach (var (type, s, e, _) in zones)
        {
            if (e <= s) continue;
            long present = 0;
            foreach (var b in p.Dram)
            {
                ulong bs = b.Base >> PageShift, be = b.End >> PageShift;
                ulong lo = Math.Max(bs, s), hi = Math.Min(be, e);
                if (hi > lo) present += (long)(hi - lo);
            }
            long memmap = (long)(((e - s) * (ulong)p.StructPageSize + 0xFFF) >> PageShift);
            long free = type == ZoneType.HighMem || present < memmap ? present : present - memmap;
            all += free;
            if (type != ZoneType.HighMem) kernel += free;
            // free_area_init_core(): "Charge for highmem memmap if there are enough kernel pages".
            else if (kernel > memmap * 2) kernel -= memmap;
        }
        return (kernel, all);
    }

    /// <summary>calc_nr_kernel_pages() (6.10 on): the whole free pages memblock holds, those below HighMem for nr_kernel_pages.</summary>
    private static (long Kernel, long All) FreeMemblockPages(MachineProfile p, Memblock mb, (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node)[] zones)
    {
        long total = 0;
        foreach (var b in p.Dram) total += (long)((b.End >> PageShift) - (b.Base >> PageShift));
        long all = total - mb.ReservedPages(PageShift);
        ulong highStart = zones.Where(z => z.Type == ZoneType.HighMem && z.EndPfn > z.StartPfn).Select(z => z.StartPfn).DefaultIfEmpty(ulong.MaxValue).First();
        if (highStart == ulong.MaxValue) return (all, all);
        var low = new Memblock(p.Dram.Where(b => (b.Base >> PageShift) < highStart).Select(b => (b.Base, Math.Min(b.End, highStart << PageShift))));
        foreach (var r in mb.Reserved) low.Reserve(r.Base, r.Size, r.Name);
        long lowTotal = 0;
        foreach (var m in low.Memory) lowTotal += (long)((m.End - m.Base) >> PageShift);
        return (lowTotal - low.ReservedPages(PageShift), all);
    }

    /// <summary>
    /// free_area_init(): in each node, each zone runs from where the previous one ended to its architectural limit,
    /// clipped to the node's span (zone_spanned_pages_in_node()); ZONE_MOVABLE is empty, and so is every zone of a
    /// memoryless node. Node by node, every node with the same zone types.
    /// </summary>
    private static (ZoneType, ulong, ulong, int)[] ZoneSpans(MachineProfile p)
    {
        var result = new List<(ZoneType, ulong, ulong, int)>();
        for (int node = 0; node < p.NodeCount; node++)
        {
            var banks = p.Dram.Where(b => b.Node == node).ToList();
            ulong start = banks.Count == 0 ? 0 : banks.Min(b => b.Base) >> PageShift;
            ulong maxPfn = banks.Count == 0 ? 0 : banks.Max(b => b.End) >> PageShift;
            foreach (var t in p.ZoneTypes)
            {
                if (t == ZoneType.Movable || banks.Count == 0) { result.Add((t, 0, 0, node)); continue; }
                ulong limitPfn = t switch
                {
                    ZoneType.Dma => p.DmaLimit!.Value >> PageShift,
                    ZoneType.Dma32 => p.Dma32Limit!.Value >> PageShift,
                    ZoneType.Normal => p.LowmemLimit is { } lm ? lm >> PageShift : maxPfn,
                    _ => maxPfn,
                };
                ulong end = Math.Max(Math.Min(limitPfn, maxPfn), start);
                result.Add(end > start ? (t, start, end, node) : (t, 0, 0, node));
                start = end;
            }
        }
        return result.ToArray();
    }
}
