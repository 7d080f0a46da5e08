// Where an allocation, a mapping or a free came from: the caller attributes of a public entry point, or
// the kernel function Kmem stands in for. Every layer records one (slub_debug's owner tracks, vmallocinfo's
// caller, dma-debug's reports), so it lives at the bottom of the stack.
namespace Kmem.Core;

/// <summary>Where an allocation or free came from (the caller attributes), for slub_debug's owner tracking and the views that name callers.</summary>
internal readonly record struct CallSite(string Member, string File, int Line, int SymbolSize = 0)
{
    public override string ToString() =>
        Member.Length == 0 ? "?"
        : File.Length == 0 && SymbolSize > 0 ? $"{Member}+0x{Line:x}/0x{SymbolSize:x}"
        : File.Length == 0 ? Member
        : $"{Member}+{Path.GetFileName(File)}:{Line}";

    /// <summary>A site inside Kmem named after the kernel function it stands for (e.g. <c>dma_direct_alloc</c>).</summary>
    public static CallSite Kernel(string function) => new(function, "", 0);

    /// <summary>
    /// A kernel return address as <c>%pS</c> prints it, <c>function+0xoffset/0xsize</c> (the offset of the return
    /// address in the function and the function's length, as one published build has them).
    /// </summary>
    public static CallSite Symbol(string function, int offset, int size) => new(function, "", offset, size);
}
