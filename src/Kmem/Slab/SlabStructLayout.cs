// SLUB's own structures as C lays them out: struct kmem_cache (include/linux/slub_def.h; mm/slab.h from 6.8) and
// struct kmem_cache_node (mm/slab.h; mm/slub.c from 6.8) written as field lists, each field with the releases and the
// CONFIG_ options under which it exists, and laid out for the pointer width with C's rules (each field at a multiple
// of its alignment, the struct padded to its largest alignment). kmem_cache_init() sizes the bootstrap caches from
// them: "kmem_cache_node" holds sizeof(struct kmem_cache_node), "kmem_cache" holds offsetof(struct kmem_cache, node)
// plus nr_node_ids node pointers.
namespace Kmem.Slab;

/// <summary>One C field: its name, its size and alignment for a kernel, and when it exists.</summary>
internal sealed record CField(string Name, Func<SlabKernel, (int Size, int Align)> Type, Func<SlabKernel, bool>? Present = null)
{
    public bool IsIn(SlabKernel k) => Present is null || Present(k);
}

/// <summary>The field lists and C layout of <c>struct kmem_cache</c> and <c>struct kmem_cache_node</c>.</summary>
internal static class SlabStructLayout
{
    // ---- C types
    private static (int, int) Ptr(SlabKernel k) => (k.PointerSize, k.PointerSize);
    private static (int, int) Long(SlabKernel k) => (k.PointerSize, k.PointerSize);
    private static (int, int) Int(SlabKernel k) => (4, 4);
    /// <summary>struct list_head: next and prev.</summary>
    private static (int, int) ListHead(SlabKernel k) => (2 * k.PointerSize, k.PointerSize);
    /// <summary>struct reciprocal_value: u32 m; u8 sh1, sh2 (padded to 8).</summary>
    private static (int, int) Reciprocal(SlabKernel k) => (8, 4);
    private static (int, int) Struct(IReadOnlyList<CField> fields, SlabKernel k) { var l = Layout(fields, k); return (l.Size, l.Align); }

    /// <summary>struct kobject (include/linux/kobject.h; CONFIG_DEBUG_KOBJECT_RELEASE off).</summary>
    public static readonly IReadOnlyList<CField> Kobject =
    [
        new("name", Ptr),
        new("entry", ListHead),
        new("parent", Ptr),
        new("kset", Ptr),
        new("ktype", Ptr),
        new("sd", Ptr),                       // struct kernfs_node * (struct sysfs_dirent * in 3.10)
        new("kref", Int),                     // atomic_t / refcount_t
        new("state_bits", Int),               // state_initialized:1 … uevent_suppress:1
    ];

    /// <summary>spinlock_t without lockdep: the architecture's lock word (empty on UP), plus the CONFIG_DEBUG_SPINLOCK fields.</summary>
    public static readonly IReadOnlyList<CField> SpinLock =
    [
        new("raw_lock", Int, k => k.Smp || k.DebugSpinlock),
        new("magic", Int, k => k.DebugSpinlock),
        new("owner_cpu", Int, k => k.DebugSpinlock),
        new("owner", Ptr, k => k.DebugSpinlock),
    ];

    /// <summary>struct kmem_cache_node, SLUB's part (the same fields from 3.10 to 6.12).</summary>
    public static readonly IReadOnlyList<CField> KmemCacheNode =
    [
        new("list_lock", k => Struct(SpinLock, k)),
        new("nr_partial", Long),
        new("partial", ListHead),
        new("nr_slabs", Long, k => k.SlubDebug),           // atomic_long_t, #ifdef CONFIG_SLUB_DEBUG
        new("total_objects", Long, k => k.SlubDebug),
        new("full", ListHead, k => k.SlubDebug),
    ];

