// The page descriptor (the kernel's struct page) and the native array of them indexed by frame
// number (mem_map). No managed object exists per page; list links are int indices.
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Physical;

/// <summary>Page flags (the subset of the kernel's PG_* bits that Kmem's allocators use).</summary>
[Flags]
internal enum PageFlags : uint
{
    None = 0,
    /// <summary>PG_buddy: head of a free block in the buddy allocator.</summary>
    Buddy = 1 << 0,
    /// <summary>PG_reserved: never handed to the allocator (holes, memblock reservations).</summary>
    Reserved = 1 << 1,
    /// <summary>PG_head: head of a compound page.</summary>
    Head = 1 << 2,
    /// <summary>Tail page of a compound page; <see cref="PageFrame.Private"/> holds the head's index.</summary>
    Tail = 1 << 3,
    /// <summary>PG_slab: owned by a slab cache.</summary>
    Slab = 1 << 4,
    /// <summary>Free page sitting on a per-CPU (per-thread) page list.</summary>
    Pcp = 1 << 5,
    /// <summary>Allocated head page (refcount may be raised by GetPage).</summary>
    Allocated = 1 << 6,
}

/// <summary>
/// One page descriptor, 32 bytes in four 64-bit words (the fast path's <c>PrepOrder0</c> writes words 0, 1 and 3
/// whole, so the layout is fixed and a test asserts every offset):
/// <code>
///   word 0   Flags (0)        RefCount (4)
///   word 1   MapCount (8)     Order (12)  Migratetype (13)  Zone (14)  Spare (15)
///   word 2   Next (16)        Prev (20)
///   word 3   Private (24)
/// </code>
/// As in the kernel's <c>struct page</c>, three fields mean different things to different owners; code that uses
/// an owner's meaning goes through the named accessor below, and code that resets a descriptor writes the raw field.
/// <list type="table">
/// <listheader><term>field</term><description>meaning, by owner of the page</description></listheader>
/// <item><term><see cref="MapCount"/></term><description>slab pages (head, <see cref="PageFlags.Slab"/>): the owning
///   cache's slot (<see cref="SlabCacheSlot"/>; the kernel's <c>slab_cache</c>, here the index shared by the slot
///   registry and the threads' tables); every other page: 0 (Kmem maps no pages into user space, so the kernel's
///   <c>_mapcount</c> has nothing to count; reports print the raw value).</description></item>
/// <item><term><see cref="Spare"/></term><description>slab head pages: which list of its cache the slab is on
///   (<see cref="SlabListState"/>: 0 none or CPU, node partial, full for debug caches); the head of a large kmalloc
///   (compound pages above the largest kmalloc cache): the large-kmalloc mark (<see cref="KmallocMark"/>) that
///   kfree checks; every other page: 0.</description></item>
/// <item><term><see cref="Private"/></term><description>tail pages (<see cref="PageFlags.Tail"/>): the head's frame
///   index (<see cref="CompoundHead"/>; the kernel's <c>compound_head</c>); slab head pages: the slab's freelist,
///   inuse, objects and frozen bits in one word (<see cref="SlabCounters"/>, <c>SlabWord</c>; the kernel's
///   <c>freelist</c> + <c>counters</c> swapped by <c>cmpxchg_double</c>); every other page: 0.</description></item>
/// <item><term><see cref="Next"/>, <see cref="Prev"/></term><description>links of the one list the page is on: a
///   buddy free list (head of a free block), a per-CPU page list (<see cref="PageFlags.Pcp"/>), a slab cache's
///   partial or full list (slab head); -1 at either end and off every list.</description></item>
/// </list>
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PageFrame
{
    /// <summary>The PG_* bits the allocators use.</summary>
    public PageFlags Flags;
    /// <summary>The page's reference count (<c>_refcount</c>): 0 when free, 1 once allocated, raised by GetPage.</summary>
    public int RefCount;
    /// <summary>Owner data: the cache slot for slab pages (<see cref="SlabCacheSlot"/>), else 0.</summary>
    public int MapCount;
    /// <summary>Order of the free block (buddy) or of the allocation (allocated head).</summary>
    public byte Order;
    /// <summary>Migratetype of the free list holding the block, or the allocation's migratetype.</summary>
    public byte Migratetype;
    /// <summary>Index of the zone the page belongs to.</summary>
    public byte Zone;
    /// <summary>Owner data: the slab list state (<see cref="SlabListState"/>) or the large-kmalloc mark (<see cref="KmallocMark"/>), else 0.</summary>
    public byte Spare;
    /// <summary>Next frame index on the list the page is on, or -1.</summary>
    public int Next;
    /// <summary>Previous frame index on the list the page is on, or -1.</summary>
    public int Prev;
    /// <summary>Owner data: the head index for tail pages (<see cref="CompoundHead"/>), the slab word for slab heads (<see cref="SlabCounters"/>), else 0.</summary>
    public long Private;

    /// <summary>Slab pages: the slot of the cache that owns the slab (kept in <see cref="MapCount"/>).</summary>
    public int SlabCacheSlot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] readonly get => MapCount;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] set => MapCount = value;
    }

    /// <summary>Tail pages of a compound page: the head's frame index (kept in <see cref="Private"/>).</summary>
    public int CompoundHead
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] readonly get => (int)Private;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] set => Private = value;
    }

    /// <summary>Slab head pages: the freelist-and-counters word (<c>SlabWord</c>, kept in <see cref="Private"/>), by reference for compare-and-swap.</summary>
    [UnscopedRef]
    public ref long SlabCounters
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] get => ref Private;
    }

    /// <summary>Slab head pages: which of its cache's lists the slab is on (kept in <see cref="Spare"/>).</summary>
    public byte SlabListState
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] readonly get => Spare;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] set => Spare = value;
    }

    /// <summary>Head of a large kmalloc: the mark kfree checks (kept in <see cref="Spare"/>).</summary>
    public byte KmallocMark
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] readonly get => Spare;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] set => Spare = value;
    }
}

