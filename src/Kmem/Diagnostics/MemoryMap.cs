// The memory-map picture: every page (or, on large boards, every pageblock by its main owner) drawn as a cell of a
// grid in physical-address order and coloured by what owns it: a slab cache, compound pages (large kmalloc and
// __GFP_COMP), vmalloc, a CMA allocation by its owner's name, a dma-buf by its exporter, the heaps' page pools,
// free blocks by order, reserved memory. A strip left of each row shows the pageblock's migratetype (and, with several
// NUMA nodes, a second strip the row's node, each node's start marked "Node N" above its zones); zone starts
// and the CMA areas are marked; a legend and the per-order free-block histogram stand beside the grid. SVG only.
using System.Globalization;
using System.Text;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Diagnostics;

/// <summary>What the renderer needs, gathered by the machine: owners that the page table alone cannot tell.</summary>
internal sealed record MemoryMapInput(
    PageAllocator Pages,
    Slab.SlabAllocator Slab,
    IReadOnlyList<CmaArea> CmaAreas,
    IReadOnlyList<(int Frame, int Pages, string Owner)> Claims,   // CMA owners, dma-bufs, pools, vmalloc: first claim wins
    string Title);

/// <summary>Renders the memory map (see the file comment).</summary>
internal static class MemoryMap
{
    private const int Columns = 256, Cell = 3, MaxCells = 65536, Strip = 4;
    private static readonly string[] s_palette =
    [
        "#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
        "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#756bb1", "#636363", "#6baed6",
    ];
    private static readonly string[] s_mtColours = ["#b2182b", "#2166ac", "#f4a582", "#762a83", "#1b7837", "#000000"];
    private static readonly string[] s_nodeColours = ["#1f78b4", "#e66101", "#33a02c", "#6a3d9a"];

    public static string Render(MemoryMapInput input)
    {
        var pa = input.Pages;
        int frames = pa.Frames.Count;
        var owner = new string?[frames];
        foreach (var (frame, pages, name) in input.Claims)
            for (int i = frame; i < frame + pages && i < frames; i++) owner[i] ??= name;
        var freeOrder = new int[frames];
        Array.Fill(freeOrder, -1);
        ClassifyFromFrames(input, owner, freeOrder);

        int per = Math.Max(1, (frames + MaxCells - 1) / MaxCells);
        if (per > 1) per = 1 << (int)Math.Ceiling(Math.Log2(per));                // whole pageblocks or powers of two
        int cells = (frames + per - 1) / per;
        var cellOwner = new string[cells];
        for (int c = 0; c < cells; c++) cellOwner[c] = MainOwner(owner, c * per, Math.Min(frames, (c + 1) * per));

        // Colours: fixed ones for free and reserved, the palette for the rest by size (largest first).
        var sizes = cellOwner.GroupBy(o => o).ToDictionary(g => g.Key, g => g.Count());
        var colours = new Dictionary<string, string>(StringComparer.Ordinal);
        int pal = 0;
        foreach (var (name, _) in sizes.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal))
            colours[name] = name.StartsWith("free", StringComparison.Ordinal) ? FreeColour(name) : name == "reserved" ? "#444444" : name.StartsWith("reserved: ", StringComparison.Ordinal) ? ReservedColour(name) : name == "hole" ? "#ffffff" : s_palette[pal++ % s_palette.Length];

