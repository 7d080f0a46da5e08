// The workload steps of the slab allocator: kmalloc buffers and objects of named caches held by labels, and the
// life of a cache (create with SLAB_ flags and a sheaf capacity, shrink, destroy). A cache name may be created
// once until destroyed: CacheNameWalk checks that over the whole workload before anything runs.
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The slab allocator's operations.</summary>
internal static class SlabSteps
{
    /// <summary>The largest slab object on any profile: KMALLOC_MAX_SIZE is capped at 32 MiB.</summary>
    internal const long MaxCacheObjectSize = 1L << 25;

    private static readonly Dictionary<string, SlabFlags> s_slabFlagNames = new(StringComparer.Ordinal)
    {
        ["SLAB_CONSISTENCY_CHECKS"] = SlabFlags.ConsistencyChecks, ["SLAB_RED_ZONE"] = SlabFlags.RedZone, ["SLAB_POISON"] = SlabFlags.Poison,
        ["SLAB_HWCACHE_ALIGN"] = SlabFlags.HwcacheAlign, ["SLAB_CACHE_DMA"] = SlabFlags.CacheDma, ["SLAB_CACHE_DMA32"] = SlabFlags.CacheDma32,
        ["SLAB_STORE_USER"] = SlabFlags.StoreUser, ["SLAB_PANIC"] = SlabFlags.Panic, ["SLAB_TYPESAFE_BY_RCU"] = SlabFlags.TypesafeByRcu,
        ["SLAB_TRACE"] = SlabFlags.Trace, ["SLAB_NOLEAKTRACE"] = SlabFlags.NoLeakTrace, ["SLAB_NO_MERGE"] = SlabFlags.NoMerge,
        ["SLAB_RECLAIM_ACCOUNT"] = SlabFlags.ReclaimAccount, ["SLAB_ACCOUNT"] = SlabFlags.Account,
    };

    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("kmalloc", ["label", "size", "gfp", "count", "expect", "fill"],
            step =>
            {
                Label(step);
                Required(step, "size");
                if (Size(step, "size") > 1UL << 31) throw new WorkloadException($"{step.Location}.size", "must be at most 2 GiB");
                GfpArg(step);
                AllocArgs(step);
            },
            (ctx, step) =>
            {
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                var m = ctx.Machine;
                ctx.AllocSteps(step, $"kmalloc({size})", () => m.Kmalloc((nuint)size, gfp, "workload") is var a && a != 0
                    ? new Held.KmallocBuffer(a, size == 0 ? 0 : m.Ksize(a, "workload")) : null);
            }),
        WorkloadOp.Free("kfree"),
        new("kmem_cache_create", ["name", "size", "align", "flags", "sheaf_capacity"], ValidateCacheCreate,
            (ctx, step) =>
            {
                string name = Str(step, "name")!;
                int align = Int(step, "align", 0);
                ctx.Machine.KmemCacheCreate(name, (int)Size(step, "size"), align, SlabFlagsArg(step), sheafCapacity: Int(step, "sheaf_capacity", 0));
            })
        {
            CheckOn = (m, step) =>
            {
                if ((long)Size(step, "size") > m.KmallocMaxSize)
                    throw new WorkloadException($"{step.Location}.size", $"{Size(step, "size")} bytes is above KMALLOC_MAX_SIZE ({m.KmallocMaxSize}) of {m.Profile.Name}");
            },
            Names = (walk, step) => walk.Create(step, Str(step, "name")!),
        },
        new("kmem_cache_alloc", ["label", "cache", "gfp", "count", "expect", "fill"],
            step =>
            {
                Label(step);
                CacheName(step);
                GfpArg(step);
                AllocArgs(step);
            },
            (ctx, step) =>
            {
                var cache = CacheArg(ctx, step);
                var gfp = GfpArg(step);
                ctx.AllocSteps(step, $"kmem_cache_alloc({cache.Name})", () => cache.Alloc(gfp, "workload") is var a && a != 0
                    ? new Held.SlabObject(a, (nuint)cache.ObjectSize, cache) : null);
            }),
        WorkloadOp.Free("kmem_cache_free"),
        new("kmem_cache_shrink", ["cache"], CacheName, (ctx, step) => CacheArg(ctx, step).Shrink()),
        new("kmem_cache_destroy", ["cache"], CacheName, (ctx, step) => CacheArg(ctx, step).Destroy())
        {
            Names = (walk, step) => walk.Destroy(Str(step, "cache")!),
        },
    ];

    /// <summary>The static checks of <c>kmem_cache_create</c>: a name the kernel's sysfs could show, a size a slab
    /// can hold on some profile, an alignment that is 0 or a power of two up to the page size.</summary>
    private static void ValidateCacheCreate(WorkloadStep step)
    {
        string? name = Str(step, "name");
        if (string.IsNullOrWhiteSpace(name)) throw new WorkloadException($"{step.Location}.name", "is required");
        if (name.Contains('/') || name.Any(char.IsWhiteSpace)) throw new WorkloadException($"{step.Location}.name", $"'{name}' may not contain '/' or white space");
        Required(step, "size");
        ulong size = Size(step, "size");
        if (size == 0 || size > MaxCacheObjectSize)
            throw new WorkloadException($"{step.Location}.size", $"{size} bytes is not a slab object size (1 .. {MaxCacheObjectSize}, and at most the machine's KMALLOC_MAX_SIZE)");
        int align = Int(step, "align", 0, 0, 4096);
        if ((align & (align - 1)) != 0) throw new WorkloadException($"{step.Location}.align", $"{align} is not a power of two");
        Int(step, "sheaf_capacity", 0, 0, SlabCache.MaxSheafCapacity);
        SlabFlagsArg(step);
    }

    /// <summary>The <c>cache</c> argument of the steps that name a cache: required.</summary>
    private static void CacheName(WorkloadStep step)
    {
        if (string.IsNullOrWhiteSpace(Str(step, "cache"))) throw new WorkloadException($"{step.Location}.cache", "is required");
    }

    private static SlabCache CacheArg(StepContext ctx, WorkloadStep step)
    {
        string name = Str(step, "cache")!;
        return ctx.Machine.FindSlabCache(name) ?? throw new WorkloadException($"{step.Location}.cache", $"no slab cache named '{name}'");
    }

    private static SlabFlags SlabFlagsArg(WorkloadStep step)
    {
        string text = Str(step, "flags") ?? "0";
        SlabFlags flags = 0;
        foreach (string part in text.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "0") continue;
            if (!s_slabFlagNames.TryGetValue(part, out var f))
                throw new WorkloadException($"{step.Location}.flags", $"'{part}' is not a SLAB_ flag ({string.Join(", ", s_slabFlagNames.Keys)})");
            flags |= f;
        }
        return flags;
    }
}
