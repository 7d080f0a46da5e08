// The public description of a vmalloc-window area (struct vm_struct): its range, flags, pages and the
// caller that made it, as /proc/vmallocinfo lists it. The flag values are Linux 5.10's VM_* bits.
namespace Kmem;

/// <summary>Flags of a vmalloc-window area (the kernel's <c>VM_*</c> bits, Linux 5.10 values).</summary>
[Flags]
public enum VmFlags
{
    /// <summary>No flag.</summary>
    None = 0,
    /// <summary>VM_IOREMAP: an ioremap'ed device range (printed <c>ioremap</c>).</summary>
    Ioremap = 0x1,
    /// <summary>VM_ALLOC: made by vmalloc (printed <c>vmalloc</c>).</summary>
    Alloc = 0x2,
    /// <summary>VM_MAP: made by vmap (printed <c>vmap</c>).</summary>
    Map = 0x4,
    /// <summary>VM_USERMAP: may be mapped to user space (vmalloc_user; printed <c>user</c>).</summary>
    UserMap = 0x8,
    /// <summary>VM_DMA_COHERENT: a remap of coherent DMA memory (printed <c>dma-coherent</c>).</summary>
    DmaCoherent = 0x10,
    /// <summary>VM_NO_GUARD: no guard page after the area.</summary>
    NoGuard = 0x40,
    /// <summary>VM_MAP_PUT_PAGES: vfree of this vmap area frees its pages.</summary>
    MapPutPages = 0x100,
}

/// <summary>
/// One busy area of the vmalloc window, as <c>/proc/vmallocinfo</c> shows it. <see cref="Size"/> counts the
/// guard page, as the kernel's size column does.
/// </summary>
public sealed record VmArea
{
    /// <summary>First address of the area (what Vmalloc or Vmap returned).</summary>
    public required nint Address { get; init; }

    /// <summary>Bytes of the window the area takes, its guard page included (<c>vm->size</c>).</summary>
    public required ulong Size { get; init; }

    /// <summary>The VM_* flags.</summary>
    public required VmFlags Flags { get; init; }

    /// <summary>Pages the area owns and frees with it (<c>nr_pages</c>; 0 for a plain vmap).</summary>
    public required int NrPages { get; init; }

    /// <summary>Pages mapped in the area (its size without the guard page, in pages).</summary>
    public required int MappedPages { get; init; }

    /// <summary>The caller that made it (method, file and line).</summary>
    public required string Caller { get; init; }

    /// <summary>True when the page array itself lives in the vmalloc window (printed <c>vpages</c>).</summary>
    public required bool VPages { get; init; }

    /// <summary>The physical address an ioremap area maps (<c>vm->phys_addr</c>, printed <c>phys=</c>), 0 for other areas.</summary>
    public ulong Phys { get; init; }

    /// <summary>
    /// With CONFIG_NUMA: the area's own pages per node, by node id (what <c>N0=… N1=…</c> shows); empty without
    /// CONFIG_NUMA or for an area that owns no pages.
    /// </summary>
    public IReadOnlyList<int> PagesPerNode { get; init; } = [];

    /// <summary>Bytes usable by the caller (the size without the guard page).</summary>
    public ulong UsableSize => (ulong)MappedPages << 12;
}