/// <summary>
/// The mem_map: a zero-initialised native array of <see cref="PageFrame"/>, committed lazily. On Linux it is an
/// anonymous mapping of its own, so that a disposed machine's table can be retired like its memory.
/// </summary>
internal sealed unsafe class PageFrameTable : IDisposable
{
    private PageFrame* _frames;
    private readonly nuint _bytes;
    private readonly bool _mapped;
    private int _released;

    public PageFrameTable(int count)
    {
        Count = count;
        _bytes = ((nuint)count * (nuint)sizeof(PageFrame) + PhysicalMemory.PageSize - 1) & ~(nuint)(PhysicalMemory.PageSize - 1);
        if (OperatingSystem.IsLinux())
        {
            // Fresh anonymous pages are zero, so untouched descriptors cost nothing.
            nint p = Libc.Mmap(0, _bytes, Libc.ProtRead | Libc.ProtWrite, Libc.MapPrivate | Libc.MapAnonymous | Libc.MapNoReserve, -1, 0);
            if (p != Libc.MapFailed)
            {
                _frames = (PageFrame*)p;
                _mapped = true;
                return;
            }
        }
        _frames = (PageFrame*)NativeMemory.AllocZeroed((nuint)count, (nuint)sizeof(PageFrame));
    }

    public int Count { get; }

    public PageFrame* Base => _frames;

    public ref PageFrame this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _frames[index];
    }

    /// <summary>Frees the table (nothing may read it any more: the finalizer's case).</summary>
    public void Dispose() => Release(retire: false);

    /// <summary>Replaces the table with harmless zero pages kept in quarantine (a call still in flight reads zeros).</summary>
    public void Retire() => Release(retire: true);

    private void Release(bool retire)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        var p = _frames;
        if (_mapped && retire)
        {
            RetiredMappings.Retire((nint)p, _bytes, _bytes);   // the pointer stays valid: it reads zeros now
            return;
        }
        _frames = null;
        // Off Linux the table is the runtime's block: a retired one is freed after the grace period (calls in flight).
        if (!_mapped && retire) RetiredMappings.FreeAfterGrace((nint)p, static b => NativeMemory.Free((void*)b));
        else if (!_mapped) NativeMemory.Free(p);
        else Libc.Munmap((nint)p, _bytes);
    }
}
