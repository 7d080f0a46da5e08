// Streaming DMA: dma_map_single()/dma_map_page(), dma_map_sg() and their unmaps. dma-direct hands the
// device the physical address (refusing what lies beyond its mask: there is no swiotlb bounce buffer);
// behind an IOMMU one IOVA range covers the buffer or the whole scatterlist.
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Dma;

internal sealed unsafe partial class DmaMapper
{
    private static void CheckDirection(DmaDirection dir)
    {
        if (dir is not (DmaDirection.Bidirectional or DmaDirection.ToDevice or DmaDirection.FromDevice))
            throw new ArgumentException($"{dir} is not a valid DMA direction (valid_dma_direction())", nameof(dir));
    }

    /// <summary>dma_map_single(): the device address of <paramref name="size"/> bytes at a linear-map address, or DMA_MAPPING_ERROR.</summary>
    public ulong MapSingle(Device dev, nint cpu, ulong size, DmaDirection dir, CallSite site)
    {
        CheckDevice(dev);
        CheckDirection(dir);
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "a mapping needs at least one byte");
        if (size > (ulong)nint.MaxValue || (ulong)cpu + size - 1 < (ulong)cpu)
            Fail(dev, DmaApiError.BadAddress, $"device driver maps memory that wraps around the address space [addr=0x{cpu:x16}] [len={size}]");
        int idx = LinearIdx(cpu);
        int last = LinearIdx(cpu + (nint)size - 1);
        if (idx < 0 || last < 0)
        {
            string where = _vm is not null && _vm.Contains(cpu) ? "vmalloc" : "invalid";
            Fail(dev, DmaApiError.BadAddress, $"device driver maps memory from {where} area [addr=0x{cpu:x16}] [len={size}]");
        }
        return MapPhys(dev, IdxToPhys(idx) + (ulong)(cpu & (PhysicalMemory.PageSize - 1)), cpu, size, dir, site);
    }

    /// <summary>dma_map_page(): as <see cref="MapSingle"/> for <paramref name="size"/> bytes at an offset into a page.</summary>
    public ulong MapPage(Device dev, int idx, ulong offset, ulong size, DmaDirection dir, CallSite site)
    {
        CheckDevice(dev);
        CheckDirection(dir);
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "a mapping needs at least one byte");
        // The offset stays inside the page's block (an allocation of order n spans 2^n pages, a compound among them);
        // the size may run on into the following pages, as long as they are this machine's linear map.
        ref PageFrame f = ref _pa.Frame(idx);
        ulong block = (f.Flags & PageFlags.Allocated) != 0 ? (ulong)PhysicalMemory.PageSize << f.Order : (ulong)PhysicalMemory.PageSize;
        if (offset >= block)
            Fail(dev, DmaApiError.BadAddress, $"device driver maps memory at offset {offset} outside the page it passes [pfn=0x{_pa.BasePfn + (ulong)idx:x}] [block={block} bytes] [len={size}]");
        if (size > (ulong)nint.MaxValue || offset + size - 1 < offset)
            Fail(dev, DmaApiError.BadAddress, $"device driver maps memory that wraps around the address space [pfn=0x{_pa.BasePfn + (ulong)idx:x}] [offset={offset}] [len={size}]");
        // dma_map_page() works by physical address (page_to_phys() + offset), HighMem pages included: the range must be
        // RAM of this machine. dma-debug's address checks (check_for_stack(), check_for_illegal_area()) look at
        // page_address() only when !PageHighMem(page) (kernel/dma/debug.c debug_dma_map_page(), 5.10), so a HighMem page
        // records no CPU address: the entry's CPU view is then the frame itself (see CpuAccess).
        ulong phys = IdxToPhys(idx) + offset;
        ulong lastPfn = (phys + size - 1) >> PhysicalMemory.PageShift;
        if (lastPfn - _pa.BasePfn >= (ulong)_pa.Frames.Count || !_pa.PfnValid(lastPfn))
            Fail(dev, DmaApiError.BadAddress, $"device driver maps memory from invalid area [addr=0x{phys:x}] [len={size}]");
        nint cpu = _pa.IsHighMem(idx) ? 0 : _pa.IdxToVirt(idx) + (nint)offset;
        return MapPhys(dev, phys, cpu, size, dir, site);
    }

    private ulong MapPhys(Device dev, ulong phys, nint cpu, ulong size, DmaDirection dir, CallSite site)
    {
        var e = new DmaEntry
        {
            Type = DmaEntryType.Single, Size = size, Direction = dir, Cpu = cpu, Phys = phys, MapErr = MapErrType.NotChecked,
            DeviceOwns = true, Site = site,
        };
        if (dev.HasIommu)
        {
            ulong first = phys >> PhysicalMemory.PageShift, lastPfn = (phys + size - 1) >> PhysicalMemory.PageShift;
            ulong pages = lastPfn - first + 1;
            ulong iova = dev.Domain!.Alloc(pages);
            if (iova == 0) return MappingError;
            e.IovaPfn = iova;
            e.IovaPages = pages;
            e.DevAddr = (iova << PhysicalMemory.PageShift) + (phys & (PhysicalMemory.PageSize - 1));
        }
        else
        {
            // dma_direct_map_page(): dma_capable() or nothing (no swiotlb here).
            if (phys + size - 1 > dev.DmaMask)
            {
                _pa.WarnOnce($"dma overflow {dev.Name}", $"{dev.Driver} {dev.Name}: DMA addr 0x{phys:x16}+{size} overflow (mask {dev.DmaMask:x}, bus limit 0).");
                return MappingError;
            }
            e.DevAddr = phys;
        }
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            if (dev.Entries.ContainsKey(e.DevAddr))
            {
                // The same bytes mapped twice for a direct device: the kernel allows it; Kmem keys mappings by address.
                if (dev.Domain is not null) dev.Domain.Free(e.IovaPfn, e.IovaPages);
                Fail(dev, DmaApiError.Mismatch, $"device driver maps 0x{e.DevAddr:x16} twice: unmap the first mapping before mapping the buffer again");
            }
            dev.Entries.Add(e.DevAddr, e);
        }
        return e.DevAddr;
    }

    /// <summary>dma_unmap_single()/dma_unmap_page(): checked against the mapping; nothing is unmapped on a mismatch.</summary>
    public void UnmapSingle(Device dev, ulong addr, ulong size, DmaDirection dir)
    {
        CheckDevice(dev);
        CheckDirection(dir);
        DmaEntry e;
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            e = FindForUnmap(dev, addr, size, DmaEntryType.Single, dir);
            dev.Entries.Remove(addr);
        }
        if (e.IovaPages != 0) dev.Domain!.Free(e.IovaPfn, e.IovaPages);
    }

    /// <summary>dma_mapping_error(): true for DMA_MAPPING_ERROR; marks the mapping as checked for dma-debug.</summary>
    public bool MappingErrorCheck(Device dev, ulong addr)
    {
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
            if (dev.Entries.TryGetValue(addr, out var e) && e.MapErr == MapErrType.NotChecked) e.MapErr = MapErrType.Checked;
        return addr == MappingError;
    }

    /// <summary>dma_map_sg(): fills each entry's device address and length; returns the segments mapped (0 on failure).</summary>
    public int MapSg(Device dev, SgTable sgt, DmaDirection dir, CallSite site)
    {
        CheckDevice(dev);
        CheckDirection(dir);
        if (sgt.Nents != 0) Fail(dev, DmaApiError.Mismatch, "device driver maps a scatterlist that is already mapped");
        var sgl = sgt.Entries;
        foreach (var s in sgl)
        {
            if (s.Page.IsNull || !_pa.PfnValid(s.Page.Pfn))
                Fail(dev, DmaApiError.BadAddress, $"device driver maps memory from invalid area [page={s.Page}] [len={s.Length}]");
        }
        var e = new DmaEntry { Type = DmaEntryType.Sg, Direction = dir, MapErr = MapErrType.NotApplicable, DeviceOwns = true, Site = site, Sg = sgt };
        int segments;
        if (dev.HasIommu)
        {
            // iommu_dma_map_sg(): one IOVA range; entries that meet at page boundaries become one segment.
            ulong pages = 0;
            foreach (var s in sgl) pages += (ulong)((s.Offset + s.Length + PhysicalMemory.PageSize - 1) >> PhysicalMemory.PageShift) - (ulong)(s.Offset >> PhysicalMemory.PageShift);
            ulong iova = dev.Domain!.Alloc(pages);
            if (iova == 0) return 0;
            e.IovaPfn = iova;
            e.IovaPages = pages;
            ulong cursor = iova << PhysicalMemory.PageShift;
            segments = 0;
            Scatterlist? open = null;
            foreach (var s in sgl)
            {
                ulong start = cursor + (ulong)(s.Offset & (PhysicalMemory.PageSize - 1));
                bool joins = open is not null && s.Offset % PhysicalMemory.PageSize == 0 && (open.DmaAddress + (ulong)open.DmaLength) % PhysicalMemory.PageSize == 0
                             && open.DmaAddress + (ulong)open.DmaLength == start;
                if (joins) open!.DmaLength += s.Length;
                else
                {
                    open = sgl[segments++];
                    open.DmaAddress = start;
                    open.DmaLength = s.Length;
                }
                cursor += (ulong)((s.Offset % PhysicalMemory.PageSize + s.Length + PhysicalMemory.PageSize - 1) & ~(PhysicalMemory.PageSize - 1));
            }
            for (int i = segments; i < sgl.Count; i++) { sgl[i].DmaAddress = 0; sgl[i].DmaLength = 0; }
        }
        else
        {
            foreach (var s in sgl)
            {
                ulong phys = IdxToPhys((int)(s.Page.Pfn - _pa.BasePfn)) + (ulong)s.Offset;
                if (phys + (ulong)s.Length - 1 > dev.DmaMask)
                {
                    _pa.WarnOnce($"dma overflow {dev.Name}", $"{dev.Driver} {dev.Name}: DMA addr 0x{phys:x16}+{s.Length} overflow (mask {dev.DmaMask:x}, bus limit 0).");
                    foreach (var t in sgl) { t.DmaAddress = 0; t.DmaLength = 0; }
                    return 0;
                }
                s.DmaAddress = phys;
                s.DmaLength = s.Length;
            }
            segments = sgl.Count;
        }
        e.DevAddr = sgl[0].DmaAddress;
        e.Size = (ulong)sgt.Length;
        e.Phys = IdxToPhys((int)(sgl[0].Page.Pfn - _pa.BasePfn)) + (ulong)sgl[0].Offset;
        e.SgNents = sgt.OrigNents;
        e.SgMapped = segments;
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            if (dev.Entries.ContainsKey(e.DevAddr))
            {
                if (dev.Domain is not null) dev.Domain.Free(e.IovaPfn, e.IovaPages);
                foreach (var t in sgl) { t.DmaAddress = 0; t.DmaLength = 0; }
                Fail(dev, DmaApiError.Mismatch, $"device driver maps 0x{e.DevAddr:x16} twice: unmap the first mapping before mapping the buffer again");
            }
            dev.Entries.Add(e.DevAddr, e);
        }
        sgt.Nents = segments;
        return segments;
    }

    /// <summary>dma_unmap_sg(): checked against the mapping of the same table.</summary>
    public void UnmapSg(Device dev, SgTable sgt, DmaDirection dir)
    {
        CheckDevice(dev);
        CheckDirection(dir);
        DmaEntry e;
        LockOrder.Enter(LockRank.DmaDevice, dev.Lock);
        lock (dev.Lock)
        {
            ulong addr = sgt.Nents == 0 ? MappingError : sgt.Entries[0].DmaAddress;
            if (sgt.Nents == 0 || !dev.Entries.TryGetValue(addr, out var found) || found.Sg != sgt)
                Fail(dev, DmaApiError.NotMapped, $"device driver tries to free DMA memory it has not allocated [device address=0x{(sgt.Nents == 0 ? 0 : addr):x16}] [size={sgt.Length} bytes]");
            e = FindForUnmap(dev, addr, (ulong)sgt.Length, DmaEntryType.Sg, dir);
            dev.Entries.Remove(addr);
        }
        if (e.IovaPages != 0) dev.Domain!.Free(e.IovaPfn, e.IovaPages);
        foreach (var s in sgt.Entries) { s.DmaAddress = 0; s.DmaLength = 0; }
        sgt.Nents = 0;
    }
}
