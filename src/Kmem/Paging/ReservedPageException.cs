// A PG_reserved page handed to a call that would free it to the buddy allocator: refused before anything changes.
namespace Kmem;

/// <summary>
/// A reserved page (PG_reserved: one an inactive CMA area handed out, or memory reserved at boot) was given to a call
/// that would put its last reference and so free it, such as <c>vmap()</c> with <c>VM_MAP_PUT_PAGES</c>. The kernel
/// would report a bad page state at that free; Kmem refuses the call instead.
/// </summary>
public sealed class ReservedPageException : KmemException
{
    /// <summary>Creates the exception for <paramref name="pfn"/>.</summary>
    public ReservedPageException(ulong pfn, string message) : base(message) { Pfn = pfn; }

    /// <summary>The page frame number of the reserved page.</summary>
    public ulong Pfn { get; }
}
