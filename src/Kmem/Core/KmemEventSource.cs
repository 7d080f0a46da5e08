// The EventSource "Kmem": the rare events worth a trace line of their own (an allocation failure, the
// warn_alloc report with its Mem-Info, a debug error of slub_debug or dma-debug, a shrinker run), plus every
// printk at Verbose level. Listen with EventListener, dotnet-trace or dotnet-counters (docs/metrics.md).
using System.Diagnostics.Tracing;

namespace Kmem;

/// <summary>Kmem's event source (name "Kmem"). Events cost one enabled-check when nobody listens.</summary>
[EventSource(Name = "Kmem")]
public sealed class KmemEventSource : EventSource
{
    /// <summary>The one instance.</summary>
    public static readonly KmemEventSource Log = new();

    private KmemEventSource() { }

    /// <summary>Event keywords.</summary>
    public static class Keywords
    {
        /// <summary>Allocation failures and their reports.</summary>
        public const EventKeywords Allocation = (EventKeywords)1;
        /// <summary>Debug errors (slub_debug, dma-debug, bad page state).</summary>
        public const EventKeywords Debug = (EventKeywords)2;
        /// <summary>Reclaim: shrinker runs.</summary>
        public const EventKeywords Reclaim = (EventKeywords)4;
        /// <summary>Every line of the log ring.</summary>
        public const EventKeywords Printk = (EventKeywords)8;
    }

    /// <summary>A page allocation failed (after reclaim, when the mask allowed it).</summary>
    [Event(1, Level = EventLevel.Warning, Keywords = Keywords.Allocation, Message = "page allocation failure: order:{0}, mode:{1}")]
    public void AllocationFailure(int order, string gfp) { if (IsEnabled()) WriteEvent(1, order, gfp); }

    /// <summary>warn_alloc printed its report (the kernel's out-of-memory report without an OOM killer).</summary>
    [Event(2, Level = EventLevel.Warning, Keywords = Keywords.Allocation, Message = "{0}")]
    public void OomReport(string report) { if (IsEnabled()) WriteEvent(2, report); }

    /// <summary>A debugging check found an error (slub_debug, dma-debug).</summary>
    [Event(3, Level = EventLevel.Error, Keywords = Keywords.Debug, Message = "{0}: {1}")]
    public void DebugError(string subsystem, string what) { if (IsEnabled()) WriteEvent(3, subsystem, what); }

    /// <summary>A shrinker was asked to free objects.</summary>
    [Event(4, Level = EventLevel.Informational, Keywords = Keywords.Reclaim, Message = "shrinker {0}: {1} scanned, {2} freed")]
    public void ShrinkerRun(string shrinker, long scanned, long freed) { if (IsEnabled()) WriteEvent(4, shrinker, scanned, freed); }

    /// <summary>A line written to a machine's log ring.</summary>
    [Event(5, Level = EventLevel.Verbose, Keywords = Keywords.Printk, Message = "<{0}>{1}")]
    public void Printk(int level, string line) { if (IsEnabled(EventLevel.Verbose, Keywords.Printk)) WriteEvent(5, level, line); }
}
