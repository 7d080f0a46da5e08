// The machine-wide table of pageblock migratetypes by frame index (SPARSEMEM's usemap, one byte a pageblock),
// which the order-0 free fast path reads in one load from the page's index. The zones keep their own
// per-zone arrays as the truth and write every change through to this table.
using System.Runtime.CompilerServices;

namespace Kmem.Paging;

/// <summary>
/// One byte per pageblock of the machine, indexed from the frame index alone: <c>(idx + Bias) &gt;&gt; order</c>. The kernel
/// reads a page's pageblock type the same way with SPARSEMEM (<c>get_pfnblock_flags_mask()</c> on the section's usemap),
/// without going through the zone. Each zone claims the blocks its span covers when it is built and writes its type
/// changes here (<see cref="Zone.SetPageblockType"/>). A block two zones' spans share (a zone boundary inside a
/// pageblock, or nodes whose spans overlap) holds <see cref="Shared"/>, and a block no zone covers <see cref="Unclaimed"/>:
/// both are above every per-CPU type, so the fast path sends such a page to the slow path, which asks its zone.
/// </summary>
internal sealed unsafe class PageblockUsemap
{
    /// <summary>A block no zone's span covers.</summary>
    public const byte Unclaimed = 0xFF;
    /// <summary>A block in the spans of two zones: each zone keeps its own type for it.</summary>
    public const byte Shared = 0xFE;

    private readonly byte[] _types;
    private readonly int _order;

    /// <param name="basePfn">PFN of frame index 0.</param>
    /// <param name="frames">Frames of the machine.</param>
    /// <param name="pageblockOrder">pageblock_order.</param>
    public PageblockUsemap(ulong basePfn, long frames, int pageblockOrder)
    {
        _order = pageblockOrder;
        Bias = (int)(basePfn & ((1UL << pageblockOrder) - 1));
        long blocks = frames == 0 ? 1 : ((frames - 1 + Bias) >> pageblockOrder) + 1;
        _types = GC.AllocateArray<byte>(checked((int)blocks), pinned: true);
        Array.Fill(_types, Unclaimed);
        Types = (byte*)Unsafe.AsPointer(ref _types[0]);
    }

    /// <summary>The table (pinned for the machine's life): the block of frame <c>idx</c> is <c>Types[(idx + Bias) &gt;&gt; order]</c>.</summary>
    public byte* Types { get; }

    /// <summary>The PFN of frame 0 within its pageblock.</summary>
    public int Bias { get; }

    /// <summary>The type of frame <paramref name="idx"/>'s block, or <see cref="Shared"/> or <see cref="Unclaimed"/>.</summary>
    public byte TypeOf(int idx) => Types[(idx + Bias) >> _order];

    /// <summary>A zone built over frames [<paramref name="startIdx"/>, <paramref name="endIdx"/>) claims their blocks with <paramref name="mt"/>.</summary>
    public void Claim(int startIdx, int endIdx, MigrateType mt)
    {
        if (endIdx <= startIdx) return;
        for (int b = (startIdx + Bias) >> _order, last = (endIdx - 1 + Bias) >> _order; b <= last; b++)
            _types[b] = _types[b] == Unclaimed ? (byte)mt : Shared;
    }

    /// <summary>A zone changed the type of frame <paramref name="idx"/>'s block (a shared block stays <see cref="Shared"/>).</summary>
    public void Set(int idx, MigrateType mt)
    {
        ref byte t = ref _types[(idx + Bias) >> _order];
        if (t != Shared) t = (byte)mt;
    }
}
