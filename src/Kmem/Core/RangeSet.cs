// A set of disjoint address ranges kept sorted and merged: the free-area list of the vmap allocator
// (lowest-address first fit, as find_vmap_lowest_match()) and of the IOVA allocator (highest fit below a
// limit, as alloc_iova()), and the merged list of lazily freed vmap areas. Not thread safe.
namespace Kmem.Core;

/// <summary>Disjoint, sorted, merged half-open ranges [Start, End) of addresses.</summary>
internal sealed class RangeSet
{
    private readonly List<(ulong Start, ulong End)> _r = [];

    /// <summary>The ranges, lowest first.</summary>
    public IReadOnlyList<(ulong Start, ulong End)> Ranges => _r;

    /// <summary>Number of ranges.</summary>
    public int Count => _r.Count;

    /// <summary>Total bytes in the set.</summary>
    public ulong Total { get; private set; }

    /// <summary>Removes every range.</summary>
    public void Clear()
    {
        _r.Clear();
        Total = 0;
    }

    /// <summary>Index of the first range whose end is above <paramref name="addr"/>.</summary>
    private int FirstEndAbove(ulong addr)
    {
        int lo = 0, hi = _r.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_r[mid].End <= addr) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>True when [start, end) overlaps a range of the set.</summary>
    public bool Overlaps(ulong start, ulong end)
    {
        int i = FirstEndAbove(start);
        return i < _r.Count && _r[i].Start < end;
    }

    /// <summary>True when [start, end) lies inside one range of the set.</summary>
    public bool Contains(ulong start, ulong end)
    {
        int i = FirstEndAbove(start);
        return i < _r.Count && _r[i].Start <= start && end <= _r[i].End;
    }

    /// <summary>
    /// Adds [start, end), merging with the neighbours it touches (merge_or_add_vmap_area()).
    /// False, with nothing changed, when it overlaps a range already in the set.
    /// </summary>
    public bool Add(ulong start, ulong end)
    {
        if (end <= start) throw new ArgumentOutOfRangeException(nameof(end), "empty range");
        int i = FirstEndAbove(start);
        if (i < _r.Count && _r[i].Start < end) return false;
        bool left = i > 0 && _r[i - 1].End == start;
        bool right = i < _r.Count && _r[i].Start == end;
        if (left && right)
        {
            _r[i - 1] = (_r[i - 1].Start, _r[i].End);
            _r.RemoveAt(i);
        }
        else if (left) _r[i - 1] = (_r[i - 1].Start, end);
        else if (right) _r[i] = (start, _r[i].End);
        else _r.Insert(i, (start, end));
        Total += end - start;
        return true;
    }

    /// <summary>Takes [start, end) out of the range that holds it whole; false when no range does.</summary>
    public bool Remove(ulong start, ulong end)
    {
        int i = FirstEndAbove(start);
        if (i >= _r.Count || _r[i].Start > start || end > _r[i].End) return false;
        var (s, e) = _r[i];
        if (s == start && e == end) _r.RemoveAt(i);
        else if (s == start) _r[i] = (end, e);
        else if (e == end) _r[i] = (s, start);
        else
        {
            _r[i] = (s, start);
            _r.Insert(i + 1, (end, e));
        }
        Total -= end - start;
        return true;
    }

    /// <summary>
    /// Lowest-address first fit: the lowest <paramref name="align"/>-aligned start of <paramref name="size"/>
    /// bytes inside one range, taken out of the set. <paramref name="align"/> is a power of two.
    /// </summary>
    public bool TryTakeLowest(ulong size, ulong align, out ulong start)
    {
        for (int i = 0; i < _r.Count; i++)
        {
            var (s, e) = _r[i];
            ulong a = (s + align - 1) & ~(align - 1);
            if (a < s || a > e || e - a < size) continue;
            start = a;
            Remove(a, a + size);
            return true;
        }
        start = 0;
        return false;
    }

    /// <summary>
    /// Highest fit below <paramref name="limit"/> (exclusive): the highest <paramref name="align"/>-aligned start
    /// whose range ends at or below the limit (alloc_iova()'s top-down search), taken out of the set.
    /// </summary>
    public bool TryTakeHighest(ulong size, ulong align, ulong limit, out ulong start)
    {
        for (int i = _r.Count - 1; i >= 0; i--)
        {
            var (s, e) = _r[i];
            ulong top = Math.Min(e, limit);
            if (top <= s || top - s < size) continue;
            ulong a = (top - size) & ~(align - 1);
            if (a < s) continue;
            start = a;
            Remove(a, a + size);
            return true;
        }
        start = 0;
        return false;
    }

    /// <summary>The largest range's size (0 when empty).</summary>
    public ulong Largest()
    {
        ulong m = 0;
        foreach (var (s, e) in _r) m = Math.Max(m, e - s);
        return m;
    }
}
