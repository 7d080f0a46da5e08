// GFP ("get free pages") flags: the kernel's bit values (Linux 5.10 include/linux/gfp.h), its composite
// masks, and the formatter that prints a mask the way the kernel's %pGg and show_gfp_flags() do.
using System.Text;

namespace Kmem;

/// <summary>
/// Allocation flags with the Linux 5.10 bit values. Single bits (<see cref="Zero"/>, <see cref="NoWarn"/>, …)
/// combine with the composites (<see cref="Kernel"/>, <see cref="Atomic"/>, …) exactly as in C:
/// <c>Gfp.Kernel | Gfp.Zero</c> is <c>GFP_KERNEL | __GFP_ZERO</c>.
/// </summary>
[Flags]
public enum Gfp : uint
{
    /// <summary>No flag: the value of <c>GFP_NOWAIT</c> without kswapd wake-up; never blocks.</summary>
    None = 0,

    // ---- zone modifiers ----
    /// <summary><c>__GFP_DMA</c>: allocate from ZONE_DMA (also <c>GFP_DMA</c>).</summary>
    Dma = 0x01,
    /// <summary><c>__GFP_HIGHMEM</c>: ZONE_HIGHMEM may be used.</summary>
    HighMem = 0x02,
    /// <summary><c>__GFP_DMA32</c>: allocate from ZONE_DMA32 (also <c>GFP_DMA32</c>).</summary>
    Dma32 = 0x04,
    /// <summary><c>__GFP_MOVABLE</c>: the page is movable (movable pageblocks, ZONE_MOVABLE, CMA).</summary>
    Movable = 0x08,
    /// <summary><c>__GFP_RECLAIMABLE</c>: reclaimable pageblocks (slab caches with SLAB_RECLAIM_ACCOUNT).</summary>
    Reclaimable = 0x10,

    // ---- watermark and reclaim modifiers ----
    /// <summary><c>__GFP_HIGH</c>: high priority; may use half of the min reserve.</summary>
    High = 0x20,
    /// <summary><c>__GFP_IO</c>: may start physical I/O.</summary>
    Io = 0x40,
    /// <summary><c>__GFP_FS</c>: may call into the filesystem layer.</summary>
    Fs = 0x80,
    /// <summary><c>__GFP_ZERO</c>: return zeroed memory.</summary>
    Zero = 0x100,
    /// <summary><c>__GFP_ATOMIC</c>: the caller cannot sleep and is high priority (may dip further into the reserve).</summary>
    AtomicFlag = 0x200,
    /// <summary><c>__GFP_DIRECT_RECLAIM</c>: the caller may sleep in direct reclaim.</summary>
    DirectReclaim = 0x400,
    /// <summary><c>__GFP_KSWAPD_RECLAIM</c>: wake the background reclaimer at the low watermark.</summary>
    KswapdReclaim = 0x800,
    /// <summary><c>__GFP_WRITE</c>: the page will be written to (dirty-page balancing hint).</summary>
    Write = 0x1000,
    /// <summary><c>__GFP_NOWARN</c>: do not print the allocation failure report.</summary>
    NoWarn = 0x2000,
    /// <summary><c>__GFP_RETRY_MAYFAIL</c>: keep retrying while progress is made, but may fail.</summary>
    RetryMayFail = 0x4000,
    /// <summary><c>__GFP_NOFAIL</c>: never fail; retry (waiting) until memory is found.</summary>
    NoFail = 0x8000,
    /// <summary><c>__GFP_NORETRY</c>: one light attempt at reclaim, then fail.</summary>
    NoRetry = 0x10000,
    /// <summary><c>__GFP_MEMALLOC</c>: ignore the watermarks entirely (memory-freeing paths only).</summary>
    Memalloc = 0x20000,
    /// <summary><c>__GFP_COMP</c>: build a compound page (head and tails, order stored in the head).</summary>
    Comp = 0x40000,
    /// <summary><c>__GFP_NOMEMALLOC</c>: never use the emergency reserves.</summary>
    NoMemalloc = 0x80000,
    /// <summary><c>__GFP_HARDWALL</c>: enforce the cpuset memory allocation policy.</summary>
    Hardwall = 0x100000,
    /// <summary><c>__GFP_THISNODE</c>: no fallback to another node.</summary>
    ThisNode = 0x200000,
    /// <summary><c>__GFP_ACCOUNT</c>: charge the allocation to the memory cgroup.</summary>
    Account = 0x400000,

    /// <summary><c>__GFP_RECLAIM</c> = direct | kswapd reclaim.</summary>
    Reclaim = DirectReclaim | KswapdReclaim,

