// Where a dead mapping goes instead of munmap: the range is replaced at once by fresh anonymous pages
// (reads give zeros, writes land in private pages; nothing faults), so a Span<byte> a program still
// holds over freed vmalloc memory or over a disposed machine's memory cannot take the process down.
// Replaced ranges are kept out of reuse (quarantined) and unmapped oldest first once the quarantine
// holds more than its budget of address space; the page scan that finds writes made there is here too.
using System.Runtime.InteropServices;

namespace Kmem.Physical;

/// <summary>Harmless replacement mappings and the process-wide quarantine of retired address ranges.</summary>
internal static unsafe class RetiredMappings
{
    /// <summary>Address space the quarantine keeps before it unmaps the oldest range (1 TiB; nothing is committed).</summary>
    public const ulong BudgetBytes = 1UL << 40;
    /// <summary>Ranges the quarantine keeps at most (each is one host mapping).</summary>
    public const int MaxRanges = 1024;

    private static readonly Lock s_lock = new();
    private static readonly Queue<(nint Start, nuint Size)> s_ranges = new();
    private static ulong s_bytes;

    /// <summary>Ranges in quarantine now.</summary>
    public static int Count { get { lock (s_lock) return s_ranges.Count; } }

    /// <summary>
    /// Replaces <paramref name="size"/> bytes at <paramref name="start"/> with fresh, readable and writable anonymous
    /// pages that commit nothing until written. False when the host refused (errno in the last P/Invoke error).
    /// </summary>
    public static bool MakeHarmless(nint start, nuint size)
    {
        if (size == 0) return true;
        nint r = Libc.Mmap(start, size, Libc.ProtRead | Libc.ProtWrite,
            Libc.MapPrivate | Libc.MapAnonymous | Libc.MapFixed | Libc.MapNoReserve, -1, 0);
        return r == start;
    }

    /// <summary>
    /// Retires a whole mapping: its first <paramref name="harmlessBytes"/> become harmless pages (the rest, if any,
    /// was never reachable), and the range is quarantined; the oldest ranges are unmapped past the budget.
    /// </summary>
    public static void Retire(nint start, nuint size, nuint harmlessBytes)
    {
        if (!MakeHarmless(start, Math.Min(harmlessBytes, size)))
        {
            Libc.Munmap(start, size);
            return;
        }
        var evict = new List<(nint, nuint)>();
        lock (s_lock)
        {
            s_ranges.Enqueue((start, size));
            s_bytes += size;
            while (s_ranges.Count > 1 && (s_bytes > BudgetBytes || s_ranges.Count > MaxRanges))
            {
                var old = s_ranges.Dequeue();
                s_bytes -= old.Size;
                evict.Add(old);
            }
        }
        foreach (var (s, n) in evict) Libc.Munmap(s, n);
    }

    /// <summary>
    /// The pages of a harmless range that hold anything but zeros (written after the range was retired), as page
    /// indices from <paramref name="start"/>. Only resident pages are read, so an untouched range costs one call.
    /// </summary>
    public static List<int> WrittenPages(nint start, int pages)
    {
        var written = new List<int>();
        if (pages <= 0) return written;
        byte[] vec = GC.AllocateUninitializedArray<byte>(pages);
        fixed (byte* v = vec)
            if (Libc.Mincore(start, (nuint)pages * PhysicalMemory.PageSize, v) != 0) return written;
        for (int i = 0; i < pages; i++)
        {
            if ((vec[i] & 1) == 0) continue;
            var page = new ReadOnlySpan<byte>((void*)(start + (nint)i * PhysicalMemory.PageSize), PhysicalMemory.PageSize);
            if (page.IndexOfAnyExcept((byte)0) >= 0) written.Add(i);
        }
        return written;
    }

    /// <summary>How long a block that cannot be retired in place (the runtime's allocator, off Linux) stays allocated after
    /// its machine is disposed: longer than any call already past its liveness check can take to finish.</summary>
    public static readonly TimeSpan FreeGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Where memory cannot be replaced by harmless pages (macOS, Windows: a block of the runtime's allocator), frees it
    /// with <paramref name="free"/> only after <see cref="FreeGrace"/>, so that a fast path already inside when the
    /// machine was disposed finishes on memory that is still there. A span held longer is a use after free, as with any
    /// native memory.
    /// </summary>
    public static void FreeAfterGrace(nint block, Action<nint> free) =>
        _ = Task.Delay(FreeGrace).ContinueWith(_ => free(block), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

    /// <summary>The errno of the last failed host call, for reports.</summary>
    public static int LastError => Marshal.GetLastPInvokeError();
}
