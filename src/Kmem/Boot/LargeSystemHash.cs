// alloc_large_system_hash() (mm/page_alloc.c; mm/mm_init.c from 6.4): how many buckets a boot-time hash table gets
// from the memory size, and the line it prints. The dentry and inode caches take theirs from memblock early in
// start_kernel(); the mount caches take theirs from the page allocator after mem_init().
using Kmem.Core;

namespace Kmem.Boot;

/// <summary>The size of one boot-time hash table, as alloc_large_system_hash() computes it.</summary>
internal readonly record struct LargeSystemHash(string Name, long Entries, ulong Bytes, bool Virt)
{
    /// <summary>The vmalloc'ed table got huge (PMD) mappings (is_vm_area_hugepages(), 5.13 on): "vmalloc hugepage".</summary>
    public bool Huge { get; init; }

    private const int PageShift = KernelFacts.PageShift;
    private const ulong PageSize = 1UL << PageShift;

    /// <summary>HASH_EARLY: taken from memblock before the page allocator runs.</summary>
    public const int Early = 1;
    /// <summary>HASH_SMALL: a small table is fine (the old PID hash), down to 1 &lt;&lt; *_hash_shift entries.</summary>
    public const int Small = 2;

    /// <summary>get_order(size): the buddy order the table's pages come in.</summary>
    public int AllocOrder
    {
        get
        {
            int o = 0;
            while ((PageSize << o) < Bytes) o++;
            return o;
        }
    }

    /// <summary>
    /// alloc_large_system_hash(tablename, bucketsize, numentries, scale, flags, _hash_shift, low_limit, high_limit):
    /// <paramref name="given"/> is the command line's entry count (dhash_entries= …), 0 for the formula. The formula
    /// takes nr_kernel_pages rounded up to whole MiB, one bucket per 2^scale bytes (64-bit from 4.12, "mm: adaptive hash
    /// table scaling": one more scale step per 4x above 64 GiB when there is no high limit), at least a page worth
    /// (HASH_SMALL: at least 1 &lt;&lt; hash_shift), rounded up to a power of two, at most 1/16 of nr_all_pages' memory.
    /// With <paramref name="maxOrder"/> (MAX_ORDER, the buddy orders) a late table that would need an order the buddy
    /// allocator lacks is vmalloc'ed (5.3 on, "mm/large system hash: use vmalloc for size > MAX_ORDER when !hashdist");
    /// before 5.3 it halves until it fits.
    /// </summary>
    public static LargeSystemHash Compute(string name, ulong bucketSize, ulong given, int scale, int flags, long nrKernelPages,
        long nrAllPages, bool is64Bit, KernelVersion version, int maxOrder, bool hashdist = false, int hashShift = 0,
        ulong lowLimit = 0, ulong highLimit = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfZero(bucketSize);
        ArgumentOutOfRangeException.ThrowIfNegative(nrKernelPages);
        ulong numentries = given;
        if (numentries == 0)
        {
            numentries = (ulong)nrKernelPages;
            numentries = (numentries + ((1UL << 20) >> PageShift) - 1) & ~(((1UL << 20) >> PageShift) - 1);
            if (is64Bit && highLimit == 0 && version.IsAtLeast(4, 12))
                for (ulong adapt = (64UL << 30) >> PageShift; adapt < numentries; adapt <<= 2) scale++;
            numentries = scale > PageShift ? numentries >> (scale - PageShift) : numentries << (PageShift - scale);
            if ((flags & Small) != 0)
            {
                if ((numentries >> hashShift) == 0) numentries = 1UL << hashShift;
            }
            else if (numentries * bucketSize < PageSize)
            {
                numentries = PageSize / bucketSize;
            }
        }
        numentries = RoundUpPow2(numentries);
        ulong max = highLimit;
        if (max == 0) max = ((ulong)nrAllPages << PageShift >> 4) / bucketSize;
        max = Math.Min(max, 0x80000000UL);
        if (numentries < lowLimit) numentries = lowLimit;
        if (numentries > max) numentries = max;
        int log2qty = 63 - System.Numerics.BitOperations.LeadingZeroCount(Math.Max(numentries, 1));
        bool early = (flags & Early) != 0;
        bool virt = false;
        ulong size = bucketSize << log2qty;
        if (!early)
        {
            bool tooBig = OrderOf(size) >= maxOrder;
            if (version.IsAtLeast(5, 3)) virt = tooBig || hashdist;
            else if (hashdist) virt = true;
            else
                while (OrderOf(size) >= maxOrder && size > PageSize && log2qty > 0) size = bucketSize << --log2qty;
        }
        return new LargeSystemHash(name, 1L << log2qty, size, virt);
    }

    /// <summary>
    /// The line: "%s hash table entries: %ld (order: %d, %lu bytes, %s)" with the order as ilog2(size) - PAGE_SHIFT and
    /// linear/vmalloc from 5.3 (the same commit); before, without the allocation type.
    /// </summary>
    public string Line(KernelVersion version)
    {
        int order = (63 - System.Numerics.BitOperations.LeadingZeroCount(Bytes)) - PageShift;
        string kind = version.IsAtLeast(5, 3) ? $", {(Virt ? Huge ? "vmalloc hugepage" : "vmalloc" : "linear")}" : "";
        return $"{Name} hash table entries: {Entries} (order: {order}, {Bytes} bytes{kind})";
    }

    private static int OrderOf(ulong size)
    {
        int o = 0;
        while ((PageSize << o) < size) o++;
        return o;
    }

    private static ulong RoundUpPow2(ulong v) => v <= 1 ? 1 : 1UL << (64 - System.Numerics.BitOperations.LeadingZeroCount(v - 1));
}
