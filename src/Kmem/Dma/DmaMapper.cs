// The DMA API of one machine: dma_alloc_coherent() by the dma-direct rules (the device's CMA area or
// the default one, then the buddy allocator within the DMA mask, retried in ZONE_DMA32 and ZONE_DMA;
// the atomic pool for non-blocking requests of non-coherent devices; a remap into the vmalloc window
// where the CPU must not use the cached linear map), iommu-dma (scattered pages behind an IOVA
// range), and streaming mappings. Every buffer and mapping is recorded per device so that frees and
// unmaps are checked; dma-debug's ownership checks live in DmaMapper.Debug.cs.
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;
using Kmem.Vmalloc;

namespace Kmem.Dma;

/// <summary>Settings the machine hands to the DMA layer.</summary>
internal sealed record DmaSettings(Arch Arch, ulong? DmaZoneLimit, ulong? Dma32ZoneLimit, ulong? LowmemLimit, bool Debug, CmaArea? DefaultCma)
{
    /// <summary>CONFIG_DMA_NUMA_CMA: the machine's CMA areas by name, where the per-node <c>pernuma&lt;n&gt;</c>/<c>numa&lt;n&gt;</c> areas are found; null without it.</summary>
    public IReadOnlyDictionary<string, CmaArea>? NodeCma { get; init; }

    /// <summary>The kernel release: which atomic pools exist and how coherent remaps are flagged and attributed.</summary>
    public KernelVersion Version { get; init; } = KernelVersion.Default;
}

internal sealed unsafe partial class DmaMapper
{
    /// <summary>DMA_MAPPING_ERROR.</summary>
    public const ulong MappingError = ulong.MaxValue;

    private readonly PageAllocator _pa;
    private readonly VmallocSpace? _vm;
    private readonly DmaSettings _s;
    private readonly List<AtomicPool> _pools = [];
    /// <summary>The VM_ flags of a coherent remap in this release (read once at boot).</summary>
    private readonly VmFlags _remapFlags;
    /// <summary>The vmallocinfo caller of a dma-direct (or 32-bit ARM) coherent remap in this release.</summary>
    private readonly CallSite _remapCaller;

    public DmaMapper(PageAllocator pa, VmallocSpace? vm, DmaSettings settings)
    {
        _pa = pa;
        _vm = vm;
        _s = settings;
        _remapFlags = VmallocCallers.CoherentRemapFlags(settings.Version);
        _remapCaller = VmallocCallers.CoherentRemap(settings.Arch, settings.Arch is Arch.X86_64 or Arch.Arm64 or Arch.Riscv64, settings.Version);
        DebugEnabled = settings.Debug;
    }

    public IReadOnlyList<AtomicPool> Pools => _pools;

    private KernelLog Log => _pa.Log;

    // ================================================================== boot

