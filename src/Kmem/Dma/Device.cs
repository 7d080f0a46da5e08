// A DMA-capable device of a machine (struct device with its DMA mask, coherency, IOMMU and CMA area),
// with what the DMA API keeps per device: its IOVA domain behind an IOMMU and its live mappings.
using Kmem.Core;
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
        _dmaMaskBits = dmaMaskBits;
        Coherent = coherent;
        CmaArea = cma;
        if (iommu) Domain = new IovaDomain(dmaMaskBits >= 64 ? ulong.MaxValue : (1UL << dmaMaskBits) - 1);
    }

    /// <summary>The device name (<c>dev_name()</c>).</summary>
    public string Name { get; }

    /// <summary>The driver's name (<c>dev_driver_string()</c>).</summary>
    public string Driver { get; }

    /// <summary>True when the device sits behind an IOMMU.</summary>
    public bool HasIommu { get; }

    private int _dmaMaskBits;

    /// <summary>Width of the streaming DMA mask in bits.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for <see cref="DmaMask"/>, <see cref="Removed"/> and <see cref="MappingCount"/>).</exception>
    public int DmaMaskBits
    {
        get
        {
            ThrowIfDead();
            return _dmaMaskBits;
        }
        internal set => _dmaMaskBits = value;
    }

    /// <summary>The DMA mask (<c>*dev->dma_mask</c>); the coherent mask is the same.</summary>
    public ulong DmaMask => DmaMaskBits >= 64 ? ulong.MaxValue : (1UL << DmaMaskBits) - 1;

    /// <summary>The machine's life, set when the machine adopts the device at boot (null for a device of no machine).</summary>
    internal KernelLife? Life { get; set; }

    private void ThrowIfDead() => Life?.ThrowIfDead();

    /// <summary>
    /// <c>dev_to_node()</c>: the NUMA node the device is attached to (profile key <c>"node"</c>), or
    /// <see cref="Machine.NumaNoNode"/> (-1) when it names none; coherent buffers come from this node first.
    /// </summary>
    public int Node { get; init; } = -1;

    /// <summary>True for cache-coherent DMA.</summary>
    public bool Coherent { get; }

    /// <summary>The device's own CMA area, or null for the default.</summary>
    public CmaArea? CmaArea { get; }

    /// <summary>The name of the CMA area the device's profile names but the boot could not reserve, or null.</summary>
    public string? MissingCmaArea
    {
        get
        {
            ThrowIfDead();
            return _missingCmaArea;
        }
        internal init => _missingCmaArea = value;
    }

    private readonly string? _missingCmaArea;

    /// <summary><see cref="MissingCmaArea"/> for the DMA layer (which checks the machine's life itself).</summary>
    internal string? MissingCmaAreaName => _missingCmaArea;

    /// <summary>True once the device has been removed (<see cref="Machine.RemoveDevice"/>).</summary>
    public bool Removed
    {
        get
        {
            ThrowIfDead();
            return _removed;
        }
        internal set => _removed = value;
    }

    private bool _removed;

    /// <summary>The IOVA space of the device's IOMMU domain, or null without an IOMMU.</summary>
    internal IovaDomain? Domain { get; }

    /// <summary>Live coherent buffers and streaming mappings, by device address.</summary>
    internal readonly Dictionary<ulong, DmaEntry> Entries = [];

    internal readonly Lock Lock = new();

    /// <summary>Coherent buffers and streaming mappings live now.</summary>
    public int MappingCount
    {
        get
        {
            ThrowIfDead();
            LockOrder.Enter(LockRank.DmaDevice, Lock);
            lock (Lock) return Entries.Count;
        }
    }

    /// <summary>The id of the machine the device belongs to (a dma-buf of another machine refuses it).</summary>
    internal int MachineId { get; init; }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
