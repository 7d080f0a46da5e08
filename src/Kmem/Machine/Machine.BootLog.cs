// The boot messages of mm initialisation, in the kernel's words and order: banner, CMA
// reservations, i386's lowmem/highmem lines, zone ranges, node ranges, per-zone memmap/LIFO batch lines,
// zonelists, "Memory:". Only lines some release prints, each in the wording of the modelled release.
using Kmem.Boot;
using Kmem.Paging;

namespace Kmem;

public sealed partial class Machine
{
    private void PrintEarlyBootLines(MemoryLayout layout)
    {
        var m = this;
        var p = m.Profile;
        var log = m.Log;
        bool x86 = p.Arch is Arch.X86_64 or Arch.I386;
        if (p.Arch is Arch.Arm or Arch.Arm64) log.Info("Booting Linux on physical CPU 0x0");
        log.Printk(LogLevel.Notice, $"Linux version {ReleaseOf(p)} (kmem@kmem) (.NET {Environment.Version}) #1{(p.Config.IsEnabled("SMP") ? " SMP" : "")}{(p.Config.IsEnabled("PREEMPT") ? " PREEMPT" : "")}");
        if (x86)
        {
            foreach (var b in p.Dram) log.Info($"BIOS-e820: [mem {Hex18(b.Base)}-{Hex18(b.End - 1)}] usable");
            log.Info($"DMI: {(p.Description.Length > 0 ? p.Description : p.Name)}");
        }
        else
        {
            log.Info($"Machine model: {(p.Description.Length > 0 ? p.Description : p.Name)}");
        }
        PrintNumaInitLines(layout);
        // The CMA reservations of arm_memblock_init() in their order: device-tree pools, stated areas, the RK heap's area
        // (CmaReservations keeps each one's lines, failures included).
        foreach (var (level, text) in CmaReservations.BootLines(p, layout.CmaAreas)) log.Printk(level, text);
        if (p.Arch == Arch.I386) PrintI386LowHighLines(layout);

        log.Info("Zone ranges:");
        // zone_sizes_init()'s limits, machine-wide: each zone type from its lowest to its highest PFN over the nodes.
        foreach (var type in layout.Zones.Select(z => z.Type).Distinct())
        {
            if (type == ZoneType.Movable) continue;
            var spans = layout.Zones.Where(z => z.Type == type && z.EndPfn > z.StartPfn).ToList();
            ulong s = spans.Count == 0 ? 0 : spans.Min(z => z.StartPfn), e = spans.Count == 0 ? 0 : spans.Max(z => z.EndPfn);
            string name = PageTypes.ZoneNames[(int)type];
            log.Info(e > s ? $"  {name,-8} [mem {Hex18(s << 12)}-{Hex18((e << 12) - 1)}]" : $"  {name,-8} empty");
        }
        log.Info("Movable zone start for each node");
        PrintNodeRangeLines(layout);
    }

    /// <summary>
    /// print_unknown_bootoptions(): from 5.8 ("init: print out unknown kernel parameters") the words no parameter took;
    /// from 5.16 ("init: make unknown command line param message clearer", also in 5.15.3) quoted, with where they go.
    /// </summary>
    private void PrintUnknownParameters(List<string> unknown)
    {
        var v = Profile.Version;
        if (unknown.Count == 0 || !v.IsAtLeast(5, 8)) return;
        string list = string.Join(' ', unknown);
        bool clearer = v.IsAtLeast(5, 16) || (v.Major == 5 && v.Minor == 15 && v.Patch >= 3);
        Log.Printk(LogLevel.Notice, clearer
            ? $"Unknown kernel command line parameters \"{list}\", will be passed to user space."
            : $"Unknown command line parameters: {list}");
    }

