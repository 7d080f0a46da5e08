// The lock order, checked: every lock that is ever taken while another is held has a rank (LockRank, outermost
// first), and in Debug builds each acquisition site says which rank it takes. A thread that takes a lock while it
// holds one of an equal or higher rank has inverted the order (two such threads can deadlock), and the check throws
// at once, before it blocks. Release builds compile the calls away: [Conditional("DEBUG")] removes them at every
// call site, arguments included. The order itself, with what each lock protects, is in docs/architecture.md
// ("Lock order").
using System.Diagnostics;

namespace Kmem.Core;

/// <summary>
/// The rank of each lock that nests with others, outermost (taken first) to innermost. A lock may be taken only while
/// every lock the thread holds has a lower rank. Locks that never nest with another need no rank.
/// </summary>
internal enum LockRank
{
    /// <summary>Machine's lazy set-up of a subsystem (the RTnet stack): creates caches, pools and /proc files under it.</summary>
    MachineSetup = 1,
    /// <summary>A movable block's gate (<c>MovablePage.Gate</c>): a pin the user holds across calls, or a free.</summary>
    MovablePin,
    /// <summary><c>PageAllocator._contigLock</c> (the kernel's <c>cma_mutex</c>): one alloc_contig_range at a time.</summary>
    Contig,
    /// <summary>A mempool's lock: its reserve is filled and resized under it.</summary>
    Mempool,
    /// <summary>A GEM object's lock (its vmap, its mmap offset).</summary>
    DrmObject,
    /// <summary><c>DrmDevice.Lock</c>: the device's files, objects, names and offsets, and each file's handles.</summary>
    DrmDevice,
    /// <summary>A DRM address-space manager (<c>drm_mm</c>).</summary>
    DrmMm,
    /// <summary>The dma-buf descriptor table.</summary>
    DmaBufFds,
    /// <summary>The machine's list of dma-bufs (<c>db_list</c>).</summary>
    DmaBufList,
    /// <summary>One dma-buf (<c>dmabuf->lock</c>): its attachments, mappings and vmap.</summary>
    DmaBuf,
    /// <summary>A GEM object's block list, vmapped under it.</summary>
    GemBlocks,
    /// <summary>A DMA device's lock: its mappings and the dma-debug entries.</summary>
    DmaDevice,
    /// <summary>An IOMMU domain's IOVA allocator.</summary>
    Iova,
    /// <summary>The vmalloc space (<c>vmap_area_lock</c> and the purge list).</summary>
    Vmalloc,
    /// <summary>A CMA area's bitmap (<c>cma->lock</c>).</summary>
    CmaArea,
    /// <summary>The slab allocator's cache list (<c>slab_mutex</c>).</summary>
    SlabAllocator,
    /// <summary>The process-wide double-free lookup: one lookup at a time, holding a cache's thread structures.</summary>
    SlabLookup,
    /// <summary>
    /// A thread's slab lock (<c>SlabThread.Lock</c>): its owner's slow paths and every flusher of its structures. The
    /// double-free lookup holds all of them at once, serialised by <see cref="SlabLookup"/> (that site takes them
    /// through <c>SlabThread.EnterExclusive</c> and is not annotated).
    /// </summary>
    SlabThread,
    /// <summary>A cache's list of thread structures (its <c>kmem_cache_cpu</c> blocks) and aliases.</summary>
    SlabCpus,
    /// <summary>A sheaf cache's barn.</summary>
    SlabBarn,
    /// <summary>A cache's node lock (<c>n->list_lock</c>): partial and full lists, debug checks.</summary>
    SlabNode,
    /// <summary>The slab allocator's table of caller names (debug tracks).</summary>
    SlabSites,
    /// <summary>The page allocator's registry of movable blocks.</summary>
    Movable,
    /// <summary><c>zone->lock</c>: the buddy free lists, counters and pageblock types of one zone.</summary>
    Zone,
    /// <summary>The /proc registry.</summary>
    ProcFs,
    /// <summary>The log ring (the kernel's <c>logbuf_lock</c>): innermost, taken by every report.</summary>
    KernelLog,
}

/// <summary>A lock taken out of order: a bug in Kmem, never a caller's misuse (Debug builds only).</summary>
internal sealed class LockOrderException(string message) : InvalidOperationException(message);

/// <summary>
/// Debug-build checks of the lock order. Call <see cref="Enter(LockRank, Lock)"/> just before a blocking acquisition and
/// <see cref="Entered(LockRank, Lock)"/> after a successful try-acquisition (which cannot deadlock, so it is recorded, not checked).
/// Releases need no call: held entries are pruned by asking the lock whether this thread still holds it.
/// </summary>
internal static class LockOrder
{
    private const int MaxHeld = 16;

