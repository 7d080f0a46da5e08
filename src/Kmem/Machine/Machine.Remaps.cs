// The kernel's own vmalloc-window users at boot, by release: the DMA atomic pools (which architectures have
// them and from when) and the ioremap of each platform device's register window as its driver probes; and
// the settings of /proc/vmallocinfo (release, pointer width, the kernel's VMALLOC_START on 32-bit machines).
using Kmem.Boot;
using Kmem.Diagnostics;
using Kmem.Vmalloc;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>
    /// The atomic pools (a postcore/arch initcall, before any driver probes): 32-bit ARM and arm64 in every release
    /// (their own pools, then kernel/dma/remap.c's and kernel/dma/pool.c's); RISC-V from 5.8, when kernel/dma/pool.c
    /// came ("dma-mapping updates for 5.8"); x86_64 from 5.8 only with AMD_MEM_ENCRYPT (which selects
    /// DMA_COHERENT_POOL), unremapped because x86 has no DMA_DIRECT_REMAP; i386 never.
    /// </summary>
    private void CreateAtomicPools(MachineProfile p)
    {
        var v = p.Version;
        switch (p.Arch)
        {
            case Arch.Arm or Arch.Arm64:
                Dma.CreateAtomicPools();
                break;
            case Arch.Riscv32 or Arch.Riscv64 when v.IsAtLeast(5, 8):
                Dma.CreateAtomicPools();
                break;
            case Arch.X86_64 when v.IsAtLeast(5, 8) && p.Config.IsEnabled("AMD_MEM_ENCRYPT"):
                Dma.CreateAtomicPools(remap: false);
                break;
        }
    }

    /// <summary>
    /// devm_ioremap_resource() of each platform device's register window at probe (device_initcall, after the pools):
    /// a VM_IOREMAP area at the name's unit address, its size page-rounded plus the guard page, named after the caller
    /// of ioremap in that release. A default window that would overlap RAM is skipped (ioremap refuses RAM; an explicit
    /// <c>reg_size</c> there is refused when the profile is read).
    /// </summary>
    private void IoremapRegisterWindows(MachineProfile p)
    {
        if (_vmalloc is null)
        {
            int windows = p.Devices.Count(d => d.UnitAddress is not null);
            if (windows > 0)
                Log.Info($"kmem: {windows} device register window{(windows == 1 ? "" : "s")} not ioremapped: this machine has no vmalloc window (no memfd)");
            return;
        }
        var caller = VmallocCallers.DeviceIoremap(p.Is64Bit, p.Version);
        int maxAlign = VmallocCallers.IoremapMaxOrder(p.Arch);
        foreach (var d in p.Devices)
        {
            if (d.UnitAddress is not { } at) continue;
            ulong size = d.RegSize ?? DefaultRegSize;
            if (size == 0 || p.Dram.Any(b => at < b.End && b.Base < at + size)) continue;
            if (_vmalloc.Ioremap(at, size, maxAlign, caller) == 0)
                Log.Err($"{DefaultDriver(d.Name)} {d.Name}: ioremap of [mem 0x{at:x8}-0x{at + size - 1:x8}] failed: no room in the vmalloc window");
        }
    }

    /// <summary>A register window's size when the profile gives none: one page, the least ioremap maps.</summary>
    internal const ulong DefaultRegSize = 4096;

    /// <summary>The /proc/vmallocinfo settings: release, NUMA, and on 32-bit machines VMALLOC_START and 32-bit phys_addr_t.</summary>
    private static VmallocViewConfig VmallocViewConfigFor(MachineProfile p, MemoryLayout layout)
    {
        ulong base32 = 0;
        if (!p.Is64Bit)
        {
            // VMALLOC_END: 32-bit ARM 0xff800000; i386 0xff7fe000 (below the PKMAP and fixmap area); riscv32
            // PAGE_OFFSET (0xc0000000). The window ends there.
            ulong end = p.Arch switch { Arch.I386 => 0xff7fe000UL, Arch.Riscv32 => 0xc0000000UL, _ => 0xff800000UL };
            base32 = end - Math.Min(VmallocWindowBytes(p, layout), MachineProfile.MaxVmallocReserve);
        }
        return new VmallocViewConfig
        {
            Numa = p.Config.IsEnabled("NUMA"),
            Version = p.Version,
            KernelBase32 = base32,
            PhysDigits = p.Is64Bit ? 16 : 8,
        };
    }
}
