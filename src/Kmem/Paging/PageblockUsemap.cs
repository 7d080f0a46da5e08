// The machine-wide copy of the pageblock migratetypes (SPARSEMEM's usemap), kept one byte per frame so
// that the order-0 free fast path reads a page's type in one load from its index. The zones keep their
// own per-zone arrays as the truth and write every change through to this table.
using System.Runtime.CompilerServices;

namespace Kmem.Paging;

/// <summary>
/// The pageblock type of every frame of the machine, one byte per frame indexed by the frame index (each block's byte
/// repeated over its frames). The kernel reads a page's pageblock type from the frame's PFN alone with SPARSEMEM
/// (<c>get_pfnblock_flags_mask()</c> on the section's usemap, a few bits per block), without going through the zone;
/// Kmem spends a byte per frame (a thirty-second of the frame table) so that the lookup is one load, with no shift and
/// no bias. Each zone claims the blocks its span covers when it is built and writes its type changes here
/// (<see cref="Zone.SetPageblockType"/>), which rewrites the block's frames. A block two zones' spans share (a zone
/// boundary inside a pageblock, or nodes whose spans overlap) holds <see cref="Shared"/>, and a block no zone covers
/// <see cref="Unclaimed"/>: both are above every per-CPU type, so the fast path sends such a page to the slow path,
/// which asks its zone.
/// </summary>
internal sealed unsafe class PageblockUsemap
{
    /// <summary>A block no zone's span covers.</summary>
    public const byte Unclaimed = 0xFF;
    /// <summary>A block in the spans of two zones: each zone keeps its own type for it.</summary>
    public const byte Shared = 0xFE;

    private readonly byte[] _types;
    private readonly int _order;
    private readonly int _frames;

    /// <param name="basePfn">PFN of frame index 0.</param>
    /// <param name="frames">Frames of the machine.</param>
    /// <param name="pageblockOrder">pageblock_order.</param>
    public PageblockUsemap(ulong basePfn, long frames, int pageblockOrder)
    {
        _order = pageblockOrder;
        Bias = (int)(basePfn & ((1UL << pageblockOrder) - 1));
        _frames = checked((int)Math.Max(frames, 1));
        _ = checked(_frames + Bias + (1 << pageblockOrder)); // BlockFrames' bounds stay in range
        _types = GC.AllocateArray<byte>(_frames, pinned: true);
        Array.Fill(_types, Unclaimed);
        Types = (byte*)Unsafe.AsPointer(ref _types[0]);
    }

    /// <summary>The table (pinned for the machine's life): the block type of frame <c>idx</c> is <c>Types[idx]</c>.</summary>
    public byte* Types { get; }

    /// <summary>The PFN of frame 0 within its pageblock.</summary>
    public int Bias { get; }

    /// <summary>The type of frame <paramref name="idx"/>'s block, or <see cref="Shared"/> or <see cref="Unclaimed"/>.</summary>
    public byte TypeOf(int idx) => _types[idx];

    /// <summary>The bytes of <paramref name="count"/> frames from <paramref name="idx"/> (for the consistency checker).</summary>
    public ReadOnlySpan<byte> FramesOf(int idx, int count) => _types.AsSpan(idx, count);

    /// <summary>A zone built over frames [<paramref name="startIdx"/>, <paramref name="endIdx"/>) claims their blocks with <paramref name="mt"/>.</summary>
    public void Claim(int startIdx, int endIdx, MigrateType mt)
    {
        if (endIdx <= startIdx) return;
        for (int b = (startIdx + Bias) >> _order, last = (endIdx - 1 + Bias) >> _order; b <= last; b++)
        {
            Span<byte> block = BlockFrames(b);
            block.Fill(block[0] == Unclaimed ? (byte)mt : Shared);
        }
    }

    /// <summary>A zone changed the type of frame <paramref name="idx"/>'s block (a shared block stays <see cref="Shared"/>).</summary>
    public void Set(int idx, MigrateType mt)
    {
        if (_types[idx] != Shared) BlockFrames((idx + Bias) >> _order).Fill((byte)mt);
    }

    /// <summary>The bytes of block <paramref name="block"/>'s frames (the first and last blocks may be cut by the machine's ends).</summary>
    private Span<byte> BlockFrames(int block)
    {
        int lo = Math.Max(0, (block << _order) - Bias), hi = Math.Min(_frames, ((block + 1) << _order) - Bias);
        return _types.AsSpan(lo, hi - lo);
    }
}
