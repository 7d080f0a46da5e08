// dma-debug (CONFIG_DMA_API_DEBUG): reports in kernel/dma/debug.c's words ("DMA-API: <driver> <device>:
// ..."), buffer ownership between CPU and device through the sync calls, the map-error check, leaked
// mappings when a device goes away, and the debugfs counters and dump. Kmem checks the structure of
// every free and unmap even with dma-debug off (it keeps the records anyway); dma-debug adds the rest.
using System.Text;
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Dma;

internal sealed unsafe partial class DmaMapper
{
    private int _errorCount;

    /// <summary>True when dma-debug is on (the profile's CONFIG_DMA_API_DEBUG, or dma_debug=on).</summary>
    public bool DebugEnabled { get; }

    /// <summary>error_count: every DMA-API error reported so far.</summary>
    public int ErrorCount => Volatile.Read(ref _errorCount);

    /// <summary>err_printk(): the WARN with the device's driver and name.</summary>
    private void Report(Device dev, string what)
    {
        Interlocked.Increment(ref _errorCount);
        _pa.Warn($"DMA-API: {dev.Driver} {dev.Name}: {what}");
        KmemEventSource.Log.DebugError("dma-debug", $"{dev.Driver} {dev.Name}: {what}");
    }

    /// <summary>Reports and raises a <see cref="DmaApiException"/>.</summary>
    private void Fail(Device dev, DmaApiError error, string what)
    {
        Report(dev, what);
        throw new DmaApiException(error, dev.Name, what);
    }

    // ================================================================== sync and CPU access

    /// <summary>The entry whose device range holds <paramref name="addr"/> (under the device's lock), or null.</summary>
    private static DmaEntry? EntryHolding(Device dev, ulong addr)
    {
        if (dev.Entries.TryGetValue(addr, out var exact)) return exact;
        foreach (var e in dev.Entries.Values)
            if (addr >= e.DevAddr && addr - e.DevAddr < Math.Max(e.Size, 1)) return e;
        return null;
    }

