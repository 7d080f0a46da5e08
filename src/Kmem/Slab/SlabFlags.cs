// Slab cache creation flags with the Linux 5.10 bit values (include/linux/slab.h), and the letters
// of the slub_debug boot parameter that select the debugging ones.
namespace Kmem;

/// <summary>Flags for <see cref="Machine.KmemCacheCreate"/> (<c>SLAB_*</c>, Linux 5.10 values).</summary>
[Flags]
public enum SlabFlags : uint
{
    /// <summary>No flag.</summary>
    None = 0,
    /// <summary><c>SLAB_CONSISTENCY_CHECKS</c> (slub_debug F): check every object and slab on alloc and free.</summary>
    ConsistencyChecks = 0x100,
    /// <summary><c>SLAB_RED_ZONE</c> (slub_debug Z): guard bytes before and after each object.</summary>
    RedZone = 0x400,
    /// <summary><c>SLAB_POISON</c> (slub_debug P): fill free objects with 0x6b (last byte 0xa5).</summary>
    Poison = 0x800,
    /// <summary><c>SLAB_HWCACHE_ALIGN</c>: align objects on a cache line (halved for small objects).</summary>
    HwcacheAlign = 0x2000,
    /// <summary><c>SLAB_CACHE_DMA</c>: slabs come from ZONE_DMA.</summary>
    CacheDma = 0x4000,
    /// <summary><c>SLAB_CACHE_DMA32</c>: slabs come from ZONE_DMA32.</summary>
    CacheDma32 = 0x8000,
    /// <summary><c>SLAB_STORE_USER</c> (slub_debug U): record the last allocating and freeing caller of each object.</summary>
    StoreUser = 0x10000,
    /// <summary><c>SLAB_PANIC</c>: a failure to create the cache is fatal (an exception nobody should catch).</summary>
    Panic = 0x40000,
    /// <summary><c>SLAB_TYPESAFE_BY_RCU</c>: the free pointer lives outside the object (no RCU grace periods are modelled).</summary>
    TypesafeByRcu = 0x80000,
    /// <summary><c>SLAB_TRACE</c> (slub_debug T): log every allocation and free of the cache.</summary>
    Trace = 0x200000,
    /// <summary><c>SLAB_NOLEAKTRACE</c>: the object is not tracked by the leak detector (never merged).</summary>
    NoLeakTrace = 0x800000,
    /// <summary><c>SLAB_NO_MERGE</c> (Linux 6.4 value): never merge this cache with another.</summary>
    NoMerge = 0x1000000,
    /// <summary>SLAB_FAILSLAB: the cache takes part in failslab when its cache-filter is on.</summary>
    FailSlab = 0x2000000,
    /// <summary><c>SLAB_RECLAIM_ACCOUNT</c>: pages count as SReclaimable and come from reclaimable pageblocks.</summary>
    ReclaimAccount = 0x20000,
    /// <summary><c>SLAB_ACCOUNT</c>: charge objects to the memory cgroup (accepted; cgroups are not modelled).</summary>
    Account = 0x4000000,

    /// <summary>The debug flags that slub_debug letters select (F, Z, P, U, T).</summary>
    DebugFlags = ConsistencyChecks | RedZone | Poison | StoreUser | Trace,
}
