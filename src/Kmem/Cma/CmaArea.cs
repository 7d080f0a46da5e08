// A contiguous-memory-allocator area (struct cma): its bitmap of allocated chunks and cma_alloc() /
// cma_release() as mm/cma.c has them, with ACK 5.10's rescans after busy ranges. While free, the area's
// pages sit in the buddy allocator as MIGRATE_CMA and serve movable allocations; an allocation
// migrates those out of its range (alloc_contig_range()). With Rockchip's CONFIG_CMA_INACTIVE the pages
// stay reserved memory of the area: an allocation takes a free bitmap range directly, a release clears it.
using System.Numerics;
using System.Text;
using Kmem.Core;
using Kmem.Paging;

namespace Kmem;

/// <summary>A CMA area of a booted machine (<c>struct cma</c>).</summary>
public sealed class CmaArea
{
    private PageAllocator? _pa;
    private uint[] _bitmap = [];
    private readonly Lock _lock = new();        // cma->lock

    internal CmaArea(string name, ulong basePfn, ulong count, int orderPerBit)
    {
        Name = name;
        BasePfn = basePfn;
        Count = count;
        OrderPerBit = orderPerBit;
    }

    /// <summary>
    /// True for an inactive area (Rockchip's CONFIG_CMA_INACTIVE, or the <c>inactive</c> property of its reserved-memory
    /// node on the 4.19 BSP): its pages never reach the buddy allocator; cma_alloc() hands out its reserved pages directly.
    /// </summary>
    public bool Inactive { get; init; }

    /// <summary>The node the area was declared for (cma_declare_contiguous_nid()'s nid), -1 for none (NUMA_NO_NODE).</summary>
    public int Node { get; init; } = -1;

    /// <summary>The area's name (<c>cma_get_name()</c>).</summary>
    public string Name { get; }

    /// <summary>First page frame of the area.</summary>
    public ulong BasePfn { get; }

    /// <summary>Pages in the area.</summary>
    public ulong Count { get; }

    /// <summary>Pages per bitmap bit, as a power of two.</summary>
    public int OrderPerBit { get; }

    /// <summary>Physical base address.</summary>
    public ulong Base => BasePfn << 12;

    /// <summary>Size in bytes.</summary>
    public ulong Size => Count << 12;

    /// <summary>Bits in the bitmap (<c>cma_bitmap_maxno()</c>).</summary>
    public int BitmapBits => (int)(Count >> OrderPerBit);

    /// <summary>Pages allocated now (the debugfs <c>used</c> file).</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member that reports state or acts).</exception>
    public ulong Used { get { ThrowIfDead(); LockOrder.Enter(LockRank.CmaArea, _lock); lock (_lock) return (ulong)Weight() << OrderPerBit; } }

    /// <summary>The longest free run in pages (the debugfs <c>maxchunk</c> file).</summary>
    public ulong MaxChunk { get { ThrowIfDead(); LockOrder.Enter(LockRank.CmaArea, _lock); lock (_lock) return (ulong)LongestZeroRun() << OrderPerBit; } }

    private long _allocSuccess, _allocFail;
    private ulong _lastBusyPfn;

    /// <summary>Successful allocations and failed ones (cma_alloc_success / cma_alloc_fail in /proc/vmstat).</summary>
    public long AllocSuccess { get { ThrowIfDead(); return _allocSuccess; } }

    /// <summary>Failed allocations.</summary>
    public long AllocFail { get { ThrowIfDead(); return _allocFail; } }

    /// <summary>The page that made the last busy range fail (the pfn of cma_alloc_busy_retry).</summary>
    public ulong LastBusyPfn { get { ThrowIfDead(); return _lastBusyPfn; } }

    /// <summary>The machine's life once the area is activated (null before: a profile's layout, not yet booted).</summary>
    internal KernelLife? Life => _pa?.Life;

    private void ThrowIfDead() => _pa?.Life.ThrowIfDead();

