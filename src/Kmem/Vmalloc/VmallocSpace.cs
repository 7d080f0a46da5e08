// The vmalloc window of one machine: a range of host address space reserved inaccessible at boot,
// into which scattered physical pages are mapped from the physical-memory file at their own offsets,
// so that a vmalloc address and a page's linear-map address are the same bytes (as in the kernel).
// vmap areas are placed lowest-address first fit with a guard page after each; freed areas are
// unmapped at once and their addresses reused after a lazy purge, as mm/vmalloc.c does.
using System.Runtime.InteropServices;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;
using Kmem.Slab;

namespace Kmem.Vmalloc;

/// <summary>The vmap-area allocator and the page mapping of the vmalloc window.</summary>
internal sealed unsafe partial class VmallocSpace : IDisposable
{
    private const int PageShift = PhysicalMemory.PageShift;
    private const ulong PageSize = PhysicalMemory.PageSize;

    /// <summary>GFP_RECLAIM_MASK: the bits a nested allocation (the page array) inherits.</summary>
    private const Gfp ReclaimMask = Gfp.Reclaim | Gfp.High | Gfp.Io | Gfp.Fs | Gfp.NoWarn | Gfp.RetryMayFail
        | Gfp.NoFail | Gfp.NoRetry | Gfp.Memalloc | Gfp.NoMemalloc;

    private readonly PageAllocator _pa;
    private readonly SlabAllocator _slab;
    private readonly KernelLog _log;
    private readonly int _fd;
    private readonly int _ptrSize;
    private readonly long _lazyMaxPages;
    private readonly long _totalRamPages;
    private nint _start;
    private readonly ulong _size;
    /// <summary>The window's "page table": frame index + 1 of the page mapped at each window page, 0 when none.</summary>
    private uint* _pte;

    private readonly Lock _lock = new();
    private readonly RangeSet _free = new();
    private readonly RangeSet _purge = new();
    /// <summary>The lazily freed areas one by one (start, end), oldest first, until the purge: kernels before 5.4 list each
    /// in place among the busy areas.</summary>
    private readonly List<(nint Start, nint End)> _lazyAreas = [];
    /// <summary>Freed areas waiting for the purge, with who made and who freed them: their pages are harmless
    /// anonymous memory until then, and a write found there at the purge is a use-after-free write.</summary>
    private readonly List<(nint Start, int Pages, CallSite Caller, CallSite Freer)> _quarantine = [];
    private long _uafWrites;
    private readonly List<Area> _busy = [];    // sorted by address
    private long _lazyPages;
    private ulong _highWater;                  // end of the highest area ever placed (offset), for the checks
    private long _vmapWarnNs = long.MinValue;
    private long _mapCalls;

    /// <summary>One busy area (struct vm_struct with its vmap_area).</summary>
    private sealed class Area
    {
        public nint Start;
        public ulong Size;          // with the guard page
        public VmFlags Flags;
        public int Mapped;          // pages mapped
        public int NrPages;         // pages owned (freed with the area)
        public nint PageArray;      // area->pages: kmalloc'ed, or vmalloc'ed when larger than a page
        public CallSite Caller;
        public ulong Phys;          // vm->phys_addr of an ioremap area, 0 otherwise
    }

    public VmallocSpace(PageAllocator pa, SlabAllocator slab, int fd, ulong size, int ptrSize, int cpus)
    {
        _pa = pa;
        _slab = slab;
        _log = pa.Log;
        _fd = fd;
        _ptrSize = ptrSize;
        _size = size & ~(PageSize - 1);
        _totalRamPages = pa.TotalRamPages;
        // lazy_max_pages(): fls(num_online_cpus()) * (32 MiB / PAGE_SIZE)
        _lazyMaxPages = (32 - System.Numerics.BitOperations.LeadingZeroCount((uint)cpus)) * (32L << 20 >> PageShift);
        _start = FrameMappings.Reserve((nuint)_size);
        if (_start == 0)
        {
            throw new InvalidOperationException($"vmalloc: cannot reserve {_size >> 20} MiB of address space for the window (errno {Marshal.GetLastPInvokeError()})");
        }
        _pte = (uint*)NativeMemory.AllocZeroed((nuint)(_size >> PageShift), sizeof(uint));
        _free.Add(0, _size);
    }

    /// <summary>VMALLOC_START: the first address of the window.</summary>
    public nint Start => _start;

    /// <summary>VMALLOC_END: the first address past the window.</summary>
    public nint End => _start + (nint)_size;

