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
}

/// <summary>A range of RAM kept away from the page allocator (memblock.reserved).</summary>
public sealed record ReservedRange(string Name, ulong Base, ulong Size);

/// <summary>The kernel image's section sizes as printed by the boot "Memory:" line.</summary>
public sealed record KernelImage(ulong Base, ulong Code, ulong RwData, ulong RoData, ulong Init, ulong Bss)
{
    /// <summary>Bytes the image occupies.</summary>
    public ulong Size => Code + RwData + RoData + Init + Bss;
}

/// <summary>A contiguous-memory-allocator area. A null <see cref="Base"/> means "placed at boot".</summary>
public sealed record CmaAreaSpec(string Name, ulong? Base, ulong Size, int OrderPerBit);

/// <summary>A DMA-capable device.</summary>
public sealed record DeviceSpec(string Name, bool Iommu, int DmaMaskBits, bool Coherent, string? Cma)
{
    /// <summary>The driver's name (<c>dev_driver_string()</c>), shown in DMA-API reports; by default the part of the name after its first '.'.</summary>
    public string? Driver { get; init; }
}

/// <summary>
/// A machine profile: everything needed to boot a <see cref="Machine"/>. Load one with
/// <see cref="Load"/> or <see cref="Parse"/>, or take an embedded one with <see cref="Embedded"/>.
/// </summary>
public sealed record MachineProfile
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
    /// <summary>MAX_ORDER: the buddy allocator serves orders 0..MAX_ORDER-1.</summary>
    public int MaxOrder { get; init; } = 11;
    /// <summary>pageblock_order, or null for the architecture's default.</summary>
    public int? PageblockOrder { get; init; }
    /// <summary>The memory banks.</summary>
    public required IReadOnlyList<DramBank> Dram { get; init; }
    /// <summary>Upper limit (exclusive) of ZONE_DMA, or null when the architecture has none.</summary>
    public ulong? DmaLimit { get; init; }
    /// <summary>Upper limit of ZONE_DMA32, or null when there is none.</summary>
    public ulong? Dma32Limit { get; init; }
    /// <summary>32-bit only: end of lowmem (ZONE_NORMAL); memory above is ZONE_HIGHMEM.</summary>
    public ulong? LowmemLimit { get; init; }
    /// <summary>Reserved ranges.</summary>
    public IReadOnlyList<ReservedRange> Reserved { get; init; } = [];
    /// <summary>The kernel image, reserved at boot.</summary>
    public KernelImage? Kernel { get; init; }
    /// <summary>CMA areas.</summary>
    public IReadOnlyList<CmaAreaSpec> Cma { get; init; } = [];
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
    public bool Is64Bit => Arch != Arch.Arm;

    /// <summary>sizeof(struct page): 64 bytes on 64-bit, 32 on 32-bit.</summary>
    public int StructPageSize => Is64Bit ? 64 : 32;

    /// <summary>The pageblock order in force.</summary>
    public int EffectivePageblockOrder => PageblockOrder ?? (Arch == Arch.Arm ? MaxOrder - 1 : Math.Min(9, MaxOrder - 1));

    /// <summary>The configured zones, in kernel order.</summary>
    public IReadOnlyList<ZoneType> ZoneTypes
    {
        get
        {
            var z = new List<ZoneType>();
            if (DmaLimit is not null) z.Add(ZoneType.Dma);
            if (Dma32Limit is not null) z.Add(ZoneType.Dma32);
            z.Add(ZoneType.Normal);
            if (Arch == Arch.Arm) z.Add(ZoneType.HighMem);
            z.Add(ZoneType.Movable);
            return z;
        }
    }

    /// <summary>Total RAM in bytes.</summary>
    public ulong TotalRam => Dram.Aggregate(0UL, (s, b) => s + b.Size);

    /// <summary>Alignment required of CMA areas: PAGE_SIZE &lt;&lt; max(MAX_ORDER - 1, pageblock_order).</summary>
    public ulong CmaAlignment => (ulong)PageSize << Math.Max(MaxOrder - 1, EffectivePageblockOrder);

    // ================================================================== embedded profiles

    /// <summary>The names of the profiles built into Kmem.</summary>
    public static IReadOnlyList<string> EmbeddedNames { get; } = ["rv1106", "rk3588", "x86_64"];

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
