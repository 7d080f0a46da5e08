// The videobuf2 enums and the buffer and plane records a queue hands out (vb2_memory, vb2_io_modes,
// vb2_buffer_state, struct vb2_buffer, struct vb2_plane).
using Kmem.Core;

namespace Kmem;

/// <summary>enum vb2_memory.</summary>
public enum Vb2Memory
{
    /// <summary>VB2_MEMORY_UNKNOWN: no buffers.</summary>
    Unknown = 0,
    /// <summary>VB2_MEMORY_MMAP: the allocator's memory.</summary>
    Mmap = 1,
    /// <summary>VB2_MEMORY_USERPTR: the caller's pages.</summary>
    Userptr = 2,
    /// <summary>VB2_MEMORY_DMABUF: imported dma-bufs.</summary>
    Dmabuf = 4,
}

/// <summary>enum vb2_io_modes.</summary>
[Flags]
public enum Vb2IoModes
{
    /// <summary>VB2_MMAP.</summary>
    Mmap = 1,
    /// <summary>VB2_USERPTR.</summary>
    Userptr = 2,
    /// <summary>VB2_DMABUF.</summary>
    Dmabuf = 16,
}

/// <summary>enum vb2_buffer_state (5.10).</summary>
public enum Vb2BufferState
{
    /// <summary>With user space.</summary>
    Dequeued,
    /// <summary>Queued in a media request.</summary>
    InRequest,
    /// <summary>Being prepared.</summary>
    Preparing,
    /// <summary>Queued, not yet with the driver.</summary>
    Queued,
    /// <summary>With the driver (DMA in progress).</summary>
    Active,
    /// <summary>Filled, waiting for DQBUF.</summary>
    Done,
    /// <summary>Done with an error, waiting for DQBUF.</summary>
    Error,
}

/// <summary>One plane of a QBUF call: its length, and the user address (USERPTR) or descriptor (DMABUF).</summary>
public readonly record struct Vb2PlaneArg(long Length, nint Userptr = 0, int Fd = -1, long BytesUsed = 0);

/// <summary>A plane of a <see cref="Vb2Buffer"/> (struct vb2_plane).</summary>
public sealed class Vb2Plane
{
    private readonly KernelLife _life;

    internal Vb2Plane(KernelLife life) => _life = life;

    /// <summary>The plane's memory (<c>mem_priv</c>), null when none is held.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member of the plane).</exception>
    public Vb2MemBuffer? Mem { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>The plane's length.</summary>
    public long Length { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>The minimum length the queue set up.</summary>
    public long MinLength { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>Bytes of payload.</summary>
    public long BytesUsed { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>MMAP: the offset to pass to mmap.</summary>
    public long MemOffset { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>USERPTR: the caller's address.</summary>
    public nint Userptr { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>DMABUF: the descriptor given at QBUF.</summary>
    public int Fd { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>DMABUF: the imported buffer (the plane holds a reference).</summary>
    public DmaBuf? DmaBuf { get { _life.ThrowIfDead(); return field; } internal set; }
}

/// <summary>A buffer of a queue (struct vb2_buffer).</summary>
public sealed class Vb2Buffer
{
    private readonly KernelLife _life;

    internal Vb2Buffer(int index, Vb2Memory memory, long[] sizes, KernelLife life)
    {
        _life = life;
        Index = index;
        Memory = memory;
        PlaneArray = sizes.Select(s => new Vb2Plane(life) { Length = s, MinLength = s }).ToArray();
    }

    /// <summary>The buffer's index.</summary>
    public int Index { get; }
    /// <summary>The memory type.</summary>
    public Vb2Memory Memory { get; }
    /// <summary>The buffer's state.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Index"/> and <see cref="Memory"/>).</exception>
    public Vb2BufferState State { get { _life.ThrowIfDead(); return field; } internal set; }
    /// <summary>The planes.</summary>
    public IReadOnlyList<Vb2Plane> Planes { get { _life.ThrowIfDead(); return PlaneArray; } }
    internal readonly Vb2Plane[] PlaneArray;
    internal bool Prepared, Synced;
    /// <summary>The frame sequence number the driver gave it.</summary>
    public uint Sequence { get { _life.ThrowIfDead(); return field; } internal set; }
}
