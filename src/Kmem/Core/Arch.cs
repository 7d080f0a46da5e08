// The architectures Kmem models. A fact every layer may need (zone limits, DMA rules, pointer size), so it
// lives at the bottom of the stack; a machine profile names one and the kernel facts carry it down.
namespace Kmem;

/// <summary>The architectures Kmem models.</summary>
public enum Arch
{
    /// <summary>32-bit ARM (ARMv7, Cortex-A7 class): Normal/HighMem, pageblock order MAX_ORDER-1.</summary>
    Arm,
    /// <summary>64-bit ARM: DMA/DMA32/Normal, pageblock order 9.</summary>
    Arm64,
    /// <summary>x86_64: DMA (&lt; 16 MiB), DMA32 (&lt; 4 GiB), Normal, pageblock order 9.</summary>
    X86_64,
}
