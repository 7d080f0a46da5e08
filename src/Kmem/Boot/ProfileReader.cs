// Reads a profile's JSON element by element: unknown keys, wrong types and impossible values are
// rejected with the field's path. Nothing is built until the whole profile has been checked.
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kmem.Boot;

internal static partial class ProfileReader
{
    private const ulong MiB = 1UL << 20;
    private const ulong GiB = 1UL << 30;

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex NameRegex();

    [GeneratedRegex("^[A-Za-z0-9.,_+@-]+$")]
    private static partial Regex NodeNameRegex();

    [GeneratedRegex("^[A-Za-z0-9._:@-]+$")]
    private static partial Regex DeviceNameRegex();

    public static MachineProfile Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ProfileException("(root)", "must be a JSON object");
        Keys(root, "", "name", "description", "arch", "cpus", "cache_line_size", "kmalloc_min_align", "page_size",
            "max_order", "pageblock_order", "dram", "zones", "reserved", "kernel", "cma", "devices", "min_free_kbytes", "cmdline", "vmalloc_size", "dma_debug",
            "version", "config", "fdt", "cpu_nodes", "distances", "memoryless_nodes");

        string name = Str(root, "name", required: true)!;
        if (!NameRegex().IsMatch(name)) throw new ProfileException("name", $"'{name}' may hold only letters, digits, '.', '_' and '-'");
        string archText = Str(root, "arch", required: true)!;
        Arch arch = archText switch
        {
            "arm" or "arm32" or "armv7" => Arch.Arm,
            "arm64" or "aarch64" => Arch.Arm64,
            "x86_64" or "x86-64" or "amd64" => Arch.X86_64,
            "i386" or "i686" or "x86" or "x86_32" => Arch.I386,
            "riscv32" or "rv32" => Arch.Riscv32,
            "riscv64" or "rv64" or "riscv" => Arch.Riscv64,
            _ => throw new ProfileException("arch", $"unknown architecture '{archText}' (expected arm, arm64, x86_64, i386, riscv32 or riscv64)"),
        };
        bool is64 = arch is Arch.Arm64 or Arch.X86_64 or Arch.Riscv64;
        var version = KernelVersion.Default;
        if (Str(root, "version", required: false) is { } versionText)
        {
            if (!KernelVersion.TryParse(versionText, out version))
                throw new ProfileException("version", $"'{versionText}' is not a kernel version (expected major.minor, e.g. \"5.15\")");
            if (!version.IsSupported)
                throw new ProfileException("version", $"Linux {version} is outside the releases Kmem models ({KernelVersion.Oldest} to 6.12)");
        }
        var configOptions = ConfigOptions(root);
        int cpus = Int(root, "cpus", 1, 1024, required: true)!.Value;
        int? pageSize = Int(root, "page_size", 1, int.MaxValue, required: false);
        if (pageSize is not null && pageSize != MachineProfile.PageSize)
            throw new ProfileException("page_size", $"{pageSize} is not supported (Kmem models 4096-byte pages)");
        int cacheLine = Int(root, "cache_line_size", 16, 256, required: false) ?? 64;
        if (!IsPow2((ulong)cacheLine)) throw new ProfileException("cache_line_size", $"{cacheLine} is not a power of two");
        // arm64 from 6.5 ("mm/slab: Decouple ARCH_KMALLOC_MINALIGN from ARCH_DMA_MINALIGN", with swiotlb bouncing
        // unaligned kmalloc buffers): ARCH_KMALLOC_MINALIGN is 8, so kmalloc-8 … kmalloc-192 exist; before, 128.
        int kmallocAlign = Int(root, "kmalloc_min_align", 8, 4096, required: false) ?? arch switch { Arch.Arm => 64, Arch.Arm64 => version.IsAtLeast(6, 5) ? 8 : 128, _ => 8 };
        if (!IsPow2((ulong)kmallocAlign)) throw new ProfileException("kmalloc_min_align", $"{kmallocAlign} is not a power of two");
        // "max_order" in the meaning of the profile's version: MAX_ORDER counts the orders before 6.4 and is the largest from 6.4.
        bool inclusive = version.IsAtLeast(6, 4);
        int maxOrder = Int(root, "max_order", inclusive ? 1 : 2, inclusive ? 15 : 16, required: false) is { } mo ? (inclusive ? mo + 1 : mo)
            : MaxOrderFromConfig(configOptions, inclusive) ?? 11;
        int? pageblock = Int(root, "pageblock_order", 0, maxOrder - 1, required: false);

