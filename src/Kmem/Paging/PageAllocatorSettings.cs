// Plain settings the Machine hands the page allocator (the layer never sees a profile).
namespace Kmem.Paging;

/// <summary>A physical range in PFNs, end exclusive, with an optional name.</summary>
internal readonly record struct PfnRange(ulong Start, ulong End, string Name = "", bool Inactive = false)
{
    public ulong Count => End - Start;
}

/// <summary>Everything the page allocator needs to build its zones.</summary>
internal sealed record PageAllocatorSettings
{
    public required int MachineId { get; init; }
    public required ulong BasePfn { get; init; }
    public required int FrameCount { get; init; }
    public required int MaxOrder { get; init; }
    /// <summary>The kernel release whose rules the allocator follows (per-CPU lists, pcp->high, MAX_ORDER naming).</summary>
    public KernelVersion Version { get; init; } = KernelVersion.Default;
    /// <summary>CONFIG_TRANSPARENT_HUGEPAGE: from 5.14 the per-CPU lists also keep THP-order blocks.</summary>
    public bool TransparentHugepage { get; init; }
    /// <summary>The utsname release reports print (<c>5.10.0-kmem</c>).</summary>
    public string Release { get; init; } = "5.10.0-kmem";
    public required int PageblockOrder { get; init; }
    public required int Cpus { get; init; }
    /// <summary>
    /// Every node's configured zones, node by node and in kernel order within a node (each node has the same zone
    /// types), with their spans (empty zones have Start == End).
    /// </summary>
    public required (ZoneType Type, ulong StartPfn, ulong EndPfn, int Node)[] Zones { get; init; }
    /// <summary>
    /// CONFIG_NUMA: zone_statistics() counts the NUMA events, memory policies apply, show_mem() names each zone's node
    /// (show_node()) and mems_allowed lists the nodes.
    /// </summary>
    public bool Numa { get; init; }
    /// <summary>A 64-bit kernel (the zonelist order default of 3.16–4.13 depends on it).</summary>
    public bool Is64Bit { get; init; } = true;
    /// <summary>Each CPU's node (<c>cpu_to_node()</c>); <see cref="Cpus"/> entries.</summary>
    public int[] CpuNodes { get; init; } = [];
    /// <summary>The node distance table (<c>node_distance()</c>), one row per node; null means 10 local, 20 remote.</summary>
    public int[][]? Distances { get; init; }
    /// <summary>Memory banks (memblock.memory).</summary>
    public required PfnRange[] Memory { get; init; }
    /// <summary>Reserved ranges (memblock.reserved), already clipped to memory.</summary>
    public required PfnRange[] Reserved { get; init; }
    /// <summary>
    /// CMA areas: their pageblocks become MIGRATE_CMA, except an inactive one's (<see cref="PfnRange.Inactive"/>: Rockchip's
    /// CONFIG_CMA_INACTIVE or a node's <c>inactive</c> property), which stays memblock-reserved, outside the buddy allocator
    /// and the managed pages.
    /// </summary>
    public required PfnRange[] Cma { get; init; }
    /// <summary>vm.min_free_kbytes, or null for the kernel's formula.</summary>
    public long? MinFreeKbytes { get; init; }
    /// <summary>How long a blocking allocation waits for a free between reclaim rounds.</summary>
    public TimeSpan ReclaimRetryWait { get; init; } = TimeSpan.FromMilliseconds(5);
}
