// What memblock reserves before the page allocator starts, step by step in start_kernel()/setup_arch() order: on
// 32-bit arm the image (_stext.._end), swapper_pg_dir and the FDT (arm_memblock_init()), then after the CMA areas the
// page tables, vectors and zero page (paging_init()), the resources and the unflattened device tree; on every
// architecture the command-line copies, the UP per-CPU first chunk, a log_buf_len= buffer and the early hash tables.
using Kmem.Core;

namespace Kmem.Boot;

internal static class EarlyAllocations
{
    private const ulong Page = 1UL << KernelFacts.PageShift;

    private static ulong AlignUp(ulong v, ulong a) => (v + a - 1) & ~(a - 1);

    /// <summary>SMP_CACHE_BYTES: the alignment of memblock_alloc() callers that ask for a cache line.</summary>
    private static ulong CacheLine(MachineProfile p) => (ulong)p.CacheLineSize;

    // ================================================================== arm_memblock_init()

    /// <summary>
    /// arch/arm/mm/init.c arm_memblock_init(): memblock_reserve(__pa(KERNEL_START), KERNEL_END - KERNEL_START) with
    /// KERNEL_START = _stext and KERNEL_END = _end (asm/memory.h), the image as arch/arm/kernel/vmlinux.lds.S lays it out
    /// (see <see cref="ArmImage"/>); arm_mm_memblock_reserve() (mm/mmu.c): swapper_pg_dir, SWAPPER_PG_DIR_SIZE =
    /// PTRS_PER_PGD (2048) × sizeof(pgd_t) (8) = 16 KiB right below the image (PAGE_OFFSET + TEXT_OFFSET - 0x4000);
    /// early_init_fdt_reserve_self() (drivers/of/fdt.c): the blob, fdt_totalsize() bytes, kept for good on arm.
    /// </summary>
    public static void ReserveArmImage(MachineProfile p, Memblock mb, EarlyBoot e)
    {
        var k = p.Kernel!;
        var img = ArmImage.Of(k);
        mb.Reserve(img.Stext, img.End - img.Stext, "kernel");
        e.Init = (img.InitBegin, img.InitEnd);
        // TEXT_OFFSET is at least 0x8000 on a real arm kernel; a profile whose image starts lower has no room for it.
        ulong text = k.Base & ~(Page - 1);
        if (p.Dram.Any(b => text >= b.Base + 0x4000 && text <= b.End)) mb.Reserve(text - 0x4000, 0x4000, "swapper_pg_dir");
        var (fdtBase, fdtSize) = FdtPlacement(p, img);
        if (p.Cma.FirstOrDefault(c => c.Base is { } cb && cb < fdtBase + fdtSize && fdtBase < cb + c.Size) is { } clash)
            throw new ProfileException("fdt.base", $"the device tree blob 0x{fdtBase:x}-0x{fdtBase + fdtSize - 1:x} overlaps CMA area '{clash.Name}'");
        mb.Reserve(fdtBase, fdtSize, "device tree (FDT)");
    }

    /// <summary>
    /// Where the FDT lies: the profile's base, else Rockchip U-Boot's fdt_addr_r (RAM + 12 MiB) when that is free of the
    /// image, the reservations and the fixed CMA areas, else right past the image.
    /// </summary>
    internal static (ulong Base, ulong Size) FdtPlacement(MachineProfile p, ArmImage img)
    {
        ulong size = p.Fdt?.Size ?? DeviceTreeBlob.DefaultSize;
        if (p.Fdt?.Base is { } b) return (b, size);
        ulong guess = p.Dram[0].Base + DeviceTreeBlob.DefaultOffset;
        bool Clear(ulong s, ulong n) => s + n <= img.Stext || s >= img.End;
        bool Overlaps(ulong s, ulong n, ulong rb, ulong rs) => s < rb + rs && rb < s + n;
        bool fits = guess + size <= p.Dram[0].End && Clear(guess, size)
            && !p.Reserved.Any(r => !r.Dynamic && Overlaps(guess, size, r.Base, r.Size))
            && !p.Cma.Any(c => c.Base is { } cb && Overlaps(guess, size, cb, c.Size));
        return (fits ? guess : AlignUp(img.End, Page), size);
    }

    // ================================================================== paging_init()

