// The CMA areas a boot reserves in memblock, in the order of arm_memblock_init() (arch/arm/mm/init.c of Rockchip's
// 5.10 tree): the device tree's reserved-memory pools (early_init_fdt_scan_reserved_mem(), rmem_cma_setup(), placed with
// the other reserved-memory nodes in the kernel's order by ReservedMemoryInit), the areas
// the profile states (cma_declare_contiguous() calls such as dma_contiguous_reserve()'s "reserved" area), the default
// area of a cma= on the command line (dma_contiguous_reserve()), then the RK-DMA-HEAP's area (rk_dma_heap_cma_setup(), sized by rk_dma_heap_cma=). Each placement is kept with the lines the
// kernel prints for it; a reservation that fails prints the kernel's error and the boot goes on without the area.
using Kmem.Core;

namespace Kmem.Boot;

/// <summary>The CMA areas a boot reserved, with the lines their reservations printed (in order, failures included).</summary>
internal sealed class CmaReservationList : List<CmaArea>
{
    /// <summary>The boot log lines of the reservations.</summary>
    public List<(LogLevel Level, string Text)> BootLines { get; } = [];
}

internal static class CmaReservations
{
    /// <summary>The name rk_dma_heap_cma_setup() gives its area.</summary>
    public const string RkDmaHeapCmaName = "rk-dma-heap-cma";

    /// <summary>The name dma_contiguous_reserve() gives the default area.</summary>
    public const string DefaultAreaName = "reserved";

    /// <summary>
    /// RK_DMA_HEAP_CMA_DEFAULT_SIZE of drivers/dma-buf/rk_heaps/rk-dma-cma.c: SZ_32M in the Luckfox Pico SDK's 5.10.110 kernel
    /// and in the Rockchip 6.1 tree of khadas/linux (commit d86d3ec2390bc109e7d93f4efc0ded32a04002cf). It applies when the
    /// command line has no rk_dma_heap_cma= or a size of 0 (early_dma_heap_cma() leaves rk_dma_heap_size 0). Other copies
    /// differ: OSSystems/linux (commit 65df5638cd3dc0be0832ff58b10fa8d77647d209) defines SZ_4M, and the first version of
    /// the file (2022) passes the size unaligned with alignment 0 (the CMA minimum); a profile for such a kernel states its
    /// size with rk_dma_heap_cma= (docs/profiles.md).
    /// </summary>
    public const ulong RkDmaHeapCmaDefaultSize = 32UL << 20;

    private const ulong PageSize = KernelFacts.PageSize;

    /// <summary>Reserves the machine's CMA areas in <paramref name="memblock"/>, in the kernel's order; returns them with their boot lines.</summary>
    /// <exception cref="ProfileException">A stated area finds no room, or the command line's rk_dma_heap_cma= is bad.</exception>
    public static List<CmaArea> Place(MachineProfile p, Memblock memblock, ulong limit)
    {
        var areas = new CmaReservationList();
        var cmd = KernelCmdline.Parse(p.Cmdline, "cmdline");
        var def = DefaultAreaRequest(p, cmd);
        var rk = RkDmaHeapRequest(p, cmd);
        ulong dramEnd = memblock.Memory[^1].End;
        // early_init_fdt_scan_reserved_mem(): the reserved-memory nodes, dynamic ones placed and pools created in the
        // kernel's order for the profile's version.
        ReservedMemoryInit.Run(p, memblock, dramEnd, areas);
        foreach (var c in p.Cma)
            if (!c.ReservedMemory) ReserveStated(p, memblock, c, limit, areas);
        // dma_contiguous_reserve() starts with dma_numa_cma_reserve().
        ReserveNumaAreas(p, memblock, cmd, areas);
        if (def is { } d) ReserveDefault(p, memblock, d, dramEnd, areas);
        // rk_dma_heap_cma_setup() (drivers/dma-buf/rk_heaps/rk-dma-cma.c): cma_declare_contiguous(base, PAGE_ALIGN(size),
        // limit 0, alignment PAGE_SIZE, order_per_bit 0, fixed = base != 0, "rk-dma-heap-cma"), its default size when none.
        if (rk is { } r)
            DeclareContiguous(p, memblock, r.Base, AlignUp(r.Size == 0 ? RkDmaHeapCmaDefaultSize : r.Size, PageSize), 0, PageSize,
                r.Base != 0, RkDmaHeapCmaName, dramEnd, areas);
        return areas;
    }