    /// <summary>
    /// dma_sync_single_for_cpu()/_for_device(): check_sync() with dma-debug; either way the ownership passes.
    /// A sync of memory that is not mapped is reported and raises <see cref="DmaApiException"/>.
    /// </summary>
    public void Sync(Device dev, ulong addr, ulong size, DmaDirection dir, bool toCpu)
    {
        CheckDevice(dev);
        CheckDirection(dir);
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            var e = EntryHolding(dev, addr);
            if (e is null || e.Type == DmaEntryType.Coherent)
                Fail(dev, DmaApiError.BadSync, $"device driver tries to sync DMA memory it has not allocated [device address=0x{addr:x16}] [size={size} bytes]");
            if (addr + size > e!.DevAddr + e.Size)
                Fail(dev, DmaApiError.BadSync, $"device driver syncs DMA memory outside allocated range [device address=0x{e.DevAddr:x16}] [allocation size={e.Size} bytes] [sync offset+size={addr - e.DevAddr + size}]");
            if (DebugEnabled && e.Direction != DmaDirection.Bidirectional)
            {
                string dirs = $"[device address=0x{addr:x16}] [size={size} bytes] [mapped with {e.DirName}] [synced with {DmaEntry.DirNames[(int)dir]}]";
                if (dir != e.Direction)
                    Fail(dev, DmaApiError.BadSync, $"device driver syncs DMA memory with different direction {dirs}");
                if (toCpu && e.Direction != DmaDirection.FromDevice && dir != DmaDirection.ToDevice)
                    Fail(dev, DmaApiError.BadSync, $"device driver syncs device read-only DMA memory for cpu {dirs}");
                if (!toCpu && e.Direction != DmaDirection.ToDevice && dir != DmaDirection.FromDevice)
                    Fail(dev, DmaApiError.BadSync, $"device driver syncs device write-only DMA memory to device {dirs}");
            }
            e.DeviceOwns = !toCpu;
        }
    }

    /// <summary>dma_sync_sg_for_cpu()/_for_device() for a mapped table.</summary>
    public void SyncSg(Device dev, SgTable sgt, DmaDirection dir, bool toCpu)
    {
        if (sgt.Nents == 0)
        {
            CheckDevice(dev);
            Fail(dev, DmaApiError.BadSync, $"device driver tries to sync DMA memory it has not allocated [device address=0x{0:x16}] [size={sgt.Length} bytes]");
        }
        Sync(dev, sgt.Entries[0].DmaAddress, (ulong)sgt.Length, dir, toCpu);
    }

    /// <summary>
    /// The CPU's view of <paramref name="size"/> bytes of a mapping at a device address. With dma-debug, touching a
    /// streaming buffer the device owns (mapped or synced for the device, not synced back for the CPU) is reported.
    /// </summary>
    public Span<byte> CpuAccess(Device dev, ulong addr, ulong size)
    {
        CheckDevice(dev);
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            var e = EntryHolding(dev, addr);
            if (e is null)
                Fail(dev, DmaApiError.NotMapped, $"device driver accesses DMA memory it has not mapped [device address=0x{addr:x16}] [size={size} bytes]");
            if (e!.Type == DmaEntryType.Sg)
                throw new ArgumentException("the CPU reaches a scatterlist through its pages", nameof(addr));
            if (addr + size > e.DevAddr + Math.Max(e.Size, 1))
                Fail(dev, DmaApiError.BadAddress, $"device driver accesses DMA memory outside the mapping [device address=0x{e.DevAddr:x16}] [size={e.Size} bytes] [access offset+size={addr - e.DevAddr + size}]");
            if (DebugEnabled && e.Type == DmaEntryType.Single && e.DeviceOwns)
            {
                ulong cln = (e.Phys + (addr - e.DevAddr)) >> 6;
                Fail(dev, DmaApiError.CpuAccess, $"cpu touching an active dma mapped cacheline [cln=0x{cln:x16}]");
            }
            // A dma_map_page() of a HighMem page has no kernel address (Cpu 0): the bytes are the frame's own, reached
            // through the host's view of it (a driver would kmap the page; the bytes are the same).
            nint cpu = e.Cpu != 0 ? e.Cpu : _pa.IdxToVirt(PhysToIdx(e.Phys)) + (nint)(e.Phys & (PhysicalMemory.PageSize - 1));
            return new Span<byte>((void*)(cpu + (nint)(addr - e.DevAddr)), checked((int)size));
        }
    }

    // ================================================================== device removal

    /// <summary>
    /// device_del(): with dma-debug, mappings still live are reported (dma_debug_device_change()). They stay
    /// allocated, as in the kernel; every later DMA call on the device is refused.
    /// </summary>
    public void RemoveDevice(Device dev)
    {
        CheckDevice(dev);
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            if (DebugEnabled && dev.Entries.Count > 0)
            {
                var e = dev.Entries.Values.First();
                Interlocked.Increment(ref _errorCount);
                Log.Err($"{dev.Driver} {dev.Name}: DMA-API: device driver has pending DMA allocations while released from device [count={dev.Entries.Count}]\n" +
                        $"One of leaked entries details: [device address=0x{e.DevAddr:x16}] [size={e.Size} bytes] [mapped with {e.DirName}] [mapped as {e.TypeName}]");
            }
            dev.Removed = true;
        }
    }

    // ================================================================== views and checks

    /// <summary>The debugfs <c>dump</c> file: one line per entry.</summary>
    public string Dump(IEnumerable<Device> devices)
    {
        var sb = new StringBuilder();
        foreach (var dev in devices)
        {
            LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
            lock (dev.Lock)
            {
                foreach (var e in dev.Entries.Values.OrderBy(x => x.DevAddr))
                {
                    int idx = (int)((e.DevAddr >> 13) & 0x3fff);   // hash_fn(): HASH_FN_SHIFT 13, HASH_SIZE 16384
                    sb.Append($"{dev.Name} {dev.Driver} {e.TypeName} idx {idx} P={e.Phys:x} N={e.Phys >> PhysicalMemory.PageShift:x} D={e.DevAddr:x} L={e.Size:x} {e.DirName} {MapErrTypeName(e)}\n");
                }
            }
        }
        return sb.ToString();
    }

    private static string MapErrTypeName(DmaEntry e) => DmaEntry.MapErrNames[(int)e.MapErr];

    /// <summary>Invariants: every entry's pages are allocated; IOVA ranges of a device do not overlap.</summary>
    public List<string> CheckInvariants(IEnumerable<Device> devices)
    {
        var errors = new List<string>();
        foreach (var dev in devices)
        {
            LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
            lock (dev.Lock)
            {
                var iovas = new RangeSet();
                foreach (var e in dev.Entries.Values)
                {
                    if (e.IovaPages != 0 && !iovas.Add(e.IovaPfn, e.IovaPfn + IovaDomain.IovaLength(e.IovaPages)))
                        errors.Add($"dma {dev.Name}: IOVA 0x{e.IovaPfn << PhysicalMemory.PageShift:x} overlaps another mapping");
                    if (e.Type == DmaEntryType.Coherent && e.Source != CoherentSource.AtomicPool)
                    {
                        int first = e.Frames?[0] ?? e.FirstFrame;
                        if (_pa.IsFreeOrPcp(first)) errors.Add($"dma {dev.Name}: coherent buffer 0x{e.DevAddr:x} sits on a free page");
                    }
                }
            }
        }
        return errors;
    }
}
