// Readers of the other /proc files of a snapshot: zoneinfo (zone spans, sizes and free counts), meminfo, slabinfo,
// vmallocinfo, cmdline and version, in the formats of 3.10 to 6.x. Each keeps the line numbers it read from, so that
// contradictions can be reported line by line; malformed input is a ProcSnapshotException naming the file and line.
using System.Globalization;
using System.Text.RegularExpressions;
using Kmem.Core;
using static Kmem.Scenarios.ProcSnapshots.FreeListFiles;

namespace Kmem.Scenarios.ProcSnapshots;

/// <summary>One zone of zoneinfo: the numbers Kmem imports, each with its line.</summary>
internal sealed class ZoneInfoZone(int node, string zone, int line)
{
    public int Node { get; } = node;
    public string Zone { get; } = zone;
    public int Line { get; } = line;
    /// <summary>"pages free", "spanned", "present", "managed", "start_pfn", "nr_free_pages", "nr_free_cma", "cma".</summary>
    public Dictionary<string, (long Value, int Line)> Fields { get; } = [];
    public long? Get(string key) => Fields.TryGetValue(key, out var v) ? v.Value : null;
}

/// <summary>One slabinfo row.</summary>
internal sealed record SlabRow(string Name, long ActiveObjs, long NumObjs, int ObjSize, int ObjPerSlab, int PagesPerSlab, long ActiveSlabs, long NumSlabs, int Line);

/// <summary>One vmallocinfo row.</summary>
internal sealed record VmallocRow(ulong Start, ulong End, long Size, string Caller, string Rest, int Line);

internal static partial class StateFiles
{
    [GeneratedRegex(@"^Node\s+(\d+),\s*zone\s+(\S+)$")]
    private static partial Regex ZoneHeader();

    [GeneratedRegex(@"^([^:]+):\s+(\d+)(\s+kB)?$")]
    private static partial Regex MemInfoLine();

    [GeneratedRegex(@"^0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)\s+(\d+)\s*(.*)$")]
    private static partial Regex VmallocLine();

    [GeneratedRegex(@"^Linux version ([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(\S*)")]
    private static partial Regex VersionLine();

    private static readonly string[] s_zoneKeys = ["spanned", "present", "managed", "nr_free_pages", "nr_free_cma", "cma", "min", "low", "high"];

