// A board description (RAM banks, architecture, zones, reservations, CMA areas, devices) and its
// strict JSON reader: every malformed field is rejected with its path and the problem.
using System.Globalization;
using System.Text.Json;
using Kmem.Boot;
using Kmem.Core;

namespace Kmem;

/// <summary>A memory bank (a <c>memory@</c> node or an e820 usable range).</summary>
public sealed record DramBank(ulong Base, ulong Size)
{
    /// <summary>First address past the bank.</summary>
    public ulong End => Base + Size;

    /// <summary>The NUMA node the bank belongs to (the SRAT proximity domain or the device tree's <c>numa-node-id</c>); 0 by default.</summary>
    public int Node { get; init; }
}

/// <summary>A range of RAM kept away from the page allocator (memblock.reserved).</summary>
public sealed record ReservedRange(string Name, ulong Base, ulong Size)
{
    /// <summary>
    /// A dynamic reserved-memory node (profile base <c>"auto"</c>): only <see cref="Size"/> is given and the boot places it
    /// (__reserved_mem_alloc_size()) in the kernel's order among the other reserved-memory nodes; <see cref="Base"/> is 0.
    /// </summary>
    public bool Dynamic { get; init; }

    /// <summary>The node's <c>alignment</c> for a dynamic region (profile key <c>"alignment"</c>); 0 when it gives none.</summary>
    public ulong Alignment { get; init; }

    /// <summary>The node's <c>alloc-ranges</c> for a dynamic region (profile key <c>"alloc_ranges"</c>), tried in order; empty: anywhere.</summary>
    public IReadOnlyList<AllocRange> AllocRanges { get; init; } = [];

    /// <summary>
    /// The node's position among the children of <c>/reserved-memory</c> (profile key <c>"dt_order"</c>), which orders
    /// the kernel's handling of the nodes; -1 for a range that is not such a node (/memreserve/, firmware).
    /// </summary>
    public int DtOrder { get; init; } = -1;
}

/// <summary>One window of a reserved-memory node's <c>alloc-ranges</c>: the node is placed inside [Base, Base + Size).</summary>
public sealed record AllocRange(ulong Base, ulong Size);

/// <summary>The kernel image's section sizes as printed by the boot "Memory:" line.</summary>
public sealed record KernelImage(ulong Base, ulong Code, ulong RwData, ulong RoData, ulong Init, ulong Bss)
{
    /// <summary>The bytes of the printed sections (the image itself is larger: see <see cref="Tables"/>).</summary>
    public ulong Size => Code + RwData + RoData + Init + Bss;

    /// <summary>
    /// 32-bit arm: the bytes between __end_rodata and __init_begin that no section of the "Memory:" line counts (the
    /// exception table, the ARM unwind tables, the notes, the page alignment), profile key <c>kernel.tables</c>; null for
    /// the default, code / 24 rounded up to a page (an 8-byte unwind index entry per function of about 200 bytes of
    /// Thumb-2 code, and the exception table).
    /// </summary>
    public ulong? Tables { get; init; }
}

/// <summary>
/// The flattened device tree the boot loader hands a 32-bit arm kernel (profile key <c>"fdt"</c>): where it lies, its
/// size (fdt_totalsize) and the bytes unflatten_device_tree() and of_alias_scan() take from memblock for the expanded
/// tree. A null field takes the default (docs/profiles.md).
/// </summary>
public sealed record DeviceTreeBlob(ulong? Base, ulong? Size, ulong? Unflattened)
{
    /// <summary>The default size: the one RV1106 FDT whose size is published (U-Boot: "Using Device Tree in place at 00c00000, end 00c0d306").</summary>
    public const ulong DefaultSize = 0xd306;
    /// <summary>The default load address past the first bank's base: Rockchip U-Boot's fdt_addr_r on the RV1106 (0x00c00000).</summary>
    public const ulong DefaultOffset = 0x00c00000;
    /// <summary>The default unflattened size: three times the blob (a node and its properties expand to about three times their FDT bytes).</summary>
    public const ulong DefaultUnflattenedFactor = 3;
}

