// drm_mm: the range allocator DRM uses for GEM mmap offsets (drm_vma_offset_manager) and Rockchip uses for
// its IOMMU address space. Nodes are placed best fit (DRM_MM_INSERT_BEST: the smallest hole that holds the
// node, at the hole's start; the lowest such hole on a tie); drm_mm_print's dump is the debugfs mm_dump.
using System.Text;
using Kmem.Core;

namespace Kmem.Drm;

/// <summary>A range allocator over [start, start + size) in units the caller chooses (pages or bytes).</summary>
internal sealed class DrmMm
{
    private readonly SortedDictionary<ulong, ulong> _used = [];     // node start → size
    private readonly Lock _lock = new();

    public DrmMm(ulong start, ulong size)
    {
        Start = start;
        Size = size;
    }

    public ulong Start { get; }
    public ulong Size { get; }

    /// <summary>Nodes in use.</summary>
    public int Count { get { LockOrder.Enter(LockRank.DrmMm, _lock); lock (_lock) return _used.Count; } }

    /// <summary>Units in use.</summary>
    public ulong Used { get { LockOrder.Enter(LockRank.DrmMm, _lock); lock (_lock) return _used.Values.Aggregate(0UL, (a, b) => a + b); } }

    /// <summary>The holes between the nodes, lowest first.</summary>
    private IEnumerable<(ulong Start, ulong Size)> Holes()
    {
        ulong at = Start;
        foreach (var (s, n) in _used)
        {
            if (s > at) yield return (at, s - at);
            at = s + n;
        }
        if (Start + Size > at) yield return (at, Start + Size - at);
    }

    /// <summary>drm_mm_insert_node_generic(…, DRM_MM_INSERT_BEST) with an alignment; false when no hole fits.</summary>
    public bool TryInsert(ulong size, ulong alignment, out ulong start)
    {
        start = 0;
        if (size == 0) return false;
        LockOrder.Enter(LockRank.DrmMm, _lock);
        lock (_lock)
        {
            ulong bestSize = ulong.MaxValue;
            bool found = false;
            foreach (var (hs, hn) in Holes())
            {
                ulong a = alignment > 1 ? (hs + alignment - 1) / alignment * alignment : hs;
                if (a - hs + size > hn || hn >= bestSize) continue;
                bestSize = hn;
                start = a;
                found = true;
            }
            if (found) _used.Add(start, size);
            return found;
        }
    }

    /// <summary>drm_mm_remove_node(); false when no node starts there.</summary>
    public bool Remove(ulong start)
    {
        LockOrder.Enter(LockRank.DrmMm, _lock);
        lock (_lock) return _used.Remove(start);
    }

    /// <summary>The node that contains <paramref name="at"/>: its start and size, or false.</summary>
    public bool TryFind(ulong at, out ulong start, out ulong size)
    {
        LockOrder.Enter(LockRank.DrmMm, _lock);
        lock (_lock)
            foreach (var (s, n) in _used)
                if (at >= s && at < s + n) { start = s; size = n; return true; }
        start = size = 0;
        return false;
    }

    /// <summary>drm_mm_print(): each hole and node as "start-end: size: free|used", then the totals; figures shifted left by <paramref name="shift"/> (pages to bytes).</summary>
    public string Print(int shift = 0)
    {
        var sb = new StringBuilder();
        ulong used = 0, free = 0;
        LockOrder.Enter(LockRank.DrmMm, _lock);
        lock (_lock)
        {
            ulong at = Start;
            void Hole(ulong s, ulong e)
            {
                if (e <= s) return;
                sb.Append($"0x{s << shift:x16}-0x{e << shift:x16}: {(e - s) << shift}: free\n");
                free += e - s;
            }
            foreach (var (s, n) in _used)
            {
                Hole(at, s);
                sb.Append($"0x{s << shift:x16}-0x{(s + n) << shift:x16}: {n << shift}: used\n");
                used += n;
                at = s + n;
            }
            Hole(at, Start + Size);
        }
        sb.Append($"total: {(used + free) << shift}, used {used << shift} free {free << shift}\n");
        return sb.ToString();
    }
}