    /// <summary>Parses /proc/zoneinfo: the zone headers and, per zone, the size and free-count lines (others are skipped).</summary>
    public static IReadOnlyList<ZoneInfoZone> ParseZoneInfo(string text, string file = "zoneinfo")
    {
        ArgumentNullException.ThrowIfNull(text);
        var zones = new List<ZoneInfoZone>();
        ZoneInfoZone? cur = null;
        foreach (var (no, raw) in Lines(text))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith("Node ", StringComparison.Ordinal))
            {
                var m = ZoneHeader().Match(line);
                if (!m.Success) throw new ProcSnapshotException(file, no, $"not a zone header: '{Short(line)}'");
                int node = ParseNode(file, no, m.Groups[1].Value);
                if (zones.Any(z => z.Node == node && z.Zone == m.Groups[2].Value)) throw new ProcSnapshotException(file, no, $"node {node} zone {m.Groups[2].Value} again");
                cur = new ZoneInfoZone(node, m.Groups[2].Value, no);
                zones.Add(cur);
                continue;
            }
            if (cur is null) throw new ProcSnapshotException(file, no, $"a line before the first zone header: '{Short(line)}'");
            var t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string key; string val;
            if (t.Length >= 3 && t[0] == "pages" && t[1] == "free") { key = "pages free"; val = t[2]; }
            else if (t[0] == "start_pfn:") { if (t.Length != 2) throw new ProcSnapshotException(file, no, "start_pfn: without one value"); key = "start_pfn"; val = t[1]; }
            else if (t.Length == 2 && s_zoneKeys.Contains(t[0])) { key = t[0]; val = t[1]; }
            else continue;   // stats, protection, pagesets, per-CPU lines: not imported
            if (cur.Fields.ContainsKey(key)) continue; // "high" also names a pageset field further down
            cur.Fields[key] = (Count(file, no, val), no);
        }
        if (zones.Count == 0) throw new ProcSnapshotException(file, 0, "no zone headers");
        return zones;
    }

    /// <summary>Parses /proc/meminfo ("Name: value [kB]"); the values are kept as printed (kB, or pages for HugePages_*).</summary>
    public static IReadOnlyDictionary<string, (long Value, int Line)> ParseMemInfo(string text, string file = "meminfo")
    {
        ArgumentNullException.ThrowIfNull(text);
        var d = new Dictionary<string, (long, int)>();
        foreach (var (no, raw) in Lines(text))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var m = MemInfoLine().Match(line);
            if (!m.Success) throw new ProcSnapshotException(file, no, $"not a meminfo line: '{Short(line)}'");
            if (!d.TryAdd(m.Groups[1].Value, (Count(file, no, m.Groups[2].Value), no)))
                throw new ProcSnapshotException(file, no, $"{m.Groups[1].Value} again");
        }
        if (!d.ContainsKey("MemTotal")) throw new ProcSnapshotException(file, 0, "no MemTotal line");
        return d;
    }

    /// <summary>Parses /proc/slabinfo 2.x: the version line, the '# name' header, then one row per cache.</summary>
    public static IReadOnlyList<SlabRow> ParseSlabInfo(string text, string file = "slabinfo")
    {
        ArgumentNullException.ThrowIfNull(text);
        var rows = new List<SlabRow>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        bool version = false;
        foreach (var (no, raw) in Lines(text))
        {
            string line = raw.Trim();
            if (line.Length == 0) continue;
            if (line.StartsWith("slabinfo - version:", StringComparison.Ordinal))
            {
                string v = line["slabinfo - version:".Length..].Trim();
                if (!v.StartsWith("2.", StringComparison.Ordinal)) throw new ProcSnapshotException(file, no, $"slabinfo version {v} (2.x is read)");
                version = true;
                continue;
            }
            if (line.StartsWith('#')) continue;
            var t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            int sd = Array.IndexOf(t, "slabdata");
            if (t.Length < 6 || sd < 6) throw new ProcSnapshotException(file, no, $"not a slabinfo row: '{Short(line)}'");
            if (sd + 3 >= t.Length) throw new ProcSnapshotException(file, no, "slabdata without its three counts");
            var r = new SlabRow(t[0], Cell(file, no, t[1]), Cell(file, no, t[2]), Int(file, no, t[3]), Int(file, no, t[4]), Int(file, no, t[5]),
                Cell(file, no, t[sd + 1]), Cell(file, no, t[sd + 2]), no);
            if (r.ObjPerSlab > 1 << MaxOrders || r.PagesPerSlab > 1 << MaxOrders)
                throw new ProcSnapshotException(file, no, $"{r.Name}: {r.ObjPerSlab} objects in {r.PagesPerSlab} pages per slab (at most 2^{MaxOrders} each)");
            if (r.ActiveObjs > r.NumObjs) throw new ProcSnapshotException(file, no, $"{r.Name}: {r.ActiveObjs} active objects of {r.NumObjs}");
            if (r.ActiveSlabs > r.NumSlabs) throw new ProcSnapshotException(file, no, $"{r.Name}: {r.ActiveSlabs} active slabs of {r.NumSlabs}");
            // Fewer is possible: SLUB falls back to a smaller slab order (fewer objects) when the preferred order fails.
            if (r.NumObjs > r.NumSlabs * r.ObjPerSlab) throw new ProcSnapshotException(file, no, $"{r.Name}: {r.NumObjs} objects do not fit {r.NumSlabs} slabs of {r.ObjPerSlab}");
            if (r.PagesPerSlab <= 0 || (r.PagesPerSlab & (r.PagesPerSlab - 1)) != 0) throw new ProcSnapshotException(file, no, $"{r.Name}: {r.PagesPerSlab} pages per slab is not a power of two");
            if (!names.Add(r.Name)) throw new ProcSnapshotException(file, no, $"{r.Name} again");
            rows.Add(r);
        }
        if (!version) throw new ProcSnapshotException(file, 1, "no 'slabinfo - version:' line");
        return rows;
    }

    private static int Int(string file, int no, string s)
    {
        long v = Count(file, no, s);
        if (v > int.MaxValue) throw new ProcSnapshotException(file, no, $"{s} is too large");
        return (int)v;
    }

    /// <summary>Parses /proc/vmallocinfo ("0xSTART-0xEND SIZE caller ..."); SIZE must be END - START.</summary>
    public static IReadOnlyList<VmallocRow> ParseVmallocInfo(string text, string file = "vmallocinfo")
    {
        ArgumentNullException.ThrowIfNull(text);
        var rows = new List<VmallocRow>();
        foreach (var (no, raw) in Lines(text))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var m = VmallocLine().Match(line);
            if (!m.Success) throw new ProcSnapshotException(file, no, $"not a vmallocinfo line: '{Short(line)}'");
            if (!ulong.TryParse(m.Groups[1].Value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong s)
                || !ulong.TryParse(m.Groups[2].Value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong e))
                throw new ProcSnapshotException(file, no, $"an address beyond 64 bits: '{Short(line)}'");
            long size = Count(file, no, m.Groups[3].Value);
            if (e <= s || (ulong)size != e - s) throw new ProcSnapshotException(file, no, $"size {size} does not match 0x{s:x}-0x{e:x}");
            string rest = m.Groups[4].Value;
            string first = rest.Split(' ', 2)[0];
            string caller = first.Contains('=') || first.Length == 0 ? "" : first;
            rows.Add(new VmallocRow(s, e, size, caller, rest, no));
        }
        return rows;
    }

    /// <summary>/proc/cmdline: one line.</summary>
    public static string ParseCmdline(string text, string file = "cmdline")
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = Lines(text).Where(l => l.Text.Trim().Length > 0).ToList();
        if (lines.Count > 1) throw new ProcSnapshotException(file, lines[1].No, "a second line (/proc/cmdline has one)");
        return lines.Count == 0 ? "" : lines[0].Text.Trim();
    }

    /// <summary>/proc/version: the release, and the architecture where the banner names it (build host or compiler triplet).</summary>
    public static (KernelVersion Version, Arch? Arch, string Text) ParseVersion(string text, string file = "version")
    {
        ArgumentNullException.ThrowIfNull(text);
        var first = Lines(text).FirstOrDefault(l => l.Text.Trim().Length > 0);
        var m = VersionLine().Match(first.Text?.Trim() ?? "");
        if (!m.Success) throw new ProcSnapshotException(file, Math.Max(first.No, 1), "not a 'Linux version X.Y…' banner");
        int Part(int g) => !m.Groups[g].Success ? 0
            : int.TryParse(m.Groups[g].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n
            : throw new ProcSnapshotException(file, first.No, $"release number '{Short(m.Groups[g].Value)}' is too large");
        int major = Part(1), minor = Part(2), patch = Part(3);
        var v = new KernelVersion(major, minor, patch, m.Groups[4].Value);
        string s = first.Text!;
        Arch? arch = s.Contains("x86_64", StringComparison.Ordinal) || s.Contains("amd64", StringComparison.Ordinal) ? Arch.X86_64
            : s.Contains("aarch64", StringComparison.Ordinal) || s.Contains("arm64", StringComparison.Ordinal) ? Arch.Arm64
            : s.Contains("riscv64", StringComparison.Ordinal) ? Arch.Riscv64
            : s.Contains("arm-", StringComparison.Ordinal) || s.Contains("armv7", StringComparison.Ordinal) || s.Contains("gnueabi", StringComparison.Ordinal) ? Arch.Arm
            : s.Contains("i686", StringComparison.Ordinal) || s.Contains("i386", StringComparison.Ordinal) ? Arch.I386
            : null;
        return (v, arch, s.Trim());
    }
}