/// <summary>A contiguous-memory-allocator area. A null <see cref="Base"/> means "placed at boot".</summary>
public sealed record CmaAreaSpec(string Name, ulong? Base, ulong Size, int OrderPerBit)
{
    /// <summary>
    /// The node the area belongs to (profile key <c>"node"</c>, cma_declare_contiguous_nid()'s nid): placed inside that
    /// node's memory when it has no base. -1 (NUMA_NO_NODE) when not given.
    /// </summary>
    public int Node { get; init; } = -1;

    /// <summary>
    /// True for a device-tree reserved-memory node (<c>compatible = "shared-dma-pool"; reusable;</c>, profile key
    /// <c>"reserved_memory"</c>): reserved before the other areas, placed top-down with the CMA alignment when it has no
    /// base, and announced as "Reserved memory: created CMA memory pool".
    /// </summary>
    public bool ReservedMemory { get; init; }

    /// <summary>
    /// The node's <c>inactive</c> property (profile key <c>"inactive"</c>, reserved-memory nodes only): Rockchip's 4.19
    /// BSP keeps such a pool out of the buddy allocator (rmem_cma_setup() marks it, cma_activate_area() then skips
    /// init_cma_reserved_pageblock(), and cma_alloc()/cma_release() hand its reserved pages out and back directly), as
    /// later vendor trees do for every area with CONFIG_CMA_INACTIVE.
    /// </summary>
    public bool Inactive { get; init; }

    /// <summary>A reserved-memory pool's <c>alignment</c> (profile key <c>"alignment"</c>, raised to the CMA alignment at boot); 0 when none.</summary>
    public ulong Alignment { get; init; }

    /// <summary>A reserved-memory pool's <c>alloc-ranges</c> (profile key <c>"alloc_ranges"</c>) for placing it at boot; empty: anywhere.</summary>
    public IReadOnlyList<AllocRange> AllocRanges { get; init; } = [];

    /// <summary>A reserved-memory pool's position among the children of <c>/reserved-memory</c> (profile key <c>"dt_order"</c>); -1 when not given.</summary>
    public int DtOrder { get; init; } = -1;
}

/// <summary>A DMA-capable device.</summary>
public sealed record DeviceSpec(string Name, bool Iommu, int DmaMaskBits, bool Coherent, string? Cma)
{
    /// <summary>The driver's name (<c>dev_driver_string()</c>), shown in DMA-API reports; by default the part of the name after its first '.'.</summary>
    public string? Driver { get; init; }

    /// <summary>The NUMA node the device sits on (profile key <c>"node"</c>, <c>dev_to_node()</c>); -1 (NUMA_NO_NODE) when not given.</summary>
    public int Node { get; init; } = -1;

    /// <summary>
    /// Bytes of the device's register window (its device-tree <c>reg</c> size, profile key <c>"reg_size"</c>), which
    /// the driver ioremaps at probe at the name's unit address; null for the default of one page (4 KiB) when the name
    /// has a unit address, 0 for no window.
    /// </summary>
    public ulong? RegSize { get; init; }

    /// <summary>The device's unit address: the hex number before the first '.' of a platform device's name
    /// (<c>ffa00000.rkisp</c> → 0xffa00000), or null when the name has none (PCI names, virtual devices).</summary>
    public ulong? UnitAddress
    {
        get
        {
            int dot = Name.IndexOf('.');
            if (dot <= 0 || dot > 16 || Name.Contains(':')) return null;
            return ulong.TryParse(Name.AsSpan(0, dot), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out ulong a) ? a : null;
        }
    }
}

/// <summary>
/// A machine profile: everything needed to boot a <see cref="Machine"/>. Load one with
/// <see cref="Load"/> or <see cref="Parse"/>, or take an embedded one with <see cref="Embedded"/>.
/// </summary>
public sealed partial record MachineProfile
{
    /// <summary>The page size: Kmem supports 4 KiB pages.</summary>
    public const int PageSize = KernelFacts.PageSize;

