// The high-memory entry points of a machine: PageHighMem, kmap/kunmap (the persistent pool),
// kmap_atomic/kunmap_atomic and kmap_local_page/kunmap_local (the thread's stack). On a machine without
// HighMem every one of them returns the linear address at no cost, as the kernel's do.
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Highmem;

namespace Kmem;

public sealed partial class Machine
{
    private KmapSpace _kmaps = null!;

    internal KmapSpace Kmaps => _kmaps;

    private KmapSpace CreateKmaps(MachineProfile p) => new(Pages, new HighmemSettings
    {
        // LAST_PKMAP: arm PTRS_PER_PTE (arch/arm/include/asm/highmem.h); i386 1024, 512 with PAE (pgtable_32_areas.h).
        LastPkmap = p.Arch == Arch.I386 && !p.Config.IsEnabled("X86_PAE") ? 1024 : 512,
        // KM_MAX_IDX from 5.11 (mm/highmem.c); KM_TYPE_NR before: arm 16 (asm/kmap_types.h), x86 20 (asm-generic/kmap_types.h).
        StackDepth = p.Version.IsAtLeast(5, 11) || p.Arch != Arch.I386 ? 16 : 20,
        HasKmapLocal = p.Version.IsAtLeast(5, 11),
        // The kmap consolidation of 5.8 (Ira Weiny's series) renamed the arch hook __kunmap_atomic() to kunmap_atomic_high().
        ArchUnmapFunction = p.Version.IsAtLeast(5, 8) ? "kunmap_atomic_high" : "__kunmap_atomic",
        // arch/arm/include/asm/highmem.h: ARCH_NEEDS_KMAP_HIGH_GET (every arm but SMP with the v6 TLB or the Cortex-A15
        // erratum 798181, which no profile models); kmap_atomic() uses kmap_high_get() unless DEBUG_HIGHMEM (4.19
        // __kmap_atomic(), 5.11+ arch_kmap_local_high_get()).
        KmapHighGet = p.Arch == Arch.Arm,
        // Without HighMem nothing is ever remapped: no window is reserved.
        Fd = _phys.IsFileBacked && Pages.HighStartIdx != int.MaxValue ? _phys.FileDescriptor : -1,
    }, p.Arch == Arch.I386 ? "arch/x86/mm/highmem_32.c" : "arch/arm/mm/highmem.c");

    /// <summary><c>PageHighMem(page)</c>: true for a page of ZONE_HIGHMEM, which has no linear-map address.</summary>
    /// <exception cref="InvalidAddressException">The page is null or not of this machine.</exception>
    public bool PageHighMem(Page page) => Pages.IsHighMem(CheckedIndex(page, nameof(PageHighMem)));

    /// <summary>
    /// <c>kmap(page)</c>: the page's address until <see cref="Kunmap"/>. A lowmem page returns its linear address; a
    /// HighMem page takes a slot of the persistent kmap pool (LAST_PKMAP slots: 512 on ARM, 1024 on i386), mapped for
    /// real, and keeps it while anyone holds it. May sleep while every slot is in use, so never call it inside
    /// <see cref="KmapAtomic"/>.
    /// </summary>
    /// <exception cref="HighMemException">Called in atomic context (a <see cref="KmapAtomic"/> not yet undone on this thread).</exception>
    /// <exception cref="InvalidAddressException">The page is null or not of this machine.</exception>
    public nint Kmap(Page page) => _kmaps.Kmap(CheckedIndex(page, nameof(Kmap)));

    /// <summary><c>kunmap(page)</c>: drops the reference <see cref="Kmap"/> took (the slot stays mapped, unused, until the pool wraps).</summary>
    /// <exception cref="HighMemException">The page holds no kmap() reference (the kernel's BUG in kunmap_high): nothing changed.</exception>
    public void Kunmap(Page page) => _kmaps.Kunmap(CheckedIndex(page, nameof(Kunmap)));

    /// <summary>
    /// <c>kmap_atomic(page)</c>: disables preemption and page faults on this thread, then maps the page on the
    /// thread's stack (a lowmem page returns its linear address). Undo with <see cref="KunmapAtomic"/>, most recent first.
    /// </summary>
    /// <exception cref="HighMemException">The thread's stack is full (KM_MAX_IDX, 16; KM_TYPE_NR before 5.11): nothing changed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint KmapAtomic(Page page) => _kmaps.Local.MapAtomic(CheckedIndex(page, nameof(KmapAtomic)));

    /// <summary><c>kunmap_atomic(addr)</c>: undoes the most recent <see cref="KmapAtomic"/> of this thread.</summary>
    /// <exception cref="HighMemException">Not the most recent mapping, no kmap_atomic() outstanding, or a kmap_local one: nothing changed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void KunmapAtomic(nint address)
    {
        ThrowIfDisposed();
        _kmaps.Local.UnmapAtomic(address);
    }

    /// <summary>
    /// <c>kmap_local_page(page)</c> (Linux 5.11 and later): the page's address on this thread until
    /// <see cref="KunmapLocal"/>, undone most recent first; preemption stays on. A lowmem page returns its linear address.
    /// </summary>
    /// <exception cref="HighMemException">The modelled release is older than 5.11, or the thread's stack is full: nothing changed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint KmapLocalPage(Page page) => _kmaps.Local.MapLocal(CheckedIndex(page, nameof(KmapLocalPage)));

    /// <summary><c>kunmap_local(addr)</c>: undoes the most recent <see cref="KmapLocalPage"/> of this thread (any address inside the page).</summary>
    /// <exception cref="HighMemException">Not the most recent mapping, not a mapping, or a kmap_atomic one: nothing changed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void KunmapLocal(nint address)
    {
        ThrowIfDisposed();
        _kmaps.Local.UnmapLocal(address);
    }
}
