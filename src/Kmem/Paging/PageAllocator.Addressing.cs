// The page allocator's addressing (PFN ↔ frame index ↔ zone, the linear map and where HighMem begins) and its
// GFP policy (gfp_zone(): which zone a request starts from, for every combination of the zone modifiers).
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    // ================================================================== addressing

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ZoneIndexOfPfn(ulong pfn)
    {
        var zones = Zones;
        for (int i = zones.Length - 1; i >= 0; i--)
            if (pfn >= zones[i].StartPfn && pfn < zones[i].EndPfn) return i;
        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Zone? ZoneOfIdx(int idx) { int z = ZoneIndexOfPfn(BasePfn + (ulong)idx); return z < 0 ? null : Zones[z]; }

    /// <summary>pfn_valid(): the PFN lies in a memory bank.</summary>
    public bool PfnValid(ulong pfn)
    {
        foreach (var b in _settings.Memory) if (pfn >= b.Start && pfn < b.End) return true;
        return false;
    }

    public ref PageFrame Frame(int idx) => ref _f[idx];

    /// <summary>
    /// The frame's bytes in the host's mapping of the whole DRAM span. For lowmem this is the kernel's linear map
    /// (<c>page_address()</c>); for a HighMem frame it is the simulator's own view of physical memory, which the
    /// kernel reaches only through kmap: use it to clear or copy a frame, never hand it out (see <see cref="LinearAddress(int)"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint IdxToVirt(int idx) => _linear + ((nint)idx << PhysicalMemory.PageShift);

    /// <summary>
    /// The first frame index of ZONE_HIGHMEM (<c>max_low_pfn</c> from the span's base), or <see cref="int.MaxValue"/>
    /// when the machine has no high memory. Frames from here on are outside the linear map.
    /// </summary>
    public int HighStartIdx { get; }

    /// <summary><c>PageHighMem()</c> by frame index.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsHighMem(int idx) => idx >= HighStartIdx;

    /// <summary>The frame's linear-map address, or 0 for a HighMem frame (it has none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint LinearAddress(int idx) => idx < HighStartIdx ? IdxToVirt(idx) : 0;

    /// <summary>
    /// The linear-map address of <paramref name="pages"/> consecutive frames from <paramref name="idx"/>, or 0 when any
    /// of them is HighMem: what a physically contiguous buffer may hand out as its kernel address (a caller that gets 0
    /// maps the pages instead, as the kernel's page_address() NULL sends it to vmap or kmap).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint LinearAddress(int idx, int pages) => (long)idx + pages <= HighStartIdx ? IdxToVirt(idx) : 0;

    /// <summary>The end of the linear map in bytes from the span's base (<c>high_memory - PAGE_OFFSET</c>), for address checks.</summary>
    public ulong LinearBytes => HighStartIdx == int.MaxValue ? (ulong)_frames.Count << PhysicalMemory.PageShift : (ulong)HighStartIdx << PhysicalMemory.PageShift;

    // ================================================================== GFP → zone

    private void BuildGfpZoneTable()
    {
        int Opt(ZoneType t, ZoneType fallback)
        {
            for (int i = 0; i < Zones.Length; i++) if (Zones[i].Type == t) return i;
            for (int i = 0; i < Zones.Length; i++) if (Zones[i].Type == fallback) return i;
            return -1;
        }
        int normal = Opt(ZoneType.Normal, ZoneType.Normal);
        int dma = Opt(ZoneType.Dma, ZoneType.Normal);
        int dma32 = Opt(ZoneType.Dma32, ZoneType.Normal);
        int high = Opt(ZoneType.HighMem, ZoneType.Normal);
        int movable = Opt(ZoneType.Movable, ZoneType.HighMem);
        if (movable < 0) movable = high;
        // GFP_ZONE_TABLE / GFP_ZONE_BAD: every combination of the zone bits
        for (int b = 0; b < ZoneBitCombinations; b++)
        {
            var zb = (Gfp)b;
            bool d = (zb & Gfp.Dma) != 0, h = (zb & Gfp.HighMem) != 0, d32 = (zb & Gfp.Dma32) != 0, m = (zb & Gfp.Movable) != 0;
            int zones = (d ? 1 : 0) + (h ? 1 : 0) + (d32 ? 1 : 0);
            _gfpZoneTable[b] = zones > 1 ? -1
                : d ? dma : d32 ? dma32 : h ? (m ? movable : high) : normal;
        }
    }

    /// <summary>gfp_zone(): the highest zone index the request may use, or -1 for an invalid combination.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GfpZone(Gfp gfp) => _gfpZoneTable[(int)(gfp & GfpFlags.ZoneMask)];
}
