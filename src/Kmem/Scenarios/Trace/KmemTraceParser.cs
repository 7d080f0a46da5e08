// Parses one line of a kmem trace, as ftrace's trace file, trace-cmd report and perf script print the kmem events
// from Linux 2.6.3x to 6.x: kmalloc(_node), kmem_cache_alloc(_node), kfree, kmem_cache_free, mm_page_alloc,
// mm_page_free (mm_page_free_direct before 3.3), mm_page_free_batched (mm_pagevec_free before 3.3). Fields are
// found by name wherever they are (a missing blank between two fields is tolerated); pointers and PFNs are kept
// as the numbers the trace printed (hashed pointers included).
using System.Globalization;

namespace Kmem;

/// <summary>What a line is when it is no event to replay.</summary>
public enum KmemTraceLineKind
{
    /// <summary>A kmem event (see <see cref="KmemTraceEvent"/>).</summary>
    Event,
    /// <summary>Empty, a comment, a header or a line with no event name (perf report lines, trace-cmd's banners).</summary>
    NotAnEvent,
    /// <summary>Another event (mm_page_pcpu_drain, sched_switch …).</summary>
    OtherEvent,
    /// <summary>A kmem event whose fields are cut short or unreadable.</summary>
    Truncated,
}

/// <summary>Parses kmem trace lines (no allocation beyond the strings of the fields it keeps).</summary>
public static class KmemTraceParser
{
    private static readonly (string Name, KmemTraceEventKind Kind)[] s_events =
    [
        ("kmalloc_node", KmemTraceEventKind.Kmalloc), ("kmalloc", KmemTraceEventKind.Kmalloc),
        ("kmem_cache_alloc_node", KmemTraceEventKind.CacheAlloc), ("kmem_cache_alloc", KmemTraceEventKind.CacheAlloc),
        ("kmem_cache_free", KmemTraceEventKind.CacheFree), ("kfree", KmemTraceEventKind.Kfree),
        ("mm_page_alloc", KmemTraceEventKind.PageAlloc), ("mm_page_free_batched", KmemTraceEventKind.PageFreeBatched),
        ("mm_pagevec_free", KmemTraceEventKind.PageFreeBatched), ("mm_page_free_direct", KmemTraceEventKind.PageFree),
        ("mm_page_free", KmemTraceEventKind.PageFree),
    ];

    private static readonly string[] s_keys = ["call_site", "ptr", "bytes_req", "bytes_alloc", "gfp_flags", "node", "accounted", "name", "page", "pfn", "order", "migratetype"];

    /// <summary>Parses one line; <paramref name="ev"/> is set when the result is <see cref="KmemTraceLineKind.Event"/>.</summary>
    public static KmemTraceLineKind Parse(string line, out KmemTraceEvent ev, out string? otherEvent)
    {
        ev = default;
        otherEvent = null;
        var s = line.AsSpan().Trim();
        if (s.Length == 0 || s[0] == '#' || s.StartsWith("//")) return KmemTraceLineKind.NotAnEvent;
        // The event name is the word before the first ": " that is followed by fields ("name=").
        int colon = FindEventColon(s);
        if (colon < 0) return KmemTraceLineKind.NotAnEvent;
        int start = colon;
        while (start > 0 && (char.IsLetterOrDigit(s[start - 1]) || s[start - 1] == '_')) start--;
        var name = s[start..colon];
        if (start >= 5 && s[(start - 5)..start].SequenceEqual("kmem:")) { }                 // perf script: kmem:kmalloc:
        KmemTraceEventKind? kind = null;
        string? evName = null;
        foreach (var (n, k) in s_events)
            if (name.SequenceEqual(n)) { kind = k; evName = n; break; }
        if (kind is null)
        {
            otherEvent = name.ToString();
            return KmemTraceLineKind.OtherEvent;
        }
        var head = s[..start];
        var fields = s[(colon + 1)..];
        double? ts = Timestamp(head);
        int? cpu = Cpu(head);
        ulong? ptr = Hex(Field(fields, "ptr"));
        long? req = Dec(Field(fields, "bytes_req"));
        long? alloc = Dec(Field(fields, "bytes_alloc"));
        var gfp = Field(fields, "gfp_flags");
        int? node = Int(Field(fields, "node"));
        var cache = Field(fields, "name");
        ulong? pfn = Num(Field(fields, "pfn"));
        int? order = Int(Field(fields, "order"));
        int? mt = Int(Field(fields, "migratetype"));
        ev = new KmemTraceEvent(kind.Value, evName!, ts, cpu, ptr, req, alloc, gfp.IsEmpty ? null : gfp.ToString(), node,
            cache.IsEmpty ? null : cache.ToString(), pfn, order, mt);
        bool complete = kind switch
        {
            KmemTraceEventKind.Kmalloc or KmemTraceEventKind.CacheAlloc => ptr is not null && req is not null && alloc is not null,
            KmemTraceEventKind.Kfree or KmemTraceEventKind.CacheFree => ptr is not null || IsNullPtr(Field(fields, "ptr")),
            KmemTraceEventKind.PageAlloc => pfn is not null && order is not null,
            _ => pfn is not null,
        };
        if (kind == KmemTraceEventKind.Kfree && ptr is null && IsNullPtr(Field(fields, "ptr"))) ev = ev with { Ptr = 0 };
        return complete ? KmemTraceLineKind.Event : KmemTraceLineKind.Truncated;
    }

