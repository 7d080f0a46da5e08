// MachineProfile's entry point for a device tree: the profile a board's .dtb describes, with its derivation.
using Kmem.Boot;

namespace Kmem;

public sealed partial record MachineProfile
{
    /// <summary>
    /// Derives a profile from a device tree as the kernel reads the tree at boot: RAM from the <c>memory</c> nodes, the CPU
    /// count and architecture from <c>/cpus</c>, reservations from /memreserve/ and <c>/reserved-memory</c> (no-map, dynamic
    /// and CMA pools), the command line from <c>/chosen/bootargs</c> (with <c>mem=</c> applied), and the platform devices
    /// with their IOMMU, coherence, DMA mask and CMA area. <see cref="DeviceTreeProfile.Json"/> is the profile as JSON
    /// with the derivation in <c>//</c> comments (it loads with <see cref="Load"/>).
    /// </summary>
    /// <param name="tree">The parsed tree (<see cref="DeviceTree.Parse"/>).</param>
    /// <param name="options">The name, kernel version or architecture to use instead of the derived ones; null for none.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tree"/> is null.</exception>
    /// <exception cref="DeviceTreeException">A node the derivation needs is missing or malformed (the message names it).</exception>
    /// <exception cref="ProfileException">The derived profile cannot boot (e.g. too little RAM).</exception>
    public static DeviceTreeProfile FromDeviceTree(DeviceTree tree, DeviceTreeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tree);
        return DeviceTreeDerivation.Derive(tree, options ?? new DeviceTreeOptions());
    }
}