    /// <summary>
    /// What rk_dma_heap_cma_setup() will be asked for: null on a kernel without CONFIG_DMABUF_HEAPS_ROCKCHIP, or when the
    /// profile states the area in "cma" itself; else the command line's size and base (0 for the default, 0 for none).
    /// </summary>
    /// <exception cref="ProfileException">A bad rk_dma_heap_cma= value, a value beyond a 32-bit kernel's unsigned long, or
    /// the area given both in "cma" and on the command line.</exception>
    public static (ulong Size, ulong Base)? RkDmaHeapRequest(MachineProfile p, KernelCmdline cmd)
    {
        if (!p.Config.IsEnabled("DMABUF_HEAPS_ROCKCHIP")) return null;
        var (size, @base) = cmd.RkDmaHeapCma("cmdline");
        for (int i = 0; i < p.Cma.Count; i++)
        {
            if (p.Cma[i].Name != RkDmaHeapCmaName) continue;
            if (cmd.RkDmaHeapCmaValues.Count > 0)
                throw new ProfileException($"cma[{i}]", $"the area {RkDmaHeapCmaName} is given both here and by {cmd.RkDmaHeapCmaWord} on the command line: give one");
            return null;
        }
        // rk_dma_heap_size and rk_dma_heap_base are unsigned long: 32 bits on a 32-bit kernel.
        if (!p.Is64Bit && (size > uint.MaxValue || @base > uint.MaxValue))
            throw new ProfileException("cmdline", $"{cmd.RkDmaHeapCmaWord}: 0x{Math.Max(size, @base):x} does not fit a 32-bit kernel's unsigned long");
        return (size, @base);
    }

    /// <summary>
    /// What dma_contiguous_reserve() will be asked for by <c>cma=</c>: null on a kernel without CONFIG_DMA_CMA (there the
    /// word is an unknown one) or without the word; else its size, start and end.
    /// </summary>
    /// <exception cref="ProfileException">A bad cma= value, the default area given both in "cma" and by cma=, or cma= on a
    /// kernel with CONFIG_CMA_INACTIVE.</exception>
    public static (ulong Size, ulong Base, ulong Limit)? DefaultAreaRequest(MachineProfile p, KernelCmdline cmd)
    {
        if (!p.Config.IsEnabled("DMA_CMA")) return null;
        if (cmd.CmaParam("cmdline") is not { } c) return null;
        for (int i = 0; i < p.Cma.Count; i++)
            if (p.Cma[i].Name == DefaultAreaName)
                throw new ProfileException($"cma[{i}]", $"the default area '{DefaultAreaName}' is given both here and by {cmd.CmaWord} on the command line: give one");
        // Rockchip's cma_declare_contiguous() keeps the caller's alignment under CONFIG_CMA_INACTIVE, and
        // dma_contiguous_reserve() gives none (0): what that kernel does with it is not modelled.
        if (p.Config.IsEnabled("CMA_INACTIVE"))
            throw new ProfileException("cmdline", $"{cmd.CmaWord}: Kmem does not model cma= on a kernel with CONFIG_CMA_INACTIVE (dma_contiguous_reserve() passes alignment 0)");
        if (!p.Is64Bit && (c.Size > uint.MaxValue || c.Base > uint.MaxValue || c.Limit > uint.MaxValue))
            throw new ProfileException("cmdline", $"{cmd.CmaWord}: does not fit a 32-bit kernel's phys_addr_t");
        return c;
    }

    /// <summary>The lines the reservations printed: those kept with <paramref name="areas"/>, or for a plain list one
    /// "Reserved" line per area.</summary>
    public static IEnumerable<(LogLevel Level, string Text)> BootLines(MachineProfile p, IReadOnlyList<CmaArea> areas) =>
        areas is CmaReservationList list ? list.BootLines : areas.Select(a => (LogLevel.Info, ReservedLine(p, a.Base, a.Size)));