    // ---- composites (include/linux/gfp.h) ----
    /// <summary><c>GFP_ATOMIC</c>: cannot sleep; may use the atomic reserve (0xa20).</summary>
    Atomic = High | AtomicFlag | KswapdReclaim,
    /// <summary><c>GFP_KERNEL</c>: normal kernel allocation; may sleep and reclaim (0xcc0).</summary>
    Kernel = Reclaim | Io | Fs,
    /// <summary><c>GFP_KERNEL_ACCOUNT</c>: GFP_KERNEL charged to the memory cgroup.</summary>
    KernelAccount = Kernel | Account,
    /// <summary><c>GFP_NOWAIT</c>: cannot sleep, does not use the reserves (0x800).</summary>
    NoWait = KswapdReclaim,
    /// <summary><c>GFP_NOIO</c>: may reclaim but must not start I/O (0xc00).</summary>
    NoIo = Reclaim,
    /// <summary><c>GFP_NOFS</c>: may reclaim and do I/O but not call the filesystem (0xc40).</summary>
    NoFs = Reclaim | Io,
    /// <summary><c>GFP_USER</c>: user-space allocation (0x100cc0).</summary>
    User = Reclaim | Io | Fs | Hardwall,
    /// <summary><c>GFP_HIGHUSER</c>: user allocation that may live in highmem (0x100cc2).</summary>
    HighUser = User | HighMem,
    /// <summary><c>GFP_HIGHUSER_MOVABLE</c>: movable user page (0x100cca).</summary>
    HighUserMovable = HighUser | Movable,
    /// <summary><c>GFP_TRANSHUGE_LIGHT</c>.</summary>
    TransHugeLight = (HighUserMovable | Comp | NoMemalloc | NoWarn) & ~Reclaim,
    /// <summary><c>GFP_TRANSHUGE</c>.</summary>
    TransHuge = TransHugeLight | DirectReclaim,
}

/// <summary>Helpers over <see cref="Gfp"/>: the kernel's names, its masks of bit groups and the predicates the allocators use.</summary>
public static class GfpFlags
{
    // ---- bit groups (include/linux/gfp.h), kept here so that no allocator selects the bits by hand ----

    /// <summary>
    /// <c>GFP_ZONEMASK</c>: the four zone modifiers (<c>__GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE</c>),
    /// the bits <c>gfp_zone()</c> reads. As an integer it is the largest index of the kernel's <c>GFP_ZONE_TABLE</c>:
    /// a table by zone bits has <c>ZoneMask + 1</c> entries.
    /// </summary>
    public const Gfp ZoneMask = Gfp.Dma | Gfp.HighMem | Gfp.Dma32 | Gfp.Movable;

    /// <summary>
    /// <c>GFP_MOVABLE_MASK</c>: the mobility bits (<c>__GFP_RECLAIMABLE | __GFP_MOVABLE</c>) that
    /// <c>gfp_migratetype()</c> reads.
    /// </summary>
    public const Gfp MovableMask = Gfp.Reclaimable | Gfp.Movable;

    /// <summary>
    /// <c>GFP_MOVABLE_SHIFT</c>: <c>(gfp &amp; GFP_MOVABLE_MASK) &gt;&gt; GFP_MOVABLE_SHIFT</c> is the migratetype
    /// (0 unmovable, 1 movable, 2 reclaimable; both bits together are a caller's bug).
    /// </summary>
    public const int MovableShift = 3;

    /// <summary>
    /// <c>GFP_SLAB_BUG_MASK</c> (its zone bits; the kernel's mask also holds the bits above <c>__GFP_BITS_MASK</c>):
    /// zones a slab allocation must not ask for (<c>__GFP_DMA32 | __GFP_HIGHMEM</c>). Slab pages come from the
    /// linear map, so these bits are removed before the page allocator sees them.
    /// </summary>
    public const Gfp SlabBugMask = Gfp.Dma32 | Gfp.HighMem;

