// The machine's CMA entry points: cma_alloc()/cma_release() on its areas and movable allocations,
// the memory that CMA areas lend to the rest of the system while they are free.
using Kmem.Core;
using Kmem.Paging;
using Kmem.Vmalloc;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>
    /// cma_alloc(): <paramref name="count"/> physically contiguous pages from <paramref name="cma"/>, the first on a
    /// 2^<paramref name="align"/>-page boundary; movable memory in the way is migrated. Returns the first page, or the
    /// null page with the kernel's report ("alloc failed, req-size", the free runs) unless <see cref="Gfp.NoWarn"/>.
    /// <see cref="Gfp.NoRetry"/> or a caller that may not block skips the rescans after busy ranges.
    /// </summary>
    /// <exception cref="InvalidAddressException">The area is another machine's (reported in the log).</exception>
    /// <exception cref="ArgumentOutOfRangeException">count or align is negative or too large.</exception>
    public Page CmaAlloc(CmaArea cma, int count, int align, Gfp gfp = Gfp.Kernel)
    {
        ThrowIfDisposed();
        CheckArea(cma);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (align < 0 || align > 30) throw new ArgumentOutOfRangeException(nameof(align), align, "alignment is an order of pages, 0..30");
        int idx = cma.Alloc((ulong)count, align, gfp);
        return idx < 0 ? Page.Null : new Page(Pages.BasePfn + (ulong)idx, Id, idx);
    }

    /// <summary>
    /// cma_release(): gives back <paramref name="count"/> pages from <paramref name="pages"/>; false when the page is not
    /// in the area. Pages inside the area that it has not allocated (a double release) are reported and raise
    /// <see cref="InvalidAddressException"/>, with nothing freed.
    /// </summary>
    public bool CmaRelease(CmaArea cma, Page pages, int count)
    {
        ThrowIfDisposed();
        CheckArea(cma);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (pages.IsNull) return false;
        if (pages.MachineId != Id) throw new InvalidAddressException($"cma_release: {pages} belongs to another machine");
        if (!Pages.PfnValid(pages.Pfn)) return false;
        return cma.Release((int)(pages.Pfn - Pages.BasePfn), (ulong)count);
    }

    private void CheckArea(CmaArea cma)
    {
        ArgumentNullException.ThrowIfNull(cma);
        if (!Cma.TryGetValue(cma.Name, out var mine) || !ReferenceEquals(mine, cma))
        {
            Log.Err($"cma: {cma.Name}: the area belongs to another machine");
            throw new InvalidAddressException($"cma: the CMA area '{cma.Name}' is not one of this machine's");
        }
    }

    /// <summary>
    /// A movable allocation (a page-cache-like block): <paramref name="gfp"/> must be movable (e.g.
    /// <see cref="Gfp.HighUserMovable"/>), so it may sit in free CMA pageblocks and move when a CMA allocation needs
    /// them. Returns null when memory is short (with the allocation-failure warning unless NOWARN).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="gfp"/> lacks <see cref="Gfp.Movable"/>, or the order is out of range.</exception>
    public MovablePage? AllocMovable(Gfp gfp = Gfp.HighUserMovable, int order = 0)
    {
        using var life = Life.Enter();
        if ((gfp & Gfp.Movable) == 0) throw new ArgumentException("a movable allocation needs __GFP_MOVABLE", nameof(gfp));
        if ((uint)order >= (uint)MaxOrder) throw new ArgumentOutOfRangeException(nameof(order), order, $"0..{MaxOrder - 1}");
        return Pages.AllocMovable(gfp, order, idx => new MovablePage(Pages, Id, idx, order, gfp, MapPinnedHigh, UnmapPinnedHigh));
    }

    /// <summary>Makes the allocated order-0 page at frame <paramref name="idx"/> a movable page (a snapshot import's used CMA pages).</summary>
    internal MovablePage AdoptMovable(int idx)
    {
        var h = new MovablePage(Pages, Id, idx, 0, Gfp.HighUserMovable, MapPinnedHigh, UnmapPinnedHigh);
        Pages.AdoptMovable(idx, h);
        return h;
    }

    /// <summary>A pin of a HighMem movable block: kmap() of its page, or a vmap() of a larger block (no linear address).</summary>
    private nint MapPinnedHigh(int idx, int order)
    {
        if (order == 0) return _kmaps.Kmap(idx);
        var frames = new int[1 << order];
        for (int i = 0; i < frames.Length; i++) frames[i] = idx + i;
        nint v = Vm.Vmap(frames, VmFlags.Map, CallSite.Kernel("vmap"));
        return v != 0 ? v : throw new OutOfMemoryException($"vmap of a pinned order-{order} HighMem block: the vmalloc window is full");
    }

    private void UnmapPinnedHigh(int idx, int order, nint address)
    {
        if (order == 0) _kmaps.Kunmap(idx);
        else Vm.Free(address, freePages: false, CallSite.Kernel("vunmap"));
    }

    /// <summary>Pages migrated so far to make room for CMA allocations (pgmigrate_success).</summary>
    public long PagesMigrated
    {
        get
        {
            ThrowIfDisposed();
            return Pages.PagesMigrated;
        }
    }
}
