// One machine's physical memory: a single native region that is the linear map. On Linux it is a
// memfd mapped shared once, so pages are committed only when touched and later layers (vmalloc,
// dma-buf) can map the same pages again at other addresses. Elsewhere it is a plain native block.
using System.Runtime.InteropServices;
using Kmem.Core;

namespace Kmem.Physical;

/// <summary>
/// The backing store of a machine's DRAM span, from the lowest bank base to the highest bank end
/// (holes between banks are part of the span but never handed out).
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    private nint _linear;
    private int _fd = -1;
    private int _released;
    private readonly bool _native;

    /// <summary>Creates the region for <paramref name="size"/> bytes of physical address space at <paramref name="basePhys"/>.</summary>
    public PhysicalMemory(ulong basePhys, ulong size, string name)
    {
        if (size == 0 || size % PageSize != 0) throw new ArgumentOutOfRangeException(nameof(size), "size must be a non-zero multiple of the page size");
        if (basePhys % PageSize != 0) throw new ArgumentOutOfRangeException(nameof(basePhys), "base must be page aligned");
        BasePhys = basePhys;
        Size = size;
        if (OperatingSystem.IsLinux() && TryCreateMemfd(name, size, out _fd, out _linear))
        {
            IsFileBacked = true;
        }
        else
        {
            // Not Linux (or memfd refused): a plain native block; no remapping of its pages is possible.
            _linear = (nint)NativeMemory.AlignedAlloc((nuint)size, PageSize);
            _native = true;
        }
    }

    /// <summary>The page size, 4 KiB.</summary>
    public const int PageSize = KernelFacts.PageSize;

    /// <summary>log2 of the page size.</summary>
    public const int PageShift = KernelFacts.PageShift;

    /// <summary>Physical address of the first byte of the span.</summary>
    public ulong BasePhys { get; }

    /// <summary>Size of the span in bytes.</summary>
    public ulong Size { get; }

    /// <summary>The linear map: the virtual address of <see cref="BasePhys"/>.</summary>
    public nint LinearBase => _linear;

    /// <summary>True when the region is a memfd whose pages can be mapped again elsewhere.</summary>
    public bool IsFileBacked { get; }

    /// <summary>The memfd descriptor (or -1 when not file backed).</summary>
    public int FileDescriptor => _fd;

    private static bool TryCreateMemfd(string name, ulong size, out int fd, out nint linear)
    {
        linear = 0;
        fd = Libc.MemfdCreate("kmem:" + name, Libc.MfdCloexec);
        if (fd < 0) return false;
        if (Libc.Ftruncate(fd, (long)size) != 0)
        {
            Libc.Close(fd);
            fd = -1;
            return false;
        }
        nint addr = Libc.Mmap(0, (nuint)size, Libc.ProtRead | Libc.ProtWrite, Libc.MapShared | Libc.MapNoReserve, fd, 0);
        if (addr == Libc.MapFailed)
        {
            Libc.Close(fd);
            fd = -1;
            return false;
        }
        linear = addr;
        return true;
    }

    /// <summary>Unmaps and closes the region (nothing may point into it any more: the finalizer's case).</summary>
    public void Dispose() => Release(retire: false);

    /// <summary>
    /// Closes the region and replaces its linear map with harmless anonymous pages, quarantined before the address
    /// range is reused (<see cref="RetiredMappings"/>): a span still held over the machine's memory reads zeros
    /// instead of faulting. The memfd's pages go back to the host at once. A plain native block is freed.
    /// </summary>
    public void Retire() => Release(retire: true);

    private void Release(bool retire)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        // A retired linear map keeps its address (it is harmless memory now, and address arithmetic stays valid).
        nint lin = _linear;
        if (_native)
        {
            _linear = 0;
            NativeMemory.AlignedFree((void*)lin);
            return;
        }
        if (!retire) _linear = 0;
        if (retire) RetiredMappings.Retire(lin, (nuint)Size, (nuint)Size);
        else Libc.Munmap(lin, (nuint)Size);
        Libc.Close(_fd);
        _fd = -1;
    }
}
