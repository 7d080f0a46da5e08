// A DMA-capable device of a machine (struct device with its DMA mask, coherency, IOMMU and CMA area).
namespace Kmem;

/// <summary>A device that does DMA, named as the kernel names it (e.g. <c>ffa50000.rkvenc</c>).</summary>
public sealed class Device
{
    internal Device(string name, bool iommu, int dmaMaskBits, bool coherent, CmaArea? cma)
    {
        Name = name;
        HasIommu = iommu;
        DmaMaskBits = dmaMaskBits;
        Coherent = coherent;
        CmaArea = cma;
    }

    /// <summary>The device name (<c>dev_name()</c>).</summary>
    public string Name { get; }

    /// <summary>True when the device sits behind an IOMMU.</summary>
    public bool HasIommu { get; }

    /// <summary>Width of the streaming DMA mask in bits.</summary>
    public int DmaMaskBits { get; }

    /// <summary>The DMA mask (<c>*dev->dma_mask</c>).</summary>
    public ulong DmaMask => DmaMaskBits >= 64 ? ulong.MaxValue : (1UL << DmaMaskBits) - 1;

    /// <summary>True for cache-coherent DMA.</summary>
    public bool Coherent { get; }

    /// <summary>The device's own CMA area, or null for the default.</summary>
    public CmaArea? CmaArea { get; }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
