// Reads a real /proc/rk_dma_heap/rk-dma-heap-info dump (tabs or condensed spaces, as copied from a board or a
// document) into its entries: every dma-buf and page run with its heap, address range, "Alloc by" name, inode
// number and attached devices. It also reads the dump's `grep Alloc` form (bare "Alloc by" lines with no dma-heap:<name>
// header), as such dumps are usually shared: those entries name no heap (the replay puts them in the board's RK-DMA-HEAP
// area) and are taken as dma-bufs without inode numbers or attachments, which that form does not carry.
// Rebuilding that state on a machine is a scenario's job (Scenarios/RkDmaHeapImport).
using System.Globalization;
using System.Text.RegularExpressions;

namespace Kmem.Rockchip;

/// <summary>The rk-dma-heap-info reader (public as <c>RkDmaHeapImport.Parse</c>, in Scenarios).</summary>
internal static partial class RkDmaHeapDumpReader
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
    internal const int MaxLine = 1024;

    /// <summary>The heap of an entry read from the <c>grep Alloc</c> form, which names none (the replay decides).</summary>
    internal const string UnnamedHeap = "";

    /// <summary>Parses a dump. Lines starting with '#' and blank lines are skipped; anything else out of place is an error.</summary>
    /// <exception cref="DumpFormatException">A malformed line, a size that does not match its range, a device count that does
    /// not match, an inode number that does not fit in 63 bits, or one given to two dma-bufs.</exception>
    internal static IReadOnlyList<RkDmaHeapDumpEntry> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Split('\n');
        // A dump with no dma-heap:<name> header at all is the grep form: every line an "Alloc by" entry of its own.
        if (!lines.Any(l => l.Length <= MaxLine && (DmaBufHeader().IsMatch(l.Trim()) || ContigHeader().IsMatch(l.Trim()))))
            return ParseGrepForm(lines);
        var entries = new List<RkDmaHeapDumpEntry>();
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
                var (s, e) = Range(m, n);
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

    /// <summary>
    /// The <c>grep Alloc</c> form: only "Alloc by" lines (and comments or blank lines). Each is a dma-buf of the heap the
    /// replay chooses (<see cref="UnnamedHeap"/>), with no inode number and no attached device.
    /// </summary>
    private static List<RkDmaHeapDumpEntry> ParseGrepForm(string[] lines)
    {
        var entries = new List<RkDmaHeapDumpEntry>();
        for (int i = 0; i < lines.Length; i++)
        {
            int n = i + 1;
            string l = lines[i].Trim();
            if (l.Length == 0 || l.StartsWith('#')) continue;
            if (l.Length > MaxLine) throw new DumpFormatException(n, $"line of {l.Length} characters (at most {MaxLine})");
            var m = AllocLine().Match(l);
            if (!m.Success)
                throw new DumpFormatException(n, $"unexpected line '{(l.Length > 60 ? l[..60] + "…" : l)}' (a dump without dma-heap:<name> headers holds only \"Alloc by\" lines)");
            var (s, e) = Range(m, n);
            entries.Add(new RkDmaHeapDumpEntry(UnnamedHeap, true, -1, m.Groups[1].Value, s, e, [], n));
        }
        if (entries.Count == 0) throw new DumpFormatException(0, "no \"Alloc by\" entry found");
        return entries;
    }

    /// <summary>The range of an "Alloc by" line, checked: it ends after it starts, matches its size (and KiB), page aligned.</summary>
    private static (ulong Start, ulong End) Range(Match m, int n)
    {
        ulong s = Hex(m.Groups[2].Value, n), e = Hex(m.Groups[3].Value, n);
        ulong size = Hex(m.Groups[4].Value, n);
        if (e < s) throw new DumpFormatException(n, $"range 0x{s:x}-0x{e:x} ends before it starts");
        if (e - s + 1 != size) throw new DumpFormatException(n, $"size 0x{size:x} does not match the range 0x{s:x}-0x{e:x} ({e - s + 1} bytes)");
        if ((s & 0xfff) != 0 || (size & 0xfff) != 0) throw new DumpFormatException(n, $"0x{s:x} (+0x{size:x}) is not page aligned");
        if (m.Groups[5].Success && (!ulong.TryParse(m.Groups[5].Value, NumberStyles.None, CultureInfo.InvariantCulture, out ulong kib) || kib != size >> 10))
            throw new DumpFormatException(n, $"{m.Groups[5].Value} KiB does not match 0x{size:x}");
        return (s, e);
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
}
