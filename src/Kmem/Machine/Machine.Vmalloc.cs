// The machine's vmalloc entry points: vmalloc/vzalloc/vmalloc_user/vfree, vmap/vunmap, the address
// conversions of vmalloc memory and kvmalloc/kvfree with the kernel's kmalloc-then-vmalloc rules.
using System.Runtime.CompilerServices;
using Kmem.Vmalloc;

namespace Kmem;

public sealed partial class Machine
{
    private VmallocSpace Vm => Kernel.VmallocSpace;

    /// <summary>VMALLOC_START: the first address of the vmalloc window (0 when the platform has no window).</summary>
    public nint VmallocStart => Life.Live(_vmalloc?.Start ?? 0);

    /// <summary>VMALLOC_END: the first address past the vmalloc window.</summary>
    public nint VmallocEnd => Life.Live(_vmalloc?.End ?? 0);

    /// <summary>
    /// vmalloc(): <paramref name="size"/> bytes (rounded up to pages) of virtually contiguous memory over order-0
    /// pages taken one by one, wherever they are. Returns 0, with the kernel's warning, when the size is 0, above
    /// the RAM, or when pages or window space run out.
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">The machine's memory cannot be remapped (macOS, Windows, <c>KMEM_NO_MEMFD=1</c>):
    /// every vmalloc and vmap entry point refuses so, with a line in the log.</exception>
    public nint Vmalloc(nuint size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => VmallocCore(size, Gfp.Kernel, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vmalloc() with an <see cref="int"/> size.</summary>
    public nint Vmalloc(int size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => VmallocCore(NonNegative(size), Gfp.Kernel, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>__vmalloc(): vmalloc with the caller's GFP flags (<see cref="Gfp.Zero"/>, <see cref="Gfp.NoWarn"/>, zone bits…).</summary>
    public nint Vmalloc(nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => VmallocCore(size, gfp, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vzalloc(): zeroed vmalloc memory.</summary>
    public nint Vzalloc(nuint size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => VmallocCore(size, Gfp.Kernel | Gfp.Zero, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vzalloc() with an <see cref="int"/> size.</summary>
    public nint Vzalloc(int size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => VmallocCore(NonNegative(size), Gfp.Kernel | Gfp.Zero, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vmalloc_user(): zeroed memory that may be mapped to user space (VM_USERMAP, shown as <c>user</c>).</summary>
    public nint VmallocUser(nuint size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => VmallocCore(size, Gfp.Kernel | Gfp.Zero, VmFlags.UserMap, new CallSite(caller, file, line));

    /// <summary>
    /// vmalloc_node(): <see cref="Vmalloc(nuint, string, string, int)"/> with its pages (and page array) from node
    /// <paramref name="node"/> first, falling back by distance; <see cref="NumaNoNode"/> is plain vmalloc (the calling
    /// thread's memory policy, its node by default).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The node is not online.</exception>
    public nint VmallocNode(nuint size, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        if (node != NumaNoNode) CheckNode(node, nameof(node));
        if (_vmalloc is null) throw Core.NoRemap.Refuse(Log, "vmalloc_node");
        return _vmalloc.Vmalloc(size, Gfp.Kernel, VmFlags.None, new CallSite(caller, file, line), node);
    }

    private nint VmallocCore(nuint size, Gfp gfp, VmFlags flags, CallSite site)
    {
        using var _ = Life.Enter();
        if (_vmalloc is null) throw Core.NoRemap.Refuse(Log, (flags & VmFlags.UserMap) != 0 ? "vmalloc_user" : (gfp & Gfp.Zero) != 0 ? "vzalloc" : "vmalloc");
        return _vmalloc.Vmalloc(size, gfp, flags, site);
    }

    private static nuint NonNegative(int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        return (nuint)size;
    }

    /// <summary>
    /// vfree(): unmaps a vmalloc (or vmap) area and frees the pages it owns; 0 is ignored. An address that does
    /// not start an area (not page aligned, interior, already freed, not a vmalloc address) is reported in the
    /// kernel's words and raises <see cref="InvalidAddressException"/>, with nothing unmapped. A page the area owns
    /// that cannot be freed (a tail page, a page freed behind the area's back …) is reported as a bad page and raises
    /// <see cref="BadPageStateException"/>; the area then stays mapped and busy with all its pages.
    /// </summary>
    public void Vfree(nint address, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Kernel.Vfree(address, caller, file, line);

    /// <summary>
    /// vmap(): maps <paramref name="pages"/> (allocated pages of this machine, in order) into one virtually
    /// contiguous area; with <see cref="VmFlags.MapPutPages"/> the area owns them and <see cref="Vfree"/> frees them.
    /// Returns 0 when the list is empty or the window is full.
    /// </summary>
    /// <exception cref="InvalidAddressException">A page is null, of another machine, or free.</exception>
    /// <exception cref="ReservedPageException">With <see cref="VmFlags.MapPutPages"/>: a page is PG_reserved (one an inactive
    /// CMA area handed out), which <see cref="Vfree"/> could not free.</exception>
    public nint Vmap(ReadOnlySpan<Page> pages, VmFlags flags = VmFlags.Map, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        if ((flags & (VmFlags.Alloc | VmFlags.NoGuard)) != 0) throw new ArgumentException("vmap areas take neither VM_ALLOC nor VM_NO_GUARD", nameof(flags));
        if (_vmalloc is null) throw Core.NoRemap.Refuse(Log, "vmap");
        var frames = pages.Length <= 1024 ? stackalloc int[pages.Length] : new int[pages.Length];
        for (int i = 0; i < pages.Length; i++)
        {
            int idx = CheckedIndex(pages[i], nameof(Vmap));
            // Pages cma_alloc() handed out of an inactive CMA area (CONFIG_CMA_INACTIVE) keep PG_reserved but are allocated.
            var frameFlags = Pages.Frame(idx).Flags;
            if ((frameFlags & (Physical.PageFlags.Buddy | Physical.PageFlags.Pcp)) != 0
                || (frameFlags & (Physical.PageFlags.Reserved | Physical.PageFlags.Allocated)) == Physical.PageFlags.Reserved)
            {
                Log.Err($"vmap: page {pages[i]} is free or reserved");
                throw new InvalidAddressException($"vmap: page {i} ({pages[i]}) is free or reserved");
            }
            // Such a page may be mapped, but not handed over: vfree() of a VM_MAP_PUT_PAGES area puts each page's last
            // reference (__vunmap(), mm/vmalloc.c, 5.10), and free_pages_prepare() finds PG_reserved there: a bad page.
            if ((flags & VmFlags.MapPutPages) != 0 && (frameFlags & Physical.PageFlags.Reserved) != 0)
            {
                Log.Err($"vmap: VM_MAP_PUT_PAGES with a PG_reserved page (pfn:{pages[i].Pfn:x5}): vfree() could not free it");
                throw new ReservedPageException(pages[i].Pfn,
                    $"vmap: page {i} ({pages[i]}) is reserved (an inactive CMA area's page); VM_MAP_PUT_PAGES would free it on vfree");
            }
            frames[i] = idx;
        }
        return Vm.Vmap(frames, flags, new CallSite(caller, file, line));
    }

    /// <summary>
    /// vunmap(): removes a vmap area without freeing its pages. An unknown address is reported and raises
    /// <see cref="InvalidAddressException"/>; so does an area that owns its pages (made by vmalloc), which
    /// <see cref="Vfree"/> must free.
    /// </summary>
    public void Vunmap(nint address, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        if (address == 0) return;
        if (_vmalloc is null) throw Kernel.NoArea(address, "vunmap");
        _vmalloc.Free(address, freePages: false, new CallSite(caller, file, line));
    }

    /// <summary>is_vmalloc_addr(): true for any address of the vmalloc window.</summary>
    public bool IsVmallocAddr(nint address) => Life.Live(_vmalloc?.Contains(address) ?? false);

    /// <summary>vmalloc_to_page(): the page mapped at a vmalloc address, or the null page where nothing is mapped (a guard or free page).</summary>
    /// <exception cref="InvalidAddressException">The address is outside the vmalloc window.</exception>
    public Page VmallocToPage(nint address)
    {
        using var _ = Life.Enter();
        if (!IsVmallocAddr(address)) throw new InvalidAddressException($"vmalloc_to_page: 0x{address:x} is not a vmalloc address");
        int idx = Vm.FrameAt(address);
        return idx < 0 ? Page.Null : new Page(Pages.BasePfn + (ulong)idx, Id, idx);
    }

    /// <summary>vmalloc_to_pfn(): the PFN of the page mapped at a vmalloc address.</summary>
    /// <exception cref="InvalidAddressException">The address is outside the window, or nothing is mapped there.</exception>
    public ulong VmallocToPfn(nint address)
    {
        var p = VmallocToPage(address);
        if (p.IsNull) throw new InvalidAddressException($"vmalloc_to_pfn: no page is mapped at 0x{address:x}");
        return p.Pfn;
    }

    /// <summary>vm_unmap_aliases(): purges the lazily freed areas now, so that their addresses can be reused.</summary>
    public void VmUnmapAliases()
    {
        using var _ = Life.Enter();
        _vmalloc?.PurgeLazy();
    }

    /// <summary>Host mapping calls made for vmalloc and vmap so far (one per run of consecutive frames).</summary>
    internal long VmallocMapCalls => _vmalloc?.MapCalls ?? 0;

    /// <summary>The busy areas of the vmalloc window, lowest address first (what /proc/vmallocinfo lists).</summary>
    public IReadOnlyList<VmArea> VmallocAreas
    {
        get
        {
            using var _ = Life.Enter();
            return _vmalloc?.Areas() ?? [];
        }
    }

    /// <summary>
    /// kvmalloc(): kmalloc first; for more than a page that try is quiet and gives up early (NOWARN, and NORETRY
    /// unless <see cref="Gfp.RetryMayFail"/>), then vmalloc. Flags without all of <see cref="Gfp.Kernel"/> (e.g.
    /// <see cref="Gfp.Atomic"/>) use kmalloc only, as the kernel does.
    /// </summary>
    public nint Kvmalloc(nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var _ = Life.Enter();
        var site = new CallSite(caller, file, line);
        if ((gfp & Gfp.Kernel) != Gfp.Kernel) return Slab.Kmalloc(size, gfp, site);
        Gfp kf = gfp;
        if (size > PageSize)
        {
            kf |= Gfp.NoWarn;
            if ((kf & Gfp.RetryMayFail) == 0) kf |= Gfp.NoRetry;
        }
        // Without a vmalloc window (memory that cannot be remapped) kvmalloc is kmalloc with the caller's full effort.
        if (_vmalloc is null) return Slab.Kmalloc(size, gfp, site);
        nint p = Slab.Kmalloc(size, kf, site);
        if (p != 0 || size <= PageSize) return p;
        return _vmalloc.Vmalloc(size, gfp, VmFlags.None, site);
    }

    /// <summary>kvzalloc(): zeroed <see cref="Kvmalloc"/>.</summary>
    public nint Kvzalloc(nuint size, Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Kvmalloc(size, gfp | Gfp.Zero, caller, file, line);

    /// <summary>kvfree(): vfree for a vmalloc address, kfree otherwise (0 is ignored).</summary>
    public void Kvfree(nint address, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (IsVmallocAddr(address)) Vfree(address, caller, file, line);
        else Kfree(address, caller, file, line);
    }
}