    /// <summary>An area the profile states: at its fixed base, or top-down below the lowmem limit (x86_64: below 4 GiB)
    /// with the CMA alignment (the profile reader checked base, size and overlaps).</summary>
    private static void ReserveStated(MachineProfile p, Memblock memblock, CmaAreaSpec c, ulong limit, CmaReservationList areas)
    {
        ulong cbase;
        if (c.Base is { } fixedBase)
        {
            cbase = fixedBase;
            memblock.Reserve(cbase, c.Size, c.Name);
        }
        else if (c.Node >= 0)
        {
            cbase = PlaceOnNode(p, memblock, c)
                ?? throw new ProfileException($"cma '{c.Name}'", $"no free {c.Size >> 20} MiB window aligned to {p.CmaAlignment >> 20} MiB in node {c.Node}'s memory");
        }
        else
        {
            ulong top = Math.Min(limit, p.Arch == Arch.X86_64 ? 4UL << 30 : limit);
            cbase = memblock.AllocRange(c.Size, p.CmaAlignment, 0, top, c.Name)
                ?? throw new ProfileException($"cma '{c.Name}'", $"no free {c.Size >> 20} MiB window aligned to {p.CmaAlignment >> 20} MiB below 0x{top:x}");
        }
        areas.Add(new CmaArea(c.Name, cbase >> KernelFacts.PageShift, c.Size >> KernelFacts.PageShift, c.OrderPerBit)
        {
            Inactive = p.Config.IsEnabled("CMA_INACTIVE"),
            Node = c.Node,
        });
        areas.BootLines.Add((LogLevel.Info, ReservedLine(p, cbase, c.Size, c.Node)));
    }

    /// <summary>
    /// dma_numa_cma_reserve() (kernel/dma/contiguous.c, 6.6, CONFIG_DMA_NUMA_CMA): for each node, a <c>pernuma&lt;nid&gt;</c>
    /// area of <c>cma_pernuma=</c>'s size and a <c>numa&lt;nid&gt;</c> area of the size <c>numa_cma=&lt;nid&gt;:size[,…]</c> gives
    /// it (early_numa_cma(): node numbers and memparse sizes; parsing stops at the first word it cannot read), each by
    /// cma_declare_contiguous_nid() in that node. A node that is not online: "invalid node %d specified"; a reservation
    /// that fails: "dma_numa_cma_reserve: reservation failed: err -12, node %d" (the kernel's string has no newline).
    /// </summary>
    private static void ReserveNumaAreas(MachineProfile p, Memblock memblock, KernelCmdline cmd, CmaReservationList areas)
    {
        if (!p.Config.IsEnabled("DMA_NUMA_CMA")) return;
        ulong pernuma = 0;
        if (cmd["cma_pernuma"] is { } pn)
        {
            int pos = 0;
            if (!KernelCmdline.TryMemparse(pn, ref pos, out pernuma)) pernuma = 0;
        }
        var sizes = new SortedDictionary<int, ulong>();
        if (cmd["numa_cma"] is { } text)
        {
            int pos = 0;
            while (pos < text.Length)
            {
                int start = pos;
                while (pos < text.Length && char.IsAsciiDigit(text[pos])) pos++;
                if (pos == start || pos >= text.Length || text[pos] != ':'
                    || !int.TryParse(text.AsSpan(start, pos - start), out int nid) || nid >= 64) break;
                pos++;
                if (!KernelCmdline.TryMemparse(text, ref pos, out ulong size)) break;
                sizes[nid] = size;
                if (pos < text.Length && text[pos] == ',') pos++;
                else break;
            }
        }
        if (pernuma == 0 && sizes.Count == 0) return;
        for (int nid = 0; nid < 64; nid++)
        {
            ulong own = sizes.GetValueOrDefault(nid);
            if (nid >= p.NodeCount)
            {
                if (own != 0) areas.BootLines.Add((LogLevel.Warning, $"cma: invalid node {nid} specified"));
                continue;
            }
            if (pernuma != 0) DeclareOnNode(p, memblock, pernuma, $"pernuma{nid}", nid, areas);
            if (own != 0) DeclareOnNode(p, memblock, own, $"numa{nid}", nid, areas);
        }
    }

    /// <summary>cma_declare_contiguous_nid(0, size, 0, 0, 0, false, name, …, nid): the CMA alignment, placed in the node.</summary>
    private static void DeclareOnNode(MachineProfile p, Memblock memblock, ulong size, string name, int nid, CmaReservationList areas)
    {
        size = AlignUp(size, p.CmaAlignment);
        var spec = new CmaAreaSpec(name, null, size, 0) { Node = nid };
        ulong? at = size == 0 || !p.NodeHasMemory(nid) ? null : PlaceOnNode(p, memblock, spec);
        if (at is not { } b)
        {
            areas.BootLines.Add((LogLevel.Err, $"cma: Failed to reserve {size >> 20} MiB{Node(p, nid)}"));
            areas.BootLines.Add((LogLevel.Warning, $"cma: dma_numa_cma_reserve: reservation failed: err -12, node {nid}"));
            return;
        }
        areas.Add(new CmaArea(name, b >> KernelFacts.PageShift, size >> KernelFacts.PageShift, 0) { Node = nid });
        areas.BootLines.Add((LogLevel.Info, ReservedLine(p, b, size, nid)));
    }