    /// <summary>How long a busy rescan waits (ACK 5.10 sleeps 100 ms between its up to 5 rescans).</summary>
    internal TimeSpan BusyRetryWait { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>cma_activate_area(): the bitmap, one bit per 2^order_per_bit pages.</summary>
    internal void Activate(PageAllocator pa)
    {
        _pa = pa;
        _bitmap = new uint[(BitmapBits + 31) / 32];
    }

    /// <summary>The bitmap as the debugfs <c>bitmap</c> file shows it (u32 words).</summary>
    public uint[] Bitmap()
    {
        ThrowIfDead();
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock) return (uint[])_bitmap.Clone();
    }

    /// <summary>CONFIG_CMA_ALIGNMENT: the largest alignment order the CMA heap and dma_alloc_contiguous() ask for.</summary>
    public const int ConfigCmaAlignment = 8;

    /// <summary>
    /// The alignment the generic CMA heap and dma_alloc_contiguous() use for <paramref name="size"/> bytes:
    /// min(get_order(size), CONFIG_CMA_ALIGNMENT). Rockchip's RV1106 heap passes 0 instead (back-to-back placement).
    /// </summary>
    public static int HeapAlignment(ulong size)
    {
        return Math.Min(PageAllocator.GetOrder(size), ConfigCmaAlignment);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} [0x{Base:x}-0x{Base + Size - 1:x}]";

    // ================================================================== cma_alloc / cma_release

