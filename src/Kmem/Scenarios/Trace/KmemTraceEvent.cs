// One kmem event of a recorded trace as the trace parser reads it (kmalloc, kmem_cache_alloc, kfree,
// kmem_cache_free, mm_page_alloc, mm_page_free and their older names), with the fields the replay uses; pointers
// and PFNs are kept as the numbers the trace printed (hashed pointers included).
namespace Kmem;

/// <summary>The kmem events a replay understands.</summary>
public enum KmemTraceEventKind
{
    /// <summary>kmalloc, kmalloc_node.</summary>
    Kmalloc,
    /// <summary>kfree.</summary>
    Kfree,
    /// <summary>kmem_cache_alloc, kmem_cache_alloc_node.</summary>
    CacheAlloc,
    /// <summary>kmem_cache_free.</summary>
    CacheFree,
    /// <summary>mm_page_alloc.</summary>
    PageAlloc,
    /// <summary>mm_page_free, mm_page_free_direct.</summary>
    PageFree,
    /// <summary>mm_page_free_batched, mm_pagevec_free.</summary>
    PageFreeBatched,
}

/// <summary>A parsed kmem event; absent fields are null.</summary>
public readonly record struct KmemTraceEvent(
    KmemTraceEventKind Kind, string EventName, double? Timestamp, int? Cpu,
    ulong? Ptr, long? BytesReq, long? BytesAlloc, string? GfpText, int? Node, string? CacheName,
    ulong? Pfn, int? Order, int? Migratetype);
