// What the slab layer needs to know about the modelled kernel's release and configuration: the CONFIG_ options that
// change the layout of SLUB's own structures and of debugged objects, and the release rules that change them. The
// machine fills it from the profile's version and config at boot; the slab layer reads it once, never per call.
using Kmem.Core;

namespace Kmem.Slab;

/// <summary>The kernel release and the CONFIG_ options the slab layer follows.</summary>
internal sealed record SlabKernel
{
    /// <summary>Linux 5.10 with the options of today's 64-bit profiles.</summary>
    public static SlabKernel Default { get; } = new();

    /// <summary>The release.</summary>
    public KernelVersion Version { get; init; } = KernelVersion.Default;
    /// <summary><c>sizeof(void *)</c>.</summary>
    public int PointerSize { get; init; } = 8;
    /// <summary>CONFIG_SLUB_DEBUG: debugging support built in (the <c>slub_debug=</c> parameter, the debug fields of
    /// <c>kmem_cache_node</c>).</summary>
    public bool SlubDebug { get; init; } = true;
    /// <summary>CONFIG_SLUB_DEBUG_ON: every cache debugged from boot.</summary>
    public bool SlubDebugOn { get; init; }
    /// <summary>CONFIG_SLUB_CPU_PARTIAL.</summary>
    public bool CpuPartial { get; init; } = true;
    /// <summary>CONFIG_SLAB_MERGE_DEFAULT (merging unless <c>slab_nomerge</c>).</summary>
    public bool MergeDefault { get; init; } = true;
    /// <summary>CONFIG_NUMA.</summary>
    public bool Numa { get; init; } = true;
    /// <summary><c>nr_node_ids</c>: the possible memory nodes.</summary>
    public int NrNodeIds { get; init; } = 1;
    /// <summary>CONFIG_SLAB_FREELIST_HARDENED.</summary>
    public bool FreelistHardened { get; init; }
    /// <summary>CONFIG_SLAB_FREELIST_RANDOM.</summary>
    public bool FreelistRandom { get; init; }
    /// <summary>CONFIG_MEMCG_KMEM.</summary>
    public bool MemcgKmem { get; init; } = true;
    /// <summary>CONFIG_HARDENED_USERCOPY.</summary>
    public bool HardenedUsercopy { get; init; }
    /// <summary>CONFIG_DEBUG_SPINLOCK (a spinlock_t carries magic, owner CPU and owner).</summary>
    public bool DebugSpinlock { get; init; }
    /// <summary>CONFIG_SMP (a spinlock_t without debugging is empty on UP).</summary>
    public bool Smp { get; init; } = true;
    /// <summary>CONFIG_SYSFS (every cache has a kobject).</summary>
    public bool Sysfs { get; init; } = true;

    /// <summary>At least release <paramref name="major"/>.<paramref name="minor"/>.</summary>
    public bool At(int major, int minor) => Version.IsAtLeast(major, minor);

    /// <summary>
    /// kmalloc caches of a power-of-two size are aligned to their size, slub_debug red zones or not (and so are the
    /// bootstrap caches made by create_boot_cache()): from 5.4, "mm, sl[aou]b: guarantee natural alignment for
    /// kmalloc(power-of-two)". Before, they had ARCH_KMALLOC_MINALIGN only.
    /// </summary>
    public bool NaturalKmallocAlign => At(5, 4);

    /// <summary>
    /// <c>sizeof(struct track)</c>, one owner track of slub_debug U. Up to 5.16: the caller, TRACK_ADDRS_COUNT (16)
    /// stack addresses, cpu, pid and jiffies. From 5.17 ("mm/slub: use stackdepot to save stack trace in objects") the
    /// stack is a 32-bit stack depot handle instead.
    /// </summary>
    public int TrackSize => PointerSize == 8
        ? (At(5, 17) ? 8 + 4 + 4 + 4 + 4 + 8 : 8 + 16 * 8 + 4 + 4 + 8)     // 32 : 152 (the handle's padding before 'when')
        : (At(5, 17) ? 4 + 4 + 4 + 4 + 4 : 4 + 16 * 4 + 4 + 4 + 4);        // 20 : 80

    /// <summary>
    /// A kmalloc cache with slub_debug U also keeps the requested size (an unsigned int) after the two tracks: from 6.1,
    /// "mm/slub: enable debugging memory wasting of kmalloc".
    /// </summary>
    public bool KmallocOrigSize => At(6, 1);

    /// <summary>The facts for a release and its resolved configuration.</summary>
    public static SlabKernel For(KernelVersion version, KernelConfig config, bool is64Bit, int nodes = 1) => new()
    {
        Version = version,
        PointerSize = is64Bit ? 8 : 4,
        SlubDebug = config.IsEnabled("SLUB_DEBUG"),
        SlubDebugOn = config.IsEnabled("SLUB_DEBUG_ON"),
        CpuPartial = config.IsEnabled("SLUB_CPU_PARTIAL"),
        // Before 4.13 there was no option: caches always merged unless slab_nomerge.
        MergeDefault = !version.IsAtLeast(4, 13) || config.IsEnabled("SLAB_MERGE_DEFAULT"),
        Numa = config.IsEnabled("NUMA"),
        NrNodeIds = nodes,
        FreelistHardened = config.IsEnabled("SLAB_FREELIST_HARDENED"),
        FreelistRandom = config.IsEnabled("SLAB_FREELIST_RANDOM"),
        MemcgKmem = config.IsEnabled("MEMCG_KMEM"),
        HardenedUsercopy = config.IsEnabled("HARDENED_USERCOPY"),
        DebugSpinlock = config.IsEnabled("DEBUG_SPINLOCK"),
        Smp = config.IsEnabled("SMP"),
    };
}
