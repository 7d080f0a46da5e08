// A DMA-capable device of a machine (struct device with its DMA mask, coherency, IOMMU and CMA area),
// with what the DMA API keeps per device: its IOVA domain behind an IOMMU and its live mappings.
using Kmem.Dma;

namespace Kmem;

/// <summary>A device that does DMA, named as the kernel names it (e.g. <c>ffa50000.rkvenc</c>).</summary>
public sealed class Device
{
    internal Device(string name, string driver, bool iommu, int dmaMaskBits, bool coherent, CmaArea? cma)
    {
        Name = name;
        Driver = driver;
        HasIommu = iommu;
        DmaMaskBits = dmaMaskBits;
        Coherent = coherent;
        CmaArea = cma;
        if (iommu) Domain = new IovaDomain(DmaMask);
    }

    /// <summary>The device name (<c>dev_name()</c>).</summary>
    public string Name { get; }

    /// <summary>The driver's name (<c>dev_driver_string()</c>).</summary>
    public string Driver { get; }

    /// <summary>True when the device sits behind an IOMMU.</summary>
    public bool HasIommu { get; }

    /// <summary>Width of the streaming DMA mask in bits.</summary>
    public int DmaMaskBits { get; internal set; }

    /// <summary>The DMA mask (<c>*dev->dma_mask</c>); the coherent mask is the same.</summary>
    public ulong DmaMask => DmaMaskBits >= 64 ? ulong.MaxValue : (1UL << DmaMaskBits) - 1;

    /// <summary>True for cache-coherent DMA.</summary>
    public bool Coherent { get; }

    /// <summary>The device's own CMA area, or null for the default.</summary>
    public CmaArea? CmaArea { get; }

    /// <summary>True once the device has been removed (<see cref="Machine.RemoveDevice"/>).</summary>
    public bool Removed { get; internal set; }

    /// <summary>The IOVA space of the device's IOMMU domain, or null without an IOMMU.</summary>
    internal IovaDomain? Domain { get; }

    /// <summary>Live coherent buffers and streaming mappings, by device address.</summary>
    internal readonly Dictionary<ulong, DmaEntry> Entries = [];

    internal readonly Lock Lock = new();

    /// <summary>Coherent buffers and streaming mappings live now.</summary>
    public int MappingCount { get { lock (Lock) return Entries.Count; } }

    /// <summary>The id of the machine the device belongs to (a dma-buf of another machine refuses it).</summary>
    internal int MachineId { get; init; }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