    /// <summary>
    /// cma_declare_contiguous_nid(0, size, 0, …, nid) (mm/cma.c, 6.6) for an area of one node: memblock_alloc_range_nid()
    /// with exact_nid inside the node's memory — from 5.11 on a 64-bit kernel first bottom-up from 4 GiB when DRAM reaches
    /// 4 GiB + size ("mm: cma: allocate cma areas bottom-up", keeping CMA out of DMA/DMA32 and at the node's start), else
    /// the highest free window of the node.
    /// </summary>
    private static ulong? PlaceOnNode(MachineProfile p, Memblock memblock, CmaAreaSpec c)
    {
        var banks = p.Dram.Where(b => b.Node == c.Node).ToArray();
        ulong start = banks.Min(b => b.Base), end = banks.Max(b => b.End);
        ulong dramEnd = p.Dram.Max(b => b.End);
        const ulong FourG = 1UL << 32;
        if (p.Is64Bit && p.Version.IsAtLeast(5, 11) && dramEnd >= FourG + c.Size
            && memblock.AllocRangeBottomUp(c.Size, p.CmaAlignment, Math.Max(start, FourG), end, c.Name) is { } up)
            return up;
        return memblock.AllocRange(c.Size, p.CmaAlignment, start, end, c.Name);
    }

    /// <summary>
    /// dma_contiguous_reserve() (kernel/dma/contiguous.c, CONFIG_DMA_CMA) for a <c>cma=</c> on the command line: the
    /// default area "reserved" of that size, fixed when the word gave a start without an end, else anywhere in
    /// [start, min_not_zero(end, the architecture's DMA limit)). (CONFIG_CMA_SIZE_MBYTES is not applied: a profile states
    /// its default area in "cma".)
    /// </summary>
    private static void ReserveDefault(MachineProfile p, Memblock memblock, (ulong Size, ulong Base, ulong Limit) c, ulong dramEnd, CmaReservationList areas)
    {
        if (c.Size == 0) return;                                // selected_size 0: no area
        ulong archLimit = p.Arch switch
        {
            // arm_memblock_init() passes arm_dma_limit: the end of ZONE_DMA (inclusive), ~0 without it.
            Arch.Arm => p.DmaLimit is { } d ? d - 1 : ulong.MaxValue,
            Arch.Arm64 => p.Dma32Limit ?? p.DmaLimit ?? dramEnd,
            _ => dramEnd,
        };
        ulong limit = c.Limit != 0 ? Math.Min(c.Limit, archLimit) : archLimit;
        DeclareContiguous(p, memblock, c.Base, c.Size, limit, 0, c.Base + c.Size == c.Limit, DefaultAreaName, dramEnd, areas);
    }

