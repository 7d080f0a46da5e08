// A DMA fence (struct dma_fence): a point on a driver's timeline that signals once, when the work it stands
// for is done, and the ways a reservation object holds one (enum dma_resv_usage). Fences are attached to a
// dma-buf with DmaBuf.AddFence and shown in /sys/kernel/debug/dma_buf/bufinfo.
namespace Kmem;

/// <summary>
/// How a dma-buf's reservation object holds a fence (<c>enum dma_resv_usage</c>, 5.19). Before 5.19 a reservation
/// object has one exclusive (write) fence and shared (read) fences: only <see cref="Write"/> and <see cref="Read"/> exist.
/// </summary>
public enum DmaResvUsage
{
    /// <summary>DMA_RESV_USAGE_KERNEL: kernel memory management work (moves, clears); from 5.19.</summary>
    Kernel = 0,
    /// <summary>DMA_RESV_USAGE_WRITE: an implicit-sync writer (the exclusive fence before 5.19).</summary>
    Write = 1,
    /// <summary>DMA_RESV_USAGE_READ: an implicit-sync reader (a shared fence before 5.19).</summary>
    Read = 2,
    /// <summary>DMA_RESV_USAGE_BOOKKEEP: tracked but never waited for implicitly, not shown in bufinfo; from 5.19.</summary>
    Bookkeep = 3,
}

/// <summary>
/// A fence: <see cref="DriverName"/> and <see cref="TimelineName"/> (what <c>get_driver_name</c> and
/// <c>get_timeline_name</c> return), a sequence number on that timeline, and a state that goes once from unsignalled to
/// signalled. Two fences with the same driver and timeline names are of the same fence context.
/// </summary>
public sealed class DmaFence
{
    /// <summary>The longest driver or timeline name accepted.</summary>
    public const int NameMaxLength = 32;

    private int _signaled;

    /// <summary>dma_fence_init(): a new unsignalled fence.</summary>
    /// <exception cref="ArgumentNullException">A name is null.</exception>
    /// <exception cref="ArgumentException">A name is empty, longer than <see cref="NameMaxLength"/> characters, or holds
    /// white space or control characters (bufinfo separates the names with spaces).</exception>
    public DmaFence(string driverName, string timelineName, ulong seqno)
    {
        DriverName = CheckName(driverName, nameof(driverName));
        TimelineName = CheckName(timelineName, nameof(timelineName));
        Seqno = seqno;
    }

    private static string CheckName(string name, string param)
    {
        ArgumentNullException.ThrowIfNull(name, param);
        if (name.Length == 0 || name.Length > NameMaxLength)
            throw new ArgumentException($"a fence name has 1 to {NameMaxLength} characters, not {name.Length}", param);
        foreach (char ch in name)
            if (char.IsWhiteSpace(ch) || char.IsControl(ch))
                throw new ArgumentException($"'{name}' holds white space or a control character", param);
        return name;
    }

    /// <summary>The driver's name (<c>fence->ops->get_driver_name()</c>).</summary>
    public string DriverName { get; }

    /// <summary>The timeline's name (<c>fence->ops->get_timeline_name()</c>).</summary>
    public string TimelineName { get; }

    /// <summary>The fence's sequence number on its timeline (<c>fence->seqno</c>).</summary>
    public ulong Seqno { get; }

    /// <summary>dma_fence_is_signaled().</summary>
    public bool IsSignaled => Volatile.Read(ref _signaled) != 0;

    /// <summary>dma_fence_signal(): signals the fence; false when it was signalled already (the kernel's -EINVAL).</summary>
    public bool Signal() => Interlocked.Exchange(ref _signaled, 1) == 0;

    /// <summary>True when <paramref name="other"/> is on the same timeline (the same fence context).</summary>
    public bool SameContext(DmaFence other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return other.DriverName == DriverName && other.TimelineName == TimelineName;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{DriverName} {TimelineName} seq {Seqno} {(IsSignaled ? "" : "un")}signalled";
}
