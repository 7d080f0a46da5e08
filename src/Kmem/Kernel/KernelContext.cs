// The kernel as a driver sees it: the subsystems a driver layer (DRM, VB2, RTnet, Rockchip) calls into, and
// nothing of the machine that built them. The machine (the composition root) makes one context after boot
// and hands it to every driver it creates, so the drivers never reach back up into the machine or its
// profile. What the drivers need to know about the modelled kernel comes with it as facts (Core's
// KernelFacts: the architecture today, the kernel version and CONFIG_ switches next).
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Dma;
using Kmem.DmaHeaps;
using Kmem.Paging;
using Kmem.Slab;
using Kmem.Vmalloc;

namespace Kmem.Kernel;

/// <summary>
/// One booted kernel's subsystems for the driver layers: the page and slab allocators, the DMA API, the vmalloc
/// space (absent where physical memory cannot be mapped twice), the DMA-BUF core and its descriptor table, the log
/// ring, the machine's life, the proc registry, and the kernel's facts. Built once by the machine; a driver compares
/// contexts to tell whether two objects belong to one machine.
/// </summary>
/// <param name="Facts">What the modelled kernel is (architecture, word size, cache line, CPUs; its version and config to come).</param>
/// <param name="Log">The log ring (printk).</param>
/// <param name="Life">The machine's live/dead state, which every object a driver hands out checks.</param>
/// <param name="Proc">The table of /proc and /sys views, where a driver registers its files.</param>
/// <param name="Pages">The page allocator.</param>
/// <param name="Slab">The slab allocator (kmem_cache_create, kmalloc).</param>
/// <param name="Dma">The DMA API.</param>
/// <param name="VmallocSpaceOrNull">The vmalloc window, or null where physical memory cannot be mapped twice.</param>
/// <param name="DmaBufs">The DMA-BUF core (export, the list of buffers, inode numbers).</param>
internal sealed record KernelContext(KernelFacts Facts, KernelLog Log, KernelLife Life, ProcRegistry Proc, PageAllocator Pages,
    SlabAllocator Slab, DmaMapper Dma, VmallocSpace? VmallocSpaceOrNull, DmaBufCore DmaBufs)
{
    /// <summary>The descriptor table user space holds dma-bufs through.</summary>
    public DmaBufFdTable DmaBufFds => DmaBufs.Fds;

    /// <summary>The vmalloc window.</summary>
    /// <exception cref="PlatformNotSupportedException">The machine's memory cannot be remapped (not Linux).</exception>
    public VmallocSpace VmallocSpace => VmallocSpaceOrNull ?? throw NoRemap.Refuse(Log, "vmalloc");

    /// <summary>The page handle of a frame of this machine.</summary>
    public Page PageOf(int frame) => DmaBufs.PageOf(frame);

    /// <summary>
    /// The frame of an allocated page at an address user space may hand a driver, or -1 (what get_user_pages can pin).
    /// Kmem stands user memory in with kernel mappings of the same frames: the linear map up to high_memory (lowmem
    /// only: a HighMem frame has no linear address), and vmalloc areas mapped for user space (VM_USERMAP, as
    /// vmalloc_user() and remap_vmalloc_range() require). The pkmap and kmap_local windows are not: their slots are
    /// the kernel's own, reused as soon as they are unmapped, and no user page table ever points there.
    /// </summary>
    public int UserFrameAt(nint address)
    {
        nint off = address - Pages.IdxToVirt(0);
        if (off >= 0 && (ulong)off < Pages.LinearBytes
            && Pages.PfnValid(Pages.BasePfn + (ulong)(off >> KernelFacts.PageShift)))
        {
            int idx = (int)(off >> KernelFacts.PageShift);
            return Pages.PageCount(idx) > 0 ? idx : -1;
        }
        var vm = VmallocSpaceOrNull;
        return vm is not null && vm.Contains(address) && (vm.FlagsAt(address) & VmFlags.UserMap) != 0 ? vm.FrameAt(address) : -1;
    }

    /// <summary>
    /// vmalloc_user() for a driver: zeroed pages mapped VM_USERMAP; 0 on failure. The call site is
    /// <paramref name="caller"/> with the calling file and line, as the machine's public entry point records it.
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">The machine's memory cannot be remapped (not Linux).</exception>
    public nint VmallocUser(nuint size, string caller, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        var vm = VmallocSpaceOrNull ?? throw NoRemap.Refuse(Log, "vmalloc_user");
        return vm.Vmalloc(size, Gfp.Kernel | Gfp.Zero, VmFlags.UserMap, new CallSite(caller, file, line));
    }

    /// <summary>vfree() for a driver: unmaps the area at <paramref name="address"/> and frees its pages (0 is ignored).</summary>
    /// <exception cref="InvalidAddressException">The address does not start a vmalloc area.</exception>
    public void Vfree(nint address, string caller, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        if (address == 0) return;
        if (VmallocSpaceOrNull is not { } vm) throw NoArea(address, "vfree");
        vm.Free(address, freePages: true, new CallSite(caller, file, line));
    }

    /// <summary>
    /// vfree() or vunmap() of an address on a machine without a vmalloc window (its memory cannot be remapped): no area
    /// can start there, so it is the kernel's "nonexistent vm area" warning and <see cref="InvalidAddressException"/>.
    /// </summary>
    public InvalidAddressException NoArea(nint address, string fn)
    {
        Log.Warn($"Trying to {fn}() nonexistent vm area (0x{address:x})");
        return new InvalidAddressException($"{fn}: no vmalloc area starts at 0x{address:x}: this machine has no vmalloc window ({NoRemap.Reason})");
    }
}