    /// <summary>The lines printed from free_area_init_core() to mem_init().</summary>
    private void PrintMemInitLines(MemoryLayout layout)
    {
        var m = this;
        var pa = m.Pages;
        var p = m.Profile;
        var log = m.Log;
        long total = pa.Zones.Sum(z => z.Present);
        // From 6.10 free_area_init_core() no longer takes the memmap out of each zone nor prints it, and starts every
        // zone's managed pages at its present pages ("mm/mm_init.c: remove meaningless calculation of
        // zone->managed_pages in free_area_init_core()", "mm/mm_init.c: remove the useless dma_reserve"); its
        // remaining zone lines are pr_debug, which a kernel built without DEBUG does not print.
        bool zoneInitLines = !p.Version.IsAtLeast(6, 10);
        long vmTotal = zoneInitLines ? 0 : total;
        // calculate_node_totalpages() and free_area_init_core() run node by node.
        for (int nid = 0; zoneInitLines && nid < pa.NodeCount; nid++)
        {
            long nodePresent = 0;
            foreach (var z in pa.NodeZones(nid)) nodePresent += z.Present;
            log.Printk(LogLevel.Debug, $"On node {nid} totalpages: {nodePresent}");
            foreach (var z in pa.NodeZones(nid))
            {
                bool high = z.Type == ZoneType.HighMem;
                long freesize = z.Present;
                if (z.Spanned > 0 && !high)
                {
                    // calc_memmap_size(): the spanned pages, or with SPARSEMEM (the only memory model of arm64 and
                    // x86_64) the present ones when holes take more than a sixteenth of the zone.
                    bool sparse = p.Arch is Arch.Arm64 or Arch.X86_64;
                    long memmapPages = sparse && z.Spanned > z.Present + (z.Present >> 4) ? z.Present : z.Spanned;
                    long memmap = (memmapPages * p.StructPageSize + 4095) / 4096;
                    if (freesize >= memmap)
                    {
                        freesize -= memmap;
                        if (memmap > 0) log.Printk(LogLevel.Debug, $"  {z.Name} zone: {memmap} pages used for memmap");
                    }
                    // "mm/page_alloc: improve memmap_pages dbg msg" (5.14) names the memmap pages in the warning
                    else log.Warn($"  {z.Name} zone: {memmap} {(p.Version.IsAtLeast(5, 14) ? "memmap pages" : "pages")} exceeds freesize {freesize}");
                }
                if (z.ZoneIdx == 0 && freesize > 0) log.Printk(LogLevel.Debug, $"  {z.Name} zone: 0 pages reserved");
                if (z.Populated) log.Printk(LogLevel.Debug, $"  {z.Name} zone: {z.Present} pages, LIFO batch:{Watermarks.PcpBatch(freesize)}");
                vmTotal += freesize;
            }
        }
        bool grouping = vmTotal >= (1L << pa.PageblockOrder) * PageTypes.MigrateTypes;
        // Before 4.14 the line named the zonelist order ("mm, page_alloc: rip out ZONELIST_ORDER_ZONE" removed it).
        string order = p.Version.IsAtLeast(4, 14) ? "" : $" in {pa.ZonelistOrder} order";
        // start_kernel() prints the command line after build_all_zonelists(); from 6.4 before it, as mm_core_init() builds
        // the zonelists ("init: fold build_all_zonelists() and page_alloc_init_cpuhp() to mm_init()"). Both come after
        // setup_arch(), which prints the zone ranges.
        bool cmdlineFirst = p.Version.IsAtLeast(6, 4);
        // parse_args() follows the command line's line, and print_unknown_bootoptions() reports what nobody took.
        void PrintCmdline()
        {
            if (p.Cmdline.Length == 0) return;
            log.Printk(LogLevel.Notice, $"Kernel command line: {p.Cmdline}");
            PrintUnknownParameters(UnknownParameters(p, KernelCmdline.Parse(p.Cmdline, "cmdline")));
        }
        // setup_per_cpu_areas() runs before both (its pcpu_dump_alloc_info() is KERN_DEBUG).
        foreach (var line in layout.Early.PerCpuLines) log.Printk(LogLevel.Debug, line);
        if (cmdlineFirst) { PrintCmdline(); PrintEarlyAllocationLines(layout); }
        PrintFallbackOrder();
        // nr_online_nodes zonelists (one per node), then with CONFIG_NUMA the policy zone.
        log.Info($"Built {pa.NodeCount} zonelists{order}, mobility grouping {(grouping ? "on" : "off")}.  Total pages: {vmTotal}");
        PrintPolicyZone();
        if (!cmdlineFirst) { PrintCmdline(); PrintEarlyAllocationLines(layout); }
        PrintMemAutoInit();

        // mem_init(): CMA pages are still reserved at this point (they are activated later at core_initcall); with
        // CONFIG_CMA_INACTIVE (or an inactive node) they never are, so Kmem's free and managed counts hold none of those.
        long activatedCma = pa.ActiveCmaPages;
        long freeNow = pa.Zones.Sum(z => z.FreePages) - activatedCma;
        long totalramNow = pa.TotalRamPages - activatedCma;
        long phys = pa.PhysPages;
        var k = p.Kernel;
        string high2 = p.LowmemLimit is not null ? $", {pa.Zones.Where(z => z.Type == ZoneType.HighMem).Sum(z => z.Managed) * 4}K highmem" : "";
        // mem_init_print_info(); "mm: cma: split cma-reserved in dmesg log" (3.19) added the cma-reserved field and took
        // the CMA pages out of "reserved".
        string reservedPart = p.Version.IsAtLeast(3, 19)
            ? $"{(phys - totalramNow - pa.TotalCmaPages) * 4}K reserved, {pa.TotalCmaPages * 4}K cma-reserved"
            : $"{(phys - totalramNow) * 4}K reserved";
        if (!p.Version.IsAtLeast(3, 11) && p.Arch is Arch.X86_64 or Arch.I386)
            PrintX86MemInit310(layout, freeNow, totalramNow);
        else
            log.Info($"Memory: {freeNow * 4}K/{phys * 4}K available ({(k?.Code ?? 0) >> 10}K kernel code, {(k?.RwData ?? 0) >> 10}K rwdata, " +
                     $"{(k?.RoData ?? 0) >> 10}K rodata, {(k?.Init ?? 0) >> 10}K init, {(k?.Bss ?? 0) >> 10}K bss, " +
                     $"{reservedPart}{high2})");
        PrintVirtualLayout(layout);
        if (!_phys.IsFileBacked)
            log.Warn($"kmem: physical memory is a plain native block (no memfd: {_phys.NotFileBackedReason}): remapping is unavailable");
    }