        // ---- DRAM
        var dramEl = Arr(root, "dram", required: true)!.Value;
        var dram = new List<DramBank>();
        int i = 0;
        foreach (var b in dramEl.EnumerateArray())
        {
            string p = $"dram[{i}]";
            Obj(b, p);
            Keys(b, p, "base", "size", "node");
            ulong bas = Size(b, "base", p, required: true)!.Value;
            int node = Int(b, "node", 0, MaxNodes - 1, required: false, path: p) ?? 0;
            ulong size = Size(b, "size", p, required: true)!.Value;
            if (size == 0) throw new ProfileException($"{p}.size", "must not be zero");
            if (bas % MachineProfile.PageSize != 0) throw new ProfileException($"{p}.base", $"0x{bas:x} is not page aligned");
            if (size % MachineProfile.PageSize != 0) throw new ProfileException($"{p}.size", $"0x{size:x} is not a multiple of the page size");
            if (bas + size < bas) throw new ProfileException($"{p}", "bank wraps around the address space");
            if (!is64 && bas + size > 4 * GiB) throw new ProfileException($"{p}", $"a 32-bit {archText} kernel without LPAE/PAE addresses only 4 GiB");
            dram.Add(new DramBank(bas, size) { Node = node });
            i++;
        }
        if (dram.Count == 0) throw new ProfileException("dram", "at least one memory bank is required");
        if (FirstOverlap(dram.Select((b, k) => (b.Base, b.End, k)).ToList()) is var (later, earlier))
            throw new ProfileException($"dram[{later}]", $"overlaps dram[{earlier}] (0x{dram[earlier].Base:x}-0x{dram[earlier].End - 1:x})");
        dram.Sort((a, b) => a.Base.CompareTo(b.Base));
        ulong total = dram.Aggregate(0UL, (s, b) => s + b.Size);
        if (total < 8 * MiB) throw new ProfileException("dram", $"{total >> 10} KiB of RAM is too little to boot (at least 8 MiB)");
        if (total > 64 * GiB) throw new ProfileException("dram", $"{total >> 30} GiB of RAM is more than Kmem models (at most 64 GiB)");
        ulong spanEnd = dram[^1].End, spanStart = dram[0].Base;
        if (spanEnd - spanStart > 256 * GiB) throw new ProfileException("dram", "the banks span more than 256 GiB of address space");

        // ---- zones: which exist is the config's (ZONE_DMA, ZONE_DMA32, HIGHMEM); "zones" moves a limit, or removes a zone with null.
        var given = ZoneLimits.None;
        if (root.TryGetProperty("zones", out var zonesEl))
        {
            Obj(zonesEl, "zones");
            Keys(zonesEl, "zones", "dma_limit", "dma32_limit", "lowmem_limit");
            foreach (var (key, option) in new[] { ("dma_limit", "ZONE_DMA"), ("dma32_limit", "ZONE_DMA32"), ("lowmem_limit", "HIGHMEM") })
            {
                if (!zonesEl.TryGetProperty(key, out var el)) continue;
                string f = $"zones.{key}";
                if (key == "lowmem_limit" && arch is not (Arch.Arm or Arch.I386))
                    throw new ProfileException(f, "only 32-bit arm and i386 have a lowmem limit (HighMem)");
                if (el.ValueKind == JsonValueKind.Null)
                {
                    if (configOptions.TryGetValue(option, out var on) && on is true)
                        throw new ProfileException(f, $"is null (no such zone) but config {option} is true");
                    configOptions.TryAdd(option, false);
                    continue;
                }
                ulong lim = SizeValue(el, f);
                if (lim == 0 || lim % MachineProfile.PageSize != 0) throw new ProfileException(f, $"0x{lim:x} must be a non-zero multiple of the page size");
                if (key == "lowmem_limit" && arch == Arch.I386 && lim > MachineProfile.I386LowmemEnd)
                    throw new ProfileException(f, $"0x{lim:x} is above the end of i386 lowmem (0x{MachineProfile.I386LowmemEnd:x}, the 3G/1G split less the vmalloc reserve)");
                if (key == "lowmem_limit" && arch == Arch.Arm && lim > spanStart + 0x3f000000UL - (8UL << 20))
                    throw new ProfileException(f, $"0x{lim:x} leaves no room for the vmalloc area below 0xff800000");
                if (configOptions.TryGetValue(option, out var off) && off is false)
                    throw new ProfileException(f, $"sets a limit for a zone that config {option}: false removes");
                given = key switch
                {
                    "dma_limit" => given with { Dma = lim },
                    "dma32_limit" => given with { Dma32 = lim },
                    _ => given with { Lowmem = lim },
                };
            }
        }
        var draft = new MachineProfile
        {
            Name = name, Arch = arch, Cpus = cpus, CacheLineSize = cacheLine, KmallocMinAlign = kmallocAlign,
            MaxOrder = maxOrder, PageblockOrder = pageblock, Dram = dram, Version = version, ConfigOptions = configOptions,
            GivenZones = given,
        };
        var config = draft.Config;                                   // resolves and checks the config (ProfileException)
        draft = ReadNodes(root, draft);
        if (given.Dma is not null && !config.IsEnabled("ZONE_DMA")) throw new ProfileException("zones.dma_limit", $"Linux {version} on {archText} has no ZONE_DMA");
        if (given.Dma32 is not null && !config.IsEnabled("ZONE_DMA32")) throw new ProfileException("zones.dma32_limit", $"Linux {version} on {archText} has no ZONE_DMA32");
        if (given.Lowmem is not null && !config.IsEnabled("HIGHMEM")) throw new ProfileException("zones.lowmem_limit", "a lowmem limit needs config HIGHMEM");
        ulong? dmaLimit = draft.DmaLimit, dma32Limit = draft.Dma32Limit, lowmemLimit = draft.LowmemLimit;
        if (dmaLimit is { } a && dma32Limit is { } b2 && a > b2) throw new ProfileException("zones.dma_limit", "lies above zones.dma32_limit");
        if (!is64 && lowmemLimit is null && arch is Arch.Arm or Arch.I386)
        {
            ulong lowmemEnd = arch == Arch.I386 ? MachineProfile.I386LowmemEnd : spanStart + MachineProfile.ArmLowmemSize(config);
            if (spanEnd > lowmemEnd)
                throw new ProfileException("dram", $"without config HIGHMEM, Linux uses only the lowmem below 0x{lowmemEnd:x}: turn HIGHMEM on or end the memory there");
        }

