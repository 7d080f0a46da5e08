// What the kernel being modelled is, as far as the layers below the machine need to know: its architecture
// and the figures that follow from it (word size, page size, cache line, CPUs). The machine builds these
// facts once from its profile and hands them down, so no layer reads a profile. This is also where the
// kernel's version and its CONFIG_ switches will be stated, so that each layer finds every fact about
// "which kernel" in one place.
namespace Kmem.Core;

/// <summary>
/// The facts of the modelled kernel that every layer may read: the architecture, the word size, the page size
/// (one home, <see cref="PageSize"/>), the L1 cache line and the CPU count. Built by the machine from its profile.
/// The kernel version and the <c>CONFIG_*</c> switches belong here too (as <c>Version</c> and <c>Config</c>)
/// when the layers start to depend on them; a layer that needs one gets it from these facts or from settings
/// derived from them, never from the profile.
/// </summary>
internal sealed record KernelFacts
{
    /// <summary>PAGE_SIZE: Kmem models 4 KiB pages on every architecture (a constant, so that hot paths fold it).</summary>
    public const int PageSize = 4096;

    /// <summary>PAGE_SHIFT: log2 of <see cref="PageSize"/>.</summary>
    public const int PageShift = 12;

    /// <summary>The architecture.</summary>
    public required Arch Arch { get; init; }

    /// <summary>True for a 64-bit kernel (every architecture but 32-bit ARM).</summary>
    public required bool Is64Bit { get; init; }

    /// <summary>The number of CPUs (<c>nr_cpu_ids</c>).</summary>
    public required int Cpus { get; init; }

    /// <summary>L1_CACHE_BYTES: the cache line size in bytes.</summary>
    public required int CacheLineSize { get; init; }

    /// <summary>ARCH_KMALLOC_MINALIGN: the smallest alignment kmalloc gives.</summary>
    public required int KmallocMinAlign { get; init; }

    /// <summary>sizeof(void *): 8 on a 64-bit kernel, 4 on a 32-bit one.</summary>
    public int PointerSize => Is64Bit ? 8 : 4;
}
