// What a trace says about the machine that recorded it: pointer width, CPUs, cache line, the minimum kmalloc
// alignment, SLUB or SLAB, the architecture and the kernel version, each with the reason it was chosen, and the
// profile Kmem boots to replay the trace on that machine (see TraceMachineInference).
namespace Kmem;

/// <summary>The recording machine as <see cref="TraceMachineInference"/> inferred it from a trace.</summary>
public sealed record TraceMachine
{
    /// <summary>The profile built for the machine (name <c>inferred-ARCH</c>).</summary>
    public required MachineProfile Profile { get; init; }
    /// <summary>One line per fact: what was inferred and why.</summary>
    public required IReadOnlyList<string> Reasons { get; init; }
    /// <summary>The architecture.</summary>
    public required Arch Arch { get; init; }
    /// <summary>32 or 64.</summary>
    public required int PointerBits { get; init; }
    /// <summary>CPUs (the trace header's <c>#P:N</c>, else one more than the highest CPU column).</summary>
    public required int Cpus { get; init; }
    /// <summary><c>cache_line_size()</c> as the kmem_cache sizes show it.</summary>
    public required int CacheLineSize { get; init; }
    /// <summary>KMALLOC_MIN_SIZE (ARCH_KMALLOC_MINALIGN) as the kmalloc sizes show it.</summary>
    public required int KmallocMinAlign { get; init; }
    /// <summary>The slab allocator the kmalloc classes show: <c>SLUB</c> or <c>SLAB</c> (Kmem models SLUB only).</summary>
    public required string SlabAllocator { get; init; }
    /// <summary>On a SLAB trace, the L1_CACHE_BYTES its kmalloc classes show (96 exists below 64, 192 below 128); else 64.</summary>
    public int SlabL1CacheBytes { get; init; } = 64;
    /// <summary>The kernel version the replay models (the newest release the trace's formats allow, within 3.10..6.12).</summary>
    public required KernelVersion Version { get; init; }
    /// <summary>The releases the trace's formats allow (e.g. <c>before 4.6</c>, <c>6.1 or later</c>).</summary>
    public required string VersionRange { get; init; }

    /// <summary>True when the trace was recorded on SLAB, which Kmem does not model.</summary>
    public bool IsSlab => SlabAllocator == "SLAB";
}
