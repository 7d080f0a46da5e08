// The machine's DMA API entry points: coherent buffers, streaming mappings of single buffers, pages and
// scatter-gather tables, the sync calls that pass a buffer between CPU and device, and device removal.
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Dma;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>DMA_MAPPING_ERROR: what a streaming mapping returns when it fails (test it with <see cref="DmaMappingError"/>).</summary>
    public const ulong DmaMappingErrorValue = DmaMapper.MappingError;

    /// <summary>True when dma-debug is on (the profile's <c>dma_debug</c>, or the boot parameter dma_debug=on|off).</summary>
    public bool DmaDebug
    {
        get
        {
            ThrowIfDisposed();
            return Dma.DebugEnabled;
        }
    }

    /// <summary>dma-debug's error_count: DMA-API errors reported so far.</summary>
    public int DmaDebugErrorCount
    {
        get
        {
            ThrowIfDisposed();
            return Dma.ErrorCount;
        }
    }

    /// <summary>
    /// Every DMA entry point counts itself in (the mappings read page descriptors and memory), then checks the device:
    /// a disposed machine throws <see cref="ObjectDisposedException"/> before anything else.
    /// </summary>
    private KernelLife.Scope EnterDma(Device dev)
    {
        var scope = Life.Enter();
        try
        {
            Dev(dev);
            return scope;
        }
        catch
        {
            scope.Dispose();
            throw;
        }
    }

    private Device Dev(Device dev)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(dev);
        if (!Devices.TryGetValue(dev.Name, out var mine) || !ReferenceEquals(mine, dev))
        {
            Log.Warn($"DMA-API: {dev.Driver} {dev.Name}: device driver uses a device of another machine");
            throw new DmaApiException(DmaApiError.ForeignDevice, dev.Name, "the device is not one of this machine's");
        }
        return dev;
    }

    /// <summary>
    /// dma_alloc_coherent(): <paramref name="size"/> bytes of zeroed memory shared by CPU and device, physically contiguous
    /// for a device without an IOMMU (from its CMA area, the default one, or the buddy allocator within its DMA mask) and
    /// behind one IOVA range otherwise. <paramref name="dmaHandle"/> is the device's address. Returns 0 on failure.
    /// A non-blocking request (<see cref="Gfp.Atomic"/>) of a non-coherent device is served from the atomic pool.
    /// </summary>
    /// <exception cref="DmaApiException">The device has been removed, or its CMA area was not reserved at boot.</exception>
    public nint DmaAllocCoherent(Device dev, nuint size, Gfp gfp, out ulong dmaHandle, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        return Dma.AllocCoherent(dev, size, gfp, out dmaHandle, new CallSite(caller, file, line));
    }

    /// <summary>dma_alloc_coherent() with an <see cref="int"/> size.</summary>
    public nint DmaAllocCoherent(Device dev, int size, Gfp gfp, out ulong dmaHandle, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        return Dma.AllocCoherent(dev, NonNegative(size), gfp, out dmaHandle, new CallSite(caller, file, line));
    }

    /// <summary>
    /// dma_free_coherent(): frees a buffer with the size, CPU address and handle it was allocated with. Anything else is
    /// reported in dma-debug's words and raises <see cref="DmaApiException"/>, with nothing freed.
    /// </summary>
    public void DmaFreeCoherent(Device dev, nuint size, nint cpuAddr, ulong dmaHandle, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        Dma.FreeCoherent(dev, size, cpuAddr, dmaHandle, new CallSite(caller, file, line));
    }

    /// <summary>dma_free_coherent() with an <see cref="int"/> size.</summary>
    public void DmaFreeCoherent(Device dev, int size, nint cpuAddr, ulong dmaHandle, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        Dma.FreeCoherent(dev, NonNegative(size), cpuAddr, dmaHandle, new CallSite(caller, file, line));
    }

    /// <summary>
    /// dma_map_single(): hands <paramref name="size"/> bytes of linear-map memory (kmalloc, pages) to the device; returns
    /// the device address or <see cref="DmaMappingErrorValue"/> (beyond the device's mask: Kmem has no bounce buffers).
    /// The device owns the buffer until <see cref="DmaSyncSingleForCpu"/> or the unmap.
    /// </summary>
    /// <exception cref="DmaApiException">The address is vmalloc memory or not this machine's, or the size wraps around
    /// the address space (reported in dma-debug's words, nothing mapped).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size of 0.</exception>
    public ulong DmaMapSingle(Device dev, nint cpuAddr, nuint size, DmaDirection dir, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        return Dma.MapSingle(dev, cpuAddr, size, dir, new CallSite(caller, file, line));
    }

    /// <summary>dma_map_page(): <paramref name="size"/> bytes from <paramref name="offset"/> in <paramref name="page"/>.
    /// The offset must lie inside the page's block (the allocation it heads, compound or of higher order; else the one
    /// page); the size may run on into the following pages of this machine's linear map.</summary>
    /// <exception cref="DmaApiException">An offset outside the block, a size that wraps, or memory beyond this machine's RAM
    /// (reported in dma-debug's words, nothing mapped). A HighMem page is mapped by its physical address, as the kernel does.</exception>
    public ulong DmaMapPage(Device dev, Page page, nuint offset, nuint size, DmaDirection dir, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        return Dma.MapPage(dev, CheckedIndex(page, nameof(DmaMapPage)), offset, size, dir, new CallSite(caller, file, line));
    }

    /// <summary>dma_unmap_single(): checked against the mapping (size, direction, function); nothing is unmapped on a mismatch.</summary>
    public void DmaUnmapSingle(Device dev, ulong dmaAddr, nuint size, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        Dma.UnmapSingle(dev, dmaAddr, size, dir);
    }

    /// <summary>dma_unmap_page().</summary>
    public void DmaUnmapPage(Device dev, ulong dmaAddr, nuint size, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        Dma.UnmapSingle(dev, dmaAddr, size, dir);
    }

    /// <summary>dma_mapping_error(): true for a failed mapping (dma-debug notes that the driver checked).</summary>
    public bool DmaMappingError(Device dev, ulong dmaAddr)
    {
        using var life = EnterDma(dev);
        return Dma.MappingErrorCheck(dev, dmaAddr);
    }

    /// <summary>dma_map_sg(): maps every entry of the table; returns the device segments (an IOMMU merges entries), 0 on failure.</summary>
    public int DmaMapSg(Device dev, SgTable sgt, DmaDirection dir, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        using var life = EnterDma(dev);
        ArgumentNullException.ThrowIfNull(sgt);
        foreach (var s in sgt.Entries) CheckedIndex(s.Page, nameof(DmaMapSg));
        return Dma.MapSg(dev, sgt, dir, new CallSite(caller, file, line));
    }

    /// <summary>dma_unmap_sg().</summary>
    public void DmaUnmapSg(Device dev, SgTable sgt, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        ArgumentNullException.ThrowIfNull(sgt);
        Dma.UnmapSg(dev, sgt, dir);
    }

    /// <summary>dma_sync_single_for_cpu(): the CPU owns the buffer (or the part of it) until <see cref="DmaSyncSingleForDevice"/>.</summary>
    public void DmaSyncSingleForCpu(Device dev, ulong dmaAddr, nuint size, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        Dma.Sync(dev, dmaAddr, size, dir, toCpu: true);
    }

    /// <summary>dma_sync_single_for_device(): the device owns the buffer again.</summary>
    public void DmaSyncSingleForDevice(Device dev, ulong dmaAddr, nuint size, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        Dma.Sync(dev, dmaAddr, size, dir, toCpu: false);
    }

    /// <summary>dma_sync_sg_for_cpu().</summary>
    public void DmaSyncSgForCpu(Device dev, SgTable sgt, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        Dma.SyncSg(dev, sgt, dir, toCpu: true);
    }

    /// <summary>dma_sync_sg_for_device().</summary>
    public void DmaSyncSgForDevice(Device dev, SgTable sgt, DmaDirection dir)
    {
        using var life = EnterDma(dev);
        Dma.SyncSg(dev, sgt, dir, toCpu: false);
    }

    /// <summary>
    /// The CPU's view of a coherent buffer or single mapping, by device address. With dma-debug on, touching a streaming
    /// buffer the device owns is reported ("cpu touching an active dma mapped cacheline") and raises <see cref="DmaApiException"/>.
    /// </summary>
    public Span<byte> DmaCpuAccess(Device dev, ulong dmaAddr, nuint size)
    {
        using var life = EnterDma(dev);
        return Dma.CpuAccess(dev, dmaAddr, size);
    }

    /// <summary>
    /// device_del(): the device goes away. With dma-debug on, mappings it still holds are reported as leaked (they stay
    /// allocated, as in the kernel). Later DMA calls on it raise <see cref="DmaApiException"/>.
    /// </summary>
    public void RemoveDevice(Device dev)
    {
        using var life = EnterDma(dev);
        Dma.RemoveDevice(dev);
    }
}
