// The kernel's /proc/sys/vm knobs of a machine (machine.Sysctl.Vm): min_free_kbytes, whose write recomputes
// every zone's watermarks and lowmem reserves as the kernel's sysctl handler does, and the two files Kmem
// shows but keeps at the kernel's defaults (watermark_scale_factor, lowmem_reserve_ratio).
using Kmem.Paging;

namespace Kmem;

/// <summary>
/// <c>/proc/sys/vm</c>: the kernel's virtual-memory sysctls. Each member reads what the file of the same name in
/// the machine's <see cref="ProcFs"/> prints.
/// </summary>
public sealed class VmSysctl
{
    private readonly PageAllocator _pages;
    private readonly long _maxMinFreeKbytes;

    internal VmSysctl(PageAllocator pages, long maxMinFreeKbytes)
    {
        _pages = pages;
        _maxMinFreeKbytes = maxMinFreeKbytes;
    }

    /// <summary>
    /// <c>vm.min_free_kbytes</c> (the kernel's): the memory kept free for atomic and reclaim-critical allocations, from
    /// which every zone's min/low/high watermarks and lowmem reserves follow. Its boot value is the kernel's
    /// <c>int_sqrt(lowmem_kbytes * 16)</c> clamped to 128..262144 (or the profile's <c>min_free_kbytes</c>).
    /// Setting it recomputes the watermarks at once and logs <c>sysctl: vm.min_free_kbytes = N</c>.
    /// </summary>
    /// <exception cref="SysctlException">The value is negative or more than a quarter of the machine's RAM (in KiB).</exception>
    public long MinFreeKbytes
    {
        get => _pages.Life.Live(_pages.MinFreeKbytes);
        set
        {
            using var _ = _pages.Life.Enter();
            if (value < 0 || value > _maxMinFreeKbytes)
                throw Sysctl.Refuse(_pages.Log, "vm.min_free_kbytes", $"{value} is outside 0..{_maxMinFreeKbytes} KiB");
            _pages.SetMinFreeKbytes(value);
            _pages.Log.Info($"sysctl: vm.min_free_kbytes = {value}");
        }
    }

    /// <summary><c>vm.watermark_scale_factor</c> (the kernel's), read-only in Kmem: the kernel's default, 10 (0.1% of a zone).</summary>
    public int WatermarkScaleFactor => _pages.Life.Live(Watermarks.WatermarkScaleFactor);

    /// <summary>
    /// <c>vm.lowmem_reserve_ratio</c> (the kernel's), read-only in Kmem: one ratio per zone of the machine, in zone order
    /// (the kernel's defaults: 256 for DMA and DMA32, 32 for Normal, 0 for HighMem and Movable).
    /// </summary>
    public IReadOnlyList<int> LowmemReserveRatio => _pages.Life.Live(_pages.Zones).Take(_pages.ZonesPerNode).Select(z => Watermarks.DefaultLowmemReserveRatio(z.Type)).ToArray();
}
