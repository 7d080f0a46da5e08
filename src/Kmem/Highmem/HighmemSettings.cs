// Plain settings the machine hands the kmap layer (the layer never sees a profile): the pool and stack
// sizes of the modelled architecture and release, and the memfd whose frames the mappings show.
namespace Kmem.Highmem;

/// <summary>What the kmap layer needs to know about the modelled kernel.</summary>
internal sealed record HighmemSettings
{
    /// <summary>
    /// LAST_PKMAP: the slots of the persistent kmap pool. arm: PTRS_PER_PTE, 512 (one page table under PAGE_OFFSET,
    /// arch/arm/include/asm/highmem.h); i386: 1024, or 512 with PAE (arch/x86/include/asm/pgtable_32_areas.h).
    /// </summary>
    public required int LastPkmap { get; init; }

    /// <summary>
    /// How deep a thread's stack of atomic/local mappings may grow: KM_MAX_IDX (16) from 5.11 (mm/highmem.c,
    /// "mm/highmem: Provide generic variant of kmap_atomic*"); KM_TYPE_NR before (arm 16, x86 20).
    /// </summary>
    public required int StackDepth { get; init; }

    /// <summary>True from Linux 5.11, where kmap_local_page() exists.</summary>
    public required bool HasKmapLocal { get; init; }

    /// <summary>
    /// arm (ARCH_NEEDS_KMAP_HIGH_GET, without DEBUG_HIGHMEM): kmap_atomic() (and kmap_local_page() from 5.11) of a page
    /// that already has a pkmap slot take another reference on it (kmap_high_get()) instead of a stack entry, and
    /// undoing such an address drops it: arch/arm/mm/highmem.c __kmap_atomic()/__kunmap_atomic() before 5.11,
    /// arch_kmap_local_high_get() and kmap_high_unmap_local() in mm/highmem.c from 5.11.
    /// </summary>
    public bool KmapHighGet { get; init; }

    /// <summary>The architecture's kunmap_atomic() before 5.11, as reports name it: <c>__kunmap_atomic</c>, <c>kunmap_atomic_high</c> from 5.8.</summary>
    public string ArchUnmapFunction { get; init; } = "__kunmap_atomic";

    /// <summary>The memfd of the machine's DRAM (frames are mapped from it), or -1 where memory cannot be remapped.</summary>
    public required int Fd { get; init; }

    /// <summary>How long a task may sleep in kmap() before the hung-task report (CONFIG_DEFAULT_HUNG_TASK_TIMEOUT, 120 s).</summary>
    public TimeSpan HungTaskTimeout { get; init; } = TimeSpan.FromSeconds(120);
}
