// The kernel as a driver sees it: the subsystems a driver layer (DRM, VB2, RTnet, Rockchip) calls into, and
// nothing of the machine that built them. The machine (the composition root) makes one context after boot
// and hands it to every driver it creates, so the drivers never reach back up into the machine or its
// profile. What the drivers need to know about the modelled kernel comes with it as facts (Core's
// KernelFacts: the architecture today, the kernel version and CONFIG_ switches next).
using System.Runtime.CompilerServices;
using Kmem.Dma;
using Kmem.Paging;
using Kmem.Slab;
using Kmem.Vmalloc;

namespace Kmem.Kernel;

/// <summary>
/// One booted kernel's subsystems for the driver layers: the page and slab allocators, the DMA API, the vmalloc
/// space (absent where physical memory cannot be mapped twice), the DMA-BUF core and its descriptor table, the log
/// ring, the machine's life, the proc registry, and the kernel's facts. Built once by the machine.
/// </summary>
internal sealed class KernelContext
{
    private readonly VmallocSpace? _vmalloc;

    public KernelContext(KernelFacts facts, KernelLog log, KernelLife life, ProcRegistry proc, PageAllocator pages,
        SlabAllocator slab, DmaMapper dma, VmallocSpace? vmalloc, DmaBufCore dmaBufs)
    {
        Facts = facts;
        Log = log;
        Life = life;
        Proc = proc;
        Pages = pages;
        Slab = slab;
        Dma = dma;
        _vmalloc = vmalloc;
        DmaBufs = dmaBufs;
    }

    /// <summary>What the modelled kernel is (architecture, word size, cache line, CPUs; its version and config to come).</summary>
    public KernelFacts Facts { get; }

    /// <summary>The log ring (printk).</summary>
    public KernelLog Log { get; }

    /// <summary>The machine's live/dead state, which every object a driver hands out checks.</summary>
    public KernelLife Life { get; }

    /// <summary>The table of /proc and /sys views, where a driver registers its files.</summary>
    public ProcRegistry Proc { get; }

    /// <summary>The page allocator.</summary>
    public PageAllocator Pages { get; }

    /// <summary>The slab allocator (kmem_cache_create, kmalloc).</summary>
    public SlabAllocator Slab { get; }

    /// <summary>The DMA API.</summary>
    public DmaMapper Dma { get; }

    /// <summary>The DMA-BUF core (export, the list of buffers, inode numbers).</summary>
    public DmaBufCore DmaBufs { get; }

    /// <summary>The descriptor table user space holds dma-bufs through.</summary>
    public DmaBufFdTable DmaBufFds => DmaBufs.Fds;

    /// <summary>The vmalloc window, or null where physical memory cannot be mapped twice.</summary>
    public VmallocSpace? VmallocSpaceOrNull => _vmalloc;

    /// <summary>The vmalloc window.</summary>
    /// <exception cref="PlatformNotSupportedException">The machine's memory cannot be remapped (not Linux).</exception>
    public VmallocSpace VmallocSpace => _vmalloc ?? throw new PlatformNotSupportedException(
        "vmalloc needs physical memory that can be mapped twice (a memfd, Linux); this machine's is a plain native block");

    /// <summary>The page handle of a frame of this machine.</summary>
    public Page PageOf(int frame) => DmaBufs.PageOf(frame);

    /// <summary>The frame of an allocated page mapped at a linear-map or vmalloc address, or -1 (what get_user_pages can pin).</summary>
    public int UserFrameAt(nint address)
    {
        nint off = address - Pages.IdxToVirt(0);
        if (off >= 0 && off < ((nint)Pages.Frames.Count << KernelFacts.PageShift)
            && Pages.PfnValid(Pages.BasePfn + (ulong)(off >> KernelFacts.PageShift)))
        {
            int idx = (int)(off >> KernelFacts.PageShift);
            return Pages.PageCount(idx) > 0 ? idx : -1;
        }
        return _vmalloc is not null && _vmalloc.Contains(address) ? _vmalloc.FrameAt(address) : -1;
    }

    /// <summary>
    /// vmalloc_user() for a driver: zeroed pages mapped VM_USERMAP; 0 on failure. The call site is
    /// <paramref name="caller"/> with the calling file and line, as the machine's public entry point records it.
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">The machine's memory cannot be remapped (not Linux).</exception>
    public nint VmallocUser(nuint size, string caller, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        return VmallocSpace.Vmalloc(size, Gfp.Kernel | Gfp.Zero, VmFlags.UserMap, new CallSite(caller, file, line));
    }

    /// <summary>vfree() for a driver: unmaps the area at <paramref name="address"/> and frees its pages (0 is ignored).</summary>
    /// <exception cref="InvalidAddressException">The address does not start a vmalloc area.</exception>
    public void Vfree(nint address, string caller, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        if (address == 0) return;
        VmallocSpace.Free(address, freePages: true, new CallSite(caller, file, line));
    }
}