        // ---- reservations and kernel image
        var reserved = new List<ReservedRange>();
        if (Arr(root, "reserved", required: false) is { } resEl)
        {
            i = 0;
            foreach (var r in resEl.EnumerateArray())
            {
                string p = $"reserved[{i}]";
                Obj(r, p);
                Keys(r, p, "name", "base", "size", "alignment", "alloc_ranges", "dt_order");
                string rn = Str(r, "name", required: false, path: p) ?? $"reserved{i}";
                // "base": "auto": a dynamic reserved-memory node, placed at boot (ReservedMemoryInit).
                bool dyn = r.TryGetProperty("base", out var rbe) && rbe.ValueKind == JsonValueKind.String && rbe.GetString() == "auto";
                if (dyn && arch is Arch.X86_64 or Arch.I386) throw new ProfileException($"{p}.base", "\"auto\" is a device-tree reserved-memory node's placement; x86 has no device tree");
                ulong rb = dyn ? 0 : Size(r, "base", p, required: true)!.Value;
                ulong rs = Size(r, "size", p, required: true)!.Value;
                int rorder = DtOrderKey(r, p);
                // Size 0 only for a reserved-memory node the kernel's scan saves without reserving anything (a reg of size 0,
                // outside RAM, or removed by no-map): it still takes its place in the kernel's order of the nodes.
                if (rs == 0 && (dyn || rorder < 0)) throw new ProfileException($"{p}.size", "must not be zero (0 only for a reserved-memory node with dt_order that reserves nothing)");
                if (!dyn && rs != 0 && !InsideOneBank(dram, rb, rs)) throw new ProfileException(p, $"0x{rb:x}-0x{rb + rs - 1:x} is not inside a memory bank");
                var (ralign, rranges) = DynamicPlacement(r, p, dyn);
                reserved.Add(new ReservedRange(rn, rb, rs) { Dynamic = dyn, Alignment = ralign, AllocRanges = rranges, DtOrder = rorder });
                i++;
            }
        }
        KernelImage? kernel = null;
        if (root.TryGetProperty("kernel", out var kEl))
        {
            Obj(kEl, "kernel");
            Keys(kEl, "kernel", "base", "code", "rwdata", "rodata", "init", "bss", "tables");
            kernel = new KernelImage(Size(kEl, "base", "kernel", true)!.Value, Size(kEl, "code", "kernel", false) ?? 0,
                Size(kEl, "rwdata", "kernel", false) ?? 0, Size(kEl, "rodata", "kernel", false) ?? 0,
                Size(kEl, "init", "kernel", false) ?? 0, Size(kEl, "bss", "kernel", false) ?? 0)
            { Tables = Size(kEl, "tables", "kernel", false) };
            foreach (var (section, bytes) in new[] { ("code", kernel.Code), ("rwdata", kernel.RwData), ("rodata", kernel.RoData), ("init", kernel.Init), ("bss", kernel.Bss) })
                if (bytes > total) throw new ProfileException($"kernel.{section}", $"0x{bytes:x} bytes is more than the RAM");
            if (kernel.Size == 0) throw new ProfileException("kernel", "the image has no size (give code, rwdata, rodata, init, bss)");
            if (kernel.Tables is { } kt)
            {
                if (arch != Arch.Arm) throw new ProfileException("kernel.tables", "is the 32-bit arm image's gap between __end_rodata and __init_begin; other architectures lay out their image otherwise");
                if (kt > 64 * MiB) throw new ProfileException("kernel.tables", $"0x{kt:x} bytes between __end_rodata and __init_begin is more than 64 MiB");
            }
            if (!InsideOneBank(dram, kernel.Base, kernel.Size)) throw new ProfileException("kernel.base", $"the image 0x{kernel.Base:x}-0x{kernel.Base + kernel.Size - 1:x} is not inside a memory bank");
            // On arm memblock reserves _stext.._end, which adds the page alignment and the tables between the sections.
            if (arch == Arch.Arm && ArmImage.Of(kernel) is var img && !InsideOneBank(dram, kernel.Base, img.End - kernel.Base))
                throw new ProfileException("kernel.base", $"the image as laid out, 0x{kernel.Base:x}-0x{img.End - 1:x} (_stext.._end with its alignment and tables), is not inside a memory bank");
        }