    /// <summary>
    /// arch/arm/mm/mmu.c paging_init(): map_lowmem() maps RAM with 1 MiB sections, so only a bank edge that is not
    /// section-aligned needs a PTE table (early_pte_alloc(): one page, PTE_HWTABLE_OFF + PTE_HWTABLE_SIZE, per 2 MiB pmd);
    /// dma_contiguous_remap() maps each CMA area that dma_contiguous_early_fixup() registered with pages (MT_MEMORY_DMA_READY
    /// has no section type): one table per 2 MiB pmd it spans; devicemaps_init(): vectors = early_alloc(PAGE_SIZE * 2) and
    /// the table of the 0xffe00000 pmd that holds the vectors page at 0xffff0000 (the earlycon fixmap slot shares it and,
    /// with earlycon, early_fixmap_shutdown() allocates it first);
    /// kmap_init(): the fixmap's table at FIXADDR_START 0xffc00000 (3.19 on, "ARM: 8235/1: Support for the fixmap") and
    /// with HIGHMEM the pkmap table; zero_page = early_alloc(PAGE_SIZE). early_alloc() aligns to the size.
    /// </summary>
    public static void ArmPagingInit(MachineProfile p, Memblock mb, IReadOnlyList<CmaArea> cma, ulong lowmemEnd)
    {
        const ulong Section = 1UL << 20, Pmd = 2UL << 20;
        var tables = new SortedSet<ulong>();
        void Pte(string name, ulong pmd)
        {
            if (tables.Add(pmd)) mb.Alloc(Page, Page, name);
        }
        foreach (var bank in p.Dram)
        {
            ulong end = Math.Min(bank.End, lowmemEnd);
            if (end <= bank.Base) continue;
            if ((bank.Base & (Section - 1)) != 0) Pte("page table (lowmem edge)", p.PageOffset + bank.Base - p.Dram[0].Base & ~(Pmd - 1));
            if ((end & (Section - 1)) != 0) Pte("page table (lowmem edge)", p.PageOffset + end - p.Dram[0].Base & ~(Pmd - 1));
        }
        foreach (var c in cma.Where(c => RemapsCma(p, c)))
        {
            ulong s = c.Base, e = Math.Min(c.Base + c.Size, lowmemEnd);
            for (ulong a = s & ~(Pmd - 1); a < e; a += Pmd) Pte($"page table (CMA {c.Name})", p.PageOffset + a - p.Dram[0].Base);
        }
        // early_fixmap_shutdown() re-creates the permanent fixmap slots before devicemaps_init(): an earlycon's
        // FIX_EARLYCON_MEM_BASE (0xffeff000) takes the vectors' pmd table first.
        if (KernelCmdline.Parse(p.Cmdline, "cmdline").Has("earlycon"))
            Pte("page table (vectors)", 0xffe00000UL);
        mb.Alloc(2 * Page, 2 * Page, "vectors");
        Pte("page table (vectors)", 0xffe00000UL);
        if (p.Config.IsEnabled("HIGHMEM")) Pte("page table (pkmap)", (p.PageOffset - Pmd) & 0xffffffffUL);
        if (p.Version.IsAtLeast(3, 19)) Pte("page table (fixmap)", 0xffc00000UL);
        mb.Alloc(Page, Page, "zero page");
    }

    /// <summary>
    /// Whether dma_contiguous_early_fixup() registered the area for dma_contiguous_remap(): every area that
    /// rmem_cma_setup() or dma_contiguous_reserve() declared does; Rockchip's rk-dma-heap-cma skips it under
    /// CONFIG_CMA_INACTIVE (drivers/dma-buf/rk_heaps/rk-dma-cma.c).
    /// </summary>
    internal static bool RemapsCma(MachineProfile p, CmaArea c) => !(c.Name == "rk-dma-heap-cma" && p.Config.IsEnabled("CMA_INACTIVE"));

    /// <summary>
    /// mm/page_alloc.c free_area_init_node() on FLATMEM (the 32-bit kernels here): alloc_node_mem_map() takes
    /// (end - start) × sizeof(struct page) with start and end rounded to MAX_ORDER_NR_PAGES, memblock_alloc_node(size,
    /// SMP_CACHE_BYTES); then setup_usemap() per populated zone: 4 bits (NR_PAGEBLOCK_BITS) per pageblock, rounded to
    /// whole longs. Returns mem_map's base and size.
    /// </summary>
    public static (ulong Base, ulong Bytes) FlatMemMap(MachineProfile p, Memblock mb, (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node)[] zones)
    {
        ulong maxOrderPages = 1UL << (p.MaxOrder - 1);
        ulong startPfn = (p.Dram[0].Base >> KernelFacts.PageShift) & ~(maxOrderPages - 1);
        ulong endPfn = AlignUp(p.Dram[^1].End >> KernelFacts.PageShift, maxOrderPages);
        ulong bytes = (endPfn - startPfn) * (ulong)p.StructPageSize;
        ulong at = mb.Alloc(bytes, CacheLine(p), "mem_map");
        int pbOrder = p.EffectivePageblockOrder;
        ulong longBits = p.Is64Bit ? 64UL : 32UL;
        foreach (var (_, s, e, _) in zones)
        {
            if (e <= s) continue;
            ulong size = e - s + (s & ((1UL << pbOrder) - 1));
            ulong bits = AlignUp(size, 1UL << pbOrder) >> pbOrder;
            bits = AlignUp(bits * 4, longBits);
            mb.Alloc(bits / 8, CacheLine(p), "pageblock flags (usemap)");
        }
        return (at, bytes);
    }

