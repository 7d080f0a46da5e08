// SLUB's per-node state of one cache (struct kmem_cache_node, mm/slub.c up to 6.7, mm/slab.h's
// SLUB part): the node's list lock, its partial list with nr_partial, and the CONFIG_SLUB_DEBUG
// counters nr_slabs and total_objects. A cache has one per node of the machine (node 0 only on a
// one-node machine); a slab is always on the lists of the node whose memory holds it (slab_nid()).
// Kmem keeps no "full" list: a debug cache marks its full slabs in their page descriptors instead.
namespace Kmem.Slab;

/// <summary>One node's lists and counters of a slab cache (<c>struct kmem_cache_node</c>).</summary>
internal sealed class KmemCacheNode
{
    public KmemCacheNode(int id) => Id = id;

    /// <summary>The node this structure belongs to.</summary>
    public int Id { get; }

    /// <summary><c>list_lock</c>: guards the partial list and the slabs' list state.</summary>
    public readonly Lock ListLock = new();

    /// <summary>First and last slab (frame index) of the partial list, linked through the frames' Next/Prev; -1 when empty.</summary>
    public int PartialHead = -1, PartialTail = -1;

    /// <summary><c>nr_partial</c>.</summary>
    public long NrPartial;

    /// <summary><c>nr_slabs</c>: slabs of the cache in this node's memory (frozen ones included).</summary>
    public long NrSlabs;

    /// <summary><c>total_objects</c>: objects in those slabs.</summary>
    public long TotalObjects;
}
