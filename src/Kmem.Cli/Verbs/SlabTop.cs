// `kmem slabtop`: the slab caches once, as procps slabtop -o prints them (its summary lines, then one
// row per cache), sorted by cache size unless asked otherwise.
using System.Globalization;
using Spectre.Console;

namespace Kmem.Cli.Verbs;

internal static class SlabTop
{
    /// <summary>slabtop's sort keys that Kmem supports.</summary>
    public const string SortKeys = "coaslbn";

    private sealed record Row(string Name, long Objs, long Active, int ObjSize, long Slabs, int PerSlab, long CacheBytes);

    public static void Print(CliContext ctx, Machine m, char key, int lines)
    {
        var rows = m.SlabCaches.Select(c => new Row(c.Name, c.TotalObjects, c.ActiveObjects, c.Size, c.Slabs, c.ObjectsPerSlab, c.Slabs * (4096L << c.Order))).ToList();
        rows = key switch
        {
            'o' => rows.OrderByDescending(r => r.Objs).ToList(),
            'a' => rows.OrderByDescending(r => r.Active).ToList(),
            's' => rows.OrderByDescending(r => r.ObjSize).ToList(),
            'l' => rows.OrderByDescending(r => r.Slabs).ToList(),
            'b' => rows.OrderByDescending(r => r.PerSlab).ToList(),
            'n' => rows.OrderBy(r => r.Name, StringComparer.Ordinal).ToList(),
            _ => rows.OrderByDescending(r => r.CacheBytes).ThenBy(r => r.Name, StringComparer.Ordinal).ToList(),
        };
        long objs = rows.Sum(r => r.Objs), active = rows.Sum(r => r.Active), slabs = rows.Sum(r => r.Slabs);
        long activeSlabs = rows.Where(r => r.Active > 0).Sum(r => r.Slabs);
        int caches = rows.Count, activeCaches = rows.Count(r => r.Active > 0);
        double total = rows.Sum(r => (double)r.CacheBytes), used = rows.Sum(r => (double)r.Active * r.ObjSize);
        static string Pct(double a, double b) => (b == 0 ? 0 : a * 100 / b).ToString("F1", CultureInfo.InvariantCulture);
        static string K(double bytes) => (bytes / 1024).ToString("F2", CultureInfo.InvariantCulture) + "K";
        var o = ctx.Out;
        o.WriteLine($" Active / Total Objects (% used)    : {active} / {objs} ({Pct(active, objs)}%)");
        o.WriteLine($" Active / Total Slabs (% used)      : {activeSlabs} / {slabs} ({Pct(activeSlabs, slabs)}%)");
        o.WriteLine($" Active / Total Caches (% used)     : {activeCaches} / {caches} ({Pct(activeCaches, caches)}%)");
        o.WriteLine($" Active / Total Size (% used)       : {K(used)} / {K(total)} ({Pct(used, total)}%)");
        var sizes = rows.Select(r => r.ObjSize).DefaultIfEmpty(0).ToList();
        o.WriteLine($" Minimum / Average / Maximum Object : {K(sizes.Min())} / {K(objs == 0 ? 0 : rows.Sum(r => (double)r.Objs * r.ObjSize) / objs)} / {K(sizes.Max())}");
        o.WriteLine();
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn(new TableColumn("OBJS").RightAligned()).AddColumn(new TableColumn("ACTIVE").RightAligned())
            .AddColumn(new TableColumn("USE").RightAligned()).AddColumn(new TableColumn("OBJ SIZE").RightAligned())
            .AddColumn(new TableColumn("SLABS").RightAligned()).AddColumn(new TableColumn("OBJ/SLAB").RightAligned())
            .AddColumn(new TableColumn("CACHE SIZE").RightAligned()).AddColumn("NAME");
        foreach (var r in lines > 0 ? rows.Take(lines) : rows)
            table.AddRow(r.Objs.ToString(), r.Active.ToString(), $"{(r.Objs == 0 ? 0 : r.Active * 100 / r.Objs)}%", K(r.ObjSize),
                r.Slabs.ToString(), r.PerSlab.ToString(), $"{r.CacheBytes / 1024}K", Markup.Escape(r.Name));
        ctx.Console.Write(table);
    }
}
