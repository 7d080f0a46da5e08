// The machine's videobuf2 memops (dma-contig, dma-sg, vmalloc) and queues, each made over the machine's kernel
// context.
namespace Kmem;

public sealed partial class Machine
{
    private Vb2DmaContig? _vb2Contig;
    private Vb2DmaSg? _vb2Sg;
    private Vb2Vmalloc? _vb2Vmalloc;

    /// <summary>videobuf2-dma-contig's memops for this machine.</summary>
    public Vb2DmaContig Vb2DmaContig
    {
        get
        {
            ThrowIfDisposed();
            return _vb2Contig ??= new Vb2DmaContig(Kernel);
        }
    }

    /// <summary>videobuf2-dma-sg's memops for this machine.</summary>
    public Vb2DmaSg Vb2DmaSg
    {
        get
        {
            ThrowIfDisposed();
            return _vb2Sg ??= new Vb2DmaSg(Kernel);
        }
    }

    /// <summary>videobuf2-vmalloc's memops for this machine.</summary>
    public Vb2Vmalloc Vb2Vmalloc
    {
        get
        {
            ThrowIfDisposed();
            return _vb2Vmalloc ??= new Vb2Vmalloc(Kernel);
        }
    }

    /// <summary>
    /// vb2_queue_init(): a queue of <paramref name="dev"/> (null for vmalloc) with an allocator, the memory types it
    /// accepts, the plane sizes of its format, and min_buffers_needed.
    /// </summary>
    /// <exception cref="PlatformNotSupportedException"><paramref name="ops"/> is <see cref="Vb2Vmalloc"/> and the machine's memory
    /// cannot be remapped (macOS, Windows, <c>KMEM_NO_MEMFD=1</c>).</exception>
    public Vb2Queue Vb2QueueInit(string name, Device? dev, Vb2MemOps ops, Vb2IoModes ioModes, bool isOutput, long[] planeSizes, int minBuffersNeeded = 0)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(planeSizes);
        if (ops.Kernel != Kernel) throw new ArgumentException("the allocator belongs to another machine", nameof(ops));
        if (planeSizes.Length is 0 or > 8 || planeSizes.Any(s => s <= 0)) throw new ArgumentException("1 to 8 planes of positive size", nameof(planeSizes));
        if (ioModes == 0) throw new ArgumentException("no memory type", nameof(ioModes));
        if ((uint)minBuffersNeeded > Vb2Queue.MaxFrame) throw new ArgumentOutOfRangeException(nameof(minBuffersNeeded));
        // Every buffer of videobuf2-vmalloc is a vmalloc_user area (or a vm_map_ram of user pages, or a dma-buf's vmap).
        if (ops is Vb2Vmalloc && _vmalloc is null) throw Core.NoRemap.Refuse(Log, $"videobuf2-vmalloc (queue {name})");
        return new Vb2Queue(Kernel, name, dev, ops, ioModes, isOutput, planeSizes, minBuffersNeeded);
    }
}
