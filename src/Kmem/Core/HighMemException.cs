// The error raised for misuse of the high-memory mappings (kmap, kmap_atomic, kmap_local) and for a
// HighMem page where only a linear-map address will do; the kernel's report is in the log first.
namespace Kmem;

/// <summary>What went wrong with a high-memory mapping.</summary>
public enum HighMemError
{
    /// <summary>kmap() from atomic context (inside kmap_atomic): it may sleep.</summary>
    AtomicContext,
    /// <summary>More atomic/local mappings than the thread's stack holds (KM_MAX_IDX, or KM_TYPE_NR before 5.11).</summary>
    StackOverflow,
    /// <summary>kunmap_local()/kunmap_atomic() of a mapping that is not the most recent one.</summary>
    OutOfOrder,
    /// <summary>The address or page is not mapped by the call that should undo it.</summary>
    NotMapped,
    /// <summary>kunmap_atomic() with no kmap_atomic() outstanding, or of a kmap_local() mapping (or the reverse).</summary>
    Unbalanced,
    /// <summary>The modelled release does not have the call (kmap_local_page before 5.11).</summary>
    NotInRelease,
    /// <summary>A HighMem page where only a linear-map address will do (__get_free_pages(__GFP_HIGHMEM) before 4.19, a span over a HighMem page).</summary>
    NoLinearAddress,
}

/// <summary>Misuse of kmap/kmap_atomic/kmap_local or of a HighMem page; <see cref="Error"/> says which.</summary>
public sealed class HighMemException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public HighMemException(HighMemError error, string message) : base(OneLine(message)) => Error = error;

    /// <summary>What went wrong.</summary>
    public HighMemError Error { get; }
}