        var fdt = ReadFdt(root, arch, dram, kernel);
        var partial = draft with { Reserved = reserved, Kernel = kernel, Fdt = fdt };

        // ---- CMA areas
        var cma = new List<CmaAreaSpec>();
        var cmaNames = new HashSet<string>(StringComparer.Ordinal);
        var staticReserved = reserved.Where(r => !r.Dynamic && r.Size != 0).ToList();
        var reservedIndex = new RangeIndex(staticReserved.Select(r => (r.Base, r.Base + r.Size)));
        var placedCma = new List<(ulong Base, ulong End, int Index)>();
        if (Arr(root, "cma", required: false) is { } cmaEl)
        {
            ulong align = partial.CmaAlignment;
            i = 0;
            foreach (var c in cmaEl.EnumerateArray())
            {
                string p = $"cma[{i}]";
                Obj(c, p);
                Keys(c, p, "name", "base", "size", "order_per_bit", "reserved_memory", "inactive", "node", "alignment", "alloc_ranges", "dt_order");
                // "reserved_memory": a device-tree reserved-memory node (compatible "shared-dma-pool", reusable), named after
                // the node (linux,cma by default), whose area rmem_cma_setup() creates (kernel/dma/contiguous.c).
                bool dt = Bool(c, "reserved_memory", p) ?? false;
                // "inactive": the vendor property of a reserved-memory node (Rockchip 4.19 kernel/dma/contiguous.c).
                bool inactive = Bool(c, "inactive", p) ?? false;
                if (inactive && !dt) throw new ProfileException($"{p}.inactive", "only a device-tree reserved-memory node (\"reserved_memory\": true) carries the inactive property");
                if (dt && arch is Arch.X86_64 or Arch.I386) throw new ProfileException($"{p}.reserved_memory", "x86 has no device tree to hold a reserved-memory node");
                string cn = Str(c, "name", required: !dt, path: p) ?? "linux,cma";
                if (dt ? !NodeNameRegex().IsMatch(cn) : !NameRegex().IsMatch(cn))
                    throw new ProfileException($"{p}.name", dt ? $"'{cn}' is not a device-tree node name" : $"'{cn}' may hold only letters, digits, '.', '_' and '-'");
                if (!cmaNames.Add(cn)) throw new ProfileException($"{p}.name", $"duplicate CMA area name '{cn}'");
                ulong? cb = null;
                if (c.TryGetProperty("base", out var be) && !(be.ValueKind == JsonValueKind.String && be.GetString() == "auto"))
                    cb = SizeValue(be, $"{p}.base");
                ulong cs = Size(c, "size", p, required: true)!.Value;
                if (cs == 0) throw new ProfileException($"{p}.size", "must not be zero");
                // rmem_cma_setup() (5.10 kernel/dma/contiguous.c) checks base and size against pageblock/MAX_ORDER alignment,
                // with or without CONFIG_CMA_INACTIVE, and refuses the node in these words.
                if (dt && (cs % align != 0 || (cb ?? 0) % align != 0))
                    throw new ProfileException(p, $"Reserved memory: incorrect alignment of CMA region (base and size must be multiples of {align >> 10} KiB)");
                if (cs % align != 0) throw new ProfileException($"{p}.size", $"0x{cs:x} is not a multiple of the CMA alignment ({align >> 20} MiB)");
                int opb = Int(c, "order_per_bit", 0, maxOrder - 1, required: false, path: p) ?? 0;
                if (cb is { } baseAddr)
                {
                    if (baseAddr % align != 0) throw new ProfileException($"{p}.base", $"0x{baseAddr:x} is not aligned to the CMA alignment ({align >> 20} MiB)");
                    if (!InsideOneBank(dram, baseAddr, cs)) throw new ProfileException(p, $"0x{baseAddr:x}-0x{baseAddr + cs - 1:x} is outside RAM");
                    if (reservedIndex.FindOverlap(baseAddr, baseAddr + cs) is int ri) throw new ProfileException(p, $"overlaps reserved range '{staticReserved[ri].Name}'");
                    if (kernel is not null && baseAddr < kernel.Base + kernel.Size && kernel.Base < baseAddr + cs)
                        throw new ProfileException(p, "overlaps the kernel image");
                    placedCma.Add((baseAddr, baseAddr + cs, i));
                }
                if (!config.IsEnabled("CMA")) throw new ProfileException(p, "a CMA area needs config CMA");
                if (cs > total / 2) throw new ProfileException($"{p}.size", $"{cs >> 20} MiB is more than half of RAM");
                if (dt && opb != 0) throw new ProfileException($"{p}.order_per_bit", "rmem_cma_setup() makes its areas with order_per_bit 0");
                int cmaNode = NodeKey(c, p);
                if (!dt && (c.TryGetProperty("alignment", out _) || c.TryGetProperty("alloc_ranges", out _) || c.TryGetProperty("dt_order", out _)))
                    throw new ProfileException(p, "alignment, alloc_ranges and dt_order belong to a device-tree reserved-memory node (\"reserved_memory\": true)");
                var (calign, cranges) = DynamicPlacement(c, p, dt && cb is null);
                cma.Add(new CmaAreaSpec(cn, cb, cs, opb) { ReservedMemory = dt, Inactive = inactive, Node = cmaNode, Alignment = calign, AllocRanges = cranges, DtOrder = DtOrderKey(c, p) });
                i++;
            }
            if (FirstOverlap(placedCma) is var (laterCma, earlierCma))
                throw new ProfileException($"cma[{laterCma}]", $"overlaps CMA area '{cma[earlierCma].Name}'");
        }

