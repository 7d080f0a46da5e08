// Rebuilds a real board's RK-DMA-HEAP state on a machine from its /proc/rk_dma_heap/rk-dma-heap-info dump: every
// dma-buf and page run at its own address, with its name, inode number and attached devices, so that what-if
// questions can be asked of the real layout. The dump itself is read in Rockchip (RkDmaHeapDumpReader); this is the
// scenario that drives a Machine with it.
using Kmem.Rockchip;

namespace Kmem;

/// <summary>The rk-dma-heap-info reader and its replay.</summary>
public static class RkDmaHeapImport
{
    /// <summary>The longest line read (the kernel's are under 200 characters; device and heap names are short).</summary>
    public const int MaxLine = RkDmaHeapDumpReader.MaxLine;

    /// <summary>
    /// The heap of an entry read from the dump's <c>grep Alloc</c> form (bare "Alloc by" lines, which name no heap): the
    /// replay puts it in the board's RK-DMA-HEAP area (<see cref="BoardHeap"/>).
    /// </summary>
    public const string UnnamedHeap = RkDmaHeapDumpReader.UnnamedHeap;

    /// <summary>Parses a dump. Lines starting with '#' and blank lines are skipped; anything else out of place is an error.</summary>
    /// <exception cref="DumpFormatException">A malformed line, a size that does not match its range, a device count that does
    /// not match, an inode number that does not fit in 63 bits, or one given to two dma-bufs.</exception>
    public static IReadOnlyList<RkDmaHeapDumpEntry> Parse(string text) => RkDmaHeapDumpReader.Parse(text);

    /// <summary>What a replay built.</summary>
    public sealed record Result(int DmaBufs, int PageRuns, ulong Bytes, IReadOnlyList<DmaBuf> Buffers, IReadOnlyList<(Page Page, long Size, string Name)> Runs)
    {
        /// <summary>The heap that the entries naming none (the <c>grep Alloc</c> form) were put in, or null when every entry named its heap.</summary>
        public string? UnnamedHeapTakenAs { get; init; }
    }

    /// <summary>
    /// The board's RK-DMA-HEAP area for entries that name no heap: its only RK-DMA-HEAP, or, when it has several, the
    /// vendor's default <c>rk-dma-heap-cma</c>; null when it has none or several without that one.
    /// </summary>
    public static RkDmaHeap? BoardHeap(Machine m)
    {
        ArgumentNullException.ThrowIfNull(m);
        if (m.RkDmaHeaps.Count == 1) return m.RkDmaHeaps.Values.First();
        return m.RkDmaHeaps.GetValueOrDefault("rk-dma-heap-cma");
    }

    /// <summary>
    /// Rebuilds the dump on <paramref name="m"/>: lowest address first, gaps held by temporary runs so that each buffer
    /// lands at its own address (first fit), dma-bufs with their inode numbers, names and attachments. The state stays
    /// (the buffers are the heap's, released with <see cref="RkDmaHeap.BufferFree"/> / <see cref="RkDmaHeap.FreeContigPages"/>).
    /// </summary>
    /// <remarks>Entries that name no heap (<see cref="UnnamedHeap"/>, the <c>grep Alloc</c> form) go to <see cref="BoardHeap"/>.</remarks>
    /// <exception cref="DumpFormatException">An unknown heap or device, overlapping buffers, a buffer outside the heap's area,
    /// or entries naming no heap on a board without one RK-DMA-HEAP area to put them in.</exception>
    public static Result Replay(Machine m, IReadOnlyList<RkDmaHeapDumpEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(entries);
        string? unnamedAs = null;
        if (entries.FirstOrDefault(e => e.Heap == UnnamedHeap) is { } bare)
        {
            unnamedAs = BoardHeap(m)?.Name ?? throw new DumpFormatException(bare.Line, m.RkDmaHeaps.Count == 0
                ? $"an \"Alloc by\" line without a heap name needs the board's RK-DMA-HEAP area; {m.Profile.Name} has none"
                : $"an \"Alloc by\" line without a heap name: {m.Profile.Name} has several RK-DMA-HEAP areas ({string.Join(", ", m.RkDmaHeaps.Keys)}), none of them rk-dma-heap-cma");
            entries = [.. entries.Select(e => e.Heap == UnnamedHeap ? e with { Heap = unnamedAs } : e)];
        }
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
        return new Result(bufs.Count, runs.Count, bytes, bufs, runs) { UnnamedHeapTakenAs = unnamedAs };
    }
}