        int rows = (cells + Columns - 1) / Columns;
        int gridX = 90, gridY = 40, gridW = Columns * Cell, gridH = rows * Cell;
        int legendX = gridX + gridW + 30;
        int histY = gridY + 20 + (colours.Count + 8) * 16;
        int width = legendX + 420, height = Math.Max(gridY + gridH + 40, histY + pa.MaxOrder * 18 + 60);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        sb.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"#fafafa\"/>\n");
        sb.Append($"<text x=\"{gridX}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{Esc(input.Title)}</text>\n");
        sb.Append($"<text x=\"{gridX}\" y=\"34\">{frames} pages, {(per == 1 ? "one page" : per + " pages")} a cell, {Columns} cells a row; the strip on the left is each row's pageblock migratetype</text>\n");
        // Cells, run-length merged per row.
        sb.Append("<g id=\"cells\">\n");
        for (int r = 0; r < rows; r++)
        {
            int c = r * Columns, end = Math.Min(cells, c + Columns);
            while (c < end)
            {
                int run = c;
                while (run < end && cellOwner[run] == cellOwner[c]) run++;
                sb.Append($"<rect x=\"{gridX + (c - r * Columns) * Cell}\" y=\"{gridY + r * Cell}\" width=\"{(run - c) * Cell}\" height=\"{Cell}\" fill=\"{colours[cellOwner[c]]}\"><title>{Esc(cellOwner[c])}</title></rect>\n");
                c = run;
            }
            // The migratetype strip: the pageblock of the row's first page.
            int firstFrame = r * Columns * per;
            var mt = MigratetypeOf(pa, firstFrame);
            if (mt >= 0) sb.Append($"<rect x=\"{gridX - Strip - 2}\" y=\"{gridY + r * Cell}\" width=\"{Strip}\" height=\"{Cell}\" fill=\"{s_mtColours[mt]}\"/>\n");
            // With several nodes, the node strip: the node (page_to_nid()) of the row's first page.
            int nid = pa.NodeCount > 1 && firstFrame < frames ? pa.NodeOfIdx(firstFrame) : -1;
            if (nid >= 0) sb.Append($"<rect x=\"{gridX - 2 * Strip - 4}\" y=\"{gridY + r * Cell}\" width=\"{Strip}\" height=\"{Cell}\" fill=\"{s_nodeColours[nid % s_nodeColours.Length]}\"><title>Node {nid}</title></rect>\n");
        }
        sb.Append("</g>\n");
        // Node starts (several nodes: a heavier line and "Node N", each node's zones below it), zone starts and CMA areas.
        bool nodes = pa.NodeCount > 1;
        for (int nid = 0; nodes && nid < pa.NodeCount; nid++)
        {
            Zone? first = null;
            foreach (var z in pa.NodeZones(nid)) if (z.Populated) { first = z; break; }
            if (first is null) continue;
            int row = first.StartIdx / per / Columns;
            sb.Append($"<line x1=\"10\" x2=\"{gridX + gridW}\" y1=\"{gridY + row * Cell}\" y2=\"{gridY + row * Cell}\" stroke=\"#000\" stroke-width=\"2.5\"/>\n");
            sb.Append($"<text x=\"10\" y=\"{gridY + row * Cell + 12}\" font-weight=\"bold\" fill=\"{s_nodeColours[nid % s_nodeColours.Length]}\">Node {nid}</text>\n");
        }
        foreach (var z in pa.Zones.Where(z => z.Populated))
        {
            int row = z.StartIdx / per / Columns;
            bool nodeFirst = false;
            if (nodes)
                foreach (var x in pa.NodeZones(z.Node))
                    if (x.Populated) { nodeFirst = ReferenceEquals(x, z); break; }
            int dy = nodeFirst ? 24 : 12;
            sb.Append($"<line x1=\"10\" x2=\"{gridX + gridW}\" y1=\"{gridY + row * Cell}\" y2=\"{gridY + row * Cell}\" stroke=\"#000\" stroke-width=\"1\"/>\n");
            sb.Append($"<text x=\"10\" y=\"{gridY + row * Cell + dy}\" font-weight=\"bold\">{Esc(z.Name)}</text>\n");
        }
        foreach (var a in input.CmaAreas)
        {
            int first = (int)(a.BasePfn - pa.BasePfn) / per, last = (int)(a.BasePfn - pa.BasePfn + a.Count - 1) / per;
            for (int r = first / Columns; r <= last / Columns; r++)
            {
                int c0 = Math.Max(first, r * Columns) - r * Columns, c1 = Math.Min(last, r * Columns + Columns - 1) - r * Columns;
                sb.Append($"<rect x=\"{gridX + c0 * Cell}\" y=\"{gridY + r * Cell}\" width=\"{(c1 - c0 + 1) * Cell}\" height=\"{Cell}\" fill=\"none\" stroke=\"#000\" stroke-opacity=\"0.35\" stroke-width=\"0.6\"/>\n");
            }
            int labelRow = first / Columns;
            sb.Append($"<text x=\"10\" y=\"{gridY + labelRow * Cell + 26}\" fill=\"#1b7837\">CMA {Esc(a.Name)}</text>\n");
        }
        // Legend.
        int y = gridY + 10;
        sb.Append($"<text x=\"{legendX}\" y=\"{y}\" font-weight=\"bold\">owners (cells)</text>\n");
        foreach (var (name, colour) in colours.OrderBy(kv => Rank(kv.Key)).ThenByDescending(kv => sizes[kv.Key]))
        {
            y += 16;
            sb.Append($"<rect x=\"{legendX}\" y=\"{y - 10}\" width=\"12\" height=\"12\" fill=\"{colour}\" stroke=\"#999\" stroke-width=\"0.5\"/>");
            sb.Append($"<text x=\"{legendX + 18}\" y=\"{y}\">{Esc(name)} ({sizes[name]})</text>\n");
        }
        y += 24;
        sb.Append($"<text x=\"{legendX}\" y=\"{y}\" font-weight=\"bold\">migratetype strip</text>\n");
        for (int mt = 0; mt < PageTypes.MigrateTypes - 1; mt++)
        {
            sb.Append($"<rect x=\"{legendX + mt * 80}\" y=\"{y + 6}\" width=\"10\" height=\"10\" fill=\"{s_mtColours[mt]}\"/><text x=\"{legendX + mt * 80 + 14}\" y=\"{y + 15}\">{PageTypes.MigrateTypeNames[mt]}</text>\n");
        }
        // Histogram of free blocks per order (all zones).
        var counts = new long[pa.MaxOrder];
        foreach (var zc in PageViews.Snapshot(pa))
            for (int o = 0; o < pa.MaxOrder; o++) counts[o] += zc.FreeBlocks(o);
        long max = Math.Max(1, counts.Max());
        y = histY;
        sb.Append($"<text x=\"{legendX}\" y=\"{y}\" font-weight=\"bold\">free blocks per order</text>\n");
        sb.Append("<g id=\"histogram\">\n");
        for (int o = 0; o < pa.MaxOrder; o++)
        {
            int yy = y + 10 + o * 18;
            int w = (int)(300.0 * counts[o] / max);
            sb.Append($"<text x=\"{legendX}\" y=\"{yy + 11}\">{o}</text><rect x=\"{legendX + 20}\" y=\"{yy}\" width=\"{Math.Max(w, counts[o] > 0 ? 1 : 0)}\" height=\"13\" fill=\"{FreeColour("free order " + o)}\"/><text x=\"{legendX + 26 + w}\" y=\"{yy + 11}\">{counts[o]}</text>\n");
        }
        sb.Append("</g>\n</svg>\n");
        return sb.ToString();
    }

    private static int Rank(string name) => name.StartsWith("free", StringComparison.Ordinal) ? 2 : name is "reserved" or "hole" || name.StartsWith("reserved: ", StringComparison.Ordinal) ? 3 : 1;

    /// <summary>Greys for memblock's named reservations, one shade per name.</summary>
    private static string ReservedColour(string name)
    {
        int h = 0;
        foreach (char c in name) h = h * 31 + c;
        int g = 0x30 + (int)((uint)h % 0x60);
        return $"#{g:x2}{g:x2}{g:x2}";
    }

    private static string FreeColour(string name)
    {
        // Light greens for free memory, darker for larger blocks.
        int order = name.StartsWith("free order ", StringComparison.Ordinal) && int.TryParse(name.AsSpan("free order ".Length), out int o) ? o : 0;
        order = Math.Min(order, 12);
        return $"#{210 - order * 12:x2}{240 - order * 6:x2}{210 - order * 12:x2}";
    }

    private static int MigratetypeOf(PageAllocator pa, int frame)
    {
        if (frame >= pa.Frames.Count) return -1;
        foreach (var z in pa.Zones)
        {
            if (!z.Populated || frame < z.StartIdx || frame >= z.EndIdx) continue;
            long block = ((long)pa.BasePfn + frame >> z.PageblockOrder) - ((long)pa.BasePfn + z.StartIdx >> z.PageblockOrder);
            return (int)z.PageblockTypeAt((int)Math.Min(block, z.PageblockCount - 1));
        }
        return -1;
    }

    /// <summary>Owners the page descriptors tell: free blocks by order, per-CPU lists, slab caches, compound and plain pages.</summary>
    private static unsafe void ClassifyFromFrames(MemoryMapInput input, string?[] owner, int[] freeOrder)
    {
        var pa = input.Pages;
        var f = pa.Frames.Base;
        int n = pa.Frames.Count;
        var cacheNames = new Dictionary<int, string>();
        for (int i = 0; i < n; i++)
        {
            if (owner[i] is not null) continue;
            var fl = f[i].Flags;
            if (!pa.PfnValid(pa.BasePfn + (ulong)i)) { owner[i] = "hole"; continue; }
            if ((fl & PageFlags.Buddy) != 0)
            {
                int o = f[i].Order;
                string name = $"free order {o}";
                for (int j = i; j < i + (1 << o) && j < n; j++) { owner[j] ??= name; freeOrder[j] = o; }
                continue;
            }
            if ((fl & PageFlags.Pcp) != 0)
            {
                // From 5.14 a per-CPU list may hold a block of order 1..3 or the THP order; its head carries the order.
                for (int j = i; j < i + (1 << f[i].Order) && j < n; j++) owner[j] ??= "free (per-CPU lists)";
                continue;
            }
            // CONFIG_CMA_INACTIVE: an area's free pages stay reserved (no buddy), the ones cma_alloc() handed out keep
            // PG_reserved beside their allocation.
            if ((fl & PageFlags.Reserved) != 0 && (fl & PageFlags.Allocated) == 0)
            {
                owner[i] = input.CmaAreas.Any(a => a.Inactive && pa.BasePfn + (ulong)i - a.BasePfn < a.Count) ? "CMA (free, inactive area)" : "reserved";
                continue;
            }
            int head = (fl & PageFlags.Tail) != 0 ? f[i].CompoundHead : i;
            var hf = f[head].Flags;
            if ((hf & PageFlags.Slab) != 0)
            {
                if (!cacheNames.TryGetValue(head, out var cn))
                    cacheNames[head] = cn = "slab: " + (input.Slab.SlabCacheOf(pa.IdxToVirt(head))?.Name ?? "?");
                owner[i] = cn;
                continue;
            }
            if ((hf & PageFlags.Allocated) == 0 && head == i) { owner[i] = "free (per-CPU lists)"; continue; }
            owner[i] = (hf & PageFlags.Head) != 0 ? "compound pages (large kmalloc, __GFP_COMP)" : "pages";
        }
        // Slab caches beyond the eight largest share one colour.
        var top = owner.Where(o => o is not null && o.StartsWith("slab: ", StringComparison.Ordinal)).GroupBy(o => o!)
                       .OrderByDescending(g => g.Count()).Skip(8).Select(g => g.Key).ToHashSet();
        if (top.Count > 0)
            for (int i = 0; i < n; i++)
                if (owner[i] is { } o && top.Contains(o)) owner[i] = "slab: other caches";
    }

    private static string MainOwner(string?[] owner, int from, int to)
    {
        if (to - from == 1) return owner[from] ?? "pages";
        var count = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = from; i < to; i++) { var o = owner[i] ?? "pages"; count[o] = count.GetValueOrDefault(o) + 1; }
        return count.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).First().Key;
    }

    private static string Esc(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");
}
