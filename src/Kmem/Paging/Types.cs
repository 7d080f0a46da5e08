// Small vocabulary types of the page allocator: zone types and migratetypes with the kernel's names.
namespace Kmem;

/// <summary>Zone types in the kernel's order (<c>enum zone_type</c>).</summary>
public enum ZoneType
{
    /// <summary>ZONE_DMA: memory reachable by ISA-style (x86: 24-bit; arm64 5.10: 30-bit) DMA.</summary>
    Dma = 0,
    /// <summary>ZONE_DMA32: memory below 4 GiB.</summary>
    Dma32 = 1,
    /// <summary>ZONE_NORMAL: the directly mapped memory.</summary>
    Normal = 2,
    /// <summary>ZONE_HIGHMEM: 32-bit memory beyond the linear map.</summary>
    HighMem = 3,
    /// <summary>ZONE_MOVABLE: only movable allocations.</summary>
    Movable = 4,
}

/// <summary>Migratetypes in the mainline order (<c>enum migratetype</c>, Linux 5.10 with CONFIG_CMA).</summary>
public enum MigrateType
{
    /// <summary>MIGRATE_UNMOVABLE.</summary>
    Unmovable = 0,
    /// <summary>MIGRATE_MOVABLE.</summary>
    Movable = 1,
    /// <summary>MIGRATE_RECLAIMABLE.</summary>
    Reclaimable = 2,
    /// <summary>MIGRATE_HIGHATOMIC: pageblocks reserved for high-order atomic allocations.</summary>
    HighAtomic = 3,
    /// <summary>MIGRATE_CMA: contiguous-memory-allocator pageblocks; only movable allocations.</summary>
    Cma = 4,
    /// <summary>MIGRATE_ISOLATE: pageblocks taken out of use.</summary>
    Isolate = 5,
}

internal static class PageTypes
{
    /// <summary>MIGRATE_PCPTYPES: the types with their own per-CPU list.</summary>
    public const int PcpTypes = 3;

    /// <summary>MIGRATE_TYPES.</summary>
    public const int MigrateTypes = 6;

    public static readonly string[] ZoneNames = ["DMA", "DMA32", "Normal", "HighMem", "Movable"];

    public static readonly string[] MigrateTypeNames = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate"];

    /// <summary>The letters of show_migration_types(): U M E H C I.</summary>
    public static readonly char[] MigrateTypeLetters = ['U', 'M', 'E', 'H', 'C', 'I'];

    /// <summary>fallbacks[] (mm/page_alloc.c): the types a type may steal from, in order.</summary>
    public static readonly MigrateType[][] Fallbacks =
    [
        [MigrateType.Reclaimable, MigrateType.Movable],   // Unmovable
        [MigrateType.Reclaimable, MigrateType.Unmovable], // Movable
        [MigrateType.Unmovable, MigrateType.Movable],     // Reclaimable
    ];

    /// <summary>gfp_migratetype(): Movable and Reclaimable bits select the type.</summary>
    public static MigrateType FromGfp(Gfp gfp) =>
        (gfp & GfpFlags.MovableMask) switch
        {
            Gfp.Movable => MigrateType.Movable,
            Gfp.Reclaimable => MigrateType.Reclaimable,
            0 => MigrateType.Unmovable,
            _ => MigrateType.Unmovable, // both set is a bug in the kernel; treated as unmovable
        };
}

/// <summary>The kernel's names of zones and migratetypes, as /proc prints them.</summary>
public static class KernelNames
{
    /// <summary>The zone's name in <c>zone_names[]</c> ("DMA", "DMA32", "Normal", "HighMem", "Movable").</summary>
    public static string KernelName(this ZoneType type) => PageTypes.ZoneNames[(int)type];

    /// <summary>The migratetype's name in <c>migratetype_names[]</c> ("Unmovable", …, "CMA", "Isolate").</summary>
    public static string KernelName(this MigrateType type) => PageTypes.MigrateTypeNames[(int)type];
}