    /// <summary>SPARSEMEM section size: 128 MiB on x86_64, riscv64 and arm64 from 5.12 (1 GiB on arm64 before).</summary>
    private static ulong SectionSize(MachineProfile p) => p.Arch == Arch.Arm64 && !p.Version.IsAtLeast(5, 12) ? 1UL << 30 : 128UL << 20;

    /// <summary>
    /// mm/sparse.c sparse_init(): present sections are taken in PFN order and grouped by node; sparse_init_nid() gives
    /// each node's sections their memmap in one block (sparse_buffer_init() → memmap_alloc(size, align, min, nid,
    /// exact_nid)), allocated top-down on that node (memblock_alloc_try_nid_raw()/memblock_alloc_exact_nid_raw()), so a
    /// node's struct pages are its own memory. One block per node here (page-aligned, below the memblock limit); on a
    /// one-node machine the single block of before. Returns the first block's base and the bytes of all of them.
    /// </summary>
    public static (ulong Base, ulong Bytes) SparseMemMap(MachineProfile p, Memblock mb, ulong limit)
    {
        ulong sectionSize = SectionSize(p);
        ulong first = 0, total = 0;
        for (int nid = 0; nid < p.NodeCount; nid++)
        {
            var banks = p.Dram.Where(b => b.Node == nid).ToList();
            if (banks.Count == 0) continue;
            var sections = new HashSet<ulong>();
            foreach (var b in banks)
                for (ulong s = b.Base / sectionSize; s <= (b.End - 1) / sectionSize; s++) sections.Add(s);
            ulong pages = (ulong)sections.Count * (sectionSize >> KernelFacts.PageShift);
            ulong bytes = AlignUp(pages * (ulong)p.StructPageSize, Page);
            // The node's span (node_start_pfn .. node_end_pfn); a one-node machine keeps its whole RAM below the limit.
            ulong lo = p.NodeCount == 1 ? 0 : banks.Min(b => b.Base), hi = Math.Min(limit, p.NodeCount == 1 ? ulong.MaxValue : banks.Max(b => b.End));
            string name = p.NodeCount == 1 ? "mem_map" : $"mem_map (node {nid})";
            ulong at = (hi > lo ? mb.AllocRange(bytes, Page, lo, hi, name) : null)
                // memmap_alloc() without exact_nid falls back to any node.
                ?? mb.AllocRange(bytes, Page, 0, limit, name)
                ?? throw new ProfileException("dram", $"no room for the {bytes >> 10} KiB mem_map of node {nid} below 0x{limit:x}");
            if (total == 0) first = at;
            total += bytes;
        }
        return (first, total);
    }

    /// <summary>
    /// sizeof(pg_data_t) rounded to a page, as x86's alloc_node_data() takes it (roundup(sizeof(pg_data_t), PAGE_SIZE)).
    /// Derived from published two-node x86_64 logs of NODES_SHIFT-6 kernels (MAX_NUMNODES 64: the two zonelists hold
    /// 64 × MAX_NR_ZONES + 1 zonerefs each): 0x4000 on 3.15 ("  NODE_DATA [mem 0x3ffec000-0x3ffeffff]") and 0x5000 on 5.10
    /// ("NODE_DATA(0) allocated [mem 0x13fffb000-0x13fffffff]"); a distro kernel with NODES_SHIFT 10 takes 0x2b000.
    /// </summary>
    internal static ulong NodeDataSize(MachineProfile p) => p.Version.IsAtLeast(5, 0) ? 0x5000UL : 0x4000UL;