        // The area rk_dma_heap_cma_setup() reserves on a kernel with the RK heaps (its default size when the command line
        // gives none), unless the profile states it in "cma".
        if (config.IsEnabled("DMABUF_HEAPS_ROCKCHIP")) cmaNames.Add(CmaReservations.RkDmaHeapCmaName);

        // ---- devices
        var devices = new List<DeviceSpec>();
        var deviceNames = new HashSet<string>(StringComparer.Ordinal);
        if (Arr(root, "devices", required: false) is { } devEl)
        {
            i = 0;
            foreach (var d in devEl.EnumerateArray())
            {
                string p = $"devices[{i}]";
                Obj(d, p);
                Keys(d, p, "name", "iommu", "dma_mask", "coherent", "cma", "driver", "reg_size", "node");
                string dn = Str(d, "name", required: true, path: p)!;
                if (!DeviceNameRegex().IsMatch(dn)) throw new ProfileException($"{p}.name", $"'{dn}' is not a device name");
                if (!deviceNames.Add(dn)) throw new ProfileException($"{p}.name", $"duplicate device '{dn}'");
                bool iommu = Bool(d, "iommu", p) ?? false;
                bool coherent = Bool(d, "coherent", p) ?? (arch is Arch.X86_64 or Arch.I386);
                int mask = Int(d, "dma_mask", 24, 64, required: false, path: p) ?? 32;
                // An IOMMU needs its driver built in (drivers/iommu is under CONFIG_IOMMU_SUPPORT; rv1106_defconfig has it off).
                if (iommu && !config.IsEnabled("IOMMU_SUPPORT"))
                    throw new ProfileException($"{p}.iommu", $"'{dn}' sits behind an IOMMU, but config IOMMU_SUPPORT is off");
                string? dc = Str(d, "cma", required: false, path: p);
                if (dc is not null && !cmaNames.Contains(dc)) throw new ProfileException($"{p}.cma", $"no CMA area named '{dc}'");
                string? driver = Str(d, "driver", required: false, path: p);
                if (driver is not null && !DeviceNameRegex().IsMatch(driver)) throw new ProfileException($"{p}.driver", $"'{driver}' is not a driver name");
                var spec = new DeviceSpec(dn, iommu, mask, coherent, dc) { Driver = driver, RegSize = Size(d, "reg_size", p, required: false), Node = NodeKey(d, p) };
                if (spec.RegSize is { } rs && rs > 0)
                {
                    // The driver ioremaps its window at the name's unit address; ioremap refuses RAM.
                    if (spec.UnitAddress is not { } ua) throw new ProfileException($"{p}.reg_size", $"'{dn}' has no unit address (hex before the first '.') to place a register window at");
                    if (rs > GiB || ua + rs < ua) throw new ProfileException($"{p}.reg_size", $"0x{rs:x} bytes at 0x{ua:x} is not a register window (at most 1G, below the top of the address space)");
                    if (dram.Any(b => ua < b.End && b.Base < ua + rs)) throw new ProfileException($"{p}.reg_size", $"the window 0x{ua:x}-0x{ua + rs - 1:x} overlaps RAM: ioremap refuses RAM");
                }
                devices.Add(spec);
                i++;
            }
        }

