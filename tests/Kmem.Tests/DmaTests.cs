// The DMA API: dma_alloc_coherent() by the dma-direct rules (CMA, buddy within the mask, atomic pool,
// remaps), iommu-dma (scattered pages behind one IOVA range), streaming mappings and scatterlists,
// dma-debug's reports with nothing changed on misuse, device removal, and a two-thread stress.
namespace Kmem.Tests;

public unsafe class DmaTests
{
    /// <summary>An arm64 board with a direct, non-coherent device (default CMA area) and a 24-bit device.</summary>
    private const string BoardJson = """
    {
      "name": "dmaboard", "arch": "arm64", "cpus": 2,
      "dram": [ { "base": "0x40000000", "size": "512M" } ],
      "cma": [ { "name": "reserved", "base": "0x50000000", "size": "16M" } ],
      "devices": [
        { "name": "fe000000.codec", "iommu": false, "dma_mask": 32, "coherent": false },
        { "name": "fe100000.isa", "driver": "oldisa", "iommu": false, "dma_mask": 30, "coherent": true },
        { "name": "fe200000.gpu", "iommu": true, "dma_mask": 32, "coherent": false }
      ]
    }
    """;

    private static Machine Board(string cmdline = "")
    {
        var m = Machine.Boot(MachineProfile.Parse(BoardJson), cmdline);
        m.Sysctl.Kmem.CmaBusyRetryWait = TimeSpan.Zero;
        return m;
    }

    private static Span<byte> Bytes(nint p, int n) => new((void*)p, n);

