// Reads a real /proc/rk_dma_heap/rk-dma-heap-info dump (tabs or condensed spaces, as copied from a board or a
// document) and rebuilds that allocation state on a machine: every dma-buf and page run at its address, with
// its name, inode number and attached devices, so that what-if questions can be asked of the real layout.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Kmem;

/// <summary>One buffer of a dump: a dma-buf (with inode number and attached devices) or a page run.</summary>
public sealed record RkDmaHeapDumpEntry(string Heap, bool IsDmaBuf, long Ino, string AllocBy, ulong Start, ulong End, IReadOnlyList<string> Devices, int Line)
{
    /// <summary>Bytes (end inclusive).</summary>
    public ulong Size => End - Start + 1;
}

/// <summary>A dump that cannot be read or replayed; <see cref="Line"/> names the line at fault (0: the whole dump).</summary>
public sealed class DumpFormatException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public DumpFormatException(int line, string problem) : base(OneLine(line > 0 ? $"dump: line {line}: {problem}" : $"dump: {problem}"))
    {
        Line = line;
        Problem = problem;
    }

    /// <summary>The 1-based line, or 0.</summary>
    public int Line { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}

/// <summary>The rk-dma-heap-info reader and its replay.</summary>
public static partial class RkDmaHeapImport
{
    [GeneratedRegex(@"^dma-heap:<([^>]+)>\s*-dmabuf(?:\s+i_ino\s*=\s*([0-9]+))?\s*$")]
    private static partial Regex DmaBufHeader();

    [GeneratedRegex(@"^dma-heap:<([^>]+)>\s*-non dmabuf\s*$")]
    private static partial Regex ContigHeader();

    [GeneratedRegex(@"^i_ino\s*=\s*([0-9]+)$")]
    private static partial Regex InoLine();

    [GeneratedRegex(@"^Alloc by \((.*?)\s*\)\s*\[0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)\]\s*0x([0-9a-fA-F]+)(?:\s*\(([0-9]+) KiB\))?$")]
    private static partial Regex AllocLine();

    [GeneratedRegex(@"^Total ([0-9]+) devices attached$")]
    private static partial Regex TotalDevices();

    /// <summary>The longest line read (the kernel's are under 200 characters; device and heap names are short).</summary>
    public const int MaxLine = 1024;

