// The workload step of high memory, highmem_stream: frames streamed through a ring made of a label's pages, as a
// camera driver on a 32-bit board with more RAM than lowmem moves them (its buffers come from GFP_HIGHUSER, so
// from ZONE_HIGHMEM first). For each frame the producer writes every page through kmap_local_page() (Linux 5.11
// on; kmap_atomic() before, where kmap_local does not exist), the consumer reads every byte back through another
// mapping (kmap() of each page, or a vmap() of the frame's pages), and the buffer goes back to the ring. The note
// it leaves says how many pages were HighMem and what the mappings cost: window hits and cold maps of the
// producer's stack, persistent-pool maps, flushes and sleeps of the consumer's kmap().
using System.Buffers.Binary;
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The high-memory operations.</summary>
internal static class HighmemSteps
{
    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("highmem_stream", ["label", "frame_pages", "frames", "producer", "consumer"],
            step =>
            {
                Label(step);
                Required(step, "frame_pages");
                Required(step, "frames");
                Int(step, "frame_pages", 1, 1, 1 << 20);
                Long(step, "frames", 1, 1, 100_000_000);
                if (Str(step, "producer") is { } p && p is not ("kmap_local" or "kmap_atomic"))
                    throw new WorkloadException($"{step.Location}.producer", $"'{p}' is not kmap_local or kmap_atomic");
                if (Str(step, "consumer") is { } c && c is not ("kmap" or "vmap"))
                    throw new WorkloadException($"{step.Location}.consumer", $"'{c}' is not kmap or vmap");
            },
            Stream)
        {
            CheckOn = (m, step) =>
            {
                if (Str(step, "producer") == "kmap_local" && !m.Profile.Version.IsAtLeast(5, 11))
                    throw new WorkloadException($"{step.Location}.producer", $"kmap_local_page() does not exist in Linux {m.Profile.Version} (it came with 5.11): use kmap_atomic");
            },
        },
    ];

    /// <summary>The byte a page of a frame is filled with (never the same for neighbouring pages or frames).</summary>
    private static byte Mark(long frame, int page) => (byte)(frame * 7 + page * 13 + 1);

    private static unsafe void Stream(StepContext ctx, WorkloadStep step)
    {
        var m = ctx.Machine;
        string label = Str(step, "label")!;
        int framePages = Int(step, "frame_pages", 1);
        long frames = Long(step, "frames", 1);
        // The release decides the default: kmap_local_page() from 5.11 (mm/highmem.c), kmap_atomic() before.
        bool local = (Str(step, "producer") ?? (m.Profile.Version.IsAtLeast(5, 11) ? "kmap_local" : "kmap_atomic")) == "kmap_local";
        bool vmap = Str(step, "consumer") == "vmap";

        var ring = new List<Page>();
        foreach (var h in ctx.Holder(label))
        {
            if (h is not Held.PageBlock b) continue;
            for (int i = 0; i < 1 << b.Order; i++) ring.Add(b.First.Plus(i));
        }
        int buffers = ring.Count / framePages;
        if (buffers == 0)
        {
            ctx.Result.Problems.Add($"{step.Location}: '{label}' holds {ring.Count} pages, less than one frame of {framePages}");
            return;
        }
        int high = 0;
        for (int i = 0; i < buffers * framePages; i++) if (m.PageHighMem(ring[i])) high++;

        var kmaps = m.Kmaps;
        long hits0 = kmaps.Local.Hits, cold0 = kmaps.Local.ColdMaps, served0 = kmaps.Local.PoolServed;
        var pool0 = kmaps.Pool.State();
        long bad = 0;
        var frame = new Page[framePages];
        for (long f = 0; f < frames; f++)
        {
            int first = (int)(f % buffers) * framePages;
            ring.CopyTo(first, frame, 0, framePages);
            // Producer: one short-lived mapping per page, undone before the next (the stack stays one deep).
            for (int j = 0; j < framePages; j++)
            {
                nint a = local ? m.KmapLocalPage(frame[j]) : m.KmapAtomic(frame[j]);
                var bytes = new Span<byte>((void*)a, Machine.PageSize);
                bytes.Fill(Mark(f, j));
                BinaryPrimitives.WriteInt64LittleEndian(bytes, f);
                BinaryPrimitives.WriteInt32LittleEndian(bytes[8..], j);
                if (local) m.KunmapLocal(a); else m.KunmapAtomic(a);
            }
            // Consumer: another mapping of the same frames.
            bool intact = true;
            if (vmap)
            {
                nint v = m.Vmap(frame);
                try
                {
                    for (int j = 0; j < framePages && intact; j++)
                        intact = Intact(new ReadOnlySpan<byte>((void*)(v + (nint)j * Machine.PageSize), Machine.PageSize), f, j);
                }
                finally { m.Vunmap(v); }
            }
            else
            {
                for (int j = 0; j < framePages && intact; j++)
                {
                    nint a = m.Kmap(frame[j]);
                    try { intact = Intact(new ReadOnlySpan<byte>((void*)a, Machine.PageSize), f, j); }
                    finally { m.Kunmap(frame[j]); }
                }
            }
            if (!intact && bad++ == 0) ctx.Result.Problems.Add($"{step.Location}: frame {f} read back other bytes than were written");
        }

        var pool = kmaps.Pool.State();
        int ringPages = buffers * framePages;
        long bytesMoved = frames * framePages * (long)Machine.PageSize;
        string producer = local ? "kmap_local_page" : "kmap_atomic";
        string consumer = vmap
            ? $"vmap: {frames} areas of {framePages} pages"
            : $"kmap: {pool.Maps - pool0.Maps} maps, {pool.NewMappings - pool0.NewMappings} new pkmap mappings, {pool.Flushes - pool0.Flushes} pkmap flushes, {pool.Sleeps - pool0.Sleeps} sleeps";
        ctx.Result.Notes.Add($"highmem_stream {label}: {frames} frames of {framePages} pages ({bytesMoved} bytes) through a ring of {buffers}, " +
            $"{frames - bad} read back intact; {high} of {ringPages} ring pages HighMem ({(ringPages == 0 ? 0 : high * 100L / ringPages)}%); " +
            $"{producer}: {kmaps.Local.Hits - hits0} window hits, {kmaps.Local.ColdMaps - cold0} cold maps, " +
            $"{kmaps.Local.PoolServed - served0} served from pkmap slots; {consumer}");
    }

    /// <summary>True when the page holds what the producer wrote for page <paramref name="j"/> of frame <paramref name="f"/>.</summary>
    private static bool Intact(ReadOnlySpan<byte> bytes, long f, int j) =>
        BinaryPrimitives.ReadInt64LittleEndian(bytes) == f && BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]) == j
        && bytes[12..].IndexOfAnyExcept(Mark(f, j)) < 0;
}
