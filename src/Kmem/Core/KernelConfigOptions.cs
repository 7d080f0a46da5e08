// The CONFIG_ options Kmem acts on: for each, the architectures and releases that have it, its value in the
// architecture's defconfig of a release (as Kconfig resolves it), the kind of value it takes, and the
// dependencies Kconfig enforces between them. docs/profiles.md lists the same table for users.
using System.Globalization;

namespace Kmem.Core;

/// <summary>The kind of value a CONFIG_ option takes.</summary>
internal enum ConfigKind { Bool, Number }

/// <summary>One CONFIG_ option Kmem models.</summary>
internal sealed record KernelConfigOption(
    string Name,
    ConfigKind Kind,
    string Description,
    Func<Arch, KernelVersion, bool> Exists,
    Func<Arch, KernelVersion, string> Default)
{
    /// <summary>Another spelling that reaches this option (a rename between releases).</summary>
    public string? Alias { get; init; }

    /// <summary>Why turning the option on is refused even where it exists (Kmem does not model what it selects), or null.</summary>
    public string? RefuseOn { get; init; }

    /// <summary>Checks a value given for this option on this kernel.</summary>
    /// <exception cref="ArgumentException">The value is of the wrong kind, or the option cannot be on here.</exception>
    public void Check(string givenName, string value, Arch arch, KernelVersion version)
    {
        bool on = value is "y" or "m";
        if (Kind == ConfigKind.Bool && value is not ("y" or "n" or "m"))
            throw new ArgumentException($"CONFIG_{givenName} is a boolean option: give true or false, not '{value}'");
        if (Kind == ConfigKind.Number && !long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            throw new ArgumentException($"CONFIG_{givenName} takes a whole number, not '{value}'");
        if (!Exists(arch, version) && (on || Kind == ConfigKind.Number))
            throw new ArgumentException($"CONFIG_{givenName} does not exist in Linux {version} on {KernelConfigOptions.ArchName(arch)}");
        if (on && RefuseOn is not null) throw new ArgumentException($"CONFIG_{givenName}=y: {RefuseOn}");
    }
}

/// <summary>The table of modelled options and the Kconfig dependencies between them.</summary>
internal static class KernelConfigOptions
{
    private static string YN(bool b) => b ? "y" : "n";
    private static bool Is32(Arch a) => a is Arch.Arm or Arch.I386 or Arch.Riscv32;
    private static bool IsX86(Arch a) => a is Arch.X86_64 or Arch.I386;

    /// <summary>The kernel's name for an architecture (<c>arch/&lt;name&gt;</c>, with the 32/64-bit split of x86 and riscv).</summary>
    public static string ArchName(Arch a) => a switch
    {
        Arch.Arm => "arm",
        Arch.Arm64 => "arm64",
        Arch.X86_64 => "x86_64",
        Arch.I386 => "i386",
        Arch.Riscv32 => "riscv32",
        Arch.Riscv64 => "riscv64",
        _ => a.ToString(),
    };

    public static readonly IReadOnlyList<KernelConfigOption> All =
    [
        new("SLUB", ConfigKind.Bool, "the SLUB allocator (the only one Kmem models)", (_, _) => true, (_, _) => "y"),
        new("SLAB", ConfigKind.Bool, "the SLAB allocator (until 6.8): not modelled, refused", (_, v) => !v.IsAtLeast(6, 8), (_, _) => "n")
            { RefuseOn = "Kmem models SLUB only; SLAB's caches, sizes and /proc/slabinfo tunables are not modelled" },
        new("SLOB", ConfigKind.Bool, "the SLOB allocator (until 6.4): not modelled, refused", (_, v) => !v.IsAtLeast(6, 4), (_, _) => "n")
            { RefuseOn = "Kmem models SLUB only; SLOB has no caches to model" },
        new("SLUB_DEBUG", ConfigKind.Bool, "SLUB's debugging support: slub_debug= works only with it", (_, _) => true, (_, _) => "y"),
        new("SLUB_DEBUG_ON", ConfigKind.Bool, "slub_debug on for every cache from boot", (_, _) => true, (_, _) => "n"),
        new("SLUB_CPU_PARTIAL", ConfigKind.Bool, "per-CPU partial slab lists", (_, _) => true, (_, _) => "y"),
        new("SLAB_MERGE_DEFAULT", ConfigKind.Bool, "merge compatible caches unless slab_nomerge (from 4.13; always before)",
            (_, v) => v.IsAtLeast(4, 13), (_, _) => "y"),
        new("SLAB_FREELIST_HARDENED", ConfigKind.Bool, "obfuscated free pointers (from 4.14): adds kmem_cache.random",
            (_, v) => v.IsAtLeast(4, 14), (_, _) => "n"),
        new("SLAB_FREELIST_RANDOM", ConfigKind.Bool, "randomized free-list order (from 4.7): adds kmem_cache.random_seq",
            (_, v) => v.IsAtLeast(4, 7), (_, _) => "n"),
        new("HARDENED_USERCOPY", ConfigKind.Bool, "usercopy checks (from 4.8); from 6.2 kmem_cache keeps useroffset/usersize only with it",
            (_, v) => v.IsAtLeast(4, 8), (_, _) => "n"),
        // The riscv defconfig turns on a block of lock and VM debugging (DEBUG_SPINLOCK among it); no other modelled
        // architecture's does. It makes every spinlock_t carry magic, owner CPU and owner (kmem_cache_node grows).
        new("DEBUG_SPINLOCK", ConfigKind.Bool, "spinlock debugging: a spinlock_t carries magic, owner CPU and owner",
            (_, _) => true, (a, v) => YN(a is Arch.Riscv64 or Arch.Riscv32 && v.IsAtLeast(5, 10))),
        new("RANDOM_KMALLOC_CACHES", ConfigKind.Bool, "16 copies of each kmalloc cache, kmalloc-rnd-NN-* (from 6.6): not modelled, refused",
            (_, v) => v.IsAtLeast(6, 6), (_, _) => "n")
            { RefuseOn = "Kmem does not model the kmalloc-rnd-NN-* caches nor kmalloc's choice among them by a hash of the caller" },
        // x86_64_defconfig and i386_defconfig set no MEMCG; arm64's defconfig and riscv's defconfig do.
        new("MEMCG", ConfigKind.Bool, "the memory controller", (_, _) => true,
            (a, _) => YN(a is Arch.Arm64 or Arch.Riscv64 or Arch.Riscv32)),
        // 6.10 folds it into MEMCG ("mm: memcg: drop CONFIG_MEMCG_KMEM"): from then on MEMCG alone says it.
        new("MEMCG_KMEM", ConfigKind.Bool, "kernel memory accounting: kmalloc-cg-* caches for __GFP_ACCOUNT (from 5.14); def_bool MEMCG from 4.5, part of MEMCG from 6.10",
            (_, v) => !v.IsAtLeast(6, 10), (a, v) => YN(v.IsAtLeast(4, 5) && a is Arch.Arm64 or Arch.Riscv64 or Arch.Riscv32)),
        new("HIGHMEM", ConfigKind.Bool, "ZONE_HIGHMEM above lowmem on 32-bit arm and i386", (a, _) => a is Arch.Arm or Arch.I386, (_, _) => "y"),
        new("NUMA", ConfigKind.Bool, "several memory nodes: ' N0=' in /proc/vmallocinfo, kmem_cache node pointers",
            (a, v) => a is Arch.X86_64 or Arch.I386 || (a == Arch.Arm64 && v.IsAtLeast(4, 7)) || (a == Arch.Riscv64 && v.IsAtLeast(5, 12)),
            // riscv's NUMA (5.12) has no Kconfig default and its defconfig does not turn it on: a riscv64 6.4 defconfig
            // kernel has a 192-byte kmem_cache, which leaves no room for remote_node_defrag_ratio.
            (a, _) => YN(a == Arch.X86_64 || a == Arch.Arm64)),
        // arm64: ZONE_DMA (below 4 GiB) until 4.20; "arm64: replace ZONE_DMA with ZONE_DMA32" (5.0) renamed it; "arm64: use
        // both ZONE_DMA and ZONE_DMA32" (5.5) brought ZONE_DMA back below 1 GiB, and from 5.11 its size comes from the
        // firmware's DMA ranges (32 bits when they say nothing).
        new("ZONE_DMA", ConfigKind.Bool, "ZONE_DMA (x86: below 16 MiB; arm64: below 4 GiB before 5.0, none in 5.0-5.4, the first GiB in 5.5-5.10, 4 GiB from 5.11 unless the profile says)",
            (a, v) => a is Arch.X86_64 or Arch.I386 or Arch.Arm || (a == Arch.Arm64 && (!v.IsAtLeast(5, 0) || v.IsAtLeast(5, 5))), (a, _) => YN(a != Arch.Arm)),
        new("ZONE_DMA32", ConfigKind.Bool, "ZONE_DMA32 below 4 GiB (64-bit; arm64 from 5.0)",
            (a, v) => a is Arch.X86_64 or Arch.Riscv64 || (a == Arch.Arm64 && v.IsAtLeast(5, 0)), (_, _) => "y"),
        new("CMA", ConfigKind.Bool, "the contiguous memory allocator: CMA areas, CmaTotal/CmaFree", (_, _) => true,
            (a, _) => YN(a is Arch.Arm or Arch.Arm64)),
        new("DMA_CMA", ConfigKind.Bool, "the DMA API allocates from CMA", (_, _) => true, (a, _) => YN(a is Arch.Arm or Arch.Arm64)),
        // 6.6 kernel/dma/Kconfig: "Enable separate DMA Contiguous Memory Area for NUMA Node" (numa_cma=, cma_pernuma=), off by default.
        new("DMA_NUMA_CMA", ConfigKind.Bool, "per-node DMA CMA areas from numa_cma= and cma_pernuma= (6.6 on)", (_, v) => v.IsAtLeast(6, 6), (_, _) => "n"),
        // x86_64_defconfig: HUGETLBFS only; arm64's defconfig: THP, MEMORY_FAILURE and HUGETLBFS; riscv's defconfig: HUGETLBFS.
        new("TRANSPARENT_HUGEPAGE", ConfigKind.Bool, "transparent huge pages: the AnonHugePages family of meminfo lines",
            (a, _) => a != Arch.Riscv32, (a, _) => YN(a is Arch.Arm64)),
        new("HUGETLB_PAGE", ConfigKind.Bool, "hugetlbfs: the HugePages_* lines of meminfo; 2 MiB pageblocks on 64-bit", (_, _) => true,
            (a, _) => YN(a is Arch.X86_64 or Arch.Arm64 or Arch.Riscv64)),
        new("MEMORY_FAILURE", ConfigKind.Bool, "hardware memory error handling: HardwareCorrupted in meminfo",
            (a, _) => !Is32(a) || a == Arch.I386, (a, _) => YN(a is Arch.Arm64)),
        new("SHADOW_CALL_STACK", ConfigKind.Bool, "Clang's shadow call stack: ShadowCallStack in meminfo (from 5.8; arm64, riscv from 6.9)",
            (a, v) => (a == Arch.Arm64 && v.IsAtLeast(5, 8)) || (a is Arch.Riscv64 && v.IsAtLeast(6, 9)), (_, _) => "n"),
        new("UNACCEPTED_MEMORY", ConfigKind.Bool, "memory a confidential guest accepts on first use: Unaccepted in meminfo (from 6.5)",
            (a, v) => a == Arch.X86_64 && v.IsAtLeast(6, 5), (_, _) => "n"),
        new("X86_PAE", ConfigKind.Bool, "i386 PAE page tables: 2 MiB large pages (DirectMap2M, 2048 kB huge pages) instead of 4 MiB",
            (a, _) => a == Arch.I386, (_, _) => "n"),
        new("SWAP", ConfigKind.Bool, "swap: the SwapCached/SwapTotal/SwapFree lines", (_, _) => true, (_, _) => "y"),
        new("ZSWAP", ConfigKind.Bool, "the compressed swap cache: Zswap/Zswapped in meminfo (from 5.19)", (_, v) => v.IsAtLeast(3, 11), (_, _) => "n"),
        new("VM_EVENT_COUNTERS", ConfigKind.Bool, "the event counters of /proc/vmstat", (_, _) => true, (_, _) => "y"),
        new("SMP", ConfigKind.Bool, "more than one CPU: the banner's SMP; without it one CPU and the UP per-CPU first chunk", (_, _) => true, (_, _) => "y"),
        new("PREEMPT", ConfigKind.Bool, "a fully preemptible kernel: the banner's PREEMPT", (_, _) => true, (_, _) => "n"),
        // The 32-bit arm memory split (the VMSPLIT_* choice of arch/arm/Kconfig): PAGE_OFFSET 0xC0000000 by default,
        // 0xB0000000 with VMSPLIT_3G_OPT, 0x80000000 with VMSPLIT_2G, 0x40000000 with VMSPLIT_1G; lowmem ends 240 MiB + 8 MiB
        // below VMALLOC_END (0xff800000) whatever the split, so a lower PAGE_OFFSET gives more lowmem.
        new("VMSPLIT_3G_OPT", ConfigKind.Bool, "arm: PAGE_OFFSET 0xB0000000 (up to 1 GiB of lowmem)", (a, _) => a == Arch.Arm, (_, _) => "n"),
        new("VMSPLIT_2G", ConfigKind.Bool, "arm: PAGE_OFFSET 0x80000000", (a, _) => a == Arch.Arm, (_, _) => "n"),
        new("VMSPLIT_1G", ConfigKind.Bool, "arm: PAGE_OFFSET 0x40000000", (a, _) => a == Arch.Arm, (_, _) => "n"),
        // Rockchip's vendor kernels (5.10 and later): CMA areas are reserved but never handed to the buddy allocator, so
        // MemTotal leaves them out, no pageblock is MIGRATE_CMA, cma_alloc() takes pages without migration, and
        // cma_declare_contiguous() keeps the caller's alignment and reports in KiB. Not in kernel.org trees.
        new("CMA_INACTIVE", ConfigKind.Bool, "Rockchip vendor kernels: CMA areas stay out of the buddy allocator (not in kernel.org Linux)",
            (a, _) => a is Arch.Arm or Arch.Arm64, (_, _) => "n"),
        // Rockchip's vendor kernels (5.10 and later): the RK DMA-BUF heaps, whose CMA area "rk-dma-heap-cma" is reserved at
        // boot by rk_dma_heap_cma_setup() (32 MiB unless rk_dma_heap_cma= says otherwise). Not in kernel.org trees.
        new("DMABUF_HEAPS_ROCKCHIP", ConfigKind.Bool, "Rockchip vendor kernels: the RK DMA-BUF heaps and their rk-dma-heap-cma area (rk_dma_heap_cma=)",
            (a, _) => a is Arch.Arm or Arch.Arm64, (_, _) => "n"),
        // Rockchip vendor kernels: CONFIG_ROCKCHIP_MINI_KERNEL (default y for CPU_RV1106) selects it; fs/proc/meminfo.c then
        // prints CmaAllocated and CmaReleased (cma_used_pages()) between CmaTotal and CmaFree.
        new("NO_GKI", ConfigKind.Bool, "Rockchip vendor kernels: the CmaAllocated and CmaReleased lines of meminfo (not in kernel.org Linux)",
            (a, _) => a is Arch.Arm or Arch.Arm64, (_, _) => "n"),
        // "mm: cma: debugfs interface" (4.0): /sys/kernel/debug/cma/<area>/. No defconfig Kmem models turns it on. A profile
        // that sets it keeps loading at older releases, which simply have no such files.
        new("CMA_DEBUGFS", ConfigKind.Bool, "the CMA areas' debugfs files (/sys/kernel/debug/cma/<area>/, from 4.0)", (_, _) => true, (_, _) => "n"),
        new("LOG_BUF_SHIFT", ConfigKind.Number, "the printk ring: 2^N bytes, static in .bss", (_, _) => true, (_, _) => "17"),
        new("BASE_FULL", ConfigKind.Bool, "full-sized data structures; off (BASE_SMALL) gives pid_max 4096 and smaller hashes", (_, _) => true,
            (_, _) => "y"),
        new("IOMMU_SUPPORT", ConfigKind.Bool, "IOMMU drivers: devices may sit behind an IOMMU", (_, _) => true, (_, _) => "y"),
        new("FORCE_MAX_ZONEORDER", ConfigKind.Number, "MAX_ORDER (orders 0..MAX_ORDER-1), before 6.1; the profile's max_order wins",
            (a, v) => !IsX86(a) && !v.IsAtLeast(6, 1), (_, _) => "11") { Alias = "ARCH_FORCE_MAX_ORDER" },
        new("ARCH_FORCE_MAX_ORDER", ConfigKind.Number, "MAX_ORDER from 6.1 (exclusive before 6.4: orders 0..N-1; inclusive from 6.4: 0..N)",
            (a, v) => !IsX86(a) && v.IsAtLeast(6, 1), (_, v) => v.IsAtLeast(6, 4) ? "10" : "11") { Alias = "FORCE_MAX_ZONEORDER" },
        new("DMA_API_DEBUG", ConfigKind.Bool, "DMA-API debugging (the profile's dma_debug and dma_debug= override it)", (_, _) => true, (_, _) => "n"),
        new("AMD_MEM_ENCRYPT", ConfigKind.Bool, "AMD memory encryption (x86_64, from 4.14): selects kernel/dma/pool.c's atomic pools from 5.8 (not in x86_64_defconfig; distributions set it)",
            (a, v) => a == Arch.X86_64 && v.IsAtLeast(4, 14), (_, _) => "n"),
    ];

    /// <summary>The option of that name (or alias); of two spellings, the one this release has.</summary>
    public static KernelConfigOption? Find(string name, Arch? arch = null, KernelVersion? version = null)
    {
        KernelConfigOption? byName = null, byAlias = null;
        foreach (var o in All)
        {
            if (o.Name == name) byName = o;
            else if (o.Alias == name) byAlias = o;
        }
        if (byName is null) return byAlias;
        if (byAlias is not null && arch is { } a && version is { } v && !byName.Exists(a, v) && byAlias.Exists(a, v)) return byAlias;
        return byName;
    }

    /// <summary>Kconfig's dependencies between modelled options: an option that depends on one turned off goes off unless
    /// it was given (then the pair contradicts, refused); an option that needs one that was not given turns it on.</summary>
    public static void ApplyDependencies(SortedDictionary<string, string> values, HashSet<string> given, Arch arch, KernelVersion version)
    {
        // Options whose Kconfig default is their parent (def_bool MEMCG; default y if SMP) follow a parent the profile set.
        (string Follower, string Parent)[] followers = [("MEMCG_KMEM", "MEMCG"), ("SLUB_CPU_PARTIAL", "SMP")];
        foreach (var (follower, parent) in followers)
            if (given.Contains(parent) && !given.Contains(follower) && values.ContainsKey(follower)
                && (follower != "MEMCG_KMEM" || version.IsAtLeast(4, 5)))
                values[follower] = values[parent];
        // (dependent, what it needs)
        (string Dependent, string Needs)[] deps =
        [
            ("MEMCG_KMEM", "MEMCG"), ("DMA_CMA", "CMA"), ("SLUB_DEBUG_ON", "SLUB_DEBUG"), ("SLUB_CPU_PARTIAL", "SMP"), ("ZSWAP", "SWAP"),
            ("CMA_INACTIVE", "CMA"), ("DMABUF_HEAPS_ROCKCHIP", "CMA"), ("DMA_NUMA_CMA", "DMA_CMA"), ("DMA_NUMA_CMA", "NUMA"),
        ];
        foreach (var (dep, needs) in deps)
        {
            bool depOn = values.TryGetValue(dep, out var d) && d is "y" or "m";
            bool needsOn = values.TryGetValue(needs, out var n) && n is "y" or "m";
            if (!depOn || needsOn) continue;
            if (given.Contains(dep) && given.Contains(needs))
                throw new ArgumentException($"CONFIG_{dep}=y needs CONFIG_{needs}=y");
            if (given.Contains(dep))
            {
                if (Find(needs, arch, version) is { } o && o.Exists(arch, version)) values[needs] = "y";
                else throw new ArgumentException($"CONFIG_{dep}=y needs CONFIG_{needs}, which Linux {version} on {ArchName(arch)} does not have");
            }
            else values[dep] = "n";
        }
        // The VMSPLIT_* options are one Kconfig choice.
        var splits = new[] { "VMSPLIT_3G_OPT", "VMSPLIT_2G", "VMSPLIT_1G" }.Where(o => values.TryGetValue(o, out var x) && x == "y").ToList();
        if (splits.Count > 1) throw new ArgumentException($"CONFIG_{splits[0]} and CONFIG_{splits[1]} are one choice: give one memory split");
        // SLUB is the allocator: turning it off only makes sense with another one, which is refused above.
        if (values.TryGetValue("SLUB", out var slub) && slub == "n")
            throw new ArgumentException("CONFIG_SLUB=n: Kmem models SLUB only");
    }
}