    /// <summary>
    /// After parse_args(): setup_log_buf(0)'s lines when log_buf_len= gave a larger buffer ("log_buf_len: %u bytes", "early
    /// log buf free: %u(%u%%)": the static buffer less what the records so far take, their text from 5.10, before it a 16-byte
    /// header each, word-aligned), then the early hash tables (pidhash_init() before 4.15, vfs_caches_init_early()).
    /// </summary>
    private void PrintEarlyAllocationLines(MemoryLayout layout)
    {
        var p = Profile;
        foreach (var error in layout.Early.LogBufErrors) Log.Printk(LogLevel.Err, error);
        if (layout.Early.LogBufLen > 0)
        {
            long staticLen = 1L << (int)(p.Config.Number("LOG_BUF_SHIFT") ?? 17);
            long align = p.Is64Bit ? 8 : 4;
            long used = Log.Snapshot().Sum(r =>
            {
                long text = System.Text.Encoding.UTF8.GetByteCount(r.Text);
                return p.Version.IsAtLeast(5, 10) ? text : (16 + text + align - 1) / align * align;
            });
            long free = Math.Max(0, staticLen - used);
            Log.Info($"log_buf_len: {layout.Early.LogBufLen} bytes");
            Log.Info($"early log buf free: {free}({free * 100 / staticLen}%)");
        }
        foreach (var h in layout.Early.EarlyHashes) Log.Info(h.Line(p.Version));
    }

    /// <summary>
    /// report_meminit() (5.3 on, "mm: security: introduce init_on_alloc=1 and init_on_free=1 boot options"), just before
    /// mem_init(): the stack initialisation the build chose (from 5.9 "all(zero)"/"all(pattern)", before "all"), and
    /// whether init_on_alloc/init_on_free are on (CONFIG_INIT_ON_*_DEFAULT_ON or the command line's init_on_alloc=,
    /// init_on_free=).
    /// </summary>
    private void PrintMemAutoInit()
    {
        var p = Profile;
        if (!p.Version.IsAtLeast(5, 3)) return;
        var c = p.Config;
        bool named = p.Version.IsAtLeast(5, 9);
        string stack = c.IsEnabled("INIT_STACK_ALL_PATTERN") ? "all(pattern)"
            : c.IsEnabled("INIT_STACK_ALL_ZERO") ? "all(zero)"
            : c.IsEnabled("INIT_STACK_ALL") && !named ? "all"
            : c.IsEnabled("GCC_PLUGIN_STRUCTLEAK_BYREF_ALL") ? (named ? "byref_all(zero)" : "byref_all")
            : c.IsEnabled("GCC_PLUGIN_STRUCTLEAK_BYREF") ? (named ? "byref(zero)" : "byref")
            : c.IsEnabled("GCC_PLUGIN_STRUCTLEAK_USER") ? (named ? "__user(zero)" : "__user")
            : "off";
        var cmd = KernelCmdline.Parse(p.Cmdline, "cmdline");
        bool alloc = BoolParam(cmd["init_on_alloc"], "init_on_alloc") ?? c.IsEnabled("INIT_ON_ALLOC_DEFAULT_ON");
        bool free = BoolParam(cmd["init_on_free"], "init_on_free") ?? c.IsEnabled("INIT_ON_FREE_DEFAULT_ON");
        Log.Info($"mem auto-init: stack:{stack}, heap alloc:{(alloc ? "on" : "off")}, heap free:{(free ? "on" : "off")}");
        if (free) Log.Info("mem auto-init: clearing system memory may take some time...");
    }