    /// <summary>
    /// arch/x86/mm/numa.c alloc_node_data(nid): memblock_phys_alloc_try_nid(nd_size, SMP_CACHE_BYTES, nid), top-down on the
    /// node, else anywhere ("    NODE_DATA(%d) on node %d"). numa_register_memblks() does it for every node with memory;
    /// init_cpu_to_node() later for a memoryless node (init_memory_less_node(); Kmem's nodes are all online, so a
    /// memoryless node without CPUs is treated the same). The blocks are kept in
    /// <see cref="EarlyBoot.NodeData"/> for the boot lines.
    /// </summary>
    public static void NodeDataAlloc(MachineProfile p, Memblock mb, EarlyBoot e, bool memoryless)
    {
        ulong size = NodeDataSize(p);
        for (int nid = 0; nid < p.NodeCount; nid++)
        {
            var banks = p.Dram.Where(b => b.Node == nid).ToList();
            if ((banks.Count == 0) != memoryless) continue;
            string name = $"NODE_DATA({nid})";
            ulong? at = banks.Count == 0 ? null : mb.AllocRange(size, CacheLine(p), banks.Min(b => b.Base), banks.Max(b => b.End), name);
            at ??= mb.AllocRange(size, CacheLine(p), 0, mb.CurrentLimit, name)
                ?? throw new ProfileException("dram", $"cannot allocate node_data for node {nid}");
            int on = p.Dram.FirstOrDefault(b => at.Value >= b.Base && at.Value < b.End)?.Node ?? nid;
            e.NodeData.Add((nid, at.Value, size, on));
        }
    }

    // ================================================================== rest of setup_arch()

    /// <summary>
    /// arch/arm/kernel/setup.c request_standard_resources(): one struct resource (8 words) per memory bank from memblock;
    /// drivers/of/fdt.c unflatten_device_tree(): the expanded tree (size + 4 bytes, aligned to struct device_node) and
    /// of_alias_scan()'s alias entries, the profile's <c>fdt.unflattened</c> bytes (default three times the blob).
    /// </summary>
    public static void ArmSetupArchTail(MachineProfile p, Memblock mb)
    {
        ulong word = p.Is64Bit ? 8UL : 4UL;
        foreach (var _ in p.Dram) mb.Alloc(8 * word, CacheLine(p), "resources");
        ulong unflattened = p.Fdt?.Unflattened ?? DeviceTreeBlob.DefaultUnflattenedFactor * (p.Fdt?.Size ?? DeviceTreeBlob.DefaultSize);
        mb.Alloc(unflattened, word, "device tree (unflattened)");
    }

    // ================================================================== start_kernel()

    /// <summary>
    /// init/main.c setup_command_line(): saved_command_line and static_command_line, strlen + 1 bytes each, SMP_CACHE_BYTES
    /// aligned; before 5.6 a third copy, initcall_command_line ("init/main.c: Alloc initcall_command_line in do_initcall()
    /// and free it" moved it to the slab). Then the per-CPU first chunk (UP kernels, <see cref="UpPerCpu"/>), setup_log_buf()
    /// and the early hash tables.
    /// </summary>
    public static void StartKernel(MachineProfile p, Memblock mb, EarlyBoot e, KernelCmdline cmd)
    {
        ulong len = (ulong)System.Text.Encoding.UTF8.GetByteCount(p.Cmdline) + 1;
        mb.Alloc(len, CacheLine(p), "saved_command_line");
        if (!p.Version.IsAtLeast(5, 6)) mb.Alloc(len, CacheLine(p), "initcall_command_line");
        mb.Alloc(len, CacheLine(p), "static_command_line");
        if (!p.Config.IsEnabled("SMP")) UpPerCpu(p, mb, e);
        SetupLogBuf(p, mb, e, cmd);
        EarlyHashes(p, mb, e, cmd);
    }