    /// <summary>Profile name (e.g. <c>rv1106</c>).</summary>
    public required string Name { get; init; }
    /// <summary>Board description, printed as "Machine model:".</summary>
    public string Description { get; init; } = "";
    /// <summary>The architecture.</summary>
    public required Arch Arch { get; init; }
    /// <summary>Number of CPUs (per-CPU lists are reported per CPU).</summary>
    public required int Cpus { get; init; }
    /// <summary>L1 cache line size in bytes.</summary>
    public required int CacheLineSize { get; init; }
    /// <summary>ARCH_DMA_MINALIGN / ARCH_KMALLOC_MINALIGN: the smallest kmalloc alignment.</summary>
    public required int KmallocMinAlign { get; init; }
    /// <summary>
    /// The number of buddy orders: the allocator serves orders 0..MaxOrder-1. This is MAX_ORDER as kernels before 6.4 define it
    /// (NR_PAGE_ORDERS from 6.8); the profile's <c>"max_order"</c> is read in the meaning of its version (from 6.4, MAX_ORDER is
    /// the largest order, one less than this).
    /// </summary>
    public int MaxOrder { get; init; } = 11;
    /// <summary>pageblock_order, or null for the architecture's default.</summary>
    public int? PageblockOrder { get; init; }
    /// <summary>The memory banks.</summary>
    public required IReadOnlyList<DramBank> Dram { get; init; }
    /// <summary>
    /// Upper limit (exclusive) of ZONE_DMA, or null when the kernel has none: the profile's <c>zones.dma_limit</c>, else the
    /// architecture's (x86: 16 MiB; arm64 from 5.5: the first GiB of RAM, before 5.5: 4 GiB), and null with CONFIG_ZONE_DMA off.
    /// </summary>
    public ulong? DmaLimit => Config.IsEnabled("ZONE_DMA") ? GivenZones.Dma ?? DefaultDmaLimit() : null;
    /// <summary>Upper limit of ZONE_DMA32 (4 GiB unless <c>zones.dma32_limit</c> says otherwise), or null without CONFIG_ZONE_DMA32.</summary>
    public ulong? Dma32Limit => Config.IsEnabled("ZONE_DMA32") ? GivenZones.Dma32 ?? 4UL << 30 : null;
    /// <summary>
    /// 32-bit arm and i386 with CONFIG_HIGHMEM: the end of lowmem (ZONE_NORMAL); memory above is ZONE_HIGHMEM. The profile's
    /// <c>zones.lowmem_limit</c>, else 768 MiB past the first bank on arm and 0x377fe000 (887 MiB) on i386 (the 3G/1G split).
    /// </summary>
    public ulong? LowmemLimit => Config.IsEnabled("HIGHMEM") ? GivenZones.Lowmem ?? DefaultLowmemLimit() : null;

    /// <summary>The zone limits the profile gave (<c>zones</c>); a zone the profile removed has its CONFIG_ option off.</summary>
    internal ZoneLimits GivenZones { get; init; } = ZoneLimits.None;

    private ulong DefaultDmaLimit() => Arch switch
    {
        // max_zone_phys(zone_dma_bits): 30 bits in 5.5-5.10, 32 from 5.11 (the firmware can lower it; the profile says so then)
        Arch.Arm64 when Version.IsAtLeast(5, 11) => (Dram[0].Base & ~((1UL << 32) - 1)) + (1UL << 32),
        Arch.Arm64 when Version.IsAtLeast(5, 5) => (Dram[0].Base & ~((1UL << 30) - 1)) + (1UL << 30),
        Arch.Arm64 => 4UL << 30,
        Arch.Arm => Dram[0].Base + (16UL << 20),
        _ => 16UL << 20,
    };

