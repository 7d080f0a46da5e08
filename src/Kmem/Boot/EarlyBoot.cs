// What the early boot steps (EarlyAllocations) leave behind: the lines the boot log prints later, the page counts
// alloc_large_system_hash() reads, and the init sections free_initmem() gives back.
namespace Kmem.Boot;

/// <summary>What the early boot steps leave for the boot log and for later steps.</summary>
internal sealed class EarlyBoot
{
    /// <summary>pcpu_dump_alloc_info() lines (KERN_DEBUG), printed by setup_per_cpu_areas().</summary>
    public List<string> PerCpuLines { get; } = [];
    /// <summary>The per-CPU first chunk's bytes (its pages are populated: meminfo's Percpu), 0 where none is modelled.</summary>
    public ulong PerCpuChunkBytes { get; set; }
    /// <summary>The hash tables vfs_caches_init_early() (and before 4.15 pidhash_init()) took from memblock.</summary>
    public List<LargeSystemHash> EarlyHashes { get; } = [];
    /// <summary>The dentry and inode tables when hashdist defers them to vfs_caches_init() (vmalloc'ed there).</summary>
    public List<LargeSystemHash> DeferredHashes { get; } = [];
    /// <summary>The log buffer setup_log_buf() allocated for log_buf_len=, 0 when the static one stays.</summary>
    public ulong LogBufLen { get; set; }
    /// <summary>The errors log_buf_len_update() and setup_log_buf() print (KERN_ERR), in order.</summary>
    public List<string> LogBufErrors { get; } = [];
    /// <summary>nr_kernel_pages and nr_all_pages as alloc_large_system_hash() read them.</summary>
    public long NrKernelPages { get; set; }
    public long NrAllPages { get; set; }
    /// <summary>Each node's pglist_data as x86's alloc_node_data() placed it: the node, the block, and the node it landed on.</summary>
    public List<(int Nid, ulong Base, ulong Size, int OnNode)> NodeData { get; } = [];
    /// <summary>[__init_begin, __init_end): what free_initmem() gives back at the end of boot.</summary>
    public (ulong Start, ulong End) Init { get; set; }
}
