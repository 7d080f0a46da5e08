// What the DMA layer records for each coherent buffer and streaming mapping (dma-debug's struct
// dma_debug_entry, plus what Kmem needs to give the memory back), and dma-debug's names for its fields.
using Kmem.Core;

namespace Kmem.Dma;

/// <summary>dma-debug's entry types.</summary>
internal enum DmaEntryType
{
    Single,
    Sg,
    Coherent,
}

/// <summary>Where a coherent buffer's memory came from.</summary>
internal enum CoherentSource
{
    Cma,
    Buddy,
    Scattered,
    AtomicPool,
}

/// <summary>map_err_type: whether the driver checked the mapping with dma_mapping_error().</summary>
internal enum MapErrType
{
    NotChecked,
    Checked,
    NotApplicable,
}

/// <summary>One live coherent buffer or streaming mapping of a device.</summary>
internal sealed class DmaEntry
{
    public DmaEntryType Type;
    public ulong DevAddr;
    public ulong Size;
    public DmaDirection Direction;
    /// <summary>CPU address: the buffer of a coherent allocation, the linear address of a single mapping (0 for a HighMem page, which has none).</summary>
    public nint Cpu;
    /// <summary>Physical address of the first byte.</summary>
    public ulong Phys;
    public int SgNents, SgMapped;
    public SgTable? Sg;
    public MapErrType MapErr;
    /// <summary>True while the device owns the buffer (after map or sync for device; false after sync for CPU).</summary>
    public bool DeviceOwns;
    public CallSite Site;

    // How to give the memory back (coherent) and the IOVA range (behind an IOMMU).
    public CoherentSource Source;
    public CmaArea? Cma;
    public int FirstFrame = -1;
    public int Order;
    public int[]? Frames;
    public int[]? FrameOrders;
    public nint Remap;
    public ulong IovaPfn, IovaPages;
    public AtomicPool? Pool;

    public static readonly string[] TypeNames = ["single", "scather-gather", "coherent"];   // dma-debug's spelling
    public static readonly string[] DirNames = ["DMA_BIDIRECTIONAL", "DMA_TO_DEVICE", "DMA_FROM_DEVICE", "DMA_NONE"];
    public static readonly string[] MapErrNames = ["dma map error not checked", "dma map error checked", "dma map error check not applicable"];

    public string TypeName => TypeNames[(int)Type];
    public string DirName => DirNames[(int)Direction];
}
