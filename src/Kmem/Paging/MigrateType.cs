// The migratetypes (enum migratetype), in the kernel's order.
namespace Kmem;

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