    /// <summary>
    /// cma_alloc(): <paramref name="count"/> contiguous pages starting on a 2^<paramref name="align"/>-page boundary
    /// (absolute PFN alignment), first fit from the lowest address; busy ranges are cleared and the search goes on
    /// past them. Returns the first page's frame index, or -1 (with the kernel's report unless NOWARN).
    /// </summary>
    internal int Alloc(ulong count, int align, Gfp gfp)
    {
        var pa = _pa ?? throw new InvalidOperationException("CMA area not activated");
        using var life = pa.Life.Enter();                       // migration and zeroing touch memory for long: shutdown waits
        if (count == 0 || _bitmap.Length == 0) return -1;
        int ret = -12;                                           // -ENOMEM
        ulong mask = align > OrderPerBit ? (1UL << (align - OrderPerBit)) - 1 : 0;
        ulong offset = (BasePfn & ((1UL << align) - 1)) >> OrderPerBit;
        ulong bits = ((count + (1UL << OrderPerBit) - 1) & ~((1UL << OrderPerBit) - 1)) >> OrderPerBit;
        ulong maxno = (ulong)BitmapBits;
        if (bits > maxno) { LockOrder.Enter(LockRank.CmaArea, _lock); lock (_lock) _allocFail++; return Fail(count, ret, gfp); }
        int rescans = 0;
        while (true)
        {
            ulong start = 0;
            bool sawBusy = false;
            while (true)
            {
                ulong bitmapNo;
                LockOrder.Enter(LockRank.CmaArea, _lock);
                lock (_lock)
                {
                    bitmapNo = FindNextZeroAreaOff(maxno, start, bits, mask, offset);
                    if (bitmapNo >= maxno) break;
                    SetBits(bitmapNo, bits, true);
                }
                ulong pfn = BasePfn + (bitmapNo << OrderPerBit);
                int idx = (int)(pfn - pa.BasePfn);
                if (Inactive)
                {
                    // Rockchip's CONFIG_CMA_INACTIVE: the pages are reserved memory of the area, handed out directly. A range
                    // whose frames are not all back in the area (reported as bad pages) is passed over like a busy one.
                    if (pa.TakeInactiveCmaRange(idx, (int)count, "cma_alloc", out int badIdx))
                    {
                        LockOrder.Enter(LockRank.CmaArea, _lock);
                        lock (_lock) _allocSuccess++;
                        return idx;
                    }
                    BusyRange(bitmapNo, bits, ContigResult.Busy, pa.BasePfn + (ulong)badIdx, ref ret, ref sawBusy);
                    start = bitmapNo + mask + 1;
                    continue;
                }
                var r = pa.AllocContigRange(idx, idx + (int)count, out ulong busyPfn);
                if (r == ContigResult.Ok)
                {
                    LockOrder.Enter(LockRank.CmaArea, _lock);
                    lock (_lock) _allocSuccess++;
                    return idx;
                }
                BusyRange(bitmapNo, bits, r, busyPfn, ref ret, ref sawBusy);
                start = bitmapNo + mask + 1;                     // try again with a bit different memory target
            }
            // ACK 5.10: after a busy range, up to 5 full rescans with a pause, unless the caller may not wait.
            if (!sawBusy || rescans >= 5 || (gfp & Gfp.NoRetry) != 0 || !gfp.AllowsBlocking()) break;
            rescans++;
            if (BusyRetryWait > TimeSpan.Zero) Thread.Sleep(BusyRetryWait);
        }
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock) _allocFail++;
        return Fail(count, ret, gfp);
    }

    /// <summary>A range that could not be taken: its bits are cleared again and the search goes on past it.</summary>
    private void BusyRange(ulong bitmapNo, ulong bits, ContigResult r, ulong busyPfn, ref int ret, ref bool sawBusy)
    {
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock) SetBits(bitmapNo, bits, false);
        ret = (int)r;
        sawBusy = true;
        _lastBusyPfn = busyPfn;
    }

    private int Fail(ulong count, int ret, Gfp gfp)
    {
        if ((gfp & Gfp.NoWarn) == 0)
        {
            var log = _pa!.Log;
            log.Err($"cma_alloc: {Name}: alloc failed, req-size: {count} pages, ret: {ret}");
            log.Info(ShowAreas());
        }
        return -1;
    }

    /// <summary>cma_debug_show_areas(): the free runs as "pages@bit" joined by '+', then the totals.</summary>
    internal string ShowAreas()
    {
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock)
        {
            var sb = new StringBuilder("number of available pages: ");
            ulong total = 0;
            int nbits = BitmapBits, start = 0;
            while (true)
            {
                int zero = NextBit(start, nbits, false);
                if (zero >= nbits) break;
                int set = NextBit(zero, nbits, true);
                ulong part = (ulong)(set - zero) << OrderPerBit;
                sb.Append(total != 0 ? "+" : "").Append(part).Append('@').Append(zero);
                total += part;
                start = set;
            }
            sb.Append($"=> {total} free of {Count} total pages");
            return sb.ToString();
        }
    }

    /// <summary>
    /// cma_release(): false when the first page is outside the area. A range that runs past the area's end, or that
    /// holds pages this area has not allocated, is reported and raises <see cref="InvalidAddressException"/>.
    /// </summary>
    internal bool Release(int idx, ulong count)
    {
        var pa = _pa!;
        using var life = pa.Life.Enter();
        ulong pfn = pa.BasePfn + (ulong)idx;
        if (pfn < BasePfn || pfn >= BasePfn + Count) return false;
        if (count == 0) return true;
        if (pfn + count > BasePfn + Count)
        {
            pa.Log.Err($"cma_release: {Name}: pfn 0x{pfn:x} + {count} pages runs past the area's end (pfn 0x{BasePfn + Count:x})");
            throw new InvalidAddressException($"cma_release: {count} pages at pfn 0x{pfn:x} run past the end of {Name}");
        }
        ulong first = (pfn - BasePfn) >> OrderPerBit;
        ulong bits = ((pfn - BasePfn + count + (1UL << OrderPerBit) - 1) >> OrderPerBit) - first;
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock)
        {
            for (ulong b = first; b < first + bits; b++)
            {
                if (Test((int)b)) continue;
                ulong bad = BasePfn + (b << OrderPerBit);
                pa.Log.Err($"cma_release: {Name}: pfn 0x{bad:x} was not allocated from this area");
                throw new InvalidAddressException($"cma_release: pfn 0x{bad:x} of {Name} is not allocated (double release?)");
            }
        }
        // With CONFIG_CMA_INACTIVE there is no free_contig_range(): the pages stay the area's.
        if (Inactive) pa.ReturnInactiveCmaRange(idx, (int)count, "cma_release");
        else pa.FreeContigRange(idx, (int)count);
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock) SetBits(first, bits, false);
        return true;
    }

    // ================================================================== bitmap

    private bool Test(int bit) => (_bitmap[bit >> 5] & (1u << (bit & 31))) != 0;

    private void SetBits(ulong start, ulong n, bool value)
    {
        for (ulong b = start; b < start + n; b++)
        {
            if (value) _bitmap[b >> 5] |= 1u << (int)(b & 31);
            else _bitmap[b >> 5] &= ~(1u << (int)(b & 31));
        }
    }

    /// <summary>The first bit at or after <paramref name="start"/> equal to <paramref name="set"/>, or <paramref name="nbits"/>.</summary>
    private int NextBit(int start, int nbits, bool set)
    {
        for (int b = start; b < nbits; b++)
        {
            uint w = set ? _bitmap[b >> 5] : ~_bitmap[b >> 5];
            w &= uint.MaxValue << (b & 31);
            if (w == 0) { b |= 31; continue; }
            int r = (b & ~31) + BitOperations.TrailingZeroCount(w);
            return Math.Min(r, nbits);
        }
        return nbits;
    }

    /// <summary>
    /// bitmap_find_next_zero_area_off(): the first index at or after <paramref name="start"/> whose index plus
    /// <paramref name="offset"/> is a multiple of mask + 1 and that starts <paramref name="n"/> zero bits.
    /// </summary>
    private ulong FindNextZeroAreaOff(ulong size, ulong start, ulong n, ulong mask, ulong offset)
    {
        while (true)
        {
            ulong index = (ulong)NextBit((int)Math.Min(start, size), (int)size, false);
            // __ALIGN_MASK(index + offset, mask) - offset
            index = ((index + offset + mask) & ~mask) - offset;
            ulong end = index + n;
            if (end > size) return end;
            int i = NextBit((int)index, (int)end, true);
            if ((ulong)i < end)
            {
                start = (ulong)i + 1;
                continue;
            }
            return index;
        }
    }

    private int Weight()
    {
        int w = 0;
        foreach (uint x in _bitmap) w += BitOperations.PopCount(x);
        return w;
    }

    private int LongestZeroRun()
    {
        int best = 0, nbits = BitmapBits, start = 0;
        while (true)
        {
            int zero = NextBit(start, nbits, false);
            if (zero >= nbits) return best;
            int set = NextBit(zero, nbits, true);
            best = Math.Max(best, set - zero);
            start = set;
        }
    }

    /// <summary>
    /// Invariants: every set bit covers allocated pages; every clear bit covers pages that are not allocated from this
    /// area. With CONFIG_CMA_INACTIVE no page of the area is ever in the buddy allocator, and a clear bit's pages are
    /// reserved only (back in the area).
    /// </summary>
    internal List<string> CheckInvariants()
    {
        var errors = new List<string>();
        var pa = _pa;
        if (pa is null) return errors;
        bool inactive = Inactive;
        LockOrder.Enter(LockRank.CmaArea, _lock);
        lock (_lock)
        {
            for (int b = 0; b < BitmapBits; b++)
            {
                bool set = Test(b);
                for (ulong k = 0; k < 1UL << OrderPerBit; k++)
                {
                    int idx = (int)(BasePfn + ((ulong)b << OrderPerBit) + k - pa.BasePfn);
                    ulong pfn = pa.BasePfn + (ulong)idx;
                    bool inBuddy = pa.IsFreeOrPcp(idx);
                    if (inactive && inBuddy) { errors.Add($"cma {Name}: pfn 0x{pfn:x} of an inactive area is in the buddy allocator"); break; }
                    if (set && inBuddy) { errors.Add($"cma {Name}: bit {b} is set but pfn 0x{pfn:x} is free"); break; }
                    if (inactive && !set && !pa.IsReservedOnly(idx)) { errors.Add($"cma {Name}: bit {b} is clear but pfn 0x{pfn:x} is not back in the area"); break; }
                }
            }
        }
        return errors;
    }
}