    /// <summary>i386: MAXMEM = VMALLOC_END (0xff7fe000) - PAGE_OFFSET - the 128 MiB vmalloc reserve, the "887MB LOWMEM" of a 3G/1G
    /// kernel; 32-bit arm: the lowmem that fits between PAGE_OFFSET and vmalloc_min past PHYS_OFFSET (768 MiB with the
    /// default 3G/1G split, 1 GiB with VMSPLIT_3G_OPT).</summary>
    private ulong DefaultLowmemLimit() => Arch == Arch.I386 ? I386LowmemEnd : Dram[0].Base + ArmLowmemSize(Config);

    /// <summary>
    /// 32-bit arm's PAGE_OFFSET from the VMSPLIT_* choice of the config: 0xC0000000 by default, 0xB0000000 with VMSPLIT_3G_OPT,
    /// 0x80000000 with VMSPLIT_2G, 0x40000000 with VMSPLIT_1G; i386 and riscv32: 0xC0000000; 0 on 64-bit kernels here.
    /// </summary>
    public ulong PageOffset => PageOffsetOf(Arch, Config);

    internal static ulong PageOffsetOf(Arch arch, KernelConfig config) => arch switch
    {
        Arch.Arm when config.IsEnabled("VMSPLIT_1G") => 0x40000000UL,
        Arch.Arm when config.IsEnabled("VMSPLIT_2G") => 0x80000000UL,
        Arch.Arm when config.IsEnabled("VMSPLIT_3G_OPT") => 0xB0000000UL,
        Arch.Arm or Arch.I386 or Arch.Riscv32 => 0xC0000000UL,
        _ => 0,
    };

    /// <summary>arm's vmalloc_min (VMALLOC_END 0xff800000 less the 240 MiB default reserve and the 8 MiB VMALLOC_OFFSET) less
    /// PAGE_OFFSET: the most lowmem the kernel maps.</summary>
    internal static ulong ArmLowmemSize(KernelConfig config) => 0xff800000UL - (240UL << 20) - (8UL << 20) - PageOffsetOf(Arch.Arm, config);

    /// <summary>The end of lowmem on i386 with the 3G/1G split (0x377fe000).</summary>
    internal const ulong I386LowmemEnd = 0xff7fe000UL - 0xc0000000UL - (128UL << 20);

    /// <summary>Reserved ranges.</summary>
    public IReadOnlyList<ReservedRange> Reserved { get; init; } = [];
    /// <summary>The kernel image, reserved at boot.</summary>
    public KernelImage? Kernel { get; init; }
    /// <summary>CMA areas.</summary>
    public IReadOnlyList<CmaAreaSpec> Cma { get; init; } = [];
    /// <summary>32-bit arm: the flattened device tree (its reservation and its unflattened copy); null for the defaults.</summary>
    public DeviceTreeBlob? Fdt { get; init; }
    /// <summary>Devices.</summary>
    public IReadOnlyList<DeviceSpec> Devices { get; init; } = [];
    /// <summary>vm.min_free_kbytes, or null for the kernel's formula.</summary>
    public long? MinFreeKbytes { get; init; }
    /// <summary>
    /// Size of the vmalloc window (VMALLOC_END - VMALLOC_START), or null for the architecture's: on 32-bit ARM
    /// from the end of lowmem to 0xff800000, on arm64 (39-bit VA) 251 GiB, on x86_64 32 TiB. Kmem reserves at most
    /// <see cref="MaxVmallocReserve"/> of it in the host's address space (docs/vmalloc.md).
    /// </summary>
    public ulong? VmallocSize { get; init; }

    /// <summary>CONFIG_DMA_API_DEBUG: track every DMA mapping and report misuse (the boot parameter dma_debug=on|off overrides it).</summary>
    public bool DmaDebug { get; init; }

    /// <summary>The most address space one machine reserves for its vmalloc window (64 GiB).</summary>
    public const ulong MaxVmallocReserve = 64UL << 30;

    /// <summary>The kernel command line (e.g. <c>slub_debug=FZPU slub_max_order=2</c>); see docs/profiles.md.</summary>
    public string Cmdline { get; init; } = "";

    /// <summary>True for 64-bit architectures.</summary>
    public bool Is64Bit => Arch is Arch.Arm64 or Arch.X86_64 or Arch.Riscv64;

