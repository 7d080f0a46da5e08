// The largest free run of one CMA area before and after a workload run: what the area's bitmap leaves for the
// biggest contiguous allocation, the figure a what-if question on a camera board usually turns on.
namespace Kmem;

/// <summary>The largest free run of a CMA area at the start and at the end of a run.</summary>
public sealed class CmaFreeRun
{
    internal CmaFreeRun(string area, ulong before, ulong size)
    {
        Area = area;
        BeforePages = before;
        SizePages = size;
    }

    /// <summary>The area's name.</summary>
    public string Area { get; }

    /// <summary>The area's size, in pages.</summary>
    public ulong SizePages { get; }

    /// <summary>The longest run of pages its bitmap had free when the run started.</summary>
    public ulong BeforePages { get; }

    /// <summary>The longest run of pages its bitmap had free when the run ended.</summary>
    public ulong AfterPages { get; internal set; }
}
