// The page descriptor (the kernel's struct page) and the native array of them indexed by frame
// number (mem_map). No managed object exists per page; list links are int indices.
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

/// <summary>One page descriptor, 32 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PageFrame
{
    public PageFlags Flags;
    public int RefCount;
    public int MapCount;
    /// <summary>Order of the free block (buddy) or of the allocation (allocated head).</summary>
    public byte Order;
    /// <summary>Migratetype of the free list holding the block, or the allocation's migratetype.</summary>
    public byte Migratetype;
    public byte Zone;
    public byte Spare;
    /// <summary>Next frame index on the list the page is on, or -1.</summary>
    public int Next;
    /// <summary>Previous frame index on the list the page is on, or -1.</summary>
    public int Prev;
    /// <summary>Owner data: head index for tail pages; owner cookies for higher layers.</summary>
    public long Private;
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
        if (!_mapped) NativeMemory.Free(p);
        else Libc.Munmap((nint)p, _bytes);
    }
}