    /// <summary>The kernel version (<c>"version"</c>; default 5.10). Every layer follows the behaviour and the /proc formats of this release.</summary>
    public KernelVersion Version { get; init; } = KernelVersion.Default;

    /// <summary>The profile's <c>"config"</c> object as given: CONFIG_ options (without the prefix) set to true/false, a number or a string.</summary>
    public IReadOnlyDictionary<string, object> ConfigOptions { get; init; } = new Dictionary<string, object>();

    /// <summary>
    /// The kernel configuration in force: the architecture's defconfig at <see cref="Version"/> with <see cref="ConfigOptions"/>
    /// applied (see <see cref="KernelConfig"/>).
    /// </summary>
    /// <exception cref="ProfileException">An option does not exist for this architecture and version, or contradicts another.</exception>
    public KernelConfig Config
    {
        get
        {
            var cached = _config;
            if (cached is not null && cached.Arch == Arch && cached.Version == Version && ReferenceEquals(_configFrom, ConfigOptions)) return cached;
            KernelConfig resolved;
            try
            {
                resolved = KernelConfig.Defconfig(Arch, Version).With(ConfigOptions);
            }
            catch (ArgumentException e)
            {
                throw new ProfileException("config", e.Message, e);
            }
            _configFrom = ConfigOptions;
            _config = resolved;
            return resolved;
        }
    }
    private KernelConfig? _config;
    private IReadOnlyDictionary<string, object>? _configFrom;

    /// <summary>sizeof(struct page): 64 bytes on 64-bit, 32 on 32-bit.</summary>
    public int StructPageSize => Is64Bit ? 64 : 32;

    /// <summary>
    /// The pageblock order in force: the profile's, else HUGETLB_PAGE_ORDER where the kernel has huge pages of 2 MiB (64-bit,
    /// or i386 with PAE, with CONFIG_HUGETLB_PAGE), else the largest buddy order.
    /// </summary>
    public int EffectivePageblockOrder => PageblockOrder ?? ((Is64Bit || (Arch == Arch.I386 && Config.IsEnabled("X86_PAE"))) && Config.IsEnabled("HUGETLB_PAGE")
        ? Math.Min(9, MaxOrder - 1) : MaxOrder - 1);

    /// <summary>The configured zones, in kernel order.</summary>
    public IReadOnlyList<ZoneType> ZoneTypes
    {
        get
        {
            var z = new List<ZoneType>();
            if (DmaLimit is not null) z.Add(ZoneType.Dma);
            if (Dma32Limit is not null) z.Add(ZoneType.Dma32);
            z.Add(ZoneType.Normal);
            if (LowmemLimit is not null) z.Add(ZoneType.HighMem);
            z.Add(ZoneType.Movable);
            return z;
        }
    }

    /// <summary>Each CPU's NUMA node (<c>cpu_to_node()</c>), <see cref="Cpus"/> entries; empty means every CPU is on node 0.</summary>
    public IReadOnlyList<int> CpuNodes { get; init; } = [];

    /// <summary>Nodes the profile declares without memory (CPUs only); every other node must have a bank.</summary>
    public IReadOnlyList<int> MemorylessNodes { get; init; } = [];

    /// <summary>The SLIT distance table, <see cref="NodeCount"/> rows; null means 10 local and 20 remote.</summary>
    public IReadOnlyList<IReadOnlyList<int>>? Distances { get; init; }

    /// <summary>Online nodes (<c>nr_online_nodes</c>): one past the highest node a bank, a CPU or a memoryless entry names.</summary>
    public int NodeCount
    {
        get
        {
            int n = 0;
            foreach (var b in Dram) n = Math.Max(n, b.Node);
            foreach (var c in CpuNodes) n = Math.Max(n, c);
            foreach (var m in MemorylessNodes) n = Math.Max(n, m);
            return n + 1;
        }
    }

    /// <summary><c>cpu_to_node()</c>.</summary>
    public int NodeOfCpu(int cpu) => cpu < CpuNodes.Count ? CpuNodes[cpu] : 0;

