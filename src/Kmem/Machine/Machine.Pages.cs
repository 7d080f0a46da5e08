// The page-level entry points of a machine: AllocPages/FreePages and friends, page references,
// split and exact allocations, address conversions (virt, phys, pfn, page) and reclaim controls.
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>The page size (4096).</summary>
    public const int PageSize = KernelFacts.PageSize;

    /// <summary>MAX_ORDER of this machine: orders 0..MaxOrder-1 are valid.</summary>
    public int MaxOrder => Life.Live(Pages.MaxOrder);

    // ================================================================== allocate and free

    /// <summary>
    /// <c>alloc_pages(gfp, order)</c>: 2^order physically contiguous pages, or the null page on failure
    /// (with the kernel's failure report in the log unless <see cref="Gfp.NoWarn"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Page AllocPages(Gfp gfp, int order)
    {
        int idx = Pages.Alloc(gfp, order);
        return idx < 0 ? default : new Page(_basePfn + (ulong)idx, Id, idx);
    }

    /// <summary><c>alloc_page(gfp)</c>: one page.</summary>
    public Page AllocPage(Gfp gfp) => AllocPages(gfp, 0);

    /// <summary>
    /// <c>__free_pages(page, order)</c>: drops the caller's reference; the last reference returns the block.
    /// </summary>
    /// <exception cref="BadPageStateException">The page is free, a tail page, reserved, or freed with another order.</exception>
    /// <exception cref="InvalidAddressException">The page is null or belongs to another machine.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FreePages(Page page, int order, [CallerMemberName] string caller = "")
    {
        ulong idx = (uint)page.Index;
        // Order 0 is below every MAX_ORDER: with a constant 0 the order costs no test.
        if (page.MachineId == Id && idx < _frameCount && (order == 0 || (uint)order < _maxOrder))
        {
            Pages.Free((int)idx, order, caller); // checks for shutdown before it touches a descriptor
            return;
        }
        int checkedIdx = CheckedIndex(page, caller);
        throw BadOrder(checkedIdx, order, caller);
    }

    /// <summary><c>__free_page(page)</c>.</summary>
    public void FreePage(Page page, [CallerMemberName] string caller = "") => FreePages(page, 0, caller);

    /// <summary>
    /// <c>__get_free_pages(gfp, order)</c>: the block's linear-map address, or 0 on failure. From Linux 4.19 the kernel
    /// masks <see cref="Gfp.HighMem"/> (the block comes from lowmem); before, asking for it is a bug
    /// (<c>VM_BUG_ON</c> in mm/page_alloc.c), reported and refused.
    /// </summary>
    /// <exception cref="HighMemException">The release is older than 4.19 and <paramref name="gfp"/> has <see cref="Gfp.HighMem"/>: nothing was allocated.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint GetFreePages(Gfp gfp, int order)
    {
        if ((gfp & Gfp.HighMem) != 0 && !_gfpHighMemMasked) throw GetFreePagesHighMem(gfp);
        int idx = Pages.Alloc(gfp & ~Gfp.HighMem, order);
        return idx < 0 ? 0 : _linear + ((nint)idx << PhysicalMemory.PageShift);
    }

    /// <summary>True from 4.19, where __get_free_pages() masks __GFP_HIGHMEM instead of VM_BUG_ON() on it (mm/page_alloc.c).</summary>
    private bool _gfpHighMemMasked => Profile.Version.IsAtLeast(4, 19);

    private HighMemException GetFreePagesHighMem(Gfp gfp)
    {
        ThrowIfDisposed();
        Pages.Bug("mm/page_alloc.c",
            $"VM_BUG_ON((gfp_mask & __GFP_HIGHMEM) != 0) in __get_free_pages, gfp_mask={GfpFlags.Format(gfp)}: its address cannot represent a HighMem page");
        return new HighMemException(HighMemError.NoLinearAddress,
            $"__get_free_pages({GfpFlags.Format(gfp)}): __GFP_HIGHMEM is a bug before Linux 4.19 (it is masked from then on); nothing was allocated");
    }

    /// <summary><c>get_zeroed_page(gfp)</c>.</summary>
    public nint GetZeroedPage(Gfp gfp) => GetFreePages(gfp | Gfp.Zero, 0);

    /// <summary><c>free_pages(addr, order)</c>: 0 is ignored, as in the kernel.</summary>
    /// <exception cref="InvalidAddressException">The address is not a page of this machine's linear map.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FreePages(nint address, int order, [CallerMemberName] string caller = "")
    {
        if (address == 0) return;
        int idx = VirtToIndex(address, caller, requireAligned: true);
        if ((uint)order >= _maxOrder) throw BadOrder(idx, order, caller);
        Pages.Free(idx, order, caller);
    }

    /// <summary><c>free_page(addr)</c>.</summary>
    public void FreePage(nint address, [CallerMemberName] string caller = "") => FreePages(address, 0, caller);

    /// <summary>
    /// <c>alloc_pages_exact(size, gfp)</c>: exactly the pages needed for <paramref name="size"/> bytes (the rest of the
    /// block is freed). It returns a linear address, taken with <c>__get_free_pages()</c> (mm/page_alloc.c), so
    /// <see cref="Gfp.HighMem"/> is treated as <see cref="GetFreePages"/> treats it: masked (the block is lowmem) or,
    /// on an older release, reported and refused.
    /// </summary>
    /// <exception cref="HighMemException">The release is older than the masking and <paramref name="gfp"/> has <see cref="Gfp.HighMem"/>: nothing was allocated.</exception>
    public nint AllocPagesExact(nuint size, Gfp gfp)
    {
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "size must be positive");
        using var _ = Life.Enter();
        if ((gfp & Gfp.HighMem) != 0 && !_gfpHighMemMasked) throw GetFreePagesHighMem(gfp);
        int idx = Pages.AllocExact(size, gfp & ~Gfp.HighMem);
        return idx < 0 ? 0 : Pages.IdxToVirt(idx);
    }

    /// <summary><c>free_pages_exact(addr, size)</c>: frees every page of an exact allocation.</summary>
    public void FreePagesExact(nint address, nuint size, [CallerMemberName] string caller = "")
    {
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "size must be positive");
        int idx = VirtToIndex(address, caller, requireAligned: true);
        ulong pages = (size + PageSize - 1) / PageSize;
        if ((ulong)idx + pages > (ulong)_frames.Count) throw Invalid($"free_pages_exact: 0x{address:x}+{size} runs past the end of memory", caller);
        for (ulong i = 0; i < pages; i++) Pages.Free(idx + (int)i, 0, caller);
    }

    /// <summary><c>split_page(page, order)</c>: turns a non-compound block into 2^order separately freeable pages.</summary>
    public void SplitPage(Page page, int order, [CallerMemberName] string caller = "")
    {
        int idx = CheckedIndex(page, caller);
        if ((uint)order >= (uint)Pages.MaxOrder) throw BadOrder(idx, order, caller);
        Pages.SplitPage(idx, order, caller);
    }

    /// <summary><c>get_page(page)</c>: takes another reference.</summary>
    public void GetPage(Page page, [CallerMemberName] string caller = "") => Pages.GetPage(CheckedIndex(page, caller), caller);

    /// <summary><c>put_page(page)</c>: drops a reference; the last one frees the block (compound or not).</summary>
    public void PutPage(Page page, [CallerMemberName] string caller = "") => Pages.PutPage(CheckedIndex(page, caller), caller);

    /// <summary><c>page_count(page)</c>: the reference count of the page's head.</summary>
    public int PageCount(Page page) => Pages.PageCount(CheckedIndex(page, nameof(PageCount)));

    /// <summary>The bytes of a block as a span (the linear-map view of 2^order pages).</summary>
    public unsafe Span<byte> PageSpan(Page page, int order = 0)
    {
        int idx = CheckedIndex(page, nameof(PageSpan));
        if ((uint)order >= (uint)Pages.MaxOrder || idx + (1L << order) > _frames.Count)
            throw new ArgumentOutOfRangeException(nameof(order));
        if (Pages.IsHighMem(idx)) throw NoLinearAddress(idx, nameof(PageSpan));
        return new Span<byte>((void*)Pages.IdxToVirt(idx), PageSize << order);
    }

    private HighMemException NoLinearAddress(int idx, string caller)
    {
        string m = $"pfn 0x{_basePfn + (ulong)idx:x} is a HighMem page: it has no linear-map address (map it with Kmap, KmapLocalPage or KmapAtomic)";
        Log.Err($"kmem: {m} (caller {caller})");
        return new HighMemException(HighMemError.NoLinearAddress, m);
    }

    // ================================================================== reclaim controls

    /// <summary><c>drain_all_pages()</c>: returns every thread's per-CPU pages to the buddy lists.</summary>
    public void DrainAllPages() { ThrowIfDisposed(); Pages.DrainAllPages(); }

    /// <summary><c>drain_local_pages()</c>: returns the calling thread's per-CPU pages to the buddy lists.</summary>
    public void DrainLocalPages() { ThrowIfDisposed(); Pages.DrainLocalPages(); }

    /// <summary><c>register_shrinker()</c>: reclaim will ask this cache for memory.</summary>
    public void RegisterShrinker(Shrinker shrinker)
    {
        ArgumentNullException.ThrowIfNull(shrinker);
        ThrowIfDisposed();
        Pages.RegisterShrinker(shrinker);
    }

    /// <summary><c>unregister_shrinker()</c>; returns false if it was not registered.</summary>
    public bool UnregisterShrinker(Shrinker shrinker)
    {
        ArgumentNullException.ThrowIfNull(shrinker);
        ThrowIfDisposed();
        return Pages.UnregisterShrinker(shrinker);
    }

    /// <summary>Runs direct reclaim once (all shrinkers, falling priority); returns the pages that came back.</summary>
    public long Reclaim(Gfp gfp = Gfp.Kernel)
    {
        using var _ = Life.Enter();
        return Pages.PerformReclaim(gfp, 0);
    }

    // ================================================================== address conversions

    /// <summary>
    /// <c>page_address(page)</c>: the page's address in the linear map. A HighMem page has one only while it holds a
    /// persistent kmap slot (<see cref="Kmap"/>); otherwise the result is 0 (NULL), as in the kernel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint PageAddress(Page page)
    {
        // A lowmem page of this live machine (the window is empty once it shuts down): its linear address, inline;
        // anything else takes the checked path.
        ulong idx = (uint)page.Index;
        if (page.MachineId == Id && idx < _lowmemFrames) return _linear + (nint)(idx << PhysicalMemory.PageShift);
        return PageAddressSlow(page);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private nint PageAddressSlow(Page page) => _kmaps.PageAddress(CheckedIndex(page, nameof(PageAddress)));

    /// <summary><c>virt_to_page(addr)</c>: the page holding a linear-map address.</summary>
    public Page VirtToPage(nint address)
    {
        int idx = VirtToIndex(address, nameof(VirtToPage), false);
        return new(Pages.BasePfn + (ulong)idx, Id, idx);
    }

    /// <summary><c>page_to_pfn(page)</c>.</summary>
    public ulong PageToPfn(Page page) { CheckedIndex(page, nameof(PageToPfn)); return page.Pfn; }

    /// <summary><c>pfn_to_page(pfn)</c>.</summary>
    /// <exception cref="InvalidAddressException">The PFN is not backed by a memory bank.</exception>
    public Page PfnToPage(ulong pfn)
    {
        ThrowIfDisposed();
        if (!Pages.PfnValid(pfn)) throw Invalid($"pfn_to_page: pfn 0x{pfn:x} is not backed by memory", nameof(PfnToPage));
        return new Page(pfn, Id, (int)(pfn - _basePfn));
    }

    /// <summary><c>PFN_PHYS(pfn)</c>.</summary>
    public ulong PfnToPhys(ulong pfn) => Life.Live(pfn << PhysicalMemory.PageShift);

    /// <summary><c>PHYS_PFN(phys)</c>.</summary>
    public ulong PhysToPfn(ulong phys) => Life.Live(phys >> PhysicalMemory.PageShift);

    /// <summary><c>page_to_phys(page)</c>.</summary>
    public ulong PageToPhys(Page page) => PfnToPhys(PageToPfn(page));

    /// <summary><c>phys_to_virt(phys)</c>: the linear-map address of a physical address.</summary>
    public nint PhysToVirt(ulong phys)
    {
        ThrowIfDisposed();
        if (!Pages.PfnValid(phys >> PhysicalMemory.PageShift)) throw Invalid($"phys_to_virt: 0x{phys:x} is not RAM", nameof(PhysToVirt));
        if (phys - Layout.SpanStart >= Pages.LinearBytes) throw Invalid($"phys_to_virt: 0x{phys:x} is HighMem, beyond high_memory: it has no linear-map address", nameof(PhysToVirt));
        return _phys.LinearBase + (nint)(phys - Layout.SpanStart);
    }

    /// <summary><c>virt_to_phys(addr)</c>.</summary>
    public ulong VirtToPhys(nint address)
    {
        int idx = VirtToIndex(address, nameof(VirtToPhys), false);
        return Layout.SpanStart + ((ulong)idx << PhysicalMemory.PageShift) + (ulong)(address & (PageSize - 1));
    }

    /// <summary>True if the address lies in this machine's linear map of RAM (<c>virt_addr_valid</c>).</summary>
    public bool VirtAddrValid(nint address)
    {
        ThrowIfDisposed();
        nint off = address - _phys.LinearBase;
        return off >= 0 && (ulong)off < Pages.LinearBytes && Pages.PfnValid(Pages.BasePfn + (ulong)(off >> PhysicalMemory.PageShift));
    }

    // ================================================================== validation helpers

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int CheckedIndex(Page page, string caller)
    {
        ulong idx = (uint)page.Index;
        if (page.MachineId == Id && idx < _frameCount && !Life.IsDead) return (int)idx;
        return CheckedIndexSlow(page, caller);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int CheckedIndexSlow(Page page, string caller)
    {
        ThrowIfDisposed();
        if (page.IsNull) throw Invalid("BUG: kernel NULL pointer dereference: page operation on the null page", caller);
        if (page.MachineId != Id) throw Invalid($"page {page} belongs to another machine", caller);
        throw Invalid($"pfn 0x{page.Pfn:x} is outside this machine's memory", caller);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int VirtToIndex(nint address, string caller, bool requireAligned)
    {
        // Fast: a page-aligned address of an allocated page can only be RAM of this machine (and the window is empty
        // once the machine shuts down).
        nint off = address - _linear;
        if ((ulong)off < _linearBytes && (off & (PageSize - 1)) == 0)
        {
            int idx = (int)(off >> PhysicalMemory.PageShift);
            if ((_frames[idx].Flags & PageFlags.Allocated) != 0) return idx;
        }
        return VirtToIndexSlow(address, caller, requireAligned);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int VirtToIndexSlow(nint address, string caller, bool requireAligned)
    {
        ThrowIfDisposed();
        nint off = address - _phys.LinearBase;
        if (off < 0 || (ulong)off >= _phys.Size)
            throw Invalid($"address 0x{address:x} is not in this machine's linear map", caller);
        if ((ulong)off >= Pages.LinearBytes)
            throw Invalid($"address 0x{address:x} is beyond high_memory: HighMem pages are not in the linear map", caller);
        ulong pfn = Pages.BasePfn + (ulong)(off >> PhysicalMemory.PageShift);
        if (!Pages.PfnValid(pfn)) throw Invalid($"address 0x{address:x} (pfn 0x{pfn:x}) is in a memory hole", caller);
        if (requireAligned && (off & (PageSize - 1)) != 0)
            throw Invalid($"address 0x{address:x} is not page aligned", caller);
        return (int)(off >> PhysicalMemory.PageShift);
    }

    private InvalidAddressException Invalid(string message, string caller)
    {
        Log.Err($"kmem: {message} (caller {caller})");
        return new InvalidAddressException(message);
    }

    private BadPageStateException BadOrder(int idx, int order, string caller) =>
        Pages.BadPage(idx, $"free with order {order}, but {Pages.Pcp.MaxOrderName} is {Pages.Pcp.MaxOrderValue(Pages.MaxOrder)}", caller);
}
