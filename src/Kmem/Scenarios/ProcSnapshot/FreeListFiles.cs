// Readers of the two /proc files that count free blocks: /proc/pagetypeinfo (free blocks per zone, migratetype and
// order, then pageblocks per migratetype; repeated per node) and /proc/buddyinfo (free blocks per zone and order), in
// the formats of 3.10 to 6.x (mm/vmstat.c). Malformed input is a ProcSnapshotException naming the file and line.
using System.Globalization;
using System.Text.RegularExpressions;
using Kmem.Paging;

namespace Kmem.Scenarios.ProcSnapshots;

/// <summary>One zone's rows of pagetypeinfo: free blocks [migratetype, order] and pageblocks per migratetype.</summary>
internal sealed class ZoneFreeRows(int node, string zone, int maxOrder)
{
    public int Node { get; } = node;
    public string Zone { get; } = zone;
    /// <summary>Free blocks by Kmem migratetype and order.</summary>
    public long[,] Free { get; } = new long[PageTypes.MigrateTypes, maxOrder];
    /// <summary>The line of each migratetype's free row (0: the file has no row for it).</summary>
    public int[] FreeLine { get; } = new int[PageTypes.MigrateTypes];
    /// <summary>Pageblocks by Kmem migratetype, or null before the block table's row is read.</summary>
    public long[]? Blocks { get; set; }
    public int BlocksLine { get; set; }

    public long FreeBlocks(int order)
    {
        long n = 0;
        for (int mt = 0; mt < PageTypes.MigrateTypes; mt++) n += Free[mt, order];
        return n;
    }

    public long FreePages()
    {
        long n = 0;
        for (int o = 0; o < Free.GetLength(1); o++) n += FreeBlocks(o) << o;
        return n;
    }
}

/// <summary>A parsed /proc/pagetypeinfo.</summary>
internal sealed record PageTypeInfoFile(int PageblockOrder, int MaxOrder, IReadOnlyList<ZoneFreeRows> Zones, IReadOnlyList<string> Notes);

/// <summary>One buddyinfo row.</summary>
internal sealed record BuddyRow(int Node, string Zone, long[] Free, int Line);

internal static partial class FreeListFiles
{
    [GeneratedRegex(@"^Node\s+(\d+),\s*zone\s+(\S+),\s*type\s+(\S+)\s+(.*)$")]
    private static partial Regex FreeRow();

    [GeneratedRegex(@"^Node\s+(\d+),\s*zone\s+(\S+)\s+(.*)$")]
    private static partial Regex ZoneRow();

    /// <summary>
    /// The Kmem migratetype of a kernel name. "Reserve" (MIGRATE_RESERVE, gone in 4.4) has no Kmem equivalent and is
    /// taken as HighAtomic, the type that replaced it (its blocks print under that name afterwards; a note says so).
    /// </summary>
    internal static int MigrateTypeOf(string name) => name switch
    {
        "Unmovable" => 0,
        "Movable" => 1,
        "Reclaimable" => 2,
        "HighAtomic" or "Reserve" => 3,
        "CMA" => 4,
        "Isolate" => 5,
        _ => -1,
    };

    internal static long Count(string file, int line, string cell)
    {
        if (cell.StartsWith('>'))
            throw new ProcSnapshotException(file, line, $"'{cell}': the kernel clamps counts at 100000, so the exact count is not in the file");
        if (!long.TryParse(cell, NumberStyles.None, CultureInfo.InvariantCulture, out long v))
            throw new ProcSnapshotException(file, line, $"'{cell}' is not a count");
        return v;
    }

    /// <summary>The most order columns read (MAX_ORDER is far below it on every architecture), so that a zone's free pages
    /// (counts shifted by their order) stay well inside a long.</summary>
    internal const int MaxOrders = 20;

    /// <summary>The largest free-list or pageblock count read: 2^32 (16 TiB of 4 KiB pages in one cell).</summary>
    internal const long MaxCell = 1L << 32;

    /// <summary>A count of a free-list or block table: as <see cref="Count"/>, and at most <see cref="MaxCell"/>, so that the
    /// sums over orders and zones cannot overflow.</summary>
    internal static long Cell(string file, int line, string cell)
    {
        long v = Count(file, line, cell);
        if (v > MaxCell) throw new ProcSnapshotException(file, line, $"'{cell}' is more than any zone holds (at most {MaxCell})");
        return v;
    }

