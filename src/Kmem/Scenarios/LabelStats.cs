// The figures of one workload label in a run's result: allocations made, failed and freed, and what the label
// holds at the end of the run.
namespace Kmem;

/// <summary>What one label holds and did during a run.</summary>
public sealed class LabelStats
{
    /// <summary>Successful allocations.</summary>
    public long Allocated { get; internal set; }
    /// <summary>Failed allocations.</summary>
    public long Failed { get; internal set; }
    /// <summary>Frees.</summary>
    public long Freed { get; internal set; }
    /// <summary>Pages held now (page allocations).</summary>
    public long PagesHeld { get; internal set; }
    /// <summary>Bytes held now in kmalloc buffers and slab objects (their ksize / object size), dma-bufs and RK-DMA-HEAP
    /// page runs (their size).</summary>
    public long BytesHeld { get; internal set; }
}
