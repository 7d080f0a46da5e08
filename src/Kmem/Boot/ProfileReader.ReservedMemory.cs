// The profile keys of a device-tree reserved-memory node placed at boot: its alignment, its alloc-ranges windows and its
// position among the /reserved-memory children, which orders the kernel's handling of the nodes (ReservedMemoryInit).
using System.Text.Json;

namespace Kmem.Boot;

internal static partial class ProfileReader
{
    /// <summary>
    /// <c>"alignment"</c> (a power of two) and <c>"alloc_ranges"</c> (windows <c>{ "base", "size" }</c>, none empty) of an
    /// entry; only an entry placed at boot (<paramref name="dynamic"/>) may carry them, as only __reserved_mem_alloc_size()
    /// reads them.
    /// </summary>
    private static (ulong Alignment, IReadOnlyList<AllocRange> Ranges) DynamicPlacement(JsonElement e, string p, bool dynamic)
    {
        bool hasAlign = e.TryGetProperty("alignment", out _), hasRanges = e.TryGetProperty("alloc_ranges", out _);
        if (!dynamic && (hasAlign || hasRanges))
            throw new ProfileException(p, "alignment and alloc_ranges apply only to a region placed at boot (\"base\": \"auto\")");
        ulong align = Size(e, "alignment", p, required: false) ?? 0;
        if (hasAlign && !IsPow2(align)) throw new ProfileException($"{p}.alignment", $"0x{align:x} is not a power of two");
        var ranges = new List<AllocRange>();
        if (Arr(e, "alloc_ranges", required: false) is { } arr)
        {
            int k = 0;
            foreach (var w in arr.EnumerateArray())
            {
                string wp = $"{p}.alloc_ranges[{k}]";
                Obj(w, wp);
                Keys(w, wp, "base", "size");
                ulong wb = Size(w, "base", wp, required: true)!.Value, ws = Size(w, "size", wp, required: true)!.Value;
                if (ws == 0) throw new ProfileException($"{wp}.size", "must not be zero");
                ranges.Add(new AllocRange(wb, ws));
                k++;
            }
            if (k == 0) throw new ProfileException($"{p}.alloc_ranges", "must hold at least one window");
        }
        return (align, ranges.Count == 0 ? Array.Empty<AllocRange>() : ranges.ToArray());
    }

    /// <summary><c>"dt_order"</c>: the node's position among the children of /reserved-memory (0 on), or -1 when not given.</summary>
    private static int DtOrderKey(JsonElement e, string p)
    {
        if (!e.TryGetProperty("dt_order", out var v)) return -1;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0 || n > 65535)
            throw new ProfileException($"{p}.dt_order", "must be a whole number 0..65535 (the node's position under /reserved-memory)");
        return n;
    }
}
