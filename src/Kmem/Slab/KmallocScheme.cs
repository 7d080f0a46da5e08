// Which kmalloc caches a kernel release has, what they are called and in which order it creates them
// (mm/slab_common.c create_kmalloc_caches(), new_kmalloc_cache(), kmalloc_info[]; include/linux/slab.h
// kmalloc_type()). The machine derives one from the profile's version and config at boot; the slab layer
// builds its kmalloc tables from it once, so no allocation ever looks at the version.
using Kmem.Core;

namespace Kmem.Slab;

/// <summary>The order in which a release's create_kmalloc_caches() makes the caches of one kind.</summary>
internal enum KmallocCreationOrder
{
    /// <summary>
    /// 3.10 to 5.18: for each kind but DMA, the power-of-two sizes upwards with kmalloc-96 right after kmalloc-64 and
    /// kmalloc-192 right after kmalloc-128; then the dma-kmalloc-* caches in kmalloc_info[] index order (96, 192, 8, 16 … 8k).
    /// </summary>
    DmaByIndexLast,

    /// <summary>
    /// 5.19 to 6.9 ("mm/slab_common: move dma-kmalloc caches creation into new_kmalloc_cache()"): every kind, DMA
    /// included, in the same size order (8 … 64, 96, 128, 192, 256 … 8k).
    /// </summary>
    SizeOrder,

    /// <summary>6.10 on: for every kind, kmalloc-96 and kmalloc-192 first, then the power-of-two sizes upwards.</summary>
    OddSizesFirst,
}

/// <summary>The kmalloc kinds (kmalloc_cache_type) Kmem models.</summary>
internal enum KmallocKind
{
    /// <summary>KMALLOC_NORMAL: <c>kmalloc-N</c>.</summary>
    Normal = 0,
    /// <summary>KMALLOC_RECLAIM: <c>kmalloc-rcl-N</c>, SLAB_RECLAIM_ACCOUNT, for __GFP_RECLAIMABLE (from 4.20).</summary>
    Reclaim = 1,
    /// <summary>KMALLOC_DMA: <c>dma-kmalloc-N</c>, SLAB_CACHE_DMA, for __GFP_DMA (with CONFIG_ZONE_DMA).</summary>
    Dma = 2,
    /// <summary>KMALLOC_CGROUP: <c>kmalloc-cg-N</c>, SLAB_ACCOUNT, for __GFP_ACCOUNT (from 5.14 with CONFIG_MEMCG_KMEM).</summary>
    Cgroup = 3,
}

/// <summary>A release's kmalloc caches: kinds, names and creation order.</summary>
/// <param name="ShortNames">Sizes from 1 KiB are named <c>1k</c> … <c>8k</c> (4.20 on) instead of <c>1024</c> … <c>8192</c>.</param>
/// <param name="Reclaim">The kmalloc-rcl-* caches exist and take __GFP_RECLAIMABLE requests (4.20 on).</param>
/// <param name="Cgroup">The kmalloc-cg-* caches exist and take __GFP_ACCOUNT requests (5.14 on, with CONFIG_MEMCG_KMEM).</param>
/// <param name="Order">How create_kmalloc_caches() walks the sizes and where the DMA caches come.</param>
/// <param name="KindOrder">The kinds in the order the release creates them (kmalloc_cache_type's order); DMA is listed
/// even when <paramref name="Order"/> makes it last, and is skipped without ZONE_DMA.</param>
internal sealed record KmallocScheme(bool ShortNames, bool Reclaim, bool Cgroup, KmallocCreationOrder Order, KmallocKind[] KindOrder)
{
    /// <summary>Linux 5.10's kmalloc caches (Kmem's default release): short names, kmalloc-rcl-*, no kmalloc-cg-*.</summary>
    public static KmallocScheme Linux510 { get; } = For(KernelVersion.Default, memcgKmem: false);