    /// <summary>
    /// mm/percpu.c, the !CONFIG_SMP setup_per_cpu_areas(): unit_size = roundup_pow_of_two(max(PCPU_MIN_UNIT_SIZE 32 KiB,
    /// PERCPU_DYNAMIC_RESERVE)) = 32 KiB, all dynamic; the alloc_info page (pcpu_alloc_alloc_info(): PFN_ALIGN'ed,
    /// freed again by pcpu_free_alloc_info()), the chunk itself (memblock_alloc_from(unit_size, PAGE_SIZE)), and
    /// pcpu_setup_first_chunk()'s tables (group offsets and sizes, unit map and offsets, the slot lists, the first chunk
    /// with its populated bitmap, alloc_map, bound_map and block metadata). pcpu_dump_alloc_info() prints at KERN_DEBUG.
    /// </summary>
    private static void UpPerCpu(MachineProfile p, Memblock mb, EarlyBoot e)
    {
        const ulong Unit = 32UL << 10;
        ulong word = p.Is64Bit ? 8UL : 4UL, line = CacheLine(p);
        ulong ai = mb.Alloc(Page, Page, "percpu alloc_info");
        mb.Alloc(Unit, Page, "percpu first chunk");
        e.PerCpuChunkBytes = Unit;
        mb.Alloc(word, line, "percpu group_offsets");
        mb.Alloc(word, line, "percpu group_sizes");
        mb.Alloc(4, line, "percpu unit_map");
        mb.Alloc(word, line, "percpu unit_off");
        int slots = (16 - 5 + 2) + 2;                                       // __pcpu_size_to_slot(32 KiB) + 2
        mb.Alloc((ulong)slots * 2 * word, line, "percpu slots");
        ulong bits = Unit / 4;                                               // PCPU_MIN_ALLOC_SIZE 4 bytes a bit
        mb.Alloc(22 * word + word, line, "percpu first chunk struct");     // struct pcpu_chunk + populated[1]
        mb.Alloc(AlignUp(bits, word * 8) / 8, line, "percpu alloc_map");
        mb.Alloc(AlignUp(bits + 1, word * 8) / 8, line, "percpu bound_map");
        mb.Alloc(Unit / Page * 8 * 4, line, "percpu md_blocks");
        mb.Free(ai, Page);
        e.PerCpuLines.Add($"pcpu-alloc: s0 r0 d{Unit} u{Unit} alloc=1*{Unit}");
        e.PerCpuLines.Add("pcpu-alloc: [0] 0 ");
    }

    /// <summary>
    /// kernel/printk/printk.c setup_log_buf(0): with log_buf_len= (memparse'd, rounded up to a power of two) above the static
    /// __LOG_BUF_LEN (1 &lt;&lt; CONFIG_LOG_BUF_SHIFT) a new buffer from memblock; from 5.10 (the lockless ring buffer)
    /// also its descriptors (3 words each) and printk_info records (88 bytes each), one per 32 bytes of text (PRB_AVGBITS 5).
    /// </summary>
    private static void SetupLogBuf(MachineProfile p, Memblock mb, EarlyBoot e, KernelCmdline cmd)
    {
        if (cmd["log_buf_len"] is not { } text) return;
        // Kmem checks the parameters it models (memparse() would read a word that is no size as 0, changing nothing).
        if (!MachineProfile.TryParseSize(text, out ulong want)) throw new ProfileException("cmdline", $"log_buf_len={text} is not a size");
        // log_buf_len_update(): sizes above LOG_BUF_LEN_MAX (2 GiB) are cut to it, with an error.
        if (want > 1UL << 31)
        {
            want = 1UL << 31;
            e.LogBufErrors.Add("log_buf over 2G is not supported.");
        }
        ulong size = want <= 1 ? want : 1UL << (64 - System.Numerics.BitOperations.LeadingZeroCount(want - 1));
        ulong staticLen = 1UL << (int)(p.Config.Number("LOG_BUF_SHIFT") ?? 17);
        if (size <= staticLen) return;
        ulong word = p.Is64Bit ? 8UL : 4UL;
        // setup_log_buf(): a part memblock cannot give is reported, what was taken is given back, and the static buffer stays.
        ulong limit = Math.Min(mb.CurrentLimit, mb.Memory[^1].End);
        if (mb.AllocRange(size, word, 0, limit, "log_buf") is not { } buf)
        {
            e.LogBufErrors.Add($"log_buf_len: {size} text bytes not available");
            return;
        }
        if (p.Version.IsAtLeast(5, 10))
        {
            ulong records = size >> 5;
            if (mb.AllocRange(records * 3 * word, word, 0, limit, "log_buf descriptors") is not { } descs)
            {
                e.LogBufErrors.Add($"log_buf_len: {records * 3 * word} desc bytes not available");
                mb.Free(buf, size);
                return;
            }
            if (mb.AllocRange(records * 88, word, 0, limit, "log_buf printk_info") is null)
            {
                e.LogBufErrors.Add($"log_buf_len: {records * 88} info bytes not available");
                mb.Free(descs, records * 3 * word);
                mb.Free(buf, size);
                return;
            }
        }
        e.LogBufLen = size;
    }

