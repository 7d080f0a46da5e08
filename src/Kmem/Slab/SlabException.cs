// The slab allocator's error: what went wrong (SlabError) and the exception that carries it.
namespace Kmem;

/// <summary>What a <see cref="SlabException"/> reports.</summary>
public enum SlabError
{
    /// <summary>The object is already free ("Object already free", or the freelist head: a naive double free).</summary>
    DoubleFree,
    /// <summary>The address is not the start of an object of a slab ("Invalid object pointer").</summary>
    InvalidPointer,
    /// <summary>The object belongs to another cache ("Wrong slab cache").</summary>
    WrongCache,
    /// <summary>Bytes before or after the object were overwritten ("Redzone overwritten").</summary>
    RedzoneOverwritten,
    /// <summary>A free object was written to ("Poison overwritten").</summary>
    PoisonOverwritten,
    /// <summary>Padding after the object or at the end of the slab was overwritten.</summary>
    PaddingOverwritten,
    /// <summary>A free pointer or the slab's counters were corrupt ("Freepointer corrupt").</summary>
    FreelistCorrupt,
    /// <summary>The cache still has objects and cannot be destroyed.</summary>
    CacheInUse,
    /// <summary>A pool or cache was used in a way its rules forbid (bad size, destroyed, busy).</summary>
    Misuse,
}

/// <summary>
/// Misuse of a slab cache, kmalloc or a mempool: the report is in the machine's log (in the kernel's words)
/// and the cache's objects, counters and lists are as they were before the call.
/// </summary>
public sealed class SlabException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public SlabException(SlabError error, string cache, nint address, string message) : base(message)
    {
        Error = error;
        Cache = cache;
        Address = address;
    }

    /// <summary>The class of error.</summary>
    public SlabError Error { get; }

    /// <summary>The cache involved.</summary>
    public string Cache { get; }

    /// <summary>The object address involved (0 when none).</summary>
    public nint Address { get; }
}