    /// <summary>
    /// The atomic pools. 32-bit ARM: one 256 KiB pool (arch/arm/mm/dma-mapping.c atomic_pool_init, GFP_KERNEL | GFP_DMA),
    /// remapped unless it comes from the default CMA area (whose lowmem pages are remapped in place: no vmalloc area).
    /// arm64 before 5.8: one 256 KiB pool, arch/arm64's own before 5.0 (GFP_DMA), kernel/dma/remap.c's from 5.0
    /// (GFP_DMA32), printed "DMA: preallocated 256 KiB pool for atomic allocations". From 5.8, kernel/dma/pool.c
    /// ("dma-remap: separate DMA atomic pools from direct remap code", "dma-pool: add additional coherent pools to map
    /// to gfp mask"; backported to 5.4.y stable, not modelled): 128 KiB per GiB of RAM (at least 128 KiB, at
    /// most a MAX_ORDER block) for GFP_KERNEL and for each DMA zone the machine has; remapped only where the
    /// architecture remaps coherent memory (<paramref name="remap"/>: not x86, whose pools exist for memory encryption).
    /// </summary>
    public void CreateAtomicPools(bool remap = true)
    {
        var v = _s.Version;
        var caller = VmallocCallers.AtomicPoolRemap(_s.Arch, v);
        if (_s.Arch == Arch.Arm)
        {
            // With a default CMA area the kernel takes the pool from it and remaps its lowmem pages in place: no vmalloc
            // area then (Kmem takes the pages from the buddy allocator either way).
            bool fromCma = _s.DefaultCma is not null;
            AddPool("atomic_pool", Gfp.Kernel, 256 << 10, "DMA: preallocated 256 KiB pool for atomic coherent allocations", remap && !fromCma, caller);
            return;
        }
        if (_s.Arch == Arch.Arm64 && !v.IsAtLeast(5, 8))
        {
            AddPool("atomic_pool", Gfp.Kernel | (v.IsAtLeast(5, 0) && _s.Dma32ZoneLimit is not null ? Gfp.Dma32 : _s.DmaZoneLimit is not null ? Gfp.Dma : 0),
                256 << 10, "DMA: preallocated 256 KiB pool for atomic allocations", remap, caller);
            return;
        }
        if (!v.IsAtLeast(5, 8)) return;
        long pages = _pa.TotalRamPages / ((1L << 30) / (128 << 10));
        pages = Math.Min(pages, 1L << (_pa.MaxOrder - 1));
        long bytes = Math.Max(pages << PhysicalMemory.PageShift, 128 << 10);
        AddPool("atomic_pool_kernel", Gfp.Kernel, bytes, $"DMA: preallocated {bytes >> 10} KiB GFP_KERNEL pool for atomic allocations", remap, caller);
        if (_s.Dma32ZoneLimit is not null)
            AddPool("atomic_pool_dma32", Gfp.Kernel | Gfp.Dma32, bytes, $"DMA: preallocated {bytes >> 10} KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations", remap, caller);
        if (_s.DmaZoneLimit is not null)
            AddPool("atomic_pool_dma", Gfp.Kernel | Gfp.Dma, bytes, $"DMA: preallocated {bytes >> 10} KiB GFP_KERNEL|GFP_DMA pool for atomic allocations", remap, caller);
    }

    private void AddPool(string name, Gfp gfp, long bytes, string bootLine, bool remap, CallSite caller)
    {
        int order = PageAllocator.GetOrder((ulong)bytes);
        int idx = _pa.Alloc(gfp | Gfp.NoWarn | Gfp.Zero, order);
        if (idx < 0)
        {
            Log.Err($"DMA: failed to allocate {bytes >> 10} KiB {GfpFlags.Format(gfp)} pool for atomic allocation");
            return;
        }
        int n = 1 << order;
        nint cpu = _pa.IdxToVirt(idx);
        if (_vm is null && (remap || IsHighMem(idx)))
            Log.Info($"kmem: DMA {name} not remapped: this machine has no vmalloc window (no memfd); its CPU address is the linear map");
        if (_vm is not null && (remap || IsHighMem(idx)))
        {
            Span<int> frames = stackalloc int[n];
            for (int i = 0; i < n; i++) frames[i] = idx + i;
            nint r = _vm.Vmap(frames, _remapFlags, caller);
            if (r != 0) cpu = r;
        }
        _pools.Add(new AtomicPool(name, gfp, idx, n, cpu));
        Log.Info(bootLine);
    }

    // ================================================================== helpers

    private ulong IdxToPhys(int idx) => (_pa.BasePfn + (ulong)idx) << PhysicalMemory.PageShift;

    private int PhysToIdx(ulong phys) => (int)((phys >> PhysicalMemory.PageShift) - _pa.BasePfn);

    /// <summary>
    /// The frame index of a linear-map address, or -1: the linear map ends at high_memory, so no address reaches a
    /// HighMem frame this way (virt_addr_valid() is false beyond it; a kmap address is not linear either).
    /// </summary>
    private int LinearIdx(nint addr)
    {
        nint lin = _pa.IdxToVirt(0);
        nuint off = (nuint)(addr - lin);
        return off < (nuint)_pa.LinearBytes ? (int)(off >> PhysicalMemory.PageShift) : -1;
    }

    /// <summary>dma_coherent_ok(): the whole buffer is below the device's mask.</summary>
    private static bool CoherentOk(Device dev, ulong phys, ulong size) => phys + size - 1 <= dev.DmaMask;

    private bool IsHighMem(int idx) => _pa.IsHighMem(idx);

