// The choices of a trace replay: which kinds of kmem events it performs, and a progress callback.
namespace Kmem;

/// <summary>Which kinds of events a replay performs.</summary>
public sealed record TraceReplayOptions
{
    /// <summary>Replay kmalloc/kfree and kmem_cache events (default true).</summary>
    public bool Slab { get; init; } = true;

    /// <summary>
    /// Replay mm_page_alloc/mm_page_free (default true). The recorded kernel's own slab pages are page events too;
    /// turn this off to replay the slab events alone.
    /// </summary>
    public bool Pages { get; init; } = true;

    /// <summary>
    /// The machine the trace was recorded on, as <see cref="TraceMachineInference"/> found it (or null): the report
    /// lists what was inferred, and on a SLAB trace it says which differences SLAB explains.
    /// </summary>
    public TraceMachine? RecordedOn { get; init; }

    /// <summary>Called every 65536 lines with the number of lines read.</summary>
    public Action<long>? Progress { get; init; }
}