        long? minFree = null;
        if (root.TryGetProperty("min_free_kbytes", out var mf) && mf.ValueKind != JsonValueKind.Null)
        {
            if (mf.ValueKind != JsonValueKind.Number || !mf.TryGetInt64(out long v)) throw new ProfileException("min_free_kbytes", "must be a whole number of KiB");
            if (v < 0 || (ulong)v * 1024 > total / 4) throw new ProfileException("min_free_kbytes", $"{v} is outside 0..{total / 4 / 1024} (a quarter of RAM)");
            minFree = v;
        }

        string cmdline = Str(root, "cmdline", required: false) ?? "";
        var cmd = KernelCmdline.Parse(cmdline, "cmdline");
        CmaReservations.DefaultAreaRequest(partial with { Cma = cma }, cmd);
        CmaReservations.RkDmaHeapRequest(partial with { Cma = cma }, cmd);

        ulong? vmallocSize = Size(root, "vmalloc_size", "", required: false);
        if (vmallocSize is { } vs)
        {
            if (vs < 1UL << 20 || vs % (1UL << 20) != 0) throw new ProfileException("vmalloc_size", $"0x{vs:x} is not a whole number of MiB (at least 1M)");
            if (vs > MachineProfile.MaxVmallocReserve) throw new ProfileException("vmalloc_size", $"0x{vs:x} is above the {MachineProfile.MaxVmallocReserve >> 30} GiB Kmem can reserve");
        }