    /// <summary>kstrtobool() of an early parameter: 1/y/on and 0/n/off (first letters as the kernel reads them); null when absent.</summary>
    private static bool? BoolParam(string? value, string name)
    {
        if (value is null) return null;
        string v = value.ToLowerInvariant();
        if (v.StartsWith('1') || v.StartsWith('y') || v.StartsWith("on", StringComparison.Ordinal)) return true;
        if (v.StartsWith('0') || v.StartsWith('n') || v.StartsWith("of", StringComparison.Ordinal)) return false;
        throw new ProfileException("cmdline", $"{name}={value} is not a boolean (1/0, y/n, on/off)");
    }

    /// <summary>
    /// x86's own mem_init() line before mem_init_print_info() replaced it in 3.11 ("mm: introduce helper function
    /// mem_init_print_info() to simplify mem_init()"), lowercase k: x86_64 reports the pages up to max_pfn with the holes
    /// as "absent"; i386 the pages up to the end of its RAM, lowmem's reserved pages and highmem. "data" runs from _etext to _edata (read-only
    /// data included).
    /// </summary>
    private void PrintX86MemInit310(MemoryLayout layout, long free, long totalram)
    {
        var pa = Pages;
        var k = Profile.Kernel;
        long code = (long)((k?.Code ?? 0) >> 10), data = (long)(((k?.RoData ?? 0) + (k?.RwData ?? 0)) >> 10), init = (long)((k?.Init ?? 0) >> 10);
        long maxPfn = (long)(layout.SpanEnd >> 12);
        if (Profile.Arch == Arch.X86_64)
        {
            long absent = maxPfn - pa.PhysPages;
            Log.Info($"Memory: {free * 4}k/{maxPfn * 4}k available ({code}k kernel code, {absent * 4}k absent, " +
                     $"{(maxPfn - totalram - absent) * 4}k reserved, {data}k data, {init}k init)");
            return;
        }
        var high = pa.Zones.Where(z => z.Type == ZoneType.HighMem).ToList();
        long lowReserved = pa.Zones.Where(z => z.Type != ZoneType.HighMem).Sum(z => z.Present - z.Managed);
        // num_physpages: highend_pfn with CONFIG_HIGHMEM, else max_low_pfn (the holes below included)
        long numPhys = Profile.Config.IsEnabled("HIGHMEM") ? maxPfn : Math.Min(maxPfn, (long)(MachineProfile.I386LowmemEnd >> 12));
        Log.Info($"Memory: {free * 4}k/{numPhys * 4}k available ({code}k kernel code, {lowReserved * 4}k reserved, " +
                 $"{data}k data, {init}k init, {high.Sum(z => z.Managed) * 4}k highmem)");
    }

    /// <summary>
    /// i386's initmem_init() and setup_bootmem_allocator() (arch/x86/mm/init_32.c, non-NUMA): the megabytes of highmem
    /// (with CONFIG_HIGHMEM) and lowmem, then the directly mapped low RAM. pages_to_mb() truncates.
    /// </summary>
    private void PrintI386LowHighLines(MemoryLayout layout)
    {
        var p = Profile;
        ulong maxPfn = layout.SpanEnd >> 12;
        ulong maxLowPfn = Math.Min(maxPfn, (p.LowmemLimit ?? MachineProfile.I386LowmemEnd) >> 12);
        if (p.Config.IsEnabled("HIGHMEM")) Log.Printk(LogLevel.Notice, $"{(maxPfn - maxLowPfn) >> 8}MB HIGHMEM available.");
        Log.Printk(LogLevel.Notice, $"{maxLowPfn >> 8}MB LOWMEM available.");
        Log.Info($"  mapped low ram: 0 - {maxLowPfn << 12:x8}");
        Log.Info($"  low ram: 0 - {maxLowPfn << 12:x8}");
    }

    private static string Hex18(ulong v) => "0x" + v.ToString("x16");
}
