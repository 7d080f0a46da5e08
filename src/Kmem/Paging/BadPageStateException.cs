// The page allocator's bad-page report as an exception (bad_page(): a page in a state it must not be in).
namespace Kmem;

/// <summary>
/// A page was freed or referenced in a state that does not allow it: already free, freed with the wrong
/// order, a tail page, a reserved page, a refcount that would drop below zero ("BUG: Bad page state").
/// </summary>
public sealed class BadPageStateException : KmemException
{
    /// <summary>Creates the exception for <paramref name="pfn"/>.</summary>
    public BadPageStateException(ulong pfn, string reason)
        : base($"Bad page state at pfn 0x{pfn:x}: {reason}") { Pfn = pfn; Reason = reason; }

    /// <summary>The page frame number involved.</summary>
    public ulong Pfn { get; }

    /// <summary>What was wrong, in the kernel's words ("nonzero _refcount", …).</summary>
    public string Reason { get; }
}
