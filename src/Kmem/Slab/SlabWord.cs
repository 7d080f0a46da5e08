// The slab's freelist head and counters packed in one 64-bit word of its head page descriptor
// (SLUB keeps page->freelist and page->counters side by side and swaps both with one
// cmpxchg_double; Kmem swaps this word with one 64-bit compare-and-swap).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Kmem.Slab;

/// <summary>
/// Bits 0-26: the first free object as its byte offset in the slab plus one (0: none);
/// bits 27-41: inuse; bits 42-56: objects; bit 57: frozen (owned by a thread's CPU slab or CPU partial list).
/// </summary>
internal static class SlabWord
{
    private const int InuseShift = 27, ObjectsShift = 42, FrozenShift = 57;
    private const long FreeMask = (1L << InuseShift) - 1, CountMask = 0x7FFF;

    /// <summary>The largest slab whose offsets fit the word.</summary>
    public const long MaxSlabBytes = 1L << 26;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Free(long w) => (uint)(w & FreeMask);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Inuse(long w) => (int)((w >> InuseShift) & CountMask);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Objects(long w) => (int)((w >> ObjectsShift) & CountMask);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Frozen(long w) => ((w >> FrozenShift) & 1) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Make(uint free, int inuse, int objects, bool frozen) =>
        free | ((long)inuse << InuseShift) | ((long)objects << ObjectsShift) | ((frozen ? 1L : 0L) << FrozenShift);

    /// <summary>
    /// The stored form of a free pointer (<c>freelist_ptr()</c> under SLAB_FREELIST_HARDENED): the link
    /// (offset of the next object in the slab plus one, 0 for none) XOR the cache's random key XOR the
    /// byte-swapped address of the slot that holds it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Encode(uint link, uint key, nint slot) => link ^ key ^ BinaryPrimitives.ReverseEndianness((uint)slot);

    /// <summary>
    /// The link a stored free pointer <paramref name="raw"/> holds (the hardening is an XOR, so decoding is
    /// <see cref="Encode"/> again): the next object's offset in the slab plus one, 0 for none; any value above the
    /// slab's size means the slot does not hold a free pointer (an object in use, or corruption).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Decode(uint raw, uint key, nint slot) => raw ^ key ^ BinaryPrimitives.ReverseEndianness((uint)slot);

    /// <summary>
    /// The in-use mark the freelist pop leaves in the object it takes, computed from the free pointer
    /// <paramref name="raw"/> it read: the complement, which decodes to the complement of the link, above any slab
    /// (links are at most <see cref="MaxSlabBytes"/>). It serves as <see cref="InUse"/> does, one XOR cheaper.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint InUseAfterPop(uint raw) => ~raw;

    /// <summary>
    /// What an allocation leaves in the free pointer slot of the object it hands out: a value that decodes to
    /// 0xFFFFFFFF, a link no slab can hold. Every free object's slot decodes to a valid link (0 or an offset in the
    /// slab plus one), so a free whose object's slot does not decode to a valid link cannot be a double free; one
    /// whose slot does is looked up in the slab's free lists (the rare slow case, see SlabCache.DoubleFree.cs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint InUse(uint key, nint slot) => ~(key ^ BinaryPrimitives.ReverseEndianness((uint)slot));

    /// <summary>True when the stored free pointer <paramref name="raw"/> decodes to a link a slab of at most
    /// <paramref name="slabBytes"/> bytes could hold: the object may be free and must be looked up.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool MayBeFree(uint raw, uint key, nint slot, uint slabBytes) => Decode(raw, key, slot) <= slabBytes;
}