    // The order of __def_gfpflag_names (include/trace/events/mmflags.h, 5.10): composites first, then bits.
    private static readonly (Gfp Mask, string Name)[] s_names =
    [
        (Gfp.TransHuge, "GFP_TRANSHUGE"),
        (Gfp.TransHugeLight, "GFP_TRANSHUGE_LIGHT"),
        (Gfp.HighUserMovable, "GFP_HIGHUSER_MOVABLE"),
        (Gfp.HighUser, "GFP_HIGHUSER"),
        (Gfp.User, "GFP_USER"),
        (Gfp.KernelAccount, "GFP_KERNEL_ACCOUNT"),
        (Gfp.Kernel, "GFP_KERNEL"),
        (Gfp.NoFs, "GFP_NOFS"),
        (Gfp.Atomic, "GFP_ATOMIC"),
        (Gfp.NoIo, "GFP_NOIO"),
        (Gfp.NoWait, "GFP_NOWAIT"),
        (Gfp.Dma, "GFP_DMA"),
        (Gfp.HighMem, "__GFP_HIGHMEM"),
        (Gfp.Dma32, "GFP_DMA32"),
        (Gfp.High, "__GFP_HIGH"),
        (Gfp.AtomicFlag, "__GFP_ATOMIC"),
        (Gfp.Io, "__GFP_IO"),
        (Gfp.Fs, "__GFP_FS"),
        (Gfp.NoWarn, "__GFP_NOWARN"),
        (Gfp.RetryMayFail, "__GFP_RETRY_MAYFAIL"),
        (Gfp.NoFail, "__GFP_NOFAIL"),
        (Gfp.NoRetry, "__GFP_NORETRY"),
        (Gfp.Comp, "__GFP_COMP"),
        (Gfp.Zero, "__GFP_ZERO"),
        (Gfp.NoMemalloc, "__GFP_NOMEMALLOC"),
        (Gfp.Memalloc, "__GFP_MEMALLOC"),
        (Gfp.Hardwall, "__GFP_HARDWALL"),
        (Gfp.ThisNode, "__GFP_THISNODE"),
        (Gfp.Reclaimable, "__GFP_RECLAIMABLE"),
        (Gfp.Movable, "__GFP_MOVABLE"),
        (Gfp.Account, "__GFP_ACCOUNT"),
        (Gfp.Write, "__GFP_WRITE"),
        (Gfp.Reclaim, "__GFP_RECLAIM"),
        (Gfp.DirectReclaim, "__GFP_DIRECT_RECLAIM"),
        (Gfp.KswapdReclaim, "__GFP_KSWAPD_RECLAIM"),
    ];

    /// <summary>
    /// The mask as the kernel's <c>%pGg</c> prints it: names joined by <c>|</c>, composites tried first,
    /// unknown bits appended as hex; the empty mask prints as an empty string.
    /// </summary>
    public static string Format(Gfp gfp)
    {
        uint rest = (uint)gfp;
        if (rest == 0) return "";
        var sb = new StringBuilder();
        foreach (var (mask, name) in s_names)
        {
            uint m = (uint)mask;
            if ((rest & m) != m) continue;
            if (sb.Length > 0) sb.Append('|');
            sb.Append(name);
            rest &= ~m;
            if (rest == 0) break;
        }
        if (rest != 0)
        {
            if (sb.Length > 0) sb.Append('|');
            sb.Append("0x").Append(rest.ToString("x"));
        }
        return sb.ToString();
    }

    /// <summary>The mask as the trace events print it (<c>show_gfp_flags</c>): "none" for 0.</summary>
    public static string FormatTrace(Gfp gfp) => gfp == 0 ? "none" : Format(gfp);

    /// <summary>
    /// Parses a mask written the kernel's way (<c>GFP_KERNEL|__GFP_ZERO</c>, a hex value such as <c>0xcc0</c>,
    /// or the .NET names such as <c>Kernel|Zero</c>). Returns false for an unknown name.
    /// </summary>
    public static bool TryParse(string text, out Gfp gfp)
    {
        gfp = Gfp.None;
        if (string.IsNullOrWhiteSpace(text)) return false;
        foreach (var raw in text.Split('|', StringSplitOptions.TrimEntries))
        {
            if (raw.Length == 0) return false;
            if (raw.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                if (!uint.TryParse(raw.AsSpan(2), System.Globalization.NumberStyles.HexNumber, null, out uint v)) return false;
                gfp |= (Gfp)v;
                continue;
            }
            if (raw == "none") continue;
            bool found = false;
            foreach (var (mask, name) in s_names)
            {
                if (name == raw) { gfp |= mask; found = true; break; }
            }
            if (!found)
            {
                if (!Enum.TryParse(raw, ignoreCase: false, out Gfp named) || int.TryParse(raw, out _)) return false;
                gfp |= named;
            }
        }
        return true;
    }

    /// <summary>True if the caller may sleep (<c>gfpflags_allow_blocking</c>).</summary>
    public static bool AllowsBlocking(this Gfp gfp) => (gfp & Gfp.DirectReclaim) != 0;
}