    [Fact]
    public void A_camera_device_gets_contiguous_zeroed_memory_from_its_cma_area()
    {
        using var m = Machine.Boot("rv1106");
        var dev = m.Devices["ffa50000.rkvenc"];
        var cma = m.Cma["rk-dma-heap-cma"];
        nint cpu = m.DmaAllocCoherent(dev, 100 * 1024, Gfp.Kernel, out ulong handle);
        Assert.NotEqual(0, cpu);
        Assert.InRange(handle, cma.Base, cma.Base + cma.Size - 100 * 1024);
        Assert.Equal(25UL, cma.Used);
        Assert.Equal(-1, Bytes(cpu, 100 * 1024).IndexOfAnyExcept((byte)0));
        // 32-bit ARM keeps CMA buffers in the linear map (their attributes change in place): the handle is the page's address.
        Assert.Equal(handle, m.VirtToPhys(cpu));
        Bytes(cpu, 100 * 1024).Fill(0xa5);
        Assert.Equal(0xa5, *(byte*)m.PhysToVirt(handle + 99 * 1024));
        m.DmaFreeCoherent(dev, 100 * 1024, cpu, handle);
        Assert.Equal(0UL, cma.Used);
        Assert.Equal(0, dev.MappingCount);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Non_blocking_requests_of_a_non_coherent_device_use_the_atomic_pool()
    {
        using var m = Machine.Boot("rv1106");
        Assert.Contains("DMA: preallocated 256 KiB pool for atomic coherent allocations", m.Dmesg());
        var dev = m.Devices["ffa00000.rkisp"];
        nint a = m.DmaAllocCoherent(dev, 4096, Gfp.Atomic, out ulong ha);
        nint b = m.DmaAllocCoherent(dev, 3 * 4096, Gfp.Atomic, out ulong hb);
        Assert.True(m.IsVmallocAddr(a), "the pool is remapped uncached");
        Assert.Equal(a + 4096, b);
        Assert.Equal(ha + 4096, hb);
        Assert.Contains(" dma_common_contiguous_remap+0x94/0xb0 dma-coherent", m.ProcFs.Read("/proc/vmallocinfo"));
        Assert.Equal(0UL, m.Cma["rk-dma-heap-cma"].Used);
        Bytes(b, 3 * 4096).Fill(7);
        Assert.Equal(7, *(byte*)m.PhysToVirt(hb + 8191));
        m.DmaFreeCoherent(dev, 4096, a, ha);
        nint c = m.DmaAllocCoherent(dev, 4096, Gfp.Atomic, out ulong hc);
        Assert.Equal(a, c);                                             // first fit
        Assert.Equal(0, m.DmaAllocCoherent(dev, 512 * 1024, Gfp.Atomic, out _));   // larger than the pool
        m.DmaFreeCoherent(dev, 4096, c, hc);
        m.DmaFreeCoherent(dev, 3 * 4096, b, hb);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_direct_non_coherent_device_gets_the_default_area_and_an_uncached_remap()
    {
        using var m = Board();
        var dev = m.Devices["fe000000.codec"];
        var cma = m.Cma["reserved"];
        nint cpu = m.DmaAllocCoherent(dev, 5 * 4096, Gfp.Kernel, out ulong handle);
        Assert.InRange(handle, cma.Base, cma.Base + cma.Size);
        Assert.Equal(0UL, (handle >> 12) % 8);                          // align = min(get_order(size), 8) = 3
        Assert.True(m.IsVmallocAddr(cpu));
        // 5.10: vmap()'s return address in dma_common_contiguous_remap() is the area's caller.
        string remap = @"0x[0-9a-f]{16}-0x[0-9a-f]{16}   24576 dma_common_contiguous_remap\+0x94/0xb0 dma-coherent\n";
        Assert.Matches(remap, m.ProcFs.Read("/proc/vmallocinfo"));
        for (int i = 0; i < 5; i++) Assert.Equal(handle + (ulong)i * 4096, m.VmallocToPfn(cpu + i * 4096) << 12);
        // One page: no CMA for a single page without a device area; the buddy allocator below the 32-bit mask.
        nint one = m.DmaAllocCoherent(dev, 100, Gfp.Kernel, out ulong h1);
        Assert.True(h1 < 1UL << 32 && (h1 < cma.Base || h1 >= cma.Base + cma.Size));
        m.DmaFreeCoherent(dev, 100, one, h1);
        m.DmaFreeCoherent(dev, 5 * 4096, cpu, handle);
        Assert.DoesNotMatch(remap, m.ProcFs.Read("/proc/vmallocinfo"));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_dma_mask_keeps_coherent_memory_reachable()
    {
        using var m = Board();
        var dev = m.Devices["fe100000.isa"];                            // 30-bit mask: below 0x40000000 there is no RAM
        Assert.Equal(0, m.DmaAllocCoherent(dev, 8192, Gfp.Kernel | Gfp.NoWarn, out ulong h));
        Assert.Equal(Machine.DmaMappingErrorValue, h);
        using var pc = Machine.Boot("x86_64");
        var gpu = pc.Devices["0000:00:02.0"];                           // 32-bit mask on a 5 GiB machine
        for (int i = 0; i < 20; i++)
        {
            nint cpu = pc.DmaAllocCoherent(gpu, 1 << 20, Gfp.Kernel, out ulong handle);
            Assert.True(handle + (1 << 20) <= 1UL << 32, $"0x{handle:x} beyond the mask");
            Assert.Equal(handle, pc.VirtToPhys(cpu));                   // coherent x86: the linear address
        }
        Assert.Equal(20, gpu.MappingCount);
    }

    [Fact]
    public void An_iommu_device_sees_one_range_over_scattered_pages()
    {
        using var m = Board();
        var dev = m.Devices["fe200000.gpu"];
        // Leave only single free pages: every other page of the whole memory is held.
        var hold = new List<Page>();
        while (m.AllocPages(Gfp.Kernel | Gfp.Memalloc | Gfp.NoWarn | Gfp.NoRetry, 0) is { IsNull: false } p) hold.Add(p);   // below the watermarks too
        for (int i = 0; i < hold.Count; i += 2) m.FreePage(hold[i]);
        nint cpu = m.DmaAllocCoherent(dev, 1 << 20, Gfp.Kernel, out ulong iova);
        Assert.NotEqual(0, cpu);
        Assert.Equal((1UL << 32) - (1 << 20), iova);                    // top-down below the mask, size aligned
        Assert.True(m.IsVmallocAddr(cpu));
        Assert.Contains("iommu_dma_alloc dma-coherent", m.ProcFs.Read("/proc/vmallocinfo"));
        Bytes(cpu, 1 << 20).Fill(0x3c);
        var pfns = Enumerable.Range(0, 256).Select(i => m.VmallocToPfn(cpu + i * 4096)).ToList();
        Assert.All(pfns.Zip(pfns.Skip(1)), p => Assert.NotEqual(p.First + 1, p.Second));   // not one page next to another
        Assert.All(pfns, p => Assert.Equal(0x3c, *(byte*)m.PageAddress(m.PfnToPage(p))));
        nint second = m.DmaAllocCoherent(dev, 3 * 4096, Gfp.Kernel, out ulong iova2);
        Assert.Equal(iova - 4 * 4096, iova2);                           // 3 pages take a 4-page IOVA, 4-page aligned
        m.DmaFreeCoherent(dev, 3 * 4096, second, iova2);
        m.DmaFreeCoherent(dev, 1 << 20, cpu, iova);
        foreach (var p in hold.Where((_, i) => i % 2 == 1)) m.FreePage(p);
        // With memory free again, the buffer is one large block behind the same IOVA.
        nint again = m.DmaAllocCoherent(dev, 1 << 20, Gfp.Kernel, out ulong iova3);
        Assert.Equal(iova, iova3);
        ulong first = m.VmallocToPfn(again);
        Assert.All(Enumerable.Range(0, 256), i => Assert.Equal(first + (ulong)i, m.VmallocToPfn(again + i * 4096)));
        m.DmaFreeCoherent(dev, 1 << 20, again, iova3);
        TestSupport.AssertConsistent(m);
    }

    // ------------------------------------------------------------------ streaming

    [Fact]
    public void Streaming_mappings_give_physical_addresses_or_iovas()
    {
        using var m = Board();
        var codec = m.Devices["fe000000.codec"];
        nint buf = m.Kmalloc(2000, Gfp.Kernel);
        ulong d = m.DmaMapSingle(codec, buf, 2000, DmaDirection.ToDevice);
        Assert.False(m.DmaMappingError(codec, d));
        Assert.Equal(m.VirtToPhys(buf), d);
        m.DmaUnmapSingle(codec, d, 2000, DmaDirection.ToDevice);
        var gpu = m.Devices["fe200000.gpu"];
        var pages = m.AllocPages(Gfp.Kernel, 2);
        ulong g = m.DmaMapPage(gpu, pages, 100, 10_000, DmaDirection.FromDevice);
        Assert.Equal(100UL, g & 0xfff);                                 // the offset survives the IOMMU
        Assert.Equal((1UL << 32) - 4 * 4096, g & ~0xfffUL);             // 3 pages: a 4-page, 4-page-aligned IOVA
        Assert.Equal(1, gpu.MappingCount);
        m.DmaUnmapPage(gpu, g, 10_000, DmaDirection.FromDevice);
        m.FreePages(pages, 2);
        m.Kfree(buf);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_buffer_beyond_the_mask_is_a_mapping_error_and_vmalloc_memory_is_refused()
    {
        using var m = Machine.Boot("x86_64");
        var gpu = m.Devices["0000:00:02.0"];
        var high = m.AllocPages(Gfp.Kernel, 0);
        var pages = new List<Page>();
        while (m.PageToPhys(high) < 1UL << 32)
        {
            pages.Add(high);
            high = m.AllocPages(Gfp.HighUserMovable, 0);
        }
        ulong d = m.DmaMapPage(gpu, high, 0, 4096, DmaDirection.Bidirectional);
        Assert.Equal(Machine.DmaMappingErrorValue, d);
        Assert.True(m.DmaMappingError(gpu, d));
        Assert.Contains("i915 0000:00:02.0: DMA addr 0x", m.Dmesg());
        Assert.Contains("overflow (mask ffffffff, bus limit 0).", m.Dmesg());
        Assert.Equal(0, gpu.MappingCount);
        nint v = m.Vmalloc(8192);
        var ex = Assert.Throws<DmaApiException>(() => m.DmaMapSingle(gpu, v, 8192, DmaDirection.ToDevice));
        Assert.Equal(DmaApiError.BadAddress, ex.Error);
        Assert.Contains($"DMA-API: i915 0000:00:02.0: device driver maps memory from vmalloc area [addr=0x{v:x16}] [len=8192]", m.Dmesg());
        Assert.Throws<DmaApiException>(() => m.DmaMapSingle(gpu, 0x1000, 16, DmaDirection.ToDevice));
        nint k = m.Kmalloc(16, Gfp.Kernel);
        Assert.Throws<ArgumentException>(() => m.DmaMapSingle(gpu, k, 16, DmaDirection.None));
        m.Kfree(k);
        m.Vfree(v);
    }

    [Fact]
    public void Scatterlists_map_entry_by_entry_directly_and_as_one_segment_behind_an_iommu()
    {
        using var m = Board();
        var pages = Enumerable.Range(0, 6).Select(_ => m.AllocPage(Gfp.Kernel)).ToArray();
        // Pages 0-1 and 3-4 consecutive by construction of the list below; 2 and 5 apart.
        var list = new[] { pages[0], pages[1], pages[3], pages[5] };
        var runs = list.Zip(list.Skip(1)).Count(p => p.Second.Pfn != p.First.Pfn + 1) + 1;
        var sgt = SgTable.FromPages(list, 512, 4 * 4096 - 1024);
        Assert.Equal(runs, sgt.OrigNents);
        Assert.Equal(4 * 4096 - 1024, sgt.Length);
        var codec = m.Devices["fe000000.codec"];
        Assert.Equal(sgt.OrigNents, m.DmaMapSg(codec, sgt, DmaDirection.ToDevice));
        foreach (var s in sgt.Entries) Assert.Equal(m.PageToPhys(s.Page) + (ulong)s.Offset, s.DmaAddress);
        m.DmaSyncSgForCpu(codec, sgt, DmaDirection.ToDevice);
        m.DmaSyncSgForDevice(codec, sgt, DmaDirection.ToDevice);
        m.DmaUnmapSg(codec, sgt, DmaDirection.ToDevice);
        Assert.Equal(0, sgt.Nents);
        var gpu = m.Devices["fe200000.gpu"];
        var whole = SgTable.FromPages(list, 0, 4 * 4096);
        Assert.Equal(1, m.DmaMapSg(gpu, whole, DmaDirection.Bidirectional));
        Assert.Equal(4 * 4096, whole.Entries[0].DmaLength);
        Assert.All(whole.Entries.Skip(1), e => Assert.Equal(0, e.DmaLength));   // one device segment for every entry
        Assert.Throws<DmaApiException>(() => m.DmaMapSg(gpu, whole, DmaDirection.Bidirectional));   // already mapped
        m.DmaUnmapSg(gpu, whole, DmaDirection.Bidirectional);
        foreach (var p in pages) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    // ------------------------------------------------------------------ misuse (structural checks, dma-debug off)

    private static void Rejected(Machine m, Device dev, Action misuse, DmaApiError error, string logText)
    {
        var ex = TestSupport.Rejected<DmaApiException>(m, misuse, logText,
            () => dev.MappingCount + m.ProcFs.Read("/proc/vmallocinfo") + string.Join(",", m.Cma.Values.Select(c => c.Used)));
        Assert.Equal(error, ex.Error);
    }

    [Fact]
    public void Frees_and_unmaps_that_do_not_match_are_reported_and_change_nothing()
    {
        using var m = Board();
        var dev = m.Devices["fe000000.codec"];
        nint cpu = m.DmaAllocCoherent(dev, 3 * 4096, Gfp.Kernel, out ulong h);
        string p = "DMA-API: codec fe000000.codec: ";
        Rejected(m, dev, () => m.DmaFreeCoherent(dev, 2 * 4096, cpu, h), DmaApiError.Mismatch,
            $"{p}device driver frees DMA memory with different size [device address=0x{h:x16}] [map size=12288 bytes] [unmap size=8192 bytes]");
        Rejected(m, dev, () => m.DmaFreeCoherent(dev, 3 * 4096, cpu + 4096, h), DmaApiError.Mismatch,
            $"{p}device driver frees DMA memory with different CPU address [device address=0x{h:x16}] [size=12288 bytes] [cpu alloc address=0x{cpu:x16}] [cpu free address=0x{cpu + 4096:x16}]");
        Rejected(m, dev, () => m.DmaUnmapSingle(dev, h, 3 * 4096, DmaDirection.Bidirectional), DmaApiError.Mismatch,
            $"{p}device driver frees DMA memory with wrong function [device address=0x{h:x16}] [size=12288 bytes] [mapped as coherent] [unmapped as single]");
        Rejected(m, dev, () => m.DmaFreeCoherent(dev, 3 * 4096, cpu, h + 4096), DmaApiError.NotMapped,
            $"{p}device driver tries to free DMA memory it has not allocated [device address=0x{h + 4096:x16}] [size=12288 bytes]");
        nint buf = m.Kmalloc(512, Gfp.Kernel);
        ulong d = m.DmaMapSingle(dev, buf, 512, DmaDirection.FromDevice);
        Rejected(m, dev, () => m.DmaUnmapSingle(dev, d, 512, DmaDirection.ToDevice), DmaApiError.Mismatch,
            $"{p}device driver frees DMA memory with different direction [device address=0x{d:x16}] [size=512 bytes] [mapped with DMA_FROM_DEVICE] [unmapped with DMA_TO_DEVICE]");
        Rejected(m, dev, () => m.DmaUnmapSingle(dev, Machine.DmaMappingErrorValue, 512, DmaDirection.FromDevice), DmaApiError.NotMapped,
            $"{p}device driver tries to free an invalid DMA memory address");
        m.DmaUnmapSingle(dev, d, 512, DmaDirection.FromDevice);
        Rejected(m, dev, () => m.DmaUnmapSingle(dev, d, 512, DmaDirection.FromDevice), DmaApiError.NotMapped,
            $"{p}device driver tries to free DMA memory it has not allocated [device address=0x{d:x16}] [size=512 bytes]");
        m.DmaFreeCoherent(dev, 3 * 4096, cpu, h);
        Rejected(m, dev, () => m.DmaFreeCoherent(dev, 3 * 4096, cpu, h), DmaApiError.NotMapped, "device driver tries to free DMA memory it has not allocated");
        Assert.True(m.DmaDebugErrorCount >= 8);
        m.Kfree(buf);
    }

    // ------------------------------------------------------------------ dma-debug

    [Fact]
    public void Dma_debug_checks_ownership_directions_and_map_error_checks()
    {
        using var m = Board("dma_debug=on");
        Assert.True(m.DmaDebug);
        var dev = m.Devices["fe000000.codec"];
        string p = "DMA-API: codec fe000000.codec: ";
        nint buf = m.Kmalloc(4096, Gfp.Kernel);
        ulong d = m.DmaMapSingle(dev, buf, 4096, DmaDirection.FromDevice);
        // The device owns the buffer: the CPU may not touch it.
        Rejected(m, dev, () => m.DmaCpuAccess(dev, d, 64), DmaApiError.CpuAccess, $"{p}cpu touching an active dma mapped cacheline [cln=0x{m.VirtToPhys(buf) >> 6:x16}]");
        Rejected(m, dev, () => m.DmaSyncSingleForCpu(dev, d, 4096, DmaDirection.ToDevice), DmaApiError.BadSync,
            $"{p}device driver syncs DMA memory with different direction [device address=0x{d:x16}] [size=4096 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]");
        Rejected(m, dev, () => m.DmaSyncSingleForCpu(dev, d + 100, 4096, DmaDirection.FromDevice), DmaApiError.BadSync,
            $"{p}device driver syncs DMA memory outside allocated range [device address=0x{d:x16}] [allocation size=4096 bytes] [sync offset+size=4196]");
        Rejected(m, dev, () => m.DmaSyncSingleForCpu(dev, d + 8192, 16, DmaDirection.FromDevice), DmaApiError.BadSync,
            $"{p}device driver tries to sync DMA memory it has not allocated [device address=0x{d + 8192:x16}] [size=16 bytes]");
        m.DmaSyncSingleForCpu(dev, d, 4096, DmaDirection.FromDevice);
        m.DmaCpuAccess(dev, d, 64).Fill(1);                            // the CPU owns it now
        m.DmaSyncSingleForDevice(dev, d, 4096, DmaDirection.FromDevice);
        Assert.Throws<DmaApiException>(() => m.DmaCpuAccess(dev, d, 1));
        // Unmapping without having called dma_mapping_error() is a warning; the unmap goes on.
        int logLen = m.Dmesg().Length;
        m.DmaUnmapSingle(dev, d, 4096, DmaDirection.FromDevice);
        Assert.Contains($"{p}device driver failed to check map error [device address=0x{d:x16}] [size=4096 bytes] [mapped as single]", m.Dmesg()[logLen..]);
        Assert.Equal(0, dev.MappingCount);
        ulong d2 = m.DmaMapSingle(dev, buf, 4096, DmaDirection.ToDevice);
        Assert.False(m.DmaMappingError(dev, d2));
        Assert.Contains("fe000000.codec codec single idx ", m.ProcFs.Read("/sys/kernel/debug/dma-api/dump"));
        Assert.Contains("DMA_TO_DEVICE dma map error checked", m.ProcFs.Read("/sys/kernel/debug/dma-api/dump"));
        logLen = m.Dmesg().Length;
        m.DmaUnmapSingle(dev, d2, 4096, DmaDirection.ToDevice);
        Assert.DoesNotContain("failed to check map error", m.Dmesg()[logLen..]);
        Assert.Equal($"{m.DmaDebugErrorCount}\n", m.ProcFs.Read("/sys/kernel/debug/dma-api/error_count"));
        m.Kfree(buf);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Without_dma_debug_ownership_is_not_checked_and_no_debugfs_exists()
    {
        using var m = Board();
        Assert.False(m.DmaDebug);
        Assert.False(m.ProcFs.Exists("/sys/kernel/debug/dma-api/dump"));
        var dev = m.Devices["fe000000.codec"];
        nint buf = m.Kmalloc(256, Gfp.Kernel);
        ulong d = m.DmaMapSingle(dev, buf, 256, DmaDirection.FromDevice);
        m.DmaCpuAccess(dev, d, 16).Fill(9);
        m.DmaSyncSingleForCpu(dev, d, 256, DmaDirection.ToDevice);
        m.DmaUnmapSingle(dev, d, 256, DmaDirection.FromDevice);
        Assert.DoesNotContain("DMA-API", m.Dmesg());
        Assert.Equal(9, *(byte*)buf);
        m.Kfree(buf);
        using var dbg = Machine.Boot(MachineProfile.Parse(BoardJson) with { DmaDebug = true });
        Assert.True(dbg.DmaDebug);
        using var off = Machine.Boot(MachineProfile.Parse(BoardJson) with { DmaDebug = true }, "dma_debug=off");
        Assert.False(off.DmaDebug);
        Assert.Throws<ProfileException>(() => Machine.Boot(MachineProfile.Parse(BoardJson), "dma_debug=maybe"));
    }

    [Fact]
    public void A_device_that_goes_away_with_live_mappings_is_reported()
    {
        using var m = Board("dma_debug=on");
        var dev = m.Devices["fe200000.gpu"];
        nint cpu = m.DmaAllocCoherent(dev, 8192, Gfp.Kernel, out ulong h);
        nint buf = m.Kmalloc(100, Gfp.Kernel);
        m.DmaMapSingle(dev, buf, 100, DmaDirection.ToDevice);
        m.RemoveDevice(dev);
        Assert.Contains("gpu fe200000.gpu: DMA-API: device driver has pending DMA allocations while released from device [count=2]", m.Dmesg());
        Assert.Matches(@"One of leaked entries details: \[device address=0x[0-9a-f]{16}\] \[size=\d+ bytes\] \[mapped with DMA_\w+\] \[mapped as (coherent|single)\]", m.Dmesg());
        Assert.True(dev.Removed);
        var ex = Assert.Throws<DmaApiException>(() => m.DmaFreeCoherent(dev, 8192, cpu, h));
        Assert.Equal(DmaApiError.DeviceGone, ex.Error);
        Assert.Throws<DmaApiException>(() => m.DmaAllocCoherent(dev, 4096, Gfp.Kernel, out _));
        Assert.Throws<DmaApiException>(() => m.RemoveDevice(dev));
        using var other = Board();
        Assert.Equal(DmaApiError.ForeignDevice, Assert.Throws<DmaApiException>(() => m.DmaAllocCoherent(other.Devices["fe200000.gpu"], 4096, Gfp.Kernel, out _)).Error);
        Assert.Contains("device driver uses a device of another machine", m.Dmesg());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Workload_steps_for_cma_dma_and_movable_memory()
    {
        using var m = Machine.Boot("rv1106");
        var w = Workload.Parse("""
        { "steps": [
          { "op": "alloc_movable", "label": "cache", "count": 3000, "fill": "0x21", "expect": "success" },
          { "op": "cma_alloc", "label": "raw", "cma": "rk-dma-heap-cma", "count": 300, "align": 2, "times": 2, "fill": "0x01", "expect": "success" },
          { "op": "dma_alloc_coherent", "label": "buf", "device": "ffa50000.rkvenc", "size": "64K", "count": 3, "fill": "0x02" },
          { "op": "dma_alloc_coherent", "label": "atomic", "device": "ffa50000.rkvenc", "size": 4096, "gfp": "GFP_ATOMIC" },
          { "op": "verify", "label": "cache", "pattern": "0x21" },
          { "op": "verify", "label": "buf", "pattern": "0x02" },
          { "op": "cma_release", "label": "raw", "count": 1 },
          { "op": "dma_free_coherent", "label": "buf", "count": "all" },
          { "op": "free_movable", "label": "cache", "count": 1000, "which": "random" },
          { "op": "check" }
        ] }
        """);
        var runner = new WorkloadRunner(m);
        var r = runner.Run(w);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(300, r.Labels["raw"].PagesHeld);
        Assert.Equal(2000, r.Labels["cache"].PagesHeld);
        Assert.Equal(300UL, m.Cma["rk-dma-heap-cma"].Used);
        Assert.Equal(1, m.Devices["ffa50000.rkvenc"].MappingCount);
        runner.ReleaseAll();
        Assert.Equal(0UL, m.Cma["rk-dma-heap-cma"].Used);
        Assert.Equal(0, m.Devices["ffa50000.rkvenc"].MappingCount);
        TestSupport.AssertConsistent(m);
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "cma_alloc", "label": "x" } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "dma_alloc_coherent", "label": "x", "device": "d" } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "alloc_movable", "label": "x", "gfp": "GFP_KERNEL" } ] }"""));
        var bad = Workload.Parse("""{ "steps": [ { "op": "dma_alloc_coherent", "label": "x", "device": "nope", "size": 4096 } ] }""");
        var ex = Assert.Throws<WorkloadException>(() => new WorkloadRunner(m).Run(bad));
        Assert.Contains("no device 'nope'", ex.Message);
    }

    // ------------------------------------------------------------------ model and concurrency

    [Fact]
    public void Random_coherent_buffers_and_mappings_keep_iovas_apart_and_bytes_in_place()
    {
        using var m = Board("dma_debug=on");
        var gpu = m.Devices["fe200000.gpu"];
        var codec = m.Devices["fe000000.codec"];
        var rnd = new Random(2024);
        var live = new List<(Device Dev, nint Cpu, ulong Handle, int Size, byte Tag)>();
        for (int op = 0; op < 1500; op++)
        {
            if (rnd.Next(100) < 55 || live.Count == 0)
            {
                var dev = rnd.Next(2) == 0 ? gpu : codec;
                int size = rnd.Next(1, 200_000);
                nint cpu = m.DmaAllocCoherent(dev, size, rnd.Next(5) == 0 ? Gfp.Atomic : Gfp.Kernel, out ulong h);
                if (cpu == 0) continue;
                Assert.True(h + (ulong)size - 1 <= dev.DmaMask);
                byte tag = (byte)rnd.Next(1, 256);
                Bytes(cpu, size).Fill(tag);
                live.Add((dev, cpu, h, size, tag));
            }
            else
            {
                int i = rnd.Next(live.Count);
                var (dev, cpu, h, size, tag) = live[i];
                Assert.Equal(-1, Bytes(cpu, size).IndexOfAnyExcept(tag));
                m.DmaFreeCoherent(dev, size, cpu, h);
                live.RemoveAt(i);
            }
            if (op % 300 == 0) TestSupport.AssertConsistent(m);
        }
        foreach (var (dev, cpu, h, size, tag) in live)
        {
            Assert.Equal(-1, Bytes(cpu, size).IndexOfAnyExcept(tag));
            m.DmaFreeCoherent(dev, size, cpu, h);
        }
        Assert.Equal(0, gpu.MappingCount + codec.MappingCount);
        Assert.Equal(0, m.DmaDebugErrorCount);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Two_threads_map_and_allocate_for_the_same_device_and_unmap_and_free_each_others()
    {
        using var m = Board("dma_debug=on");
        var gpu = m.Devices["fe200000.gpu"];
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        // What one thread allocated and mapped, the other checks, unmaps and frees: the coherent allocation, the
        // streaming mapping and its kmalloc buffer all change hands, as a driver's completion handler does.
        var inbox = new[] { new System.Collections.Concurrent.ConcurrentQueue<Handed>(), new System.Collections.Concurrent.ConcurrentQueue<Handed>() };
        long handed = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Release(Handed x)
        {
            if (Bytes(x.Cpu, x.Size).IndexOfAnyExcept(x.Tag) >= 0 || Bytes(x.Buf, 256).IndexOfAnyExcept(x.Tag) >= 0)
                errors.Enqueue("bytes changed while the buffer changed hands");
            m.DmaUnmapSingle(gpu, x.Dma, 256, DmaDirection.Bidirectional);
            m.DmaFreeCoherent(gpu, x.Size, x.Cpu, x.Handle);
            m.Kfree(x.Buf);
            Interlocked.Increment(ref handed);
        }
        int running = 2;
        void Work(int me)
        {
            var rnd = new Random(me + 1);
            try
            {
                for (int made = 0; made < 10_000 && clock.ElapsedMilliseconds < 2_000;)
                {
                    for (int k = 0; k < 2 && inbox[me].TryDequeue(out var got); k++) Release(got);
                    if (inbox[1 - me].Count > 128)                                // the other thread is behind
                    {
                        if (Volatile.Read(ref running) < 2) break;
                        Thread.Yield();
                        continue;
                    }
                    made++;
                    int size = rnd.Next(1, 64 * 1024);
                    byte tag = (byte)rnd.Next(1, 256);
                    nint cpu = m.DmaAllocCoherent(gpu, size, Gfp.Kernel, out ulong h);
                    nint buf = m.Kmalloc(256, Gfp.Kernel);
                    ulong d = m.DmaMapSingle(gpu, buf, 256, DmaDirection.Bidirectional);
                    if (cpu == 0 || buf == 0 || m.DmaMappingError(gpu, d)) { errors.Enqueue("allocation or mapping failed"); break; }
                    Bytes(cpu, size).Fill(tag);
                    Bytes(buf, 256).Fill(tag);
                    inbox[1 - me].Enqueue(new Handed(cpu, h, size, buf, d, tag));
                }
                Interlocked.Decrement(ref running);
                // Keep taking what the other thread hands over until it stops too.
                while (Volatile.Read(ref running) > 0 || !inbox[me].IsEmpty)
                {
                    if (inbox[me].TryDequeue(out var got)) Release(got);
                    else Thread.Yield();
                }
            }
            catch (Exception e) { errors.Enqueue(e.Message); Interlocked.Exchange(ref running, 0); }
        }
        var t1 = new Thread(() => Work(0));
        var t2 = new Thread(() => Work(1));
        t1.Start(); t2.Start(); t1.Join(); t2.Join();
        foreach (var q in inbox) while (q.TryDequeue(out var x)) Release(x);
        Assert.Empty(errors);
        Assert.True(handed >= 1_000, $"only {handed} buffers changed hands");
        Assert.Equal(0, gpu.MappingCount);
        Assert.Equal(0, m.DmaDebugErrorCount);
        TestSupport.AssertConsistent(m);
    }

    private readonly record struct Handed(nint Cpu, ulong Handle, int Size, nint Buf, ulong Dma, byte Tag);
}
