// memblock, the boot-time allocator: the memory banks and the reserved regions before the page allocator
// exists. memblock_reserve() marks a range; memblock_alloc_range() finds the highest free aligned range below a
// limit (top-down, as every architecture Kmem models allocates at boot) and reserves it. The boot plan
// (MemoryLayout) runs its steps on one of these in the kernel's order, so each allocation lands where the
// earlier ones leave room.
namespace Kmem.Boot;

/// <summary>One reserved region of memblock, with the name of what reserved it.</summary>
internal readonly record struct MemblockRegion(ulong Base, ulong End, string Name)
{
    public ulong Size => End - Base;
}

/// <summary>The memblock allocator of one boot: memory banks and reserved regions.</summary>
internal sealed class Memblock
{
    private readonly (ulong Base, ulong End)[] _memory;
    private readonly List<MemblockRegion> _reserved = [];

    public Memblock(IEnumerable<(ulong Base, ulong End)> memory)
    {
        _memory = memory.OrderBy(m => m.Base).ToArray();
    }

    /// <summary>The memory banks, lowest first.</summary>
    public IReadOnlyList<(ulong Base, ulong End)> Memory => _memory;

    /// <summary>The reserved regions in the order they were reserved.</summary>
    public IReadOnlyList<MemblockRegion> Reserved => _reserved;

    /// <summary>memblock_reserve(): marks [base, base+size) reserved (overlaps with earlier regions are allowed, as in the kernel).</summary>
    public void Reserve(ulong @base, ulong size, string name)
    {
        if (size == 0) return;
        _reserved.Add(new MemblockRegion(@base, @base + size, name));
    }

    /// <summary>
    /// memblock_free(): gives back a range reserved earlier (the per-CPU setup frees its alloc_info page this way). Only a
    /// region reserved exactly so is removed, which is all the boot steps need.
    /// </summary>
    public void Free(ulong @base, ulong size)
    {
        int i = _reserved.FindIndex(r => r.Base == @base && r.Size == size);
        if (i < 0) throw new InvalidOperationException($"memblock_free: 0x{@base:x}+0x{size:x} was not reserved as one region");
        _reserved.RemoveAt(i);
    }

    /// <summary>memblock.current_limit: where memblock_alloc() starts looking, top-down (paging_init() sets it to the end of lowmem).</summary>
    public ulong CurrentLimit { get; set; } = ulong.MaxValue;

    /// <summary>
    /// memblock_alloc(): <paramref name="size"/> bytes aligned to <paramref name="align"/>, top-down below
    /// <see cref="CurrentLimit"/>; the kernel panics when nothing fits, which here is a <see cref="ProfileException"/> on the RAM.
    /// </summary>
    public ulong Alloc(ulong size, ulong align, string name)
    {
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "memblock_alloc of 0 bytes");
        return AllocRange(size, align, 0, CurrentLimit, name)
            ?? throw new ProfileException("dram", $"memblock: no room for {name} ({size} bytes aligned to {align}) below 0x{Math.Min(CurrentLimit, _memory[^1].End):x}");
    }

    /// <summary>
    /// The pages memblock_free_all() keeps back: every page any reserved region touches (it frees only whole free pages),
    /// counted once, inside the memory banks.
    /// </summary>
    public long ReservedPages(int pageShift)
    {
        var pages = new List<(ulong S, ulong E)>();
        foreach (var r in _reserved)
            foreach (var m in _memory)
            {
                ulong s = Math.Max(r.Base, m.Base), e = Math.Min(r.End, m.End);
                if (e > s) pages.Add((s >> pageShift, (e + (1UL << pageShift) - 1) >> pageShift));
            }
        long total = 0;
        ulong end = 0;
        foreach (var (s, e) in pages.OrderBy(x => x.S))
        {
            ulong from = Math.Max(s, end);
            if (e > from) total += (long)(e - from);
            end = Math.Max(end, e);
        }
        return total;
    }

    /// <summary>memblock_is_region_reserved(): true when any byte of the range is reserved.</summary>
    public bool IsReserved(ulong @base, ulong size) => _reserved.Any(r => @base < r.End && r.Base < @base + size);

    /// <summary>True when the whole range lies inside one memory bank.</summary>
    public bool IsMemory(ulong @base, ulong size) => _memory.Any(m => @base >= m.Base && @base + size <= m.End && @base + size >= @base);

    /// <summary>
    /// memblock_alloc_range() with memblock_set_bottom_up(true): the lowest <paramref name="align"/>-aligned free range of
    /// <paramref name="size"/> bytes inside [<paramref name="start"/>, <paramref name="end"/>) within one bank, reserved under
    /// <paramref name="name"/>; null when none fits.
    /// </summary>
    public ulong? AllocRangeBottomUp(ulong size, ulong align, ulong start, ulong end, string name)
    {
        if (size == 0 || align == 0 || (align & (align - 1)) != 0) return null;
        foreach (var bank in _memory)
        {
            ulong lo = Math.Max(bank.Base, start), top = Math.Min(bank.End, end);
            ulong candidate = (lo + align - 1) & ~(align - 1);
            while (candidate >= lo && candidate + size <= top && candidate + size > candidate)
            {
                ulong c = candidate;
                ulong? highestClashEnd = null;
                foreach (var r in _reserved)
                    if (c < r.End && r.Base < c + size && (highestClashEnd is null || r.End > highestClashEnd)) highestClashEnd = r.End;
                if (highestClashEnd is null)
                {
                    Reserve(candidate, size, name);
                    return candidate;
                }
                candidate = (highestClashEnd.Value + align - 1) & ~(align - 1);
            }
        }
        return null;
    }

    /// <summary>
    /// memblock_alloc_range(): the highest <paramref name="align"/>-aligned free range of <paramref name="size"/> bytes inside
    /// [<paramref name="start"/>, <paramref name="end"/>) within one bank, reserved under <paramref name="name"/>; null when none fits.
    /// </summary>
    public ulong? AllocRange(ulong size, ulong align, ulong start, ulong end, string name)
    {
        if (size == 0 || align == 0 || (align & (align - 1)) != 0) return null;
        for (int i = _memory.Length - 1; i >= 0; i--)
        {
            var bank = _memory[i];
            ulong lo = Math.Max(bank.Base, start), top = Math.Min(bank.End, end);
            if (top < lo || top - lo < size) continue;
            ulong candidate = (top - size) & ~(align - 1);
            while (candidate >= lo && candidate + size <= top)
            {
                ulong c = candidate;
                ulong? lowestClash = null;
                foreach (var r in _reserved)
                    if (c < r.End && r.Base < c + size && (lowestClash is null || r.Base < lowestClash)) lowestClash = r.Base;
                if (lowestClash is null)
                {
                    Reserve(candidate, size, name);
                    return candidate;
                }
                if (lowestClash.Value < lo + size) break;   // no room below the clash in this bank
                candidate = (lowestClash.Value - size) & ~(align - 1);
            }
        }
        return null;
    }
}