    private static bool IsNullPtr(ReadOnlySpan<char> v) => v.SequenceEqual("(null)") || v.SequenceEqual("0000000000000000") || v.SequenceEqual("0x0");

    /// <summary>The longest "(symbol+offset)" looked for between an event name and its fields.</summary>
    private const int MaxSymbol = 512;

    private static int FindEventColon(ReadOnlySpan<char> s)
    {
        for (int i = 0; i + 1 < s.Length; i++)
        {
            if (s[i] != ':' || (s[i + 1] != ' ' && s[i + 1] != '\t')) continue;
            var rest = s[(i + 1)..].TrimStart();
            // perf script puts "(symbol+off)" between the event and its fields. Each look is bounded (the symbol's
            // length, the first word), so that a long line of ": " is read in linear time.
            if (rest.Length > 0 && rest[0] == '(')
            {
                int close = rest[..Math.Min(rest.Length, MaxSymbol)].IndexOf(')');
                if (close > 0) rest = rest[(close + 1)..].TrimStart();
            }
            int sp = rest.IndexOfAny(' ', '\t');
            int eq = (sp < 0 ? rest : rest[..sp]).IndexOf('=');
            if (eq > 0) return i;
        }
        return -1;
    }

    /// <summary>The text of a field: after "key=" up to a blank or the next known key glued on.</summary>
    private static ReadOnlySpan<char> Field(ReadOnlySpan<char> fields, string key)
    {
        int at = 0;
        while (true)
        {
            int i = fields[at..].IndexOf(key);
            if (i < 0) return default;
            i += at;
            int after = i + key.Length;
            bool boundary = i == 0 || !(char.IsLetterOrDigit(fields[i - 1]) || fields[i - 1] == '_') || char.IsDigit(fields[i - 1]);
            if (after < fields.Length && fields[after] == '=' && boundary)
            {
                var v = fields[(after + 1)..];
                if (v.TrimStart().StartsWith("(null)")) return "(null)";        // kfree's "ptr=          (null)"
                int end = v.IndexOfAny(' ', '\t');
                if (end >= 0) v = v[..end];
                // A key glued to the value ("bytes_req=56bytes_alloc=64").
                foreach (var k in s_keys)
                {
                    int g = v.IndexOf(k);
                    if (g > 0 && g + k.Length < v.Length && v[g + k.Length] == '=') v = v[..g];
                }
                return v;
            }
            at = after;
        }
    }

    private static double? Timestamp(ReadOnlySpan<char> head)
    {
        // The last "digits.digits:" before the event name.
        var t = head.TrimEnd();
        if (t.Length > 0 && t[^1] == ':') t = t[..^1];
        int sp = t.LastIndexOfAny(' ', '\t');
        var w = sp >= 0 ? t[(sp + 1)..] : t;
        return w.Contains('.') && double.TryParse(w, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : null;
    }

    private static int? Cpu(ReadOnlySpan<char> head)
    {
        int o = head.IndexOf('[');
        if (o < 0) return null;
        int c = head[o..].IndexOf(']');
        return c > 1 && int.TryParse(head[(o + 1)..(o + c)], out int cpu) ? cpu : null;
    }

    private static long? Dec(ReadOnlySpan<char> v)
    {
        if (v.IsEmpty) return null;
        if (v.StartsWith("0x")) return long.TryParse(v[2..], NumberStyles.HexNumber, null, out long h) ? h : null;
        return long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long d) ? d : null;
    }

    /// <summary>A small field (node, order, migratetype); a value beyond an int is unreadable, not wrapped.</summary>
    private static int? Int(ReadOnlySpan<char> v) => Dec(v) is long d && d is >= int.MinValue and <= int.MaxValue ? (int)d : null;

    /// <summary>A pointer: hex with or without 0x.</summary>
    private static ulong? Hex(ReadOnlySpan<char> v)
    {
        if (v.IsEmpty || IsNullPtr(v)) return null;
        if (v.StartsWith("0x")) v = v[2..];
        return ulong.TryParse(v, NumberStyles.HexNumber, null, out ulong p) ? p : null;
    }

    /// <summary>A PFN: decimal before 6.x, 0x-prefixed hex since.</summary>
    private static ulong? Num(ReadOnlySpan<char> v)
    {
        if (v.IsEmpty) return null;
        if (v.StartsWith("0x")) return ulong.TryParse(v[2..], NumberStyles.HexNumber, null, out ulong h) ? h : null;
        return ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out ulong d) ? d : null;
    }
}
