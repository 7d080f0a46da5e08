// What the kernel being modelled is, as far as the layers below the machine need to know: its architecture
// and the figures that follow from it (word size, page size, cache line, CPUs). The machine builds these
// facts once from its profile and hands them down, so no layer reads a profile. The kernel's version and
// its CONFIG_ switches are stated here too, so each layer finds every fact about "which kernel" in one place.
namespace Kmem.Core;

/// <summary>
/// The facts of the modelled kernel that every layer may read: the architecture, the word size, the page size
/// (one home, <see cref="PageSize"/>), the L1 cache line and the CPU count. Built by the machine from its profile.
/// The kernel version (<see cref="Version"/>) and the <c>CONFIG_*</c> switches (<see cref="Config"/>) are here too;
/// a layer that needs one gets it from these facts or from settings derived from them, never from the profile.
/// </summary>
internal sealed record KernelFacts
{
    /// <summary>PAGE_SIZE: Kmem models 4 KiB pages on every architecture (a constant, so that hot paths fold it).</summary>
    public const int PageSize = 4096;

    /// <summary>PAGE_SHIFT: log2 of <see cref="PageSize"/>.</summary>
    public const int PageShift = 12;

    /// <summary>The architecture.</summary>
    public required Arch Arch { get; init; }

    /// <summary>True for a 64-bit kernel (arm64, x86_64, riscv64).</summary>
    public required bool Is64Bit { get; init; }

    /// <summary>The number of CPUs (<c>nr_cpu_ids</c>).</summary>
    public required int Cpus { get; init; }

    /// <summary>L1_CACHE_BYTES: the cache line size in bytes.</summary>
    public required int CacheLineSize { get; init; }

    /// <summary>ARCH_KMALLOC_MINALIGN: the smallest alignment kmalloc gives.</summary>
    public required int KmallocMinAlign { get; init; }

    /// <summary>The kernel release being modelled.</summary>
    public required KernelVersion Version { get; init; }

    /// <summary>The kernel configuration in force (the architecture's defconfig at <see cref="Version"/> with the profile's changes).</summary>
    public required KernelConfig Config { get; init; }

    /// <summary>True when the release is <paramref name="major"/>.<paramref name="minor"/> or later.</summary>
    public bool IsAtLeast(int major, int minor) => Version.IsAtLeast(major, minor);

    /// <summary>CONFIG_NUMA: the views print per-node figures (<c>N0=</c>) and kmem_cache holds a node pointer per possible node.</summary>
    public bool Numa => Config.IsEnabled("NUMA");

    /// <summary>CONFIG_HIGHMEM.</summary>
    public bool HighMem => Config.IsEnabled("HIGHMEM");

    /// <summary>sizeof(void *): 8 on a 64-bit kernel, 4 on a 32-bit one.</summary>
    public int PointerSize => Is64Bit ? 8 : 4;
}
