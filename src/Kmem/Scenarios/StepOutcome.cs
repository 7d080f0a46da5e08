// What one allocation step of a workload run did, for the run's summary: how many of its allocations succeeded and
// failed (with the first failure's reason, as the kernel logged it), which buddy orders and pageblock migratetypes its
// pages came from, and how often the buddy allocator fell back to another migratetype's free lists while it ran.
namespace Kmem;

/// <summary>The outcome of one allocation step of a run (a repeated step adds up over its repetitions).</summary>
public sealed class StepOutcome
{
    private readonly Dictionary<(int Order, MigrateType Type), StepPageSource> _sources = [];
    private readonly Dictionary<(MigrateType Wanted, MigrateType From), StepFallback> _fallbacks = [];

    internal StepOutcome(string location, string op, string? label)
    {
        Location = location;
        Op = op;
        Label = label;
    }

    /// <summary>Where the step is in the workload (<c>steps[3]</c>, <c>steps[2].steps[0]</c>).</summary>
    public string Location { get; }

    /// <summary>The step's operation.</summary>
    public string Op { get; }

    /// <summary>The label its allocations are held by.</summary>
    public string? Label { get; }

    /// <summary>Allocations that succeeded.</summary>
    public long Allocated { get; internal set; }

    /// <summary>Allocations that failed (returned nothing).</summary>
    public long Failed { get; internal set; }

    /// <summary>True when none of its allocations failed.</summary>
    public bool Succeeded => Failed == 0;

    /// <summary>
    /// Why its first failed allocation failed: the first warning the kernel logged during that call (warn_alloc's
    /// "page allocation failure: order:…", cma_alloc's report …), or what the allocator returned when it logged nothing.
    /// Null when nothing failed.
    /// </summary>
    public string? FirstFailure { get; internal set; }

    /// <summary>
    /// The page blocks its successful allocations got, by buddy order and the migratetype of the pageblock each lies in
    /// (after the allocation: a fallback that claimed the pageblock shows the new type; see <see cref="Fallbacks"/>).
    /// Pages of a CMA area count as one run (order -1) per allocation. Kinds with no pages of their own (kmalloc buffers,
    /// slab objects), vmalloc areas, and coherent DMA buffers outside the linear map or asked without blocking (perhaps
    /// from the atomic pool) are not counted.
    /// </summary>
    public IReadOnlyList<StepPageSource> Sources => [.. _sources.Values.OrderBy(s => s.Order).ThenBy(s => s.Migratetype)];

    /// <summary>
    /// The buddy allocator's fallbacks while the step ran (__rmqueue_fallback(), the mm_page_alloc_extfrag event): a
    /// request of one migratetype served from another's free lists.
    /// </summary>
    public IReadOnlyList<StepFallback> Fallbacks => [.. _fallbacks.Values.OrderBy(f => f.Wanted).ThenBy(f => f.From)];

    internal void AddSource(int order, MigrateType type, long pages)
    {
        if (!_sources.TryGetValue((order, type), out var s)) _sources[(order, type)] = s = new StepPageSource(order, type);
        s.Blocks++;
        s.Pages += pages;
    }

    internal void AddFallbacks(MigrateType wanted, MigrateType from, long count)
    {
        if (!_fallbacks.TryGetValue((wanted, from), out var f)) _fallbacks[(wanted, from)] = f = new StepFallback(wanted, from);
        f.Count += count;
    }
}

/// <summary>Page blocks of one buddy order and pageblock migratetype that a step got.</summary>
public sealed class StepPageSource
{
    internal StepPageSource(int order, MigrateType type)
    {
        Order = order;
        Migratetype = type;
    }

    /// <summary>The buddy order of each block, or -1 for a contiguous run taken from a CMA area (not one buddy block).</summary>
    public int Order { get; }

    /// <summary>The migratetype of the pageblock the block (its first page) lies in.</summary>
    public MigrateType Migratetype { get; }

    /// <summary>How many blocks.</summary>
    public long Blocks { get; internal set; }

    /// <summary>Their pages in all.</summary>
    public long Pages { get; internal set; }
}

/// <summary>How often requests of one migratetype were served from another's free lists during a step.</summary>
public sealed class StepFallback
{
    internal StepFallback(MigrateType wanted, MigrateType from)
    {
        Wanted = wanted;
        From = from;
    }

    /// <summary>The migratetype asked for.</summary>
    public MigrateType Wanted { get; }

    /// <summary>The migratetype whose free block was taken.</summary>
    public MigrateType From { get; }

    /// <summary>How many times.</summary>
    public long Count { get; internal set; }
}