    // Weak, so that a lock taken once and released never keeps its owner (a GEM object, say) reachable: an undisposed
    // machine must stay collectable. The references are allocated once per thread and retargeted.
    [ThreadStatic] private static WeakReference<object>[]? t_locks;
    [ThreadStatic] private static LockRank[]? t_ranks;
    [ThreadStatic] private static int t_count;

    /// <summary>True in builds that check the order (Debug).</summary>
    public static bool IsChecked
    {
        get
        {
#if DEBUG
            return true;
#else
            return false;
#endif
        }
    }

    /// <summary>Violations seen since the process started (also thrown; kept in case a caller swallowed the throw).</summary>
    public static int Violations => Volatile.Read(ref s_violations);

    private static int s_violations;

    /// <summary>The target of an unused entry (a weak reference needs one).</summary>
    private static readonly object s_none = new();

    /// <summary>
    /// About to take <paramref name="lockObject"/> (a <see cref="Lock"/> or a monitor) of <paramref name="rank"/>:
    /// throws <see cref="LockOrderException"/> when the thread holds a lock of an equal or higher rank (other than
    /// this very lock, which may be re-entered).
    /// </summary>
    [Conditional("DEBUG")]
    public static void Enter(LockRank rank, Lock lockObject) => EnterCore(rank, AsObject(lockObject));

    /// <summary>As <see cref="Enter(LockRank, Lock)"/>, for a monitor (<c>lock</c> on a plain object).</summary>
    [Conditional("DEBUG")]
    public static void Enter(LockRank rank, object monitor)
    {
        Debug.Assert(monitor is not Lock);
        EnterCore(rank, monitor);
    }

    /// <summary>Took <paramref name="lockObject"/> with a try-acquisition: recorded as held, not checked.</summary>
    [Conditional("DEBUG")]
    public static void Entered(LockRank rank, Lock lockObject) => EnteredCore(rank, AsObject(lockObject));

    /// <summary>As <see cref="Entered(LockRank, Lock)"/>, for a monitor.</summary>
    [Conditional("DEBUG")]
    public static void Entered(LockRank rank, object monitor) => EnteredCore(rank, monitor);

#pragma warning disable CS9216 // kept as an object for identity only; never locked through this reference
    private static object AsObject(Lock l) => l;
#pragma warning restore CS9216

    private static void EnterCore(LockRank rank, object lockObject)
    {
        if (Prune(lockObject)) return;                 // re-entered: already recorded
        for (int i = 0; i < t_count; i++)
        {
            if (t_ranks![i] >= rank)
            {
                Interlocked.Increment(ref s_violations);
                throw new LockOrderException($"lock order: taking {rank} while holding {t_ranks[i]} (held: {Held()})");
            }
        }
        Push(rank, lockObject);
    }

    private static void EnteredCore(LockRank rank, object lockObject)
    {
        if (!Prune(lockObject)) Push(rank, lockObject);
    }

    /// <summary>Drops entries this thread no longer holds; true when <paramref name="lockObject"/> is among those it holds.</summary>
    private static bool Prune(object lockObject)
    {
        bool found = false;
        int n = 0;
        for (int i = 0; i < t_count; i++)
        {
            if (!t_locks![i].TryGetTarget(out object? o) || !HeldByMe(o)) continue;
            if (ReferenceEquals(o, lockObject)) found = true;
            t_locks[n].SetTarget(o);
            t_ranks![n] = t_ranks[i];
            n++;
        }
        for (int i = n; i < t_count; i++) t_locks![i].SetTarget(s_none);
        t_count = n;
        return found;
    }

    private static void Push(LockRank rank, object lockObject)
    {
        t_locks ??= Enumerable.Range(0, MaxHeld).Select(_ => new WeakReference<object>(s_none)).ToArray();
        t_ranks ??= new LockRank[MaxHeld];
        if (t_count == MaxHeld) throw new LockOrderException($"lock order: more than {MaxHeld} locks held ({Held()})");
        t_locks[t_count].SetTarget(lockObject);
        t_ranks[t_count] = rank;
        t_count++;
    }

    private static bool HeldByMe(object o) => o is Lock l ? l.IsHeldByCurrentThread : Monitor.IsEntered(o);

    private static string Held() => string.Join(", ", t_ranks!.Take(t_count));
}