    internal static IEnumerable<(int No, string Text)> Lines(string text)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < lines.Length; i++) yield return (i + 1, lines[i].TrimEnd());
    }

    /// <summary>Parses /proc/pagetypeinfo (lines starting with '#' are comments; blank lines are skipped).</summary>
    public static PageTypeInfoFile ParsePageTypeInfo(string text, string file = "pagetypeinfo")
    {
        ArgumentNullException.ThrowIfNull(text);
        int pb = -1, maxOrder = -1;
        var zones = new List<ZoneFreeRows>();
        var notes = new List<string>();
        int[]? blockCols = null;
        bool skipTable = false;       // "Number of mixed blocks" (CONFIG_PAGE_OWNER) is not imported
        foreach (var (no, raw) in Lines(text))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith("Page block order:", StringComparison.Ordinal))
            {
                long v = Count(file, no, line["Page block order:".Length..].Trim());
                if (pb >= 0 && v != pb) throw new ProcSnapshotException(file, no, $"page block order {v}, {pb} above");
                if (v is < 1 or > 20) throw new ProcSnapshotException(file, no, $"page block order {v} is out of range");
                pb = (int)v;
                continue;
            }
            if (line.StartsWith("Pages per block:", StringComparison.Ordinal))
            {
                long v = Count(file, no, line["Pages per block:".Length..].Trim());
                if (pb < 0 || v != 1L << pb) throw new ProcSnapshotException(file, no, $"{v} pages per block does not match page block order {pb}");
                continue;
            }
            if (line.StartsWith("Free pages count per migrate type at order", StringComparison.Ordinal))
            {
                var cols = line["Free pages count per migrate type at order".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                for (int i = 0; i < cols.Length; i++)
                    if (cols[i] != i.ToString(CultureInfo.InvariantCulture)) throw new ProcSnapshotException(file, no, $"order column {i + 1} is '{cols[i]}', not {i}");
                if (cols.Length < 2) throw new ProcSnapshotException(file, no, "no order columns");
                if (cols.Length > MaxOrders) throw new ProcSnapshotException(file, no, $"{cols.Length} order columns (no kernel has more than {MaxOrders})");
                if (maxOrder >= 0 && cols.Length != maxOrder) throw new ProcSnapshotException(file, no, $"{cols.Length} orders, {maxOrder} above");
                maxOrder = cols.Length;
                blockCols = null;
                skipTable = false;
                continue;
            }
            if (line.StartsWith("Number of blocks type", StringComparison.Ordinal))
            {
                var names = line["Number of blocks type".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                blockCols = new int[names.Length];
                for (int i = 0; i < names.Length; i++)
                {
                    blockCols[i] = MigrateTypeOf(names[i]);
                    if (blockCols[i] < 0) throw new ProcSnapshotException(file, no, $"unknown migratetype '{names[i]}'");
                    if (names[i] == "Reserve") AddNote(notes, "pagetypeinfo: MIGRATE_RESERVE (before 4.4) is imported as HighAtomic");
                }
                skipTable = false;
                continue;
            }
            if (line.StartsWith("Number of mixed blocks", StringComparison.Ordinal))
            {
                skipTable = true;
                AddNote(notes, $"pagetypeinfo:{no}: the mixed-blocks table (page_owner) is not imported");
                continue;
            }
            if (skipTable) continue;
            var m = FreeRow().Match(line);
            if (m.Success)
            {
                if (maxOrder < 0 || pb < 0) throw new ProcSnapshotException(file, no, "a free-page row before the header");
                int node = ParseNode(file, no, m.Groups[1].Value);
                string zone = m.Groups[2].Value;
                int mt = MigrateTypeOf(m.Groups[3].Value);
                if (mt < 0) throw new ProcSnapshotException(file, no, $"unknown migratetype '{m.Groups[3].Value}'");
                if (m.Groups[3].Value == "Reserve") AddNote(notes, "pagetypeinfo: MIGRATE_RESERVE (before 4.4) is imported as HighAtomic");
                var cells = m.Groups[4].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (cells.Length != maxOrder) throw new ProcSnapshotException(file, no, $"{cells.Length} counts for {maxOrder} orders");
                var z = zones.FirstOrDefault(x => x.Node == node && x.Zone == zone);
                if (z is null) { z = new ZoneFreeRows(node, zone, maxOrder); zones.Add(z); }
                if (z.FreeLine[mt] != 0) throw new ProcSnapshotException(file, no, $"a second {m.Groups[3].Value} row for node {node} zone {zone} (line {z.FreeLine[mt]})");
                z.FreeLine[mt] = no;
                for (int o = 0; o < maxOrder; o++) z.Free[mt, o] = Cell(file, no, cells[o]);
                continue;
            }
            m = ZoneRow().Match(line);
            if (m.Success && blockCols is not null)
            {
                int node = ParseNode(file, no, m.Groups[1].Value);
                string zone = m.Groups[2].Value;
                var cells = m.Groups[3].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (cells.Length != blockCols.Length) throw new ProcSnapshotException(file, no, $"{cells.Length} counts for {blockCols.Length} migratetypes");
                var z = zones.FirstOrDefault(x => x.Node == node && x.Zone == zone)
                    ?? throw new ProcSnapshotException(file, no, $"node {node} zone {zone} has no free-page rows");
                if (z.Blocks is not null) throw new ProcSnapshotException(file, no, $"a second block row for node {node} zone {zone} (line {z.BlocksLine})");
                z.Blocks = new long[PageTypes.MigrateTypes];
                for (int i = 0; i < cells.Length; i++) z.Blocks[blockCols[i]] += Cell(file, no, cells[i]);
                z.BlocksLine = no;
                continue;
            }
            throw new ProcSnapshotException(file, no, $"not a pagetypeinfo line: '{Short(line)}'");
        }
        if (pb < 0) throw new ProcSnapshotException(file, 0, "no 'Page block order:' line");
        if (maxOrder < 0) throw new ProcSnapshotException(file, 0, "no free-page table");
        if (zones.Count == 0) throw new ProcSnapshotException(file, 0, "no zone rows in the free-page table");
        foreach (var z in zones)
        {
            if (z.Blocks is null) throw new ProcSnapshotException(file, z.FreeLine.Max(), $"node {z.Node} zone {z.Zone} has no row in the block table");
        }
        return new PageTypeInfoFile(pb, maxOrder, zones, notes);
    }

    /// <summary>Parses /proc/buddyinfo ("Node N, zone NAME" then one count per order; every row the same number of orders).</summary>
    public static IReadOnlyList<BuddyRow> ParseBuddyInfo(string text, string file = "buddyinfo")
    {
        ArgumentNullException.ThrowIfNull(text);
        var rows = new List<BuddyRow>();
        foreach (var (no, raw) in Lines(text))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var m = ZoneRow().Match(line);
            if (!m.Success) throw new ProcSnapshotException(file, no, $"not a buddyinfo line: '{Short(line)}'");
            int node = ParseNode(file, no, m.Groups[1].Value);
            var cells = m.Groups[3].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cells.Length < 2) throw new ProcSnapshotException(file, no, "fewer than 2 orders");
            if (cells.Length > MaxOrders) throw new ProcSnapshotException(file, no, $"{cells.Length} orders (no kernel has more than {MaxOrders})");
            if (rows.Count > 0 && cells.Length != rows[0].Free.Length)
                throw new ProcSnapshotException(file, no, $"{cells.Length} orders, {rows[0].Free.Length} on line {rows[0].Line}");
            var dup = rows.FirstOrDefault(r => r.Node == node && r.Zone == m.Groups[2].Value);
            if (dup is not null) throw new ProcSnapshotException(file, no, $"node {node} zone {dup.Zone} again (line {dup.Line})");
            rows.Add(new BuddyRow(node, m.Groups[2].Value, cells.Select(c => Cell(file, no, c)).ToArray(), no));
        }
        if (rows.Count == 0) throw new ProcSnapshotException(file, 0, "no zone rows");
        return rows;
    }

    internal static int ParseNode(string file, int no, string s)
    {
        long n = Count(file, no, s);
        if (n > 1023) throw new ProcSnapshotException(file, no, $"node {n} is out of range");
        return (int)n;
    }

    internal static string Short(string s) => s.Length > 60 ? s[..60] + "…" : s;

    private static void AddNote(List<string> notes, string note)
    {
        if (!notes.Contains(note)) notes.Add(note);
    }
}
