// The DMA-HEAP framework (ACK 5.10 drivers/dma-buf/dma-heap.c): heaps registered by name, as the
// /dev/dma_heap/<name> set, and DMA_HEAP_IOCTL_ALLOC's checks (length, fd_flags, heap_flags) before the
// heap's allocate() exports a dma-buf.
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem;

/// <summary>A DMA-BUF heap (<c>struct dma_heap</c>): allocates dma-bufs of one kind of memory.</summary>
public abstract class DmaHeap
{
    /// <summary>O_RDWR.</summary>
    public const int ORdWr = DmaBufCore.ORdWr;

    /// <summary>O_CLOEXEC.</summary>
    public const int OCloexec = DmaBufCore.OCloexec;

    /// <summary>DMA_HEAP_VALID_FD_FLAGS: O_CLOEXEC | O_ACCMODE.</summary>
    public const int ValidFdFlags = OCloexec | DmaBufCore.OAccMode;

    internal DmaHeap(string name, DmaBufCore core)
    {
        Name = name;
        Core = core;
    }

    internal DmaBufCore Core { get; }

    /// <summary>The heap's name (<c>/dev/dma_heap/&lt;name&gt;</c>).</summary>
    public string Name { get; }

    /// <summary>get_pool_size(): bytes held in the heap's pools (0 for a heap without pools).</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Name"/>).</exception>
    public long PoolSizeBytes
    {
        get
        {
            Core.Life.ThrowIfDead();
            return PoolBytes;
        }
    }

    /// <summary>The heap's get_pool_size() (0 for a heap without pools).</summary>
    private protected virtual long PoolBytes => 0;

    /// <summary>
    /// dma_heap_buffer_alloc(): a dma-buf of <paramref name="len"/> bytes (rounded up to pages), whose one reference the
    /// caller owns (<see cref="DmaBuf.Put"/> drops it). Null when memory runs out.
    /// </summary>
    /// <exception cref="DmaBufException">-EINVAL: length 0, fd flags outside O_CLOEXEC | O_ACCMODE, or heap flags.</exception>
    public DmaBuf? AllocateBuffer(long len, int fdFlags = ORdWr | OCloexec, ulong heapFlags = 0)
    {
        using var life = Core.Life.Enter();             // allocation and zeroing touch memory: shutdown waits for it
        long size = CheckArgs(len, fdFlags, heapFlags);
        return DoAllocate(size, fdFlags, heapFlags);
    }

    /// <summary>
    /// DMA_HEAP_IOCTL_ALLOC: allocates and installs the buffer in <see cref="Machine.DmaBufFds"/>; returns the descriptor,
    /// or -ENOMEM (-12) when memory runs out.
    /// </summary>
    /// <exception cref="DmaBufException">-EINVAL for the same bad arguments as <see cref="AllocateBuffer"/>.</exception>
    public int Allocate(long len, int fdFlags = ORdWr | OCloexec, ulong heapFlags = 0)
    {
        using var life = Core.Life.Enter();
        var b = AllocateBuffer(len, fdFlags, heapFlags);
        return b is null ? -12 : Core.Fds.Install(b);
    }

    /// <summary>The ioctl's checks: returns the page-aligned length.</summary>
    private protected virtual long CheckArgs(long len, int fdFlags, ulong heapFlags)
    {
        if ((fdFlags & ~ValidFdFlags) != 0) throw Invalid($"fd_flags 0x{fdFlags:x} outside O_CLOEXEC|O_ACCMODE");
        if (heapFlags != 0) throw Invalid($"heap_flags 0x{heapFlags:x} must be 0");
        if (len <= 0 || len > long.MaxValue - PhysicalMemory.PageSize) throw Invalid($"length {len}");
        return (len + PhysicalMemory.PageSize - 1) & ~(long)(PhysicalMemory.PageSize - 1);
    }

    private protected DmaBufException Invalid(string what)
    {
        Core.Log.Err($"dma_heap: {Name}: {what}: -EINVAL");
        return new DmaBufException(-22, $"{Name}: {what}");
    }

    /// <summary>The heap's allocate(): null on -ENOMEM.</summary>
    private protected abstract DmaBuf? DoAllocate(long size, int fdFlags, ulong heapFlags);

    /// <inheritdoc/>
    public override string ToString() => $"/dev/dma_heap/{Name}";
}