    /// <summary>struct kmem_cache (SLUB) up to its last member, the node pointer array.</summary>
    public static readonly IReadOnlyList<CField> KmemCache =
    [
        new("cpu_slab", Ptr),
        // unsigned long until slab_flags_t (an unsigned int) came in 4.15 ("slab, slub, slob: add slab_flags_t").
        new("flags", k => k.At(4, 15) ? Int(k) : Long(k)),
        new("min_partial", Long),
        new("size", Int),
        new("object_size", Int),
        // 5.9: obj_to_index() divides by a precomputed reciprocal of the size.
        new("reciprocal_size", Reciprocal, k => k.At(5, 9)),
        new("offset", Int),
        new("cpu_partial", Int, k => k.CpuPartial),
        // 5.16, "mm, slub: change percpu partial accounting from objects to pages".
        new("cpu_partial_slabs", Int, k => k.CpuPartial && k.At(5, 16)),
        new("oo", Int),                                       // struct kmem_cache_order_objects
        // The unused 'max' order went in 6.1.
        new("max", Int, k => !k.At(6, 1)),
        new("min", Int),
        new("allocflags", Int),                               // gfp_t
        new("refcount", Int),
        new("ctor", Ptr),
        new("inuse", Int),
        new("align", Int),
        // The bytes kept free at the end of a slab (the RCU head of SLAB_TYPESAFE_BY_RCU slabs), gone in 4.18.
        new("reserved", Int, k => !k.At(4, 18)),
        // 4.6, "mm/slub: support left redzone".
        new("red_left_pad", Int, k => k.At(4, 6)),
        new("name", Ptr),
        new("list", ListHead),
        new("kobj", k => Struct(Kobject, k), k => k.Sysfs),
        // Up to 4.1 (CONFIG_MEMCG_KMEM): a pointer to the memcg parameters and max_attr_size. The per-memcg cache
        // copies ended in 5.9; the struct memcg_cache_params embedded from 4.2 to 5.8 is not modelled.
        new("memcg_params", Ptr, k => k.MemcgKmem && !k.At(4, 2)),
        new("max_attr_size", Int, k => k.MemcgKmem && !k.At(4, 2)),
        new("random", Long, k => k.FreelistHardened && k.At(4, 14)),
        new("remote_node_defrag_ratio", Int, k => k.Numa),
        new("random_seq", Ptr, k => k.FreelistRandom && k.At(4, 7)),
        // 4.16 (usercopy whitelisting); from 6.2 only with CONFIG_HARDENED_USERCOPY
        // ("mm, slab: ignore hardened usercopy parameters when disabled").
        new("useroffset", Int, k => k.At(4, 16) && (!k.At(6, 2) || k.HardenedUsercopy)),
        new("usersize", Int, k => k.At(4, 16) && (!k.At(6, 2) || k.HardenedUsercopy)),
        new("node", Ptr),                                     // struct kmem_cache_node *node[MAX_NUMNODES]
    ];

    /// <summary>The C layout of a field list: each present field's offset, the size and the alignment of the struct.</summary>
    public static (int Size, int Align, IReadOnlyDictionary<string, int> Offsets) Layout(IReadOnlyList<CField> fields, SlabKernel k)
    {
        int offset = 0, align = 1;
        var offsets = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var f in fields)
        {
            if (!f.IsIn(k)) continue;
            var (size, a) = f.Type(k);
            if (size == 0) continue;                          // an empty struct (a UP spinlock) takes no room
            offset = SlabGeometry.AlignUp(offset, a);
            offsets[f.Name] = offset;
            offset += size;
            align = Math.Max(align, a);
        }
        return (SlabGeometry.AlignUp(offset, align), align, offsets);
    }

    /// <summary><c>sizeof(struct kmem_cache_node)</c>.</summary>
    public static int KmemCacheNodeSize(SlabKernel k) => Layout(KmemCacheNode, k).Size;

    /// <summary><c>offsetof(struct kmem_cache, node) + nr_node_ids * sizeof(struct kmem_cache_node *)</c>.</summary>
    public static int KmemCacheSize(SlabKernel k) => Layout(KmemCache, k).Offsets["node"] + k.NrNodeIds * k.PointerSize;
}