    /// <summary>
    /// cma_declare_contiguous_nid() (mm/cma.c): without CONFIG_CMA_INACTIVE the alignment is raised to
    /// PAGE_SIZE &lt;&lt; max(MAX_ORDER - 1, pageblock_order) and a fixed base must already have it; with it (Rockchip's
    /// mm/cma.c) the caller's alignment stands. Base and size are aligned up, the limit down (0 or past the end of DRAM:
    /// the end of DRAM). A fixed range must not cross the end of lowmem nor pass the limit, and must be free; otherwise
    /// the highest free aligned range below the limit (highmem first when the range straddles lowmem's end). A failure
    /// prints the kernel's error and leaves the area out.
    /// </summary>
    private static void DeclareContiguous(MachineProfile p, Memblock memblock, ulong @base, ulong size, ulong limit, ulong alignment,
        bool isFixed, string name, ulong dramEnd, CmaReservationList areas)
    {
        bool inactive = p.Config.IsEnabled("CMA_INACTIVE");
        var lines = areas.BootLines;
        if (size == 0 || (alignment & (alignment - 1)) != 0) return;          // -EINVAL, silently
        if (!inactive)
        {
            alignment = Math.Max(alignment, p.CmaAlignment);
            if (isFixed && (@base & (alignment - 1)) != 0)
            {
                lines.Add((LogLevel.Err, $"cma: Region at {Pa(p, @base)} must be aligned to {Pa(p, alignment)} bytes"));
                Failed(p, size, lines);
                return;
            }
        }
        @base = AlignUp(@base, alignment);
        size = AlignUp(size, alignment);
        limit &= ~(alignment - 1);
        if (@base == 0) isFixed = false;
        // highmem_start = __pa(high_memory - 1) + 1: the end of lowmem.
        ulong highmemStart = Math.Min(p.LowmemLimit ?? dramEnd, dramEnd);
        if (isFixed && @base < highmemStart && @base + size > highmemStart)
        {
            lines.Add((LogLevel.Err, $"cma: Region at {Pa(p, @base)} defined on low/high memory boundary ({Pa(p, highmemStart)})"));
            Failed(p, size, lines);
            return;
        }
        if (limit == 0 || limit > dramEnd) limit = dramEnd;  // memblock_end_of_DRAM()
        if (@base + size > limit || @base + size < @base)
        {
            lines.Add((LogLevel.Err, $"cma: Size ({Pa(p, size)}) of region at {Pa(p, @base)} exceeds limit ({Pa(p, limit)})"));
            Failed(p, size, lines);
            return;
        }
        if (isFixed)
        {
            // memblock_is_region_reserved() or memblock_reserve() failing: -EBUSY. A range outside every bank is refused
            // too (the kernel would make an area of memory that does not exist).
            if (memblock.IsReserved(@base, size) || !memblock.IsMemory(@base, size))
            {
                Failed(p, size, lines);
                return;
            }
            memblock.Reserve(@base, size, name);
        }
        else
        {
            ulong? addr = null;
            if (@base < highmemStart && limit > highmemStart)
            {
                addr = memblock.AllocRange(size, alignment, highmemStart, limit, name);
                limit = highmemStart;
            }
            addr ??= memblock.AllocRange(size, alignment, @base, limit, name);
            if (addr is null)
            {
                Failed(p, size, lines);
                return;
            }
            @base = addr.Value;
        }
        areas.Add(new CmaArea(name, @base >> KernelFacts.PageShift, size >> KernelFacts.PageShift, 0)
        {
            Inactive = p.Config.IsEnabled("CMA_INACTIVE"),
        });
        lines.Add((LogLevel.Info, ReservedLine(p, @base, size)));
    }

    /// <summary>
    /// cma_declare_contiguous_nid()'s success line: Rockchip's CONFIG_CMA_INACTIVE prints the size in KiB
    /// ("Reserved %ld KiB at %pa"); kernel.org prints MiB ("Reserved %ld MiB at %pa"), naming the node from 6.6.
    /// </summary>
    internal static string ReservedLine(MachineProfile p, ulong @base, ulong size, int nid = -1) => p.Config.IsEnabled("CMA_INACTIVE")
        ? $"cma: Reserved {size >> 10} KiB at {Pa(p, @base)}"
        : $"cma: Reserved {size >> 20} MiB at {Pa(p, @base)}{Node(p, nid)}";

    /// <summary>cma_declare_contiguous_nid()'s failure line, in KiB with CONFIG_CMA_INACTIVE, else in MiB.</summary>
    private static void Failed(MachineProfile p, ulong size, List<(LogLevel, string)> lines) =>
        lines.Add((LogLevel.Err, p.Config.IsEnabled("CMA_INACTIVE")
            ? $"cma: Failed to reserve {size >> 10} KiB"
            : $"cma: Failed to reserve {size >> 20} MiB{Node(p)}"));

    /// <summary>From 6.6 the node is named, -1 for an area not tied to one ("dma-contiguous: support numa CMA for specified node").</summary>
    private static string Node(MachineProfile p, int nid = -1) => p.Version.IsAtLeast(6, 6) ? $" on node {nid}" : "";

    /// <summary>%pa: a phys_addr_t in hex with all its digits (8 on a 32-bit kernel, 16 on a 64-bit one).</summary>
    private static string Pa(MachineProfile p, ulong v) => "0x" + v.ToString(p.Is64Bit ? "x16" : "x8");

    private static ulong AlignUp(ulong v, ulong a) => (v + a - 1) & ~(a - 1);
}
