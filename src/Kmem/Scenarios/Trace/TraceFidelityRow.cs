// One row of a trace replay's fidelity tables: a requested size, the size the recorded kernel gave, Kmem's.
namespace Kmem;

/// <summary>
/// One row of a fidelity table: a requested size, what the recorded kernel gave, what Kmem gave, the cache flags that
/// gave it (kmem_cache rows), and why a differing row differs when that is known (<c>SLAB</c>: the recorded kernel's
/// slab allocator was SLAB, which Kmem does not model, and SLAB gives the recorded size).
/// </summary>
public sealed record TraceFidelityRow(long BytesReq, long RecordedBytesAlloc, long? KmemBytesAlloc, long Count, string? CacheFlags = null, string? Cause = null)
{
    /// <summary>True when Kmem gave the recorded size.</summary>
    public bool Match => KmemBytesAlloc == RecordedBytesAlloc;
}
