// The architectures Kmem models. A fact every layer may need (zone limits, DMA rules, pointer size), so it
// lives at the bottom of the stack; a machine profile names one and the kernel facts carry it down.
namespace Kmem;

/// <summary>The architectures Kmem models.</summary>
public enum Arch
{
    /// <summary>32-bit ARM (ARMv7, Cortex-A7 class): Normal/HighMem (ZONE_DMA only where a platform selects it), pageblock order MAX_ORDER-1.</summary>
    Arm,
    /// <summary>64-bit ARM: DMA/DMA32/Normal (before 5.5: DMA below 4 GiB, no DMA32), pageblock order 9.</summary>
    Arm64,
    /// <summary>x86_64: DMA (&lt; 16 MiB), DMA32 (&lt; 4 GiB), Normal, pageblock order 9.</summary>
    X86_64,
    /// <summary>32-bit x86: DMA (&lt; 16 MiB), Normal up to the end of lowmem (896 MiB with the 3G/1G split), HighMem above; pageblock order MAX_ORDER-1.</summary>
    I386,
    /// <summary>32-bit RISC-V: Normal only; pageblock order MAX_ORDER-1.</summary>
    Riscv32,
    /// <summary>64-bit RISC-V: DMA32 (&lt; 4 GiB) and Normal, no ZONE_DMA; pageblock order 9.</summary>
    Riscv64,
}
