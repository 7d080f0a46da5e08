// The page allocator's type tables: which migratetype a GFP mask asks for, the fallback order of migratetypes, and their names.
namespace Kmem.Paging;

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
