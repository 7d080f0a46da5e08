// Which lines /proc/meminfo has on a kernel release and configuration, and how a few of its values are worked out
// there (fs/proc/meminfo.c, hugetlb_report_meminfo() and x86's arch_report_meminfo()). Each rule names the release
// and the commit that brought it in; the machine builds this once at boot, the view only reads the flags.
using Kmem.Core;

namespace Kmem.Diagnostics;

/// <summary>What VmallocUsed/VmallocChunk report on a release.</summary>
internal enum VmallocUsage
{
    /// <summary>Before 4.4: get_vmalloc_info() walks the areas: VmallocUsed is the bytes of the areas (guard pages
    /// included), VmallocChunk the largest free gap of the vmalloc window.</summary>
    AreaBytes,
    /// <summary>4.4 to 5.2: both print 0 ("mm: get rid of 'vmalloc_info' from /proc/meminfo", a5ad88ce8c7f).</summary>
    Zero,
    /// <summary>From 5.3: VmallocUsed is the pages vmalloc() holds, VmallocChunk 0
    /// ("mm: vmalloc: show number of vmalloc pages in /proc/meminfo", 97105f0ab7b8).</summary>
    Pages,
}

/// <summary>How MemAvailable is estimated (si_mem_available()), or that the line does not exist.</summary>
internal enum MemAvailableRule
{
    /// <summary>Before 3.14: no MemAvailable line.</summary>
    None,
    /// <summary>3.14 to 4.4: free pages minus the zones' low watermarks
    /// ("/proc/meminfo: provide estimated available memory", 34e431b0ae39).</summary>
    LowWatermarks,
    /// <summary>From 4.5: free pages minus totalreserve_pages (high watermarks and lowmem protection)
    /// ("proc: meminfo: estimate available memory more conservatively", 84ad5802a33a).</summary>
    TotalReserve,
}

/// <summary>The /proc/meminfo lines of one kernel release and configuration.</summary>
internal sealed record MemInfoFields
{
    public MemAvailableRule Available { get; init; } = MemAvailableRule.TotalReserve;
    /// <summary>From 4.17 the kernel's misc reclaimable memory counts as available ("mm: treat indirectly reclaimable
    /// memory as available in MemAvailable"; renamed NR_KERNEL_MISC_RECLAIMABLE in 4.20).</summary>
    public bool MiscReclaimableAvailable { get; init; } = true;
    /// <summary>CONFIG_HIGHMEM: HighTotal, HighFree, LowTotal, LowFree.</summary>
    public bool HighMem { get; init; }
    /// <summary>5.19 with CONFIG_ZSWAP: Zswap, Zswapped ("mm: zswap: add basic meminfo and vmstat coverage").</summary>
    public bool Zswap { get; init; }
    /// <summary>4.20: KReclaimable ("mm: proc: add KReclaimable to /proc/meminfo", 61f94e18de94).</summary>
    public bool KReclaimable { get; init; } = true;
    /// <summary>5.8 with CONFIG_SHADOW_CALL_STACK: ShadowCallStack ("scs: Add page accounting for shadow call stack
    /// allocations", 628d06a48f57).</summary>
    public bool ShadowCallStack { get; init; }
    /// <summary>6.0: SecPageTables ("mm: add NR_SECONDARY_PAGETABLE to count secondary page table uses").</summary>
    public bool SecPageTables { get; init; }
    public VmallocUsage Vmalloc { get; init; } = VmallocUsage.Pages;
    /// <summary>4.19: Percpu ("/proc/meminfo: add percpu populated pages count", 7e8a6304d541).</summary>
    public bool Percpu { get; init; } = true;
    /// <summary>CONFIG_MEMORY_FAILURE: HardwareCorrupted.</summary>
    public bool HardwareCorrupted { get; init; }
    /// <summary>CONFIG_TRANSPARENT_HUGEPAGE: AnonHugePages.</summary>
    public bool AnonHugePages { get; init; }
    /// <summary>4.8 with THP: ShmemHugePages, ShmemPmdMapped ("mm, rmap: account shmem thp pages").</summary>
    public bool ShmemHugePages { get; init; }
    /// <summary>5.4 with THP: FileHugePages, FilePmdMapped ("mm,thp: stats for file backed THP").</summary>
    public bool FileHugePages { get; init; }
    /// <summary>3.19 with CONFIG_CMA: CmaTotal, CmaFree ("fs: proc: include cma info in proc/meminfo").</summary>
    public bool Cma { get; init; }
    /// <summary>Rockchip vendor kernels with CONFIG_NO_GKI (which CONFIG_ROCKCHIP_MINI_KERNEL selects on RV1106): CmaAllocated and
    /// CmaReleased between CmaTotal and CmaFree (what the areas' bitmaps hand out, and the rest).</summary>
    public bool CmaAllocated { get; init; }
    /// <summary>6.5 with CONFIG_UNACCEPTED_MEMORY: Unaccepted (the unaccepted memory series, "mm: Add support for
    /// unaccepted memory").</summary>
    public bool Unaccepted { get; init; }
    /// <summary>CONFIG_HUGETLB_PAGE: the HugePages_* lines and Hugepagesize.</summary>
    public bool Hugetlb { get; init; }
    /// <summary>4.16 with hugetlb: Hugetlb ("mm: show total hugetlb memory consumption in /proc/meminfo", fcb2b0c577f1).</summary>
    public bool HugetlbTotal { get; init; }

    /// <summary>The lines of <paramref name="version"/> with <paramref name="config"/>.</summary>
    public static MemInfoFields For(KernelVersion version, KernelConfig config)
    {
        bool thp = config.IsEnabled("TRANSPARENT_HUGEPAGE");
        bool hugetlb = config.IsEnabled("HUGETLB_PAGE");
        return new MemInfoFields
        {
            Available = version.IsAtLeast(4, 5) ? MemAvailableRule.TotalReserve
                : version.IsAtLeast(3, 14) ? MemAvailableRule.LowWatermarks : MemAvailableRule.None,
            MiscReclaimableAvailable = version.IsAtLeast(4, 17),
            HighMem = config.IsEnabled("HIGHMEM"),
            Zswap = version.IsAtLeast(5, 19) && config.IsEnabled("ZSWAP"),
            KReclaimable = version.IsAtLeast(4, 20),
            ShadowCallStack = version.IsAtLeast(5, 8) && config.IsEnabled("SHADOW_CALL_STACK"),
            SecPageTables = version.IsAtLeast(6, 0),
            Vmalloc = version.IsAtLeast(5, 3) ? VmallocUsage.Pages : version.IsAtLeast(4, 4) ? VmallocUsage.Zero : VmallocUsage.AreaBytes,
            Percpu = version.IsAtLeast(4, 19),
            HardwareCorrupted = config.IsEnabled("MEMORY_FAILURE"),
            AnonHugePages = thp,
            ShmemHugePages = thp && version.IsAtLeast(4, 8),
            FileHugePages = thp && version.IsAtLeast(5, 4),
            Cma = config.IsEnabled("CMA") && version.IsAtLeast(3, 19),
            CmaAllocated = config.IsEnabled("CMA") && version.IsAtLeast(3, 19) && config.IsEnabled("NO_GKI"),
            Unaccepted = version.IsAtLeast(6, 5) && config.IsEnabled("UNACCEPTED_MEMORY"),
            Hugetlb = hugetlb,
            HugetlbTotal = hugetlb && version.IsAtLeast(4, 16),
        };
    }
}