    /// <summary>Bytes of the window.</summary>
    public ulong Size => _size;

    /// <summary>Host mmap calls made to map pages (a run of consecutive frames is one call).</summary>
    public long MapCalls => Volatile.Read(ref _mapCalls);

    /// <summary>Pages waiting for the lazy purge (vmap_lazy_nr).</summary>
    public long LazyPages { get { LockOrder.Enter(LockRank.Vmalloc, _lock); lock (_lock) return _lazyPages; } }

    /// <summary>lazy_max_pages().</summary>
    public long LazyMaxPages => _lazyMaxPages;

    /// <summary>is_vmalloc_addr().</summary>
    public bool Contains(nint addr) => (nuint)(addr - _start) < (nuint)_size;

    /// <summary>The frame index mapped at <paramref name="addr"/>, or -1 when nothing is mapped there.</summary>
    public int FrameAt(nint addr)
    {
        ThrowIfReleased();
        nuint off = (nuint)(addr - _start);
        if (off >= (nuint)_size) return -1;
        uint e = Volatile.Read(ref _pte[off >> PageShift]);
        return (int)e - 1;
    }

    /// <summary>The VM_ flags of the busy area holding <paramref name="addr"/> (its guard page included), or 0.</summary>
    public VmFlags FlagsAt(nint addr)
    {
        ThrowIfReleased();
        if (!Contains(addr)) return 0;
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            int i = Find(addr);
            return i >= 0 ? _busy[i].Flags : 0;
        }
    }

    // ================================================================== allocation

    /// <summary>
    /// __vmalloc_node_range(): a virtually contiguous area of order-0 pages (of split 2^<paramref name="pageOrder"/>
    /// blocks for a huge area, aligned to their size). Returns 0 on failure, with the kernel's warnings unless
    /// <see cref="Gfp.NoWarn"/>.
    /// </summary>
    public nint Vmalloc(ulong size, Gfp gfp, VmFlags flags, CallSite caller, int node = PageAllocator.NumaNoNode, int pageOrder = 0)
    {
        ThrowIfReleased();
        ulong real = size;
        ulong unit = PageSize << pageOrder;
        size = (size + unit - 1) & ~(unit - 1);
        if (size == 0 || size < real || (long)(size >> PageShift) > _totalRamPages)
        {
            _pa.WarnAlloc(gfp, $"vmalloc: allocation failure: {real} bytes");
            return 0;
        }
        var area = GetVmArea(size, flags | VmFlags.Alloc, caller, gfp, unit);
        if (area is null)
        {
            _pa.WarnAlloc(gfp, $"vmalloc: allocation failure: {real} bytes");
            return 0;
        }
        int nr = (int)(size >> PageShift);
        // The page array: kmalloc'ed, or vmalloc'ed itself when it is larger than a page (shown as "vpages").
        ulong arrayBytes = (ulong)nr * (ulong)_ptrSize;
        Gfp nested = (gfp & ReclaimMask) | Gfp.Zero;
        nint pages = arrayBytes > PageSize
            ? Vmalloc(arrayBytes, nested | Gfp.HighMem, VmFlags.None, caller, node)
            : node >= 0 ? _slab.KmallocNode((nuint)arrayBytes, nested, node, caller) : _slab.Kmalloc((nuint)arrayBytes, nested, caller);
        if (pages == 0)
        {
            ReleaseArea(area);
            return 0;
        }
        area.PageArray = pages;
        int[]? rented = nr <= 1024 ? null : System.Buffers.ArrayPool<int>.Shared.Rent(nr);
        Span<int> frames = rented is null ? stackalloc int[nr] : rented.AsSpan(0, nr);
        bool ok = PopulateArea(area, frames, gfp, caller, node, pageOrder);
        if (rented is not null) System.Buffers.ArrayPool<int>.Shared.Return(rented);
        return ok ? area.Start : 0;
    }

    /// <summary>
    /// __vmalloc_area_node(): takes the area's pages (quietly; __GFP_HIGHMEM unless a DMA zone is asked for), records them
    /// in its page array and maps them. On failure everything the area took is given back. Where the pages come from
    /// (<see cref="AllocAreaPages"/>): node <paramref name="node"/>, or with NUMA_NO_NODE the thread's memory policy.
    /// </summary>
    private bool PopulateArea(Area area, Span<int> frames, Gfp gfp, CallSite caller, int node, int pageOrder)
    {
        int nr = frames.Length;
        Gfp pageGfp = gfp | Gfp.NoWarn;
        if ((gfp & (Gfp.Dma | Gfp.Dma32)) == 0) pageGfp |= Gfp.HighMem;
        int got = pageOrder == 0 ? AllocAreaPages(pageGfp, frames, node) : AllocAreaBlocks(pageGfp, frames, node, pageOrder);
        for (int i = 0; i < got; i++) SetArrayEntry(area.PageArray, i, _pa.BasePfn + (ulong)frames[i]);
        bool mapped = false;
        // A huge area that could not get its blocks fails quietly: the caller falls back to order-0 pages.
        if (got < nr && pageOrder == 0) _pa.WarnAlloc(gfp, $"vmalloc: allocation failure, allocated {(ulong)got << PageShift} of {area.Size} bytes");
        else if (!(mapped = MapFrames(area.Start, frames)))
        {
            _log.Err($"vmalloc: cannot map {nr} pages at 0x{area.Start:x}: the host refused the mapping (errno {Marshal.GetLastPInvokeError()})");
            UnmapRange(area.Start, nr);
        }
        if (!mapped)
        {
            for (int i = 0; i < got; i++) _pa.Free(frames[i], 0, "vfree");
            FreePageArray(area, caller);
            ReleaseArea(area);
            return false;
        }
        area.Mapped = nr;
        area.NrPages = nr;
        _pa.Stat.ModVmalloc(nr);
        return true;
    }

    /// <summary>
    /// ioremap() of a device's register window: an area of VM_IOREMAP with the page-aligned physical address recorded,
    /// aligned to its size's power of two (at most 1 &lt;&lt; <paramref name="maxAlignShift"/>), plus the guard page. Device
    /// registers are not RAM the host can map: the area's pages stay inaccessible reserved space. Returns the address
    /// of <paramref name="phys"/> in the area (its offset into the page kept), or 0 when the window has no room.
    /// </summary>
    public nint Ioremap(ulong phys, ulong size, int maxAlignShift, CallSite caller)
    {
        ThrowIfReleased();
        ulong offset = phys & (PageSize - 1);
        ulong last = phys + size - 1;
        if (size == 0 || last < phys) return 0;
        phys -= offset;
        size = (size + offset + PageSize - 1) & ~(PageSize - 1);
        int order = Math.Clamp(64 - System.Numerics.BitOperations.LeadingZeroCount(size - 1), PageShift, maxAlignShift);
        var area = GetVmArea(size, VmFlags.Ioremap, caller, Gfp.Kernel, 1UL << order);
        if (area is null) return 0;
        area.Phys = phys;
        return area.Start + (nint)offset;
    }

    /// <summary>vmap(): maps the given frames into one new area. Returns 0 when the window has no room.</summary>
    public nint Vmap(ReadOnlySpan<int> frames, VmFlags flags, CallSite caller)
    {
        ThrowIfReleased();
        if (frames.Length == 0 || frames.Length > _totalRamPages) return 0;
        var area = GetVmArea((ulong)frames.Length << PageShift, flags, caller, Gfp.Kernel);
        if (area is null) return 0;
        if (!MapFrames(area.Start, frames))
        {
            _log.Err($"vmap: cannot map {frames.Length} pages at 0x{area.Start:x}: the host refused the mapping (errno {Marshal.GetLastPInvokeError()})");
            UnmapRange(area.Start, frames.Length);
            ReleaseArea(area);
            return 0;
        }
        area.Mapped = frames.Length;
        if ((flags & VmFlags.MapPutPages) != 0) area.NrPages = frames.Length;
        return area.Start;
    }

    /// <summary>
    /// vfree()/vunmap(): unmaps the area that starts at <paramref name="addr"/> and, for vfree, frees the pages it
    /// owns. A bad or unknown address is reported (WARN) and raises <see cref="InvalidAddressException"/>; nothing is
    /// unmapped then.
    /// </summary>
    public void Free(nint addr, bool freePages, CallSite caller)
    {
        ThrowIfReleased();
        string fn = freePages ? "vfree" : "vunmap";
        if ((addr & (nint)(PageSize - 1)) != 0)
        {
            _pa.Warn($"Trying to {fn}() bad address ({P(addr)})");
            throw new InvalidAddressException($"{fn}: 0x{addr:x} is not page aligned{Inside(addr)}");
        }
        Area? area;
        int badFrame = -1;
        string? badReason = null;
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            int i = Find(addr);
            area = i >= 0 && _busy[i].Start == addr ? _busy[i] : null;
            if (area is not null && !freePages && (area.Flags & (VmFlags.Alloc | VmFlags.MapPutPages)) != 0)
            {
                area = null;
                i = -2;
            }
            if (area is not null && (area.Flags & VmFlags.Ioremap) != 0)
            {
                _log.Err($"{fn}: 0x{addr:x} is an ioremap area (phys 0x{area.Phys:x}): iounmap() releases it");
                throw new InvalidAddressException($"{fn}: 0x{addr:x} is the ioremap of a device's registers, not a vmalloc or vmap area");
            }
            // vfree() checks every page it would free before it changes anything (see FirstUnfreeable).
            if (area is not null && freePages && area.NrPages > 0) badFrame = FirstUnfreeable(area, out badReason);
            if (area is not null) { if (badFrame < 0) _busy.RemoveAt(i); }
            else if (i == -2)
            {
                _log.Err($"vunmap: 0x{addr:x} was made by vmalloc (or vmap with VM_MAP_PUT_PAGES): vfree() frees it");
                throw new InvalidAddressException($"vunmap: 0x{addr:x} owns its pages; free it with Vfree");
            }
        }
        if (badFrame >= 0) throw _pa.BadPage(badFrame, badReason!, fn);   // the area stays busy and mapped, its pages its own
        if (area is null)
        {
            _pa.Warn($"Trying to {fn}() nonexistent vm area ({P(addr)})");
            throw new InvalidAddressException($"{fn}: no vmalloc area starts at 0x{addr:x}{Inside(addr)}");
        }
        int n = area.Mapped;
        if (area.NrPages > 0)
        {
            // The frames are read from the window's page table before the mapping goes; then the pages are freed.
            ulong first = (ulong)(area.Start - _start) >> PageShift;
            int[]? rented = n <= 1024 ? null : System.Buffers.ArrayPool<int>.Shared.Rent(n);
            Span<int> frames = rented is null ? stackalloc int[n] : rented.AsSpan(0, n);
            for (int k = 0; k < n; k++) frames[k] = (int)_pte[first + (ulong)k] - 1;
            UnmapRange(area.Start, n);
            // Last page first: the per-CPU list then hands them out again lowest first, so that the next vmalloc
            // finds runs of consecutive frames (one host mapping each) instead of a descending sequence.
            for (int k = n - 1; k >= 0; k--) _pa.Free(frames[k], 0, fn);
            if (rented is not null) System.Buffers.ArrayPool<int>.Shared.Return(rented);
            if ((area.Flags & VmFlags.Alloc) != 0) _pa.Stat.ModVmalloc(-area.NrPages);
        }
        else
        {
            UnmapRange(area.Start, n);
        }
        FreePageArray(area, caller);
        LazyFree(area, n, caller);
    }

    /// <summary>" (inside the area 0x…-0x…)" when <paramref name="addr"/> falls in a busy area, else "".</summary>
    private string Inside(nint addr)
    {
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            int i = Find(addr);
            if (i < 0) return Contains(addr) ? "" : " (not a vmalloc address)";
            var a = _busy[i];
            return $" (inside the area 0x{a.Start:x}-0x{a.Start + (nint)a.Size:x})";
        }
    }

    private static string P(nint p) => $"0x{p:x16}";

    /// <summary>vm_unmap_aliases() / purge_vmap_area_lazy(): every lazily freed area becomes free address space.</summary>
    public void PurgeLazy()
    {
        ThrowIfReleased();
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock) PurgeLocked();
    }

    private void PurgeLocked()
    {
        foreach (var q in _quarantine) PurgeQuarantined(q.Start, q.Pages, q.Caller, q.Freer);
        _quarantine.Clear();
        foreach (var (s, e) in _purge.Ranges) _free.Add(s, e);
        _purge.Clear();
        _lazyAreas.Clear();
        _lazyPages = 0;
    }

    /// <summary>Use-after-free writes found in freed areas at their purge.</summary>
    public long UseAfterFreeWrites => Volatile.Read(ref _uafWrites);

    /// <summary>
    /// Ends one freed area's quarantine: reports each page written since the free (in the spirit of KFENCE: the
    /// first byte written, the area, who made it and who freed it), then makes the range reserved space again.
    /// </summary>
    private void PurgeQuarantined(nint start, int pages, CallSite caller, CallSite freer)
    {
        foreach (int i in RetiredMappings.WrittenPages(start, pages))
        {
            nint page = start + ((nint)i << PageShift);
            int at = new ReadOnlySpan<byte>((void*)page, (int)PageSize).IndexOfAnyExcept((byte)0);
            Interlocked.Increment(ref _uafWrites);
            _pa.AddTaint(PageAllocator.TaintBadPage);
            _log.Err("==================================================================\n" +
                $"BUG: KFENCE: use-after-free write in {caller}\n\n" +
                $"Use-after-free write at 0x{page + at:x} (in vmalloc area 0x{start:x}-0x{start + ((nint)pages << PageShift):x}, page {i} of {pages}):\n" +
                $" allocated by {caller}, freed by {freer}; the write was discarded\n" +
                "==================================================================");
        }
        nint r = Libc.Mmap(start, (nuint)pages << PageShift, Libc.ProtNone,
            Libc.MapPrivate | Libc.MapAnonymous | Libc.MapFixed | Libc.MapNoReserve, -1, 0);
        if (r != start) _log.Err($"vmalloc: cannot reserve 0x{start:x} ({pages} pages) again: errno {Marshal.GetLastPInvokeError()}");
    }

    // ================================================================== areas

    /// <summary>__get_vm_area_node() + alloc_vmap_area(): place size + guard bytes, purging once on failure.</summary>
    private Area? GetVmArea(ulong size, VmFlags flags, CallSite caller, Gfp gfp, ulong align = PageSize)
    {
        ulong total = (flags & VmFlags.NoGuard) != 0 ? size : size + PageSize;
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            if (!_free.TryTakeLowest(total, align, out ulong off))
            {
                PurgeLocked();
                if (!_free.TryTakeLowest(total, align, out off))
                {
                    if ((gfp & Gfp.NoWarn) == 0)
                    {
                        long now = _log.NowNs;
                        if (_vmapWarnNs == long.MinValue || now - _vmapWarnNs >= 5_000_000_000L)
                        {
                            _vmapWarnNs = now;
                            _log.Warn($"vmap allocation for size {total} failed: use vmalloc=<size> to increase size");
                        }
                    }
                    return null;
                }
            }
            var area = new Area { Start = _start + (nint)off, Size = total, Flags = flags, Caller = caller };
            int i = ~FindInsert(area.Start);
            _busy.Insert(i, area);
            _highWater = Math.Max(_highWater, off + total);
            return area;
        }
    }

    /// <summary>Gives back the address range of an area that never went live.</summary>
    private void ReleaseArea(Area area)
    {
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            int i = Find(area.Start);
            if (i >= 0 && _busy[i] == area) _busy.RemoveAt(i);
            _free.Add((ulong)(area.Start - _start), (ulong)(area.Start - _start) + area.Size);
        }
    }

    /// <summary>free_vmap_area_noflush(): the range joins the purge list; a purge follows past lazy_max_pages.</summary>
    private void LazyFree(Area area, int mapped, CallSite freer)
    {
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            ulong off = (ulong)(area.Start - _start);
            _purge.Add(off, off + area.Size);
            _lazyAreas.Add((area.Start, area.Start + (nint)area.Size));
            if (mapped > 0) _quarantine.Add((area.Start, mapped, area.Caller, freer));
            _lazyPages += (long)(area.Size >> PageShift);
            if (_lazyPages > _lazyMaxPages) PurgeLocked();
        }
    }

    private void FreePageArray(Area area, CallSite caller)
    {
        nint pages = area.PageArray;
        if (pages == 0) return;
        area.PageArray = 0;
        if (Contains(pages)) Free(pages, true, caller);
        else _slab.Kfree(pages, caller);
    }

    private void SetArrayEntry(nint array, int i, ulong pfn)
    {
        if (_ptrSize == 8) ((ulong*)array)[i] = pfn;
        else ((uint*)array)[i] = (uint)pfn;
    }

    /// <summary>Index of the busy area holding <paramref name="addr"/>, or -1.</summary>
    private int Find(nint addr)
    {
        int i = FindInsert(addr);
        if (i >= 0) return i;
        i = ~i - 1;
        if (i < 0) return -1;
        var a = _busy[i];
        return (nuint)(addr - a.Start) < (nuint)a.Size ? i : -1;
    }

    /// <summary>Binary search by start address: the index when found, else the complement of the insertion point.</summary>
    private int FindInsert(nint addr)
    {
        int lo = 0, hi = _busy.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            nint s = _busy[mid].Start;
            if (s == addr) return mid;
            if (s < addr) lo = mid + 1; else hi = mid - 1;
        }
        return ~lo;
    }

    // ================================================================== mapping

    /// <summary>Maps frames at <paramref name="addr"/>: one host call per run of consecutive frames.</summary>
    private bool MapFrames(nint addr, ReadOnlySpan<int> frames)
    {
        ulong page = (ulong)(addr - _start) >> PageShift;
        int i = 0;
        while (i < frames.Length)
        {
            int run = 1;
            while (i + run < frames.Length && frames[i + run] == frames[i] + run) run++;
            nint at = addr + ((nint)i << PageShift);
            bool mapped = FrameMappings.MapFrames(at, _fd, frames[i], run);
            Interlocked.Increment(ref _mapCalls);
            if (!mapped) return false;
            for (int k = 0; k < run; k++) Volatile.Write(ref _pte[page + (ulong)(i + k)], (uint)(frames[i + k] + 1));
            i += run;
        }
        return true;
    }

    /// <summary>
    /// Unmaps <paramref name="pages"/> pages at <paramref name="addr"/>: the machine's pages are no longer reachable
    /// there, and harmless anonymous pages take their place until the purge (a span still held over the area reads
    /// zeros instead of faulting; what it writes is reported at the purge).
    /// </summary>
    private void UnmapRange(nint addr, int pages)
    {
        if (pages == 0) return;
        ulong page = (ulong)(addr - _start) >> PageShift;
        for (int k = 0; k < pages; k++) Volatile.Write(ref _pte[page + (ulong)k], 0);
        if (!RetiredMappings.MakeHarmless(addr, (nuint)pages << PageShift))
            _log.Err($"vmalloc: cannot unmap 0x{addr:x} ({pages} pages): errno {Marshal.GetLastPInvokeError()}");
    }

    // ================================================================== views and checks

    /// <summary>The busy areas, lowest address first.</summary>
    public VmArea[] Areas()
    {
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            ThrowIfReleased(); // under the lock: the machine's dispose frees the page table under it too
            var r = new VmArea[_busy.Count];
            for (int i = 0; i < r.Length; i++)
            {
                var a = _busy[i];
                r[i] = new VmArea
                {
                    Address = a.Start, Size = a.Size, Flags = a.Flags, NrPages = a.NrPages, MappedPages = a.Mapped,
                    Caller = a.Caller.ToString(), VPages = a.PageArray != 0 && Contains(a.PageArray), Phys = a.Phys,
                    PagesPerNode = _pa.NumaEnabled ? PagesPerNode(a) : [],
                };
            }
            return r;
        }
    }

    /// <summary>The lazily freed ranges waiting for a purge (addresses), merged.</summary>
    public (nint Start, nint End)[] Unpurged()
    {
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock) return _purge.Ranges.Select(r => (_start + (nint)r.Start, _start + (nint)r.End)).ToArray();
    }

    /// <summary>The lazily freed areas one by one, as they were freed (not merged), oldest first.</summary>
    public (nint Start, nint End)[] UnpurgedAreas()
    {
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock) return [.. _lazyAreas];
    }

    /// <summary>The largest free range of the window in bytes.</summary>
    public ulong LargestFree() { LockOrder.Enter(LockRank.Vmalloc, _lock); lock (_lock) return _free.Largest(); }

    /// <summary>The window's page table is gone once the machine is: every entry point throws then.</summary>
    private void ThrowIfReleased()
    {
        if (_pte == null) KernelLife.ThrowDead();
    }

    /// <summary>Unmaps the window (nothing may point into it any more: the finalizer's case).</summary>
    public void Dispose() => Release(retire: false);

    /// <summary>
    /// At the machine's dispose: every page ever placed becomes harmless (spans over live or freed areas read zeros);
    /// the rest was never reachable. The whole window is quarantined before its addresses can be reused.
    /// </summary>
    public void Retire() => Release(retire: true);

    private void Release(bool retire)
    {
        nint s;
        LockOrder.Enter(LockRank.Vmalloc, _lock);
        lock (_lock)
        {
            s = _start;
            if (s == 0 || _pte == null) return;
            NativeMemory.Free(_pte);
            _pte = null;
            _quarantine.Clear();
        }
        if (retire) RetiredMappings.Retire(s, (nuint)_size, (nuint)Math.Min(_highWater, _size));
        else Libc.Munmap(s, (nuint)_size);
    }
}