    /// <summary><c>node_distance()</c>: the SLIT entry, or LOCAL_DISTANCE (10) / REMOTE_DISTANCE (20).</summary>
    public int Distance(int from, int to) => Distances is { } d ? d[from][to] : from == to ? 10 : 20;

    /// <summary>Whether the node has memory (<c>N_MEMORY</c>).</summary>
    public bool NodeHasMemory(int node) => Dram.Any(b => b.Node == node);

    /// <summary>Total RAM in bytes.</summary>
    public ulong TotalRam => Dram.Aggregate(0UL, (s, b) => s + b.Size);

    /// <summary>Alignment required of CMA areas: PAGE_SIZE &lt;&lt; max(MAX_ORDER - 1, pageblock_order).</summary>
    public ulong CmaAlignment => (ulong)PageSize << Math.Max(MaxOrder - 1, EffectivePageblockOrder);

    // ================================================================== embedded profiles

    /// <summary>The names of the profiles built into Kmem.</summary>
    public static IReadOnlyList<string> EmbeddedNames { get; } = ["rv1106", "rk3588", "x86_64", "luckfox-pico-mini-a", "luckfox-pico-pro", "luckfox-pico-ultra-w", "rv1126", "x86_64-numa2"];

    /// <summary>The default profile: the seed's RV1106 camera board.</summary>
    public const string DefaultName = "rv1106";

    /// <summary>An embedded profile by name.</summary>
    /// <exception cref="ProfileException">The name is not one of <see cref="EmbeddedNames"/>.</exception>
    public static MachineProfile Embedded(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!EmbeddedNames.Contains(name))
            throw new ProfileException("name", $"unknown profile '{name}' (embedded: {string.Join(", ", EmbeddedNames)})");
        using var s = typeof(MachineProfile).Assembly.GetManifestResourceStream($"Kmem.Profiles.{name}.json")
            ?? throw new InvalidOperationException($"embedded profile {name} is missing from the assembly");
        using var r = new StreamReader(s);
        return Parse(r.ReadToEnd());
    }

    /// <summary>The JSON text of an embedded profile (a starting point for a user's own).</summary>
    public static string EmbeddedJson(string name)
    {
        Embedded(name);
        using var s = typeof(MachineProfile).Assembly.GetManifestResourceStream($"Kmem.Profiles.{name}.json")!;
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    /// <summary>Reads and validates a profile file.</summary>
    /// <exception cref="ProfileException">The file is missing, not JSON, or describes an impossible machine.</exception>
    public static MachineProfile Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(JsonInput.ReadFile(path, (m, e) => new ProfileException("(file)", m, e)));
    }

    /// <summary>Parses and validates profile JSON.</summary>
    /// <exception cref="ProfileException">Not JSON, an unknown or missing key, a bad value, or an impossible machine.</exception>
    public static MachineProfile Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = JsonInput.Parse(json, (f, m, e) => new ProfileException(f, m, e));
        return ProfileReader.Read(doc.RootElement);
    }

    /// <summary>Parses a size: a number of bytes, hex (<c>0x…</c>), or a number with K, M or G.</summary>
    public static bool TryParseSize(string text, out ulong value)
    {
        value = 0;
        text = text.Trim();
        if (text.Length == 0) return false;
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return ulong.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
        ulong mult = 1;
        if (text.Length > 1 && char.ToUpperInvariant(text[^1]) == 'B') text = text[..^1];      // 16MB, 2GiB
        if (text.Length > 1 && text[^1] == 'i') text = text[..^1];                             // 2Gi
        char last = char.ToUpperInvariant(text[^1]);
        if (last is 'K' or 'M' or 'G' or 'T')
        {
            mult = last switch { 'K' => 1UL << 10, 'M' => 1UL << 20, 'G' => 1UL << 30, _ => 1UL << 40 };
            text = text[..^1];
        }
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n)) return false;
        if (n > ulong.MaxValue / mult) return false;
        value = n * mult;
        return true;
    }
}
