// One machine's physical memory: a single native region that is the linear map. On Linux it is a
// memfd mapped shared once, so pages are committed only when touched and later layers (vmalloc,
// dma-buf) can map the same pages again at other addresses. Elsewhere (or when KMEM_NO_MEMFD asks
// for it, or memfd_create is refused) it is a plain native block, and remapping is unavailable.
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
    private readonly bool _anonymous;

    /// <summary>
    /// Creates the region for <paramref name="size"/> bytes of physical address space at <paramref name="basePhys"/>:
    /// a memfd on Linux unless the environment variable <c>KMEM_NO_MEMFD</c> is <c>1</c> (or <c>true</c>), else a
    /// plain native block (<see cref="IsFileBacked"/> false, <see cref="NotFileBackedReason"/> says why).
    /// </summary>
    public PhysicalMemory(ulong basePhys, ulong size, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (size == 0 || size % PageSize != 0) throw new ArgumentOutOfRangeException(nameof(size), "size must be a non-zero multiple of the page size");
        if (basePhys % PageSize != 0) throw new ArgumentOutOfRangeException(nameof(basePhys), "base must be page aligned");
        BasePhys = basePhys;
        Size = size;
        string? reason = s_forceNative.Value ? "forced for this machine"
            : !OperatingSystem.IsLinux() ? "the host is not Linux"
            : NoMemfdRequested(Environment.GetEnvironmentVariable(NoMemfdVariable)) ? NoMemfdVariable + " is set"
            : null;
        if (reason is null && TryCreateMemfd(name, size, out _fd, out _linear, out reason))
        {
            IsFileBacked = true;
            return;
        }
        // A plain native block; no remapping of its pages is possible. On Linux (the fallback forced) it is an anonymous
        // private mapping, committed as touched and retired like the memfd; elsewhere the runtime's aligned allocator.
        NotFileBackedReason = reason;
        _native = true;
        if (OperatingSystem.IsLinux())
        {
            nint p = Libc.Mmap(0, (nuint)size, Libc.ProtRead | Libc.ProtWrite, Libc.MapPrivate | Libc.MapAnonymous | Libc.MapNoReserve, -1, 0);
            if (p != Libc.MapFailed)
            {
                _linear = p;
                _anonymous = true;
                return;
            }
        }
        _linear = (nint)NativeMemory.AlignedAlloc((nuint)size, PageSize);
    }

    private static readonly AsyncLocal<bool> s_forceNative = new();

    /// <summary>
    /// Until the scope is disposed, regions created on this logical flow of control (this thread and the tasks it starts)
    /// are plain native blocks whatever the host: how tests run machines without memfd beside others, in one process.
    /// </summary>
    internal static IDisposable ForceNativeScope()
    {
        bool before = s_forceNative.Value;
        s_forceNative.Value = true;
        return new NativeScope(before);
    }

    private sealed class NativeScope(bool before) : IDisposable
    {
        public void Dispose() => s_forceNative.Value = before;
    }

    /// <summary>The environment variable that asks for the plain native block on Linux too (<c>KMEM_NO_MEMFD=1</c>): how a
    /// Linux developer sees what their code does on macOS or Windows.</summary>
    public const string NoMemfdVariable = "KMEM_NO_MEMFD";

    /// <summary>True when <paramref name="value"/> (the variable's value, or null when unset) asks for the fallback: <c>1</c>,
    /// <c>true</c>, <c>yes</c> or <c>on</c>, in any case; anything else (including <c>0</c> and the empty string) does not.</summary>
    internal static bool NoMemfdRequested(string? value) => value?.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on";

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

    /// <summary>Why the region is a plain native block (<c>the host is not Linux</c>, <c>KMEM_NO_MEMFD is set</c>, the
    /// failing call and its errno…), or null when it is a memfd.</summary>
    public string? NotFileBackedReason { get; }

    /// <summary>The memfd descriptor (or -1 when not file backed).</summary>
    public int FileDescriptor => _fd;

    private static bool TryCreateMemfd(string name, ulong size, out int fd, out nint linear, out string? failure)
    {
        linear = 0;
        failure = null;
        try
        {
            fd = Libc.MemfdCreate("kmem:" + name, Libc.MfdCloexec);
        }
        catch (EntryPointNotFoundException)
        {
            // A libc without memfd_create (older than glibc 2.27, or another C library).
            fd = -1;
            failure = "the C library has no memfd_create";
            return false;
        }
        if (fd < 0)
        {
            failure = $"memfd_create failed (errno {Marshal.GetLastPInvokeError()})";
            return false;
        }
        if (Libc.Ftruncate(fd, (long)size) != 0)
        {
            failure = $"ftruncate of the memfd failed (errno {Marshal.GetLastPInvokeError()})";
            Libc.Close(fd);
            fd = -1;
            return false;
        }
        nint addr = Libc.Mmap(0, (nuint)size, Libc.ProtRead | Libc.ProtWrite, Libc.MapShared | Libc.MapNoReserve, fd, 0);
        if (addr == Libc.MapFailed)
        {
            failure = $"mmap of the memfd failed (errno {Marshal.GetLastPInvokeError()})";
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
    /// instead of faulting. The memfd's pages go back to the host at once. On Linux the fallback's anonymous mapping is
    /// retired the same way; elsewhere the plain native block is freed after a grace period
    /// (<see cref="RetiredMappings.FreeGrace"/>).
    /// </summary>
    public void Retire() => Release(retire: true);

    private void Release(bool retire)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        // A retired linear map keeps its address (it is harmless memory now, and address arithmetic stays valid).
        nint lin = _linear;
        if (_native && !_anonymous)
        {
            // The runtime's block cannot be replaced in place: retired, it is freed after a grace period (a span still held
            // past it is a use after free); disposed (the finalizer's case: nothing can point into it) at once.
            _linear = 0;
            if (retire) RetiredMappings.FreeAfterGrace(lin, static b => NativeMemory.AlignedFree((void*)b));
            else NativeMemory.AlignedFree((void*)lin);
            return;
        }
        if (!retire) _linear = 0;
        if (retire) RetiredMappings.Retire(lin, (nuint)Size, (nuint)Size);
        else Libc.Munmap(lin, (nuint)Size);
        if (_fd >= 0) Libc.Close(_fd);
        _fd = -1;
    }
}