    /// <summary>Parses a dump. Lines starting with '#' and blank lines are skipped; anything else out of place is an error.</summary>
    /// <exception cref="DumpFormatException">A malformed line, a size that does not match its range, a device count that does
    /// not match, an inode number that does not fit in 63 bits, or one given to two dma-bufs.</exception>
    public static IReadOnlyList<RkDmaHeapDumpEntry> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var entries = new List<RkDmaHeapDumpEntry>();
        var lines = text.Split('\n');
        string? heap = null;
        bool dmabuf = false;
        long ino = -1;
        int inoLine = 0;
        var inodes = new Dictionary<long, int>();   // inode number -> the line that gave it
        (string By, ulong S, ulong E, int Line)? pending = null;
        List<string>? devices = null;
        bool inDevices = false, headerOpen = false;
        void Flush(int line)
        {
            headerOpen = false;
            if (pending is { } p)
            {
                if (dmabuf && ino >= 0 && !inodes.TryAdd(ino, inoLine))
                    throw new DumpFormatException(inoLine, $"inode number {ino} is already the dma-buf of line {inodes[ino]} (inode numbers are unique)");
                entries.Add(new RkDmaHeapDumpEntry(heap!, dmabuf, ino, p.By, p.S, p.E, devices ?? [], p.Line));
                pending = null;
            }
            devices = null;
            inDevices = false;
        }
        for (int i = 0; i < lines.Length; i++)
        {
            int n = i + 1;
            string l = lines[i].Trim();
            if (l.Length == 0 || l.StartsWith('#')) continue;
            // The kernel prints short lines; a bound keeps the line patterns' backtracking (the name in "Alloc by (…)")
            // far from quadratic blow-up on a damaged file.
            if (l.Length > MaxLine) throw new DumpFormatException(n, $"line of {l.Length} characters (at most {MaxLine})");
            Match m;
            if ((m = DmaBufHeader().Match(l)).Success)
            {
                Flush(n);
                heap = m.Groups[1].Value;
                dmabuf = true;
                headerOpen = true;
                ino = m.Groups[2].Success ? Inode(m.Groups[2].Value, n) : -1;
                inoLine = n;
                continue;
            }
            if ((m = ContigHeader().Match(l)).Success)
            {
                Flush(n);
                heap = m.Groups[1].Value;
                dmabuf = false;
                headerOpen = true;
                ino = -1;
                continue;
            }
            if ((m = InoLine().Match(l)).Success && heap is not null && dmabuf && pending is null)
            {
                ino = Inode(m.Groups[1].Value, n);
                inoLine = n;
                continue;
            }
            if ((m = AllocLine().Match(l)).Success)
            {
                if (!headerOpen || pending is not null) throw new DumpFormatException(n, "an \"Alloc by\" line without its dma-heap:<name> header");
                ulong s = Hex(m.Groups[2].Value, n), e = Hex(m.Groups[3].Value, n);
                ulong size = Hex(m.Groups[4].Value, n);
                if (e < s) throw new DumpFormatException(n, $"range 0x{s:x}-0x{e:x} ends before it starts");
                if (e - s + 1 != size) throw new DumpFormatException(n, $"size 0x{size:x} does not match the range 0x{s:x}-0x{e:x} ({e - s + 1} bytes)");
                if ((s & 0xfff) != 0 || (size & 0xfff) != 0) throw new DumpFormatException(n, $"0x{s:x} (+0x{size:x}) is not page aligned");
                if (m.Groups[5].Success && (!ulong.TryParse(m.Groups[5].Value, NumberStyles.None, CultureInfo.InvariantCulture, out ulong kib) || kib != size >> 10))
                    throw new DumpFormatException(n, $"{m.Groups[5].Value} KiB does not match 0x{size:x}");
                pending = (m.Groups[1].Value, s, e, n);
                continue;
            }
            if (l == "Attached Devices:" && pending is not null && dmabuf)
            {
                devices = [];
                inDevices = true;
                continue;
            }
            if ((m = TotalDevices().Match(l)).Success && pending is not null && dmabuf)
            {
                if (!int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count != (devices?.Count ?? 0)) throw new DumpFormatException(n, $"{m.Groups[1].Value} devices announced, {devices?.Count ?? 0} listed");
                Flush(n);
                continue;
            }
            if (l.StartsWith("Total :", StringComparison.Ordinal)) { Flush(n); continue; }
            if (inDevices) { devices!.Add(l); continue; }
            throw new DumpFormatException(n, $"unexpected line '{(l.Length > 60 ? l[..60] + "…" : l)}'");
        }
        Flush(lines.Length);
        if (entries.Count == 0) throw new DumpFormatException(0, "no \"Alloc by\" entry found");
        return entries;
    }

    /// <summary>An inode number as the dump writes it (decimal); one that does not fit in 63 bits is refused.</summary>
    private static long Inode(string digits, int line) =>
        long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long v)
            ? v
            : throw new DumpFormatException(line, $"inode number {(digits.Length > 30 ? digits[..30] + "…" : digits)} is too large (at most {long.MaxValue})");

    /// <summary>A 64-bit hexadecimal address or size; more than 64 bits is refused.</summary>
    private static ulong Hex(string digits, int line) =>
        ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v)
            ? v
            : throw new DumpFormatException(line, $"0x{(digits.Length > 30 ? digits[..30] + "…" : digits)} does not fit in 64 bits");

    /// <summary>What a replay built.</summary>
    public sealed record Result(int DmaBufs, int PageRuns, ulong Bytes, IReadOnlyList<DmaBuf> Buffers, IReadOnlyList<(Page Page, long Size, string Name)> Runs);

    /// <summary>
    /// Rebuilds the dump on <paramref name="m"/>: lowest address first, gaps held by temporary runs so that each buffer
    /// lands at its own address (first fit), dma-bufs with their inode numbers, names and attachments. The state stays
    /// (the buffers are the heap's, released with <see cref="RkDmaHeap.BufferFree"/> / <see cref="RkDmaHeap.FreeContigPages"/>).
    /// </summary>
    /// <exception cref="DumpFormatException">An unknown heap or device, overlapping buffers, or a buffer outside the heap's area.</exception>
    public static Result Replay(Machine m, IReadOnlyList<RkDmaHeapDumpEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(entries);
        var sorted = entries.OrderBy(e => e.Start).ToList();
        foreach (var e in sorted)
        {
            var heap = m.RkDmaHeapFind(e.Heap) ?? throw new DumpFormatException(e.Line, $"no RK-DMA-HEAP '{e.Heap}' on {m.Profile.Name}");
            if (e.Start < heap.Area.Base || e.End >= heap.Area.Base + heap.Area.Size)
                throw new DumpFormatException(e.Line, $"0x{e.Start:x}-0x{e.End:x} is outside {e.Heap} (0x{heap.Area.Base:x}-0x{heap.Area.Base + heap.Area.Size - 1:x})");
            foreach (var d in e.Devices)
                if (!m.Devices.ContainsKey(d)) throw new DumpFormatException(e.Line, $"no device '{d}' on {m.Profile.Name}");
        }
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Start <= sorted[i - 1].End && sorted[i].Heap == sorted[i - 1].Heap)
                throw new DumpFormatException(sorted[i].Line, $"0x{sorted[i].Start:x} overlaps the buffer at 0x{sorted[i - 1].Start:x} (line {sorted[i - 1].Line})");
        var fillers = new List<(CmaArea Area, Page Page, int Count)>();
        var bufs = new List<DmaBuf>();
        var runs = new List<(Page, long, string)>();
        ulong bytes = 0;
        try
        {
            foreach (var e in sorted)
            {
                var heap = m.RkDmaHeapFind(e.Heap)!;
                var cma = heap.Area;
                // Whatever is free below the buffer is held for the time of the replay, so that first fit lands on it.
                while (true)
                {
                    var probe = m.CmaAlloc(cma, 1, 0, Gfp.Kernel | Gfp.NoWarn);
                    if (probe.IsNull) throw new DumpFormatException(e.Line, $"no room for 0x{e.Start:x} in {cma.Name}");
                    ulong at = m.PageToPhys(probe);
                    m.CmaRelease(cma, probe, 1);
                    if (at >= e.Start) break;
                    int gap = (int)((e.Start - at) >> 12);
                    var hole = m.CmaAlloc(cma, gap, 0, Gfp.Kernel | Gfp.NoWarn);
                    if (hole.IsNull) throw new DumpFormatException(e.Line, $"cannot hold the free space below 0x{e.Start:x}");
                    fillers.Add((cma, hole, gap));
                }
                if (e.IsDmaBuf)
                {
                    if (e.Ino >= 0) m.Sysctl.Kmem.DmaBufNextIno = (ulong)e.Ino;
                    var b = heap.BufferAlloc((long)e.Size, e.AllocBy) ?? throw new DumpFormatException(e.Line, $"no room for {e.Size} bytes at 0x{e.Start:x}");
                    ulong got = m.PageToPhys(b.PageBlocks[0].Page);
                    if (got != e.Start) { heap.BufferFree(b); throw new DumpFormatException(e.Line, $"landed at 0x{got:x}, not 0x{e.Start:x} (is the area's alignment 0?)"); }
                    foreach (var d in e.Devices) b.Attach(m.Devices[d]);
                    bufs.Add(b);
                }
                else
                {
                    var p = heap.AllocContigPages((long)e.Size, e.AllocBy);
                    if (p.IsNull || m.PageToPhys(p) != e.Start) throw new DumpFormatException(e.Line, $"page run of {e.Size} bytes did not land at 0x{e.Start:x}");
                    runs.Add((p, (long)e.Size, e.AllocBy));
                }
                bytes += e.Size;
            }
        }
        catch
        {
            // Nothing half built stays behind.
            foreach (var b in bufs) m.RkDmaHeapFind(b.ExpName)!.BufferFree(b);
            foreach (var (p, size, name) in runs) m.RkDmaHeaps.Values.First(h => h.ContigEntries.Any(x => x.Start == m.PageToPhys(p))).FreeContigPages(p, size, name);
            throw;
        }
        finally
        {
            foreach (var (area, page, count) in fillers) m.CmaRelease(area, page, count);
        }
        return new Result(bufs.Count, runs.Count, bytes, bufs, runs);
    }
}
