// The zone types (enum zone_type), in the kernel's order.
namespace Kmem;

/// <summary>Zone types in the kernel's order (<c>enum zone_type</c>).</summary>
public enum ZoneType
{
    /// <summary>ZONE_DMA: memory reachable by ISA-style (x86: 24-bit; arm64 5.10: 30-bit) DMA.</summary>
    Dma = 0,
    /// <summary>ZONE_DMA32: memory below 4 GiB.</summary>
    Dma32 = 1,
    /// <summary>ZONE_NORMAL: the directly mapped memory.</summary>
    Normal = 2,
    /// <summary>ZONE_HIGHMEM: 32-bit memory beyond the linear map.</summary>
    HighMem = 3,
    /// <summary>ZONE_MOVABLE: only movable allocations.</summary>
    Movable = 4,
}