        var profile = partial with
        {
            Cmdline = cmdline,
            Description = Str(root, "description", required: false) ?? "",
            Cma = cma,
            Devices = devices,
            MinFreeKbytes = minFree,
            VmallocSize = vmallocSize,
            DmaDebug = Bool(root, "dma_debug", "") ?? config.IsEnabled("DMA_API_DEBUG"),
        };
        ValidateNodes(profile);                                      // the devices' and CMA areas' nodes
        return profile;
    }

    /// <summary>
    /// The "fdt" object of a 32-bit arm profile: base (inside a bank, clear of the image), size (40 bytes, the FDT header, to
    /// 2 MiB, MAX_FDT_SIZE) and unflattened (at most 16 MiB), each optional.
    /// </summary>
    private static DeviceTreeBlob? ReadFdt(JsonElement root, Arch arch, List<DramBank> dram, KernelImage? kernel)
    {
        if (!root.TryGetProperty("fdt", out var el)) return null;
        Obj(el, "fdt");
        Keys(el, "fdt", "base", "size", "unflattened");
        if (arch != Arch.Arm) throw new ProfileException("fdt", "Kmem models the device tree's memblock reservations on 32-bit arm only");
        ulong? b = Size(el, "base", "fdt", required: false);
        ulong? s = Size(el, "size", "fdt", required: false);
        ulong? u = Size(el, "unflattened", "fdt", required: false);
        if (s is { } sz && (sz < 40 || sz > 2 * MiB)) throw new ProfileException("fdt.size", $"{sz} bytes is not a device tree blob's size (40 bytes to 2 MiB)");
        if (u is { } un && (un == 0 || un > 16 * MiB)) throw new ProfileException("fdt.unflattened", $"{un} bytes is outside 1..16 MiB");
        if (b is { } fb)
        {
            ulong size = s ?? DeviceTreeBlob.DefaultSize;
            if (fb % 8 != 0) throw new ProfileException("fdt.base", $"0x{fb:x} is not 8-byte aligned (the FDT header requires it)");
            if (!InsideOneBank(dram, fb, size)) throw new ProfileException("fdt.base", $"the blob 0x{fb:x}-0x{fb + size - 1:x} is not inside a memory bank");
            ulong kernelEnd = kernel is null ? 0 : arch == Arch.Arm ? ArmImage.Of(kernel).End : kernel.Base + kernel.Size;
            if (kernel is not null && fb < kernelEnd && kernel.Base < fb + size)
                throw new ProfileException("fdt.base", "the blob overlaps the kernel image");
        }
        return new DeviceTreeBlob(b, s, u);
    }

    /// <summary>The "config" object: CONFIG_ names (without the prefix) to true/false, a whole number or a string.</summary>
    private static Dictionary<string, object> ConfigOptions(JsonElement root)
    {
        var options = new Dictionary<string, object>(StringComparer.Ordinal);
        if (!root.TryGetProperty("config", out var el)) return options;
        Obj(el, "config");
        foreach (var o in el.EnumerateObject())
        {
            string f = $"config.{o.Name}";
            string key = o.Name.StartsWith("CONFIG_", StringComparison.Ordinal) ? o.Name[7..] : o.Name;
            if (key.Length == 0 || !key.All(c => c is (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_'))
                throw new ProfileException(f, "is not a CONFIG_ option name (capital letters, digits and '_')");
            object value = o.Value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.Number when o.Value.TryGetInt64(out long n) => n,
                JsonValueKind.String => o.Value.GetString()! switch { "y" => true, "n" => false, var t => t },
                _ => throw new ProfileException(f, $"must be true, false, a whole number or a string, not {Kind(o.Value)}"),
            };
            if (!options.TryAdd(key, value)) throw new ProfileException(f, $"CONFIG_{key} is given twice");
        }
        return options;
    }

    /// <summary>MAX_ORDER from config FORCE_MAX_ZONEORDER / ARCH_FORCE_MAX_ORDER, as a count of orders.</summary>
    private static int? MaxOrderFromConfig(Dictionary<string, object> options, bool inclusive)
    {
        foreach (var key in new[] { "ARCH_FORCE_MAX_ORDER", "FORCE_MAX_ZONEORDER" })
            if (options.TryGetValue(key, out var v) && (v is long || v is string))
            {
                if (!(v is long n) && !long.TryParse((string)v, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out n))
                    throw new ProfileException($"config.{key}", $"'{v}' is not a whole number");
                if (n < 1 || n > 16) throw new ProfileException($"config.{key}", $"{n} is outside 1..16");
                int count = inclusive ? (int)n + 1 : (int)n;
                if (count < 2 || count > 16) throw new ProfileException($"config.{key}", $"{n} gives {count} buddy orders (Kmem models 2..16)");
                return count;
            }
        return null;
    }

    // ------------------------------------------------------------------ helpers

    private static bool IsPow2(ulong v) => v != 0 && (v & (v - 1)) == 0;

    /// <summary>Whether [b, b + size) lies in one bank; <paramref name="dram"/> is sorted by base (a binary search).</summary>
    private static bool InsideOneBank(List<DramBank> dram, ulong b, ulong size)
    {
        if (b + size < b) return false;
        int lo = 0, hi = dram.Count - 1, at = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (dram[mid].Base <= b) { at = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        return at >= 0 && b + size <= dram[at].End;
    }

    /// <summary>The first pair of overlapping ranges [Base, End) in O(n log n): sorted by base, each range is compared
    /// with the furthest-reaching one before it. Returns (the later index in the file, the other), or null.</summary>
    private static (int Later, int Earlier)? FirstOverlap(List<(ulong Base, ulong End, int Index)> ranges)
    {
        if (ranges.Count < 2) return null;
        var sorted = ranges.OrderBy(r => r.Base).ThenBy(r => r.Index).ToList();
        (int Later, int Earlier)? first = null;
        var reach = sorted[0];
        for (int k = 1; k < sorted.Count; k++)
        {
            var r = sorted[k];
            if (r.Base < reach.End)
            {
                var pair = (Math.Max(r.Index, reach.Index), Math.Min(r.Index, reach.Index));
                if (first is null || pair.Item1 < first.Value.Later) first = pair; // the error the file meets first
            }
            if (r.End > reach.End) reach = r;
        }
        return first;
    }

    /// <summary>Ranges [Base, End) sorted by base with the furthest end so far, for "does anything overlap this" in
    /// O(log n).</summary>
    private sealed class RangeIndex
    {
        private readonly (ulong Base, ulong End, int Index)[] _sorted;
        private readonly int[] _reach; // index into _sorted of the range reaching furthest among _sorted[0..k]

        public RangeIndex(IEnumerable<(ulong Base, ulong End)> ranges)
        {
            _sorted = ranges.Select((r, k) => (r.Base, r.End, k)).OrderBy(r => r.Base).ToArray();
            _reach = new int[_sorted.Length];
            for (int k = 0; k < _sorted.Length; k++)
                _reach[k] = k > 0 && _sorted[_reach[k - 1]].End >= _sorted[k].End ? _reach[k - 1] : k;
        }

        /// <summary>The index (in the order given) of a range overlapping [b, e), or null.</summary>
        public int? FindOverlap(ulong b, ulong e)
        {
            int lo = 0, hi = _sorted.Length - 1, last = -1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                if (_sorted[mid].Base < e) { last = mid; lo = mid + 1; }
                else hi = mid - 1;
            }
            if (last < 0) return null;
            var r = _sorted[_reach[last]];
            return r.End > b ? r.Index : null;
        }
    }

    private static void Obj(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ProfileException(path, $"must be an object, not {Kind(e)}");
    }

    private static void Keys(JsonElement e, string path, params string[] allowed)
    {
        foreach (var p in e.EnumerateObject())
            if (Array.IndexOf(allowed, p.Name) < 0)
                throw new ProfileException(path.Length == 0 ? p.Name : $"{path}.{p.Name}", $"unknown key (allowed: {string.Join(", ", allowed)})");
    }

    private static string Field(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        _ => "an object",
    };

    private static string? Str(JsonElement e, string key, bool required, string path = "")
    {
        if (!e.TryGetProperty(key, out var v))
            return required ? throw new ProfileException(Field(path, key), "is required") : null;
        if (v.ValueKind != JsonValueKind.String) throw new ProfileException(Field(path, key), $"must be a string, not {Kind(v)}");
        string s = v.GetString()!;
        if (required && s.Length == 0) throw new ProfileException(Field(path, key), "must not be empty");
        return s;
    }

    private static int? Int(JsonElement e, string key, int min, int max, bool required, string path = "")
    {
        if (!e.TryGetProperty(key, out var v))
            return required ? throw new ProfileException(Field(path, key), "is required") : null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n))
            throw new ProfileException(Field(path, key), $"must be a whole number, not {Kind(v)}");
        if (n < min || n > max) throw new ProfileException(Field(path, key), $"{n} is outside {min}..{max}");
        return n;
    }

    private static bool? Bool(JsonElement e, string key, string path)
    {
        if (!e.TryGetProperty(key, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ProfileException(Field(path, key), $"must be true or false, not {Kind(v)}"),
        };
    }

    private static JsonElement? Arr(JsonElement e, string key, bool required)
    {
        if (!e.TryGetProperty(key, out var v))
            return required ? throw new ProfileException(key, "is required") : null;
        if (v.ValueKind != JsonValueKind.Array) throw new ProfileException(key, $"must be an array, not {Kind(v)}");
        return v;
    }

    private static ulong? Size(JsonElement e, string key, string path, bool required)
    {
        if (!e.TryGetProperty(key, out var v))
            return required ? throw new ProfileException(Field(path, key), "is required") : null;
        return SizeValue(v, Field(path, key));
    }

    private static ulong SizeValue(JsonElement v, string field)
    {
        if (v.ValueKind == JsonValueKind.Number)
        {
            if (v.TryGetUInt64(out ulong n)) return n;
            throw new ProfileException(field, "must be a non-negative whole number of bytes");
        }
        if (v.ValueKind == JsonValueKind.String && MachineProfile.TryParseSize(v.GetString()!, out ulong s)) return s;
        throw new ProfileException(field, $"'{(v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText())}' is not a size (bytes, 0x hex, or a number with K, M or G)");
    }
}

/// <summary>The zone limits a profile's <c>"zones"</c> gave (null: the architecture's).</summary>
internal sealed record ZoneLimits(ulong? Dma, ulong? Dma32, ulong? Lowmem)
{
    /// <summary>Nothing given.</summary>
    public static ZoneLimits None { get; } = new(null, null, null);
}
