// The machine's mempool entry points: mempool_create() with the caller's functions and the kernel's
// three ready-made kinds (slab objects, kmalloc buffers, pages).
namespace Kmem;

public sealed partial class Machine
{
    /// <summary>
    /// mempool_create(): a pool whose reserve of <paramref name="minNr"/> elements is filled now with
    /// <paramref name="alloc"/>(GFP_KERNEL); null when the reserve cannot be filled (nothing is kept then).
    /// </summary>
    public Mempool? MempoolCreate(int minNr, Func<Gfp, nint> alloc, Action<nint> free, string name = "mempool")
    {
        using var life = Life.Enter();                 // the reserve is filled now
        ArgumentOutOfRangeException.ThrowIfNegative(minNr);
        ArgumentNullException.ThrowIfNull(alloc);
        ArgumentNullException.ThrowIfNull(free);
        var pool = new Mempool(name, minNr, alloc, free, Log, Life);
        return pool.Fill() ? pool : null;
    }

    /// <summary>mempool_create_slab_pool(): objects of <paramref name="cache"/> (mempool_alloc_slab/mempool_free_slab).</summary>
    public Mempool? MempoolCreateSlabPool(int minNr, SlabCache cache)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(cache);
        return MempoolCreate(minNr, gfp => cache.Alloc(gfp, "mempool_alloc_slab"), p => cache.Free(p, "mempool_free_slab"), cache.Name);
    }

    /// <summary>mempool_create_kmalloc_pool(): kmalloc buffers of <paramref name="size"/> bytes.</summary>
    public Mempool? MempoolCreateKmallocPool(int minNr, nuint size)
    {
        ThrowIfDisposed();
        if (size == 0 || size > (nuint)KmallocMaxSize) throw new ArgumentOutOfRangeException(nameof(size), $"must be 1..{KmallocMaxSize}");
        return MempoolCreate(minNr, gfp => Kmalloc(size, gfp, "mempool_kmalloc"), p => Kfree(p, "mempool_kfree"), $"kmalloc-{size}");
    }

    /// <summary>mempool_create_page_pool(): blocks of 2^<paramref name="order"/> pages, as linear-map addresses.</summary>
    public Mempool? MempoolCreatePagePool(int minNr, int order)
    {
        ThrowIfDisposed();
        if (order < 0 || order >= Profile.MaxOrder) throw new ArgumentOutOfRangeException(nameof(order), $"must be 0..{Profile.MaxOrder - 1}");
        return MempoolCreate(minNr, gfp => GetFreePages(gfp, order), p => FreePages(p, order), $"pages-order{order}");
    }
}
