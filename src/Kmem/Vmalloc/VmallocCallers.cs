// Who the kernel names as the caller of the vmalloc areas Kmem makes on its behalf, and with which VM_ flags,
// release by release: the remap of the DMA atomic pools (arch/arm's and arch/arm64's own pools, then
// kernel/dma/remap.c's and kernel/dma/pool.c's), of coherent buffers, and the ioremap of a device's register
// window at probe.
// /proc/vmallocinfo prints a caller with %pS: "function+0xoffset/0xsize". The offset and size are those of
// one published build (the source is named at each); another build of the same release has other numbers,
// so compare the function name, not the figures.
using Kmem.Core;

namespace Kmem.Vmalloc;

/// <summary>The vmallocinfo caller and flags of the kernel's own remaps, by release and architecture.</summary>
internal static class VmallocCallers
{
    // %pS figures, each from a published dump or trace (32-bit / 64-bit builds where both were found).
    // 32-bit ARM 4.9.129 /proc/vmallocinfo of an FH8856V200 camera: "atomic_pool_init+0x0/0x134 user" and
    // "devm_ioremap_nocache+0x3c/0x70 phys=f0d00000 ioremap".
    private static readonly CallSite ArmAtomicPoolInit = CallSite.Symbol("atomic_pool_init", 0x0, 0x134);
    private static readonly CallSite DevmIoremapNocache32 = CallSite.Symbol("devm_ioremap_nocache", 0x3c, 0x70);
    // x86_64 4.x call trace (tpm_crb probe): "devm_ioremap_nocache+0x3d/0x80" returning from ioremap_nocache.
    private static readonly CallSite DevmIoremapNocache64 = CallSite.Symbol("devm_ioremap_nocache", 0x3d, 0x80);
    // 32-bit ARM KASAN report: "vmalloc region ... allocated at __devm_ioremap+0x68/0xa8"; arm64 call trace of a
    // dwc3 probe: "__ioremap+0x38/0x40" called from "__devm_ioremap+0x7c/0xf8".
    private static readonly CallSite DevmIoremap32 = CallSite.Symbol("__devm_ioremap", 0x68, 0xa8);
    private static readonly CallSite DevmIoremap64 = CallSite.Symbol("__devm_ioremap", 0x7c, 0xf8);
    // 32-bit ARM KASAN report: "vmalloc region ... allocated at dma_common_contiguous_remap+0x94/0xb0" (the vmap
    // made by the remap); riscv32 6.x trace: "vmap+0x6c/0xc8" called from "dma_common_contiguous_remap+0x5a/0x78".
    private static readonly CallSite ContiguousRemapArm = CallSite.Symbol("dma_common_contiguous_remap", 0x94, 0xb0);
    private static readonly CallSite ContiguousRemapRiscv = CallSite.Symbol("dma_common_contiguous_remap", 0x5a, 0x78);
    // arm64 4.x arch/arm64/mm/dma-mapping.c passes atomic_pool_init itself as the caller; an arm64 4.x boot trace
    // shows the function as "atomic_pool_init+0x7c/0x208".
    private static readonly CallSite Arm64AtomicPoolInit = CallSite.Symbol("atomic_pool_init", 0x0, 0x208);
    // arm64 trace of an atomic pool's init run as an initcall: "dma_atomic_pool_init+0xac/0x158" called from
    // "do_one_initcall+0x50/0x218".
    private static readonly CallSite DoOneInitcall = CallSite.Symbol("do_one_initcall", 0x50, 0x218);

    // 32-bit ARM 4.9 vmallocinfo (above): "dma_alloc_attrs.constprop.5+0x64/0x70 user" (that build's copy of the
    // function; the plain name is printed here); arm64 5.x call trace: "dma_direct_alloc+0x70/0x310" returning into
    // "dma_alloc_attrs+0x7c/0xe4".
    private static readonly CallSite DmaAllocAttrs32 = CallSite.Symbol("dma_alloc_attrs", 0x64, 0x70);
    private static readonly CallSite DmaAllocAttrs64 = CallSite.Symbol("dma_alloc_attrs", 0x7c, 0xe4);

    /// <summary>
    /// The caller of the remap of a dma_alloc_coherent() buffer for a non-coherent device (dma-direct, 32-bit ARM's
    /// __dma_alloc): from 5.8 vmap's return address in dma_common_contiguous_remap(); before, the architecture's alloc
    /// handed down its own return address, in dma_alloc_attrs().
    /// </summary>
    public static CallSite CoherentRemap(Arch arch, bool is64Bit, KernelVersion v) =>
        v.IsAtLeast(5, 8) ? AtomicPoolRemap(arch, v) : is64Bit ? DmaAllocAttrs64 : DmaAllocAttrs32;

    /// <summary>
    /// The flags of a coherent DMA remap: VM_DMA_COHERENT from 5.3 ("vmalloc: lift the arm flag for coherent mappings
    /// to common code"); before it the remaps were VM_USERMAP (32-bit ARM's VM_ARM_DMA_CONSISTENT is not printed).
    /// </summary>
    public static VmFlags CoherentRemapFlags(KernelVersion v) => v.IsAtLeast(5, 3) ? VmFlags.DmaCoherent : VmFlags.UserMap;

    /// <summary>
    /// The caller of the atomic pool's remap. From 5.8 dma_common_contiguous_remap() calls vmap() ("dma-mapping: use vmap
    /// insted of reimplementing it"), so vmap's return address in it is what every architecture prints (kernel/dma/pool.c
    /// came in the same release). Before, the caller handed down was printed: 32-bit ARM's and arm64's atomic_pool_init
    /// passed their own address (arm64 until 5.0, when its pool became kernel/dma/remap.c's); remap.c's
    /// dma_atomic_pool_init passes its return address, in the initcall machinery: arm64_dma_init's tail call until 5.4,
    /// then its own postcore_initcall ("dma-mapping: make dma_atomic_pool_init self-contained"), so do_one_initcall.
    /// </summary>
    public static CallSite AtomicPoolRemap(Arch arch, KernelVersion v)
    {
        if (v.IsAtLeast(5, 8)) return arch is Arch.Riscv32 or Arch.Riscv64 ? ContiguousRemapRiscv : ContiguousRemapArm;
        if (arch == Arch.Arm) return ArmAtomicPoolInit;
        if (arch == Arch.Arm64 && !v.IsAtLeast(5, 0)) return Arm64AtomicPoolInit;
        return DoOneInitcall;
    }

    /// <summary>
    /// The caller of a platform driver's devm_ioremap_resource() of its register window: devm_ioremap_nocache()
    /// before 5.6 (ioremap_nocache's return address there), __devm_ioremap() from 5.6 ("lib: devres: add a helper
    /// function for ioremap_uc" folded the devm_ioremap variants into it; ioremap_nocache went in the same release).
    /// </summary>
    public static CallSite DeviceIoremap(bool is64Bit, KernelVersion v) => v.IsAtLeast(5, 6)
        ? (is64Bit ? DevmIoremap64 : DevmIoremap32)
        : (is64Bit ? DevmIoremapNocache64 : DevmIoremapNocache32);

    /// <summary>
    /// IOREMAP_MAX_ORDER: the largest alignment (as a shift) an ioremap area gets, its size's power of two at most.
    /// The generic value is 7 + PAGE_SHIFT; arm64 raises it to PUD_SHIFT for its block mappings.
    /// </summary>
    public static int IoremapMaxOrder(Arch arch) => arch == Arch.Arm64 ? 30 : 7 + 12;
}