    /// <summary>
    /// fs/dcache.c dcache_init_early() and fs/inode.c inode_init_early(): "Dentry cache" (4- or 8-byte buckets, scale 13)
    /// and "Inode-cache" (scale 14) from memblock with HASH_EARLY | HASH_ZERO (memblock_alloc(size, SMP_CACHE_BYTES)), sized
    /// from nr_kernel_pages; dhash_entries= and ihash_entries= set the count. Skipped for vfs_caches_init() when hashdist
    /// (<see cref="Hashdist"/>). Before 4.15 kernel/pid.c pidhash_init() came first: "PID" (scale 18, HASH_EARLY | HASH_SMALL,
    /// shift 4, at most 4096).
    /// </summary>
    private static void EarlyHashes(MachineProfile p, Memblock mb, EarlyBoot e, KernelCmdline cmd)
    {
        ulong bucket = p.Is64Bit ? 8UL : 4UL;
        bool hashdist = Hashdist(p, cmd);
        var v = p.Version;
        if (!v.IsAtLeast(4, 15))
        {
            var pid = LargeSystemHash.Compute("PID", bucket, 0, 18, LargeSystemHash.Early | LargeSystemHash.Small, e.NrKernelPages, e.NrAllPages,
                p.Is64Bit, v, p.MaxOrder, hashShift: 4, highLimit: 4096);
            mb.Alloc(pid.Bytes, CacheLine(p), "PID hash");
            e.EarlyHashes.Add(pid);
        }
        foreach (var (name, param, scale) in new[] { ("Dentry cache", "dhash_entries", 13), ("Inode-cache", "ihash_entries", 14) })
        {
            ulong given = Entries(cmd, param);
            if (hashdist)
            {
                e.DeferredHashes.Add(LargeSystemHash.Compute(name, bucket, given, scale, 0, e.NrKernelPages, e.NrAllPages, p.Is64Bit, v, p.MaxOrder, hashdist: true));
                continue;
            }
            var h = LargeSystemHash.Compute(name, bucket, given, scale, LargeSystemHash.Early, e.NrKernelPages, e.NrAllPages, p.Is64Bit, v, p.MaxOrder);
            mb.Alloc(h.Bytes, CacheLine(p), name + " hash");
            e.EarlyHashes.Add(h);
        }
    }

    /// <summary>
    /// <c>hashdist</c> (mm/mm_init.c, 6.6; mm/page_alloc.c before 6.4): with CONFIG_NUMA, HASHDIST_DEFAULT is
    /// IS_ENABLED(CONFIG_64BIT) (include/linux/memblock.h); the <c>hashdist=</c> parameter (simple_strtoul) overrides it; from
    /// 5.3 fixup_hashdist() clears it when only one node has memory ("mm/large system hash: clear hashdist when only one
    /// node"). Without CONFIG_NUMA it is 0. With it, alloc_large_system_hash() vmallocs the late tables (interleaved by
    /// the boot's MPOL_INTERLEAVE) and the dentry and inode tables skip their early allocation.
    /// </summary>
    internal static bool Hashdist(MachineProfile p, KernelCmdline cmd)
    {
        if (!p.Config.IsEnabled("NUMA")) return false;
        bool on = p.Is64Bit;
        if (cmd["hashdist"] is { } text)
        {
            if (!ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong v))
                throw new ProfileException("cmdline", $"hashdist={text} is not a number");
            on = v != 0;
        }
        if (p.Version.IsAtLeast(5, 3) && Enumerable.Range(0, p.NodeCount).Count(p.NodeHasMemory) <= 1) on = false;
        return on;
    }

    /// <summary>
    /// A hash-size parameter (dhash_entries=, ihash_entries=, mhash_entries=, mphash_entries=): simple_strtoul(str, 0) in the
    /// kernel, a decimal, 0x hex or 0 octal number; Kmem refuses what is not a number.
    /// </summary>
    internal static ulong Entries(KernelCmdline cmd, string param)
    {
        if (cmd[param] is not { } text) return 0;
        ulong v = 0;
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out v)
            : text.Length > 1 && text[0] == '0'
                ? TryOctal(text, out v)
                : ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out v);
        if (!ok || v > 1UL << 31) throw new ProfileException("cmdline", $"{param}={text} is not a number of hash entries (at most 2^31)");
        return v;
    }

    private static bool TryOctal(string s, out ulong v)
    {
        v = 0;
        foreach (char c in s)
        {
            if (c is < '0' or > '7' || v > ulong.MaxValue / 8) return false;
            v = v * 8 + (ulong)(c - '0');
        }
        return true;
    }
}