    /// <summary>dma_direct_optimal_gfp_mask(): GFP_DMA or GFP_DMA32 when the mask does not reach beyond them.</summary>
    private Gfp OptimalZone(Device dev)
    {
        if (_s.DmaZoneLimit is { } d && dev.DmaMask <= d - 1) return Gfp.Dma;
        if (_s.Dma32ZoneLimit is not null && dev.DmaMask <= uint.MaxValue) return Gfp.Dma32;
        return 0;
    }

    /// <summary>The page blocks (frame, order) behind a live coherent buffer, or null when the handle is not one.</summary>
    internal (int Frame, int Order)[]? CoherentBlocks(Device dev, ulong handle)
    {
        DmaEntry? e;
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock) dev.Entries.TryGetValue(handle, out e);
        if (e is null || e.Type != DmaEntryType.Coherent) return null;
        if (e.Frames is { } f) return f.Select((frame, i) => (frame, e.FrameOrders![i])).ToArray();
        int pages = (int)((e.Size + PhysicalMemory.PageSize - 1) >> PhysicalMemory.PageShift);
        return PageAllocator.AlignedBlocks(_pa.BasePfn, e.FirstFrame, pages);
    }

    private static void CheckDevice(Device dev)
    {
        if (dev.Removed) throw new DmaApiException(DmaApiError.DeviceGone, dev.Name, "the device has been removed");
    }

    // ================================================================== coherent

    /// <summary>dma_alloc_attrs(): zeroed coherent memory; 0 on failure.</summary>
    public nint AllocCoherent(Device dev, ulong size, Gfp gfp, out ulong handle, CallSite site)
    {
        handle = MappingError;
        CheckDevice(dev);
        if (dev.MissingCmaAreaName is { } missing)
        {
            // The device's memory-region is a CMA area whose reservation failed: its driver cannot get its memory.
            _pa.Log.Err($"{dev.Driver} {dev.Name}: dma_alloc_coherent: no CMA area '{missing}' (its reservation failed at boot)");
            throw new DmaApiException(DmaApiError.NoCmaArea, dev.Name, $"the CMA area '{missing}' the device uses was not reserved at boot (see the boot log)");
        }
        if (size == 0)
        {
            _pa.WarnOnce("dma_alloc_coherent size 0", $"WARNING: dma_alloc_attrs: {dev.Driver} {dev.Name}: size 0");
            return 0;
        }
        ulong real = size;
        size = (size + PhysicalMemory.PageSize - 1) & ~(ulong)(PhysicalMemory.PageSize - 1);
        gfp &= ~(Gfp.Dma | Gfp.Dma32 | Gfp.HighMem);
        var e = new DmaEntry { Type = DmaEntryType.Coherent, Size = real, Direction = DmaDirection.Bidirectional, MapErr = MapErrType.NotApplicable, Site = site };
        bool ok = dev.HasIommu ? IommuAlloc(dev, size, gfp, e) : DirectAlloc(dev, size, gfp, e);
        if (!ok) return 0;
        new Span<byte>((void*)e.Cpu, (int)Math.Min(size, int.MaxValue)).Clear();
        if (size > int.MaxValue) new Span<byte>((void*)(e.Cpu + int.MaxValue), (int)(size - int.MaxValue)).Clear();
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock) dev.Entries.Add(e.DevAddr, e);
        handle = e.DevAddr;
        return e.Cpu;
    }

    /// <summary>dma_direct_alloc(): the pool, CMA or the buddy allocator, within the mask; remapped when the CPU needs it.</summary>
    private bool DirectAlloc(Device dev, ulong size, Gfp gfp, DmaEntry e)
    {
        int count = (int)(size >> PhysicalMemory.PageShift);
        if (!gfp.AllowsBlocking() && !dev.Coherent && _pools.Count > 0)
            return PoolAlloc(dev, count, e);
        int order = PageAllocator.GetOrder(size);
        int idx = -1;
        if (gfp.AllowsBlocking())
        {
            // dma_alloc_contiguous(): the device's area, else for more than a page (6.6, CONFIG_DMA_NUMA_CMA) the device
            // node's pernuma and numa areas unless the zone is DMA/DMA32, then the default one.
            Span<CmaArea?> candidates = [dev.CmaArea, null, null, null];
            if (dev.CmaArea is null && count > 1)
            {
                if (dev.Node >= 0 && _s.NodeCma is { } nodeCma && ((gfp | OptimalZone(dev)) & (Gfp.Dma | Gfp.Dma32)) == 0)
                {
                    candidates[1] = nodeCma.GetValueOrDefault($"pernuma{dev.Node}");
                    candidates[2] = nodeCma.GetValueOrDefault($"numa{dev.Node}");
                }
                candidates[3] = _s.DefaultCma;
            }
            foreach (var cma in candidates)
            {
                if (cma is null) continue;
                idx = cma.Alloc((ulong)count, Math.Min(order, CmaArea.ConfigCmaAlignment), gfp & Gfp.NoWarn | Gfp.Kernel);
                if (idx < 0) continue;                            // dma_alloc_contiguous() tries the next area only on failure
                // The first area's page is the answer; __dma_direct_alloc_pages() gives it back when the device cannot
                // reach it and goes to the buddy allocator, not to another area.
                if (!CoherentOk(dev, IdxToPhys(idx), size))
                {
                    cma.Release(idx, (ulong)count);
                    idx = -1;
                }
                else { e.Source = CoherentSource.Cma; e.Cma = cma; }
                break;
            }
        }
        if (idx < 0)
        {
            Gfp zone = OptimalZone(dev);
            while (true)
            {
                // __dma_direct_alloc_pages() (kernel/dma/direct.c): alloc_pages_node(dev_to_node(dev), …), the device's node
                // first; NUMA_NO_NODE (no node) is the calling thread's node (numa_mem_id()), not its memory policy.
                idx = _pa.AllocNode(dev.Node, gfp | zone, order);
                if (idx >= 0 && !CoherentOk(dev, IdxToPhys(idx), size))
                {
                    _pa.Free(idx, order, "dma_free_contiguous");
                    idx = -1;
                }
                if (idx >= 0) break;
                if (_s.Dma32ZoneLimit is not null && dev.DmaMask < ulong.MaxValue && (zone & (Gfp.Dma32 | Gfp.Dma)) == 0) { zone = Gfp.Dma32; continue; }
                if (_s.DmaZoneLimit is not null && (zone & Gfp.Dma) == 0) { zone = Gfp.Dma; continue; }
                return false;
            }
            e.Source = CoherentSource.Buddy;
            e.Order = order;
        }
        // The host's view of the frames stands until the remap below replaces it; it is handed out only for lowmem (or where
        // the platform cannot remap at all, no vmalloc window, where Kmem has no HighMem mappings of any kind).
        SetDirect(e, idx, _pa.IdxToVirt(idx));
        // The CPU needs an uncached alias for a non-coherent device (32-bit ARM changes the linear map of CMA pages
        // in place instead), and a mapping at all for highmem pages: arch/arm/mm/dma-mapping.c __alloc_from_contiguous()
        // remaps a PageHighMem() run with __dma_alloc_remap() into the vmalloc window (4.19, 5.10), as dma-direct's
        // dma_direct_alloc() does with dma_common_contiguous_remap() for PageHighMem() pages (kernel/dma/direct.c, 5.10).
        bool remap = IsHighMem(idx) || (!dev.Coherent && !(_s.Arch == Arch.Arm && e.Source == CoherentSource.Cma));
        if (remap && _vm is not null)
        {
            Span<int> frames = count <= 4096 ? stackalloc int[count] : new int[count];
            for (int i = 0; i < count; i++) frames[i] = idx + i;
            nint r = _vm.Vmap(frames, _remapFlags, _remapCaller);
            if (r == 0)
            {
                ReleaseMemory(e, count);
                return false;
            }
            e.Remap = r;
            e.Cpu = r;
        }
        return true;
    }

    private bool PoolAlloc(Device dev, int count, DmaEntry e)
    {
        // dma_guess_pool(): the pool whose zone suits the device's mask.
        Gfp zone = OptimalZone(dev);
        var pool = _pools.FirstOrDefault(p => (p.Gfp & (Gfp.Dma | Gfp.Dma32)) == zone) ?? _pools[0];
        int at = pool.Alloc(count);
        if (at < 0) return false;
        int idx = pool.FirstFrame + at;
        if (!CoherentOk(dev, IdxToPhys(idx), (ulong)count << PhysicalMemory.PageShift))
        {
            pool.Free(at, count);
            return false;
        }
        e.Source = CoherentSource.AtomicPool;
        e.Pool = pool;
        SetDirect(e, idx, pool.CpuBase + ((nint)at << PhysicalMemory.PageShift));
        return true;
    }

    /// <summary>A physically contiguous buffer from frame <paramref name="idx"/>: its device address is its physical address.</summary>
    private void SetDirect(DmaEntry e, int idx, nint cpu)
    {
        e.FirstFrame = idx;
        e.Phys = IdxToPhys(idx);
        e.DevAddr = e.Phys;
        e.Cpu = cpu;
    }

    /// <summary>iommu_dma_alloc(): pages from anywhere (large blocks first), one IOVA range, a dma-coherent remap for the CPU.</summary>
    private bool IommuAlloc(Device dev, ulong size, Gfp gfp, DmaEntry e)
    {
        int count = (int)(size >> PhysicalMemory.PageShift);
        if (!gfp.AllowsBlocking() && !dev.Coherent && _pools.Count > 0)
        {
            if (!PoolAlloc(dev, count, e)) return false;
            ulong pfn = dev.Domain!.Alloc((ulong)count);
            if (pfn == 0) { e.Pool!.Free(e.FirstFrame - e.Pool.FirstFrame, count); return false; }
            e.IovaPfn = pfn;
            e.IovaPages = (ulong)count;
            e.DevAddr = pfn << PhysicalMemory.PageShift;
            return true;
        }
        var frames = new List<int>();
        var orders = new List<int>();
        int left = count;
        bool failed = false;
        if (_vm is null)
        {
            // Memory that cannot be remapped is a kernel without DMA_REMAP: iommu_dma_alloc() takes iommu_dma_alloc_pages(),
            // one physically contiguous block of get_order(size) that the CPU reaches through the linear map (no HighMem).
            int order = PageAllocator.GetOrder(size);
            int idx = order < _pa.MaxOrder ? _pa.AllocNode(dev.Node, gfp & ~Gfp.HighMem, order) : -1;
            if (idx < 0)
            {
                Log.Err($"iommu_dma_alloc: {dev.Name}: no contiguous block of order {order} for {size} bytes (scattered pages would need a remap, which this machine's memory cannot have)");
                return false;
            }
            frames.Add(idx);
            orders.Add(order);
            left = 0;
        }
        while (left > 0)
        {
            // __iommu_dma_alloc_pages(): the largest block that fits (here up to 2 MiB, the usual IOMMU large page), quietly.
            // an IOMMU reaches every page, so the buffer may come from HighMem too: the kernel ORs in __GFP_NOWARN and __GFP_HIGHMEM
            // (drivers/iommu/dma-iommu.c; arch/arm/mm/dma-mapping.c __iommu_alloc_buffer() alike, 4.19 and 5.10).
            int order = Math.Min(System.Numerics.BitOperations.Log2((uint)left), Math.Min(9, _pa.MaxOrder - 1));
            int idx = -1;
            while (order >= 0)
            {
                // alloc_pages_node(dev_to_node(dev), …) as __iommu_dma_alloc_pages() does.
                idx = _pa.AllocNode(dev.Node, order > 0 ? gfp | Gfp.HighMem | Gfp.NoWarn | Gfp.NoRetry : gfp | Gfp.HighMem, order);
                if (idx >= 0) break;
                order--;
            }
            if (idx < 0) { failed = true; break; }
            frames.Add(idx);
            orders.Add(order);
            left -= 1 << order;
        }
        e.Source = CoherentSource.Scattered;
        e.Frames = [.. frames];
        e.FrameOrders = [.. orders];
        if (failed)
        {
            ReleaseMemory(e, count);
            return false;
        }
        ulong iova = dev.Domain!.Alloc((ulong)count);
        if (iova == 0)
        {
            ReleaseMemory(e, count);
            return false;
        }
        e.IovaPfn = iova;
        e.IovaPages = (ulong)count;
        e.DevAddr = iova << PhysicalMemory.PageShift;
        e.FirstFrame = frames[0];
        e.Phys = IdxToPhys(frames[0]);
        if (_vm is null)
        {
            // No vmalloc window means memory that cannot be remapped at all: the one contiguous block taken above, seen
            // through the host's only view of its frames.
            e.Cpu = _pa.IdxToVirt(frames[0]);
            return true;
        }
        var all = new int[count];
        int k = 0;
        for (int i = 0; i < frames.Count; i++)
            for (int j = 0; j < 1 << orders[i]; j++) all[k++] = frames[i] + j;
        nint r = _vm.Vmap(all, _remapFlags, CallSite.Kernel("iommu_dma_alloc"));
        if (r == 0)
        {
            ReleaseMemory(e, count);
            dev.Domain.Free(iova, (ulong)count);
            return false;
        }
        e.Remap = r;
        e.Cpu = r;
        return true;
    }

    /// <summary>Gives back the memory of a coherent buffer (not its remap or IOVA).</summary>
    private void ReleaseMemory(DmaEntry e, int count)
    {
        switch (e.Source)
        {
            case CoherentSource.Cma: e.Cma!.Release(e.FirstFrame, (ulong)count); break;
            case CoherentSource.Buddy: _pa.Free(e.FirstFrame, e.Order, "dma_free_contiguous"); break;
            case CoherentSource.AtomicPool: e.Pool!.Free(e.FirstFrame - e.Pool.FirstFrame, count); break;
            case CoherentSource.Scattered:
                for (int i = 0; i < e.Frames!.Length; i++) _pa.Free(e.Frames[i], e.FrameOrders![i], "iommu_dma_free");
                break;
        }
    }

    /// <summary>dma_free_attrs(): checked against the allocation (handle, size, CPU address); nothing is freed on a mismatch.</summary>
    public void FreeCoherent(Device dev, ulong size, nint cpu, ulong handle, CallSite site)
    {
        CheckDevice(dev);
        DmaEntry e;
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            e = FindForUnmap(dev, handle, size, DmaEntryType.Coherent, DmaDirection.Bidirectional);
            if (e.Cpu != cpu)
            {
                Fail(dev, DmaApiError.Mismatch, $"device driver frees DMA memory with different CPU address [device address=0x{handle:x16}] [size={size} bytes] [cpu alloc address=0x{e.Cpu:x16}] [cpu free address=0x{cpu:x16}]");
            }
            dev.Entries.Remove(handle);
        }
        int count = (int)((e.Size + PhysicalMemory.PageSize - 1) >> PhysicalMemory.PageShift);
        if (e.Remap != 0) _vm!.Free(e.Remap, freePages: false, CallSite.Kernel("dma_free_attrs"));
        ReleaseMemory(e, count);
        if (e.IovaPages != 0) dev.Domain!.Free(e.IovaPfn, e.IovaPages);
    }

    /// <summary>
    /// check_unmap(): the entry at <paramref name="addr"/>, after the checks of size, function and direction.
    /// Called under the device's lock; every failure is reported and thrown with nothing changed.
    /// </summary>
    private DmaEntry FindForUnmap(Device dev, ulong addr, ulong size, DmaEntryType type, DmaDirection dir)
    {
        if (!dev.Entries.TryGetValue(addr, out var e))
        {
            if (addr == MappingError) Fail(dev, DmaApiError.NotMapped, "device driver tries to free an invalid DMA memory address");
            Fail(dev, DmaApiError.NotMapped, $"device driver tries to free DMA memory it has not allocated [device address=0x{addr:x16}] [size={size} bytes]");
        }
        if (e!.Size != size)
            Fail(dev, DmaApiError.Mismatch, $"device driver frees DMA memory with different size [device address=0x{addr:x16}] [map size={e.Size} bytes] [unmap size={size} bytes]");
        if (e.Type != type)
            Fail(dev, DmaApiError.Mismatch, $"device driver frees DMA memory with wrong function [device address=0x{addr:x16}] [size={size} bytes] [mapped as {e.TypeName}] [unmapped as {DmaEntry.TypeNames[(int)type]}]");
        if (e.Direction != dir)
            Fail(dev, DmaApiError.Mismatch, $"device driver frees DMA memory with different direction [device address=0x{addr:x16}] [size={size} bytes] [mapped with {e.DirName}] [unmapped with {DmaEntry.DirNames[(int)dir]}]");
        if (DebugEnabled && e.MapErr == MapErrType.NotChecked)
            Report(dev, $"device driver failed to check map error [device address=0x{addr:x16}] [size={size} bytes] [mapped as {e.TypeName}]");
        return e;
    }
}
