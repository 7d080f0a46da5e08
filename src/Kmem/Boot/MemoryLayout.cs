// The early-boot memory plan (memblock's job): zone boundaries per architecture, the kernel image
// and reserved ranges, CMA areas (placed top-down when "auto"), and the mem_map allocation.
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Boot;

internal sealed class MemoryLayout
{
    private const int PageShift = KernelFacts.PageShift;
    private const ulong SectionSize = 128UL << 20; // SPARSEMEM section on x86_64, riscv64 and arm64 (from 5.12)

    public required ulong SpanStart { get; init; }
    public required ulong SpanEnd { get; init; }
    public required PfnRange[] Memory { get; init; }
    public required PfnRange[] Reserved { get; init; }
    public required (ZoneType Type, ulong StartPfn, ulong EndPfn)[] Zones { get; init; }
    public required List<CmaArea> CmaAreas { get; init; }
    public required ulong MemMapBytes { get; init; }
    public required ulong MemMapBase { get; init; }

    public static MemoryLayout Plan(MachineProfile p)
    {
        ulong spanStart = p.Dram[0].Base, spanEnd = p.Dram[^1].End;
        var memory = p.Dram.Select(b => new PfnRange(b.Base >> PageShift, b.End >> PageShift, "memory")).ToArray();
        var memblock = new Memblock(p.Dram.Select(b => (b.Base, b.End)));
        foreach (var r in p.Reserved) memblock.Reserve(r.Base & ~0xFFFUL, ((r.Base + r.Size + 0xFFF) & ~0xFFFUL) - (r.Base & ~0xFFFUL), r.Name);
        if (p.Kernel is { } k) memblock.Reserve(k.Base & ~0xFFFUL, ((k.Base + k.Size + 0xFFF) & ~0xFFFUL) - (k.Base & ~0xFFFUL), "kernel");

        // memblock allocations are made top-down below the current limit.
        ulong limit = p.Arch switch
        {
            Arch.Arm or Arch.I386 => p.LowmemLimit ?? spanEnd,
            Arch.Arm64 => p.Dma32Limit ?? p.DmaLimit ?? spanEnd,
            _ => spanEnd,
        };

        // The CMA areas (arm_memblock_init(): the device tree's pools, then dma_contiguous_reserve(), then vendor areas).
        var cmaAreas = CmaReservations.Place(p, memblock, limit);

        // mem_map: FLATMEM on 32-bit kernels (the whole span), SPARSEMEM sections elsewhere (128 MiB; arm64 before 5.12: 1 GiB).
        ulong memmapPages;
        ulong sectionSize = p.Arch == Arch.Arm64 && !p.Version.IsAtLeast(5, 12) ? 1UL << 30 : SectionSize;
        if (!p.Is64Bit)
        {
            memmapPages = (spanEnd - spanStart) >> PageShift;
        }
        else
        {
            var sections = new HashSet<ulong>();
            foreach (var b in p.Dram)
                for (ulong s = b.Base / sectionSize; s <= (b.End - 1) / sectionSize; s++) sections.Add(s);
            memmapPages = (ulong)sections.Count * (sectionSize >> PageShift);
        }
        ulong memmapBytes = (memmapPages * (ulong)p.StructPageSize + 0xFFF) & ~0xFFFUL;
        ulong memmapBase = memblock.AllocRange(memmapBytes, 1UL << PageShift, 0, limit, "mem_map")
            ?? throw new ProfileException("dram", $"no room for the {memmapBytes >> 10} KiB mem_map below 0x{limit:x}");

        return new MemoryLayout
        {
            SpanStart = spanStart,
            SpanEnd = spanEnd,
            Memory = memory,
            // CMA areas are memblock-reserved too; the page allocator takes them from CmaAreas (activated, or kept aside).
            Reserved = memblock.Reserved.Where(r => !cmaAreas.Any(c => c.Name == r.Name && c.Base == r.Base)).Select(r => new PfnRange(r.Base >> PageShift, (r.End + 0xFFF) >> PageShift, r.Name)).ToArray(),
            Zones = ZoneSpans(p),
            CmaAreas = cmaAreas,
            MemMapBytes = memmapBytes,
            MemMapBase = memmapBase,
        };
    }

    /// <summary>
    /// free_area_init(): each zone runs from where the previous one ended to its architectural limit,
    /// clipped to the memory span; ZONE_MOVABLE is empty.
    /// </summary>
    private static (ZoneType, ulong, ulong)[] ZoneSpans(MachineProfile p)
    {
        ulong start = p.Dram[0].Base >> PageShift, maxPfn = p.Dram[^1].End >> PageShift;
        var result = new List<(ZoneType, ulong, ulong)>();
        foreach (var t in p.ZoneTypes)
        {
            if (t == ZoneType.Movable) { result.Add((t, 0, 0)); continue; }
            ulong limitPfn = t switch
            {
                ZoneType.Dma => p.DmaLimit!.Value >> PageShift,
                ZoneType.Dma32 => p.Dma32Limit!.Value >> PageShift,
                ZoneType.Normal => p.LowmemLimit is { } lm ? lm >> PageShift : maxPfn,
                _ => maxPfn,
            };
            ulong end = Math.Max(Math.Min(limitPfn, maxPfn), start);
            result.Add(end > start ? (t, start, end) : (t, 0, 0));
            start = end;
        }
        return result.ToArray();
    }
}