    /// <summary>The kmalloc caches of a release with or without CONFIG_MEMCG_KMEM.</summary>
    public static KmallocScheme For(KernelVersion v, bool memcgKmem)
    {
        // 4.20: "mm, slab: shorten kmalloc cache names for large sizes" and "mm, slab/slub: introduce
        // kmalloc-reclaimable caches" (the same release).
        bool modern = v.IsAtLeast(4, 20);
        // 5.14: "mm: memcg/slab: create a new set of kmalloc-cg-<n> caches".
        bool cgroup = memcgKmem && v.IsAtLeast(5, 14);
        KmallocCreationOrder order = v.IsAtLeast(6, 10) ? KmallocCreationOrder.OddSizesFirst
            // 5.19: "mm/slab_common: move dma-kmalloc caches creation into new_kmalloc_cache()".
            : v.IsAtLeast(5, 19) ? KmallocCreationOrder.SizeOrder
            : KmallocCreationOrder.DmaByIndexLast;
        // enum kmalloc_cache_type: NORMAL, CGROUP, RECLAIM, DMA from 5.14 ("mm: memcg/slab: create a new set of
        // kmalloc-cg-<n> caches"); NORMAL, RECLAIM, DMA, CGROUP from 6.2 ("mm, slub: don't create kmalloc-rcl caches
        // with CONFIG_SLUB_TINY" moved KMALLOC_CGROUP to the end).
        KmallocKind[] kinds = !modern ? [KmallocKind.Normal, KmallocKind.Dma]
            : !v.IsAtLeast(5, 14) ? [KmallocKind.Normal, KmallocKind.Reclaim, KmallocKind.Dma]
            : !v.IsAtLeast(6, 2) ? [KmallocKind.Normal, KmallocKind.Cgroup, KmallocKind.Reclaim, KmallocKind.Dma]
            : [KmallocKind.Normal, KmallocKind.Reclaim, KmallocKind.Dma, KmallocKind.Cgroup];
        if (!cgroup) kinds = kinds.Where(k => k != KmallocKind.Cgroup).ToArray();
        return new KmallocScheme(modern, modern, cgroup, order, kinds);
    }

    /// <summary>
    /// kmalloc_type(): the kind a request goes to. __GFP_DMA wins (with ZONE_DMA), then __GFP_RECLAIMABLE (when
    /// kmalloc-rcl-* exist), then __GFP_ACCOUNT (when kmalloc-cg-* exist); anything else is KMALLOC_NORMAL. Before
    /// 4.20 only GFP_DMA leaves the normal caches (kmalloc_slab()'s kmalloc_dma_caches[]).
    /// </summary>
    public KmallocKind KindFor(bool dma, bool reclaimable, bool account, bool zoneDma) =>
        dma && zoneDma ? KmallocKind.Dma
        : reclaimable && Reclaim ? KmallocKind.Reclaim
        : account && Cgroup ? KmallocKind.Cgroup
        : KmallocKind.Normal;

    /// <summary>The name prefix of a kind. The DMA caches are <c>dma-kmalloc-</c> in every release Kmem models (3.10 on;
    /// SLUB's older on-demand <c>kmalloc_dma-</c> caches predate them).</summary>
    public static string Prefix(KmallocKind kind) => kind switch
    {
        KmallocKind.Reclaim => "kmalloc-rcl-",
        KmallocKind.Dma => "dma-kmalloc-",
        KmallocKind.Cgroup => "kmalloc-cg-",
        _ => "kmalloc-",
    };

    /// <summary>The size part of a kmalloc cache's name: <c>1k</c> … <c>8k</c> from 4.20, <c>1024</c> … <c>8192</c> before.</summary>
    public string SizeName(int size) =>
        ShortNames && size >= 1024 && size % 1024 == 0 ? $"{size / 1024}k" : size.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The SLAB_ flag a kind's caches are created with.</summary>
    public static SlabFlags FlagsOf(KmallocKind kind) => kind switch
    {
        KmallocKind.Reclaim => SlabFlags.ReclaimAccount,
        KmallocKind.Dma => SlabFlags.CacheDma,
        KmallocKind.Cgroup => SlabFlags.Account,
        _ => 0,
    };
}
