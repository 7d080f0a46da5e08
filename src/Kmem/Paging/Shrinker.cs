// The shrinker interface (struct shrinker): caches that hold memory they could give back register
// here, and reclaim asks them to count and scan their objects under memory pressure.
namespace Kmem;

/// <summary>What a shrinker is asked to do in one call (<c>struct shrink_control</c>).</summary>
public sealed class ShrinkControl
{
    /// <summary>The allocation context that caused the reclaim.</summary>
    public Gfp GfpMask { get; init; }

    /// <summary>How many objects <see cref="Shrinker.ScanObjects"/> should try to free.</summary>
    public long NrToScan { get; set; }

    /// <summary>How many objects were actually scanned; defaults to <see cref="NrToScan"/>.</summary>
    public long NrScanned { get; set; }

    /// <summary><c>current_is_kswapd()</c>: the call comes from background reclaim (kswapd), not from an allocation.</summary>
    public bool Kswapd { get; init; }

    /// <summary>
    /// The node being reclaimed (<c>sc-&gt;nid</c>). A shrinker that is not <see cref="Shrinker.NumaAware"/> always sees 0,
    /// as shrink_slab() asks such shrinkers with node 0 whichever node reclaims.
    /// </summary>
    public int Nid { get; init; }
}

/// <summary>
/// A cache that can give memory back under pressure (<c>struct shrinker</c>). Register it with
/// <see cref="Machine.RegisterShrinker"/>; reclaim calls <see cref="CountObjects"/> and then
/// <see cref="ScanObjects"/> in batches, as <c>do_shrink_slab()</c> does.
/// </summary>
public abstract class Shrinker
{
    /// <summary><c>DEFAULT_SEEKS</c>: the cost of recreating an object.</summary>
    public const int DefaultSeeks = 2;

    /// <summary><c>SHRINK_STOP</c>: returned by <see cref="ScanObjects"/> when it cannot make progress now.</summary>
    public const long ShrinkStop = -1;

    /// <summary><c>SHRINK_EMPTY</c>: returned by <see cref="CountObjects"/> when there is nothing at all.</summary>
    public const long ShrinkEmpty = -2;

    /// <summary>Creates a shrinker with a name for reports.</summary>
    protected Shrinker(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
    }

    /// <summary>The name shown in reports.</summary>
    public string Name { get; }

    /// <summary>Relative cost of recreating an object (<c>seeks</c>); 0 means "free half at once".</summary>
    public int Seeks { get; init; } = DefaultSeeks;

    /// <summary>Objects per scan call (<c>batch</c>); 0 uses <c>SHRINK_BATCH</c> (128).</summary>
    public long Batch { get; init; }

    /// <summary><c>SHRINKER_NUMA_AWARE</c>: reclaim asks the shrinker per node, with <see cref="ShrinkControl.Nid"/> set.</summary>
    public bool NumaAware { get; init; }

    /// <summary><c>nr_deferred</c>: scan work put off to the next call, per node for a NUMA-aware shrinker (MAX_NUMNODES slots).</summary>
    private readonly long[] _nrDeferred = new long[64];

    /// <summary>The deferred-work slot reclaim of node <paramref name="nid"/> uses (node 0's for a shrinker that is not NUMA-aware).</summary>
    internal ref long Deferred(int nid) => ref _nrDeferred[NumaAware ? nid : 0];

    /// <summary>How many objects could be freed now (0 or <see cref="ShrinkEmpty"/> when none).</summary>
    public abstract long CountObjects(ShrinkControl sc);

    /// <summary>Frees up to <see cref="ShrinkControl.NrToScan"/> objects; returns how many were freed, or <see cref="ShrinkStop"/>.</summary>
    public abstract long ScanObjects(ShrinkControl sc);

    /// <summary>Pages a scan could give back now, for the allocator's "would reclaim help at all" test
    /// (should_reclaim_retry). By default each object counted is taken as a page; a shrinker of smaller objects
    /// converts.</summary>
    internal virtual long CountPages(ShrinkControl sc) => CountObjects(sc);
}
