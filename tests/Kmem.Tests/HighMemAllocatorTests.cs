// The allocators above the page allocator on a board with high memory: vmalloc takes HighMem pages and maps
// them; the system heap holds them (pools, shrinker, vmap and CPU access); CMA areas are placed in HighMem and
// their buffers remapped; the DMA API maps HighMem pages by physical address; pinned movable blocks are
// kmapped; slab and __get_free_pages-based calls never return HighMem. Every byte check goes through two
// different mappings of the same frame.
using Kmem.DmaHeaps;

namespace Kmem.Tests;

public unsafe class HighMemAllocatorTests
{
    /// <summary>
    /// The rv1106's hardware with 1 GiB of DRAM and the generic arm config (HIGHMEM, the default 3G/1G split): lowmem
    /// ends at 768 MiB (0x30000000), the last 256 MiB are ZONE_HIGHMEM. The RK heap's 32 MiB area has no fixed base.
    /// </summary>
    private static MachineProfile Board(string version = "5.15", string cmdline = "rk_dma_heap_cma=32M") =>
        TestSupport.AtRelease("arm", version, ("DMA_CMA", true)) with { Dram = [new DramBank(0, 1UL << 30)], Cmdline = cmdline };

    private const ulong HighStart = 0x30000000;

    private static Machine Boot(string version = "5.15", string cmdline = "rk_dma_heap_cma=32M")
    {
        var m = Machine.Boot(Board(version, cmdline));
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    private static Span<byte> Bytes(nint p, int n) => new((void*)p, n);

    private static void Fill(nint p, int n, int seed)
    {
        var s = Bytes(p, n);
        for (int i = 0; i < n; i++) s[i] = (byte)(i * 7 + seed);
    }

    private static void AssertFilled(nint p, int n, int seed)
    {
        var s = Bytes(p, n);
        for (int i = 0; i < n; i++)
            if (s[i] != (byte)(i * 7 + seed)) Assert.Fail($"byte {i} is 0x{s[i]:x2}, not 0x{(byte)(i * 7 + seed):x2}");
    }

    [Fact]
    public void The_board_has_HighMem_above_768_MiB()
    {
        using var m = Boot();
        Assert.Contains("  HighMem  [mem 0x0000000030000000-0x000000003fffffff]\n", m.Dmesg());
        var high = m.AllocPage(Gfp.HighUser);
        Assert.True(m.PageHighMem(high));
        Assert.True(m.PageToPhys(high) >= HighStart);
        Assert.Equal(0, m.PageAddress(high));
        m.FreePage(high);
    }

    // ================================================================== vmalloc

    [Fact]
    public void Vmalloc_takes_HighMem_pages_and_its_bytes_are_the_bytes_kmap_shows()
    {
        using var m = Boot();
        const int pages = 16;
        nint v = m.Vmalloc(pages * 4096);
        Assert.NotEqual(0, v);
        for (int i = 0; i < pages; i++)
        {
            var page = m.VmallocToPage(v + i * 4096);
            Assert.True(m.PageHighMem(page));                          // __vmalloc_area_node(): GFP_KERNEL | __GFP_HIGHMEM
            Assert.Equal(0, m.PageAddress(page));                      // no linear address while not kmapped
            Fill(v + i * 4096, 4096, i);
            // vmalloc -> kmap_local
            nint local = m.KmapLocalPage(page);
            Assert.NotEqual(v + i * 4096, local);
            AssertFilled(local, 4096, i);
            m.KunmapLocal(local);
            // kmap -> vmalloc: written through the persistent kmap, read through the vmalloc address
            nint k = m.Kmap(page);
            Assert.Equal(k, m.PageAddress(page));
            Fill(k, 4096, i + 100);
            m.Kunmap(page);
            AssertFilled(v + i * 4096, 4096, i + 100);
            // kmap_atomic -> vmalloc
            nint a = m.KmapAtomic(page);
            Fill(a, 4096, i + 50);
            m.KunmapAtomic(a);
            AssertFilled(v + i * 4096, 4096, i + 50);
        }
        m.Vfree(v);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Vmalloc_asking_for_a_DMA_zone_gets_no_HighMem_pages()
    {
        using var m = Boot();
        // vmalloc_32 (GFP_VMALLOC32 = GFP_DMA | GFP_KERNEL on a machine with ZONE_DMA; here Normal): no __GFP_HIGHMEM added
        // when a DMA zone is asked for; with plain GFP_KERNEL every page comes from HighMem first.
        nint v = m.Vmalloc(8 * 4096, Gfp.Kernel | Gfp.Dma);
        Assert.NotEqual(0, v);
        for (int i = 0; i < 8; i++)
        {
            var page = m.VmallocToPage(v + i * 4096);
            Assert.False(m.PageHighMem(page));
            Fill(v + i * 4096, 4096, i);
            AssertFilled(m.PageAddress(page), 4096, i);               // the linear map shows the same bytes
        }
        m.Vfree(v);
    }

    // ================================================================== slab

    [Fact]
    public void Slab_reports_and_drops_HighMem_and_its_pages_stay_lowmem_under_pressure()
    {
        using var m = Machine.Boot(MachineProfile.Parse("""
        {
          "name": "small-highmem", "arch": "arm", "cpus": 2, "version": "5.15",
          "dram": [ { "base": "0x60000000", "size": "96M" } ],
          "zones": { "lowmem_limit": "0x62000000" },
          "kernel": { "base": "0x60008000", "code": "1M", "rwdata": "128K", "rodata": "256K", "init": "64K", "bss": "64K" }
        }
        """));
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var cache = m.KmemCacheCreate("hm-test", 512);
        int len = m.Dmesg().Length;
        nint first = cache.Alloc(Gfp.Kernel | Gfp.HighMem);
        Assert.NotEqual(0, first);
        string log = m.Dmesg()[len..];
        // GFP_SLAB_BUG_MASK: new_slab() warns, fixes the flags up and goes on in lowmem (mm/slub.c, kmalloc_fix_flags()).
        Assert.Contains("Unexpected gfp: 0x2 (__GFP_HIGHMEM). Fixing up to gfp: ", log);
        Assert.Contains("Fix your code!", log);
        Assert.True(m.VirtAddrValid(first));
        Assert.False(m.PageHighMem(m.VirtToPage(first)));
        // Pressure: take objects until lowmem runs out; HighMem stays untouched, every slab page is lowmem.
        var highZone = m.Zones.Single(z => z.Name == "HighMem");
        long highFree = highZone.FreePages;
        var objs = new List<nint> { first };
        while (true)
        {
            nint p = cache.Alloc(Gfp.Kernel | Gfp.HighMem | Gfp.NoWarn | Gfp.NoRetry);
            if (p == 0) break;
            objs.Add(p);
            Assert.True(objs.Count < 1 << 20, "lowmem never ran out");
        }
        Assert.True(objs.Count > 32 << 20 >> 9 >> 1, $"only {objs.Count} objects before lowmem ran out");
        Assert.True(highZone.FreePages >= highFree - 64, $"HighMem went from {highFree} to {highZone.FreePages} free pages");
        var pa = m.Pages;
        int slabPages = 0;
        for (int i = 0; i < pa.Frames.Count; i++)
        {
            if ((pa.Frame(i).Flags & Physical.PageFlags.Slab) == 0) continue;
            slabPages++;
            Assert.False(pa.IsHighMem(i), $"slab page at frame {i} is HighMem");
        }
        Assert.True(slabPages > 1000);
        // Each object's bytes, written through its (linear) address, are the bytes of its page's linear map.
        nint o = objs[^1];
        Fill(o, 512, 3);
        var page = m.VirtToPage(o);
        AssertFilled(m.PageAddress(page) + (o & 4095), 512, 3);
        foreach (var p in objs) cache.Free(p);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("5.15", true)]
    [InlineData("5.9", true)]
    [InlineData("5.4", false)]
    public void Kmalloc_large_checks_the_slab_bug_mask_from_5_9_and_lost_a_HighMem_block_before(string version, bool checks)
    {
        using var m = Boot(version);
        var high = m.Zones.Single(z => z.Name == "HighMem");
        m.DrainAllPages();
        long highFree = high.FreePages + high.PcpPages;
        int len = m.Dmesg().Length;
        nint p = m.Kmalloc(64 << 10, Gfp.Kernel | Gfp.HighMem);
        string log = m.Dmesg()[len..];
        if (checks)
        {
            // kmalloc_order() with kmalloc_fix_flags() (444050990db4, 5.9): warned, then a lowmem block.
            Assert.Contains("Unexpected gfp: 0x2 (__GFP_HIGHMEM). Fixing up to gfp: ", log);
            Assert.NotEqual(0, p);
            Assert.False(m.PageHighMem(m.VirtToPage(p)));
            m.Kfree(p);
        }
        else
        {
            // Before: alloc_pages() took HighMem, page_address() was NULL and kmalloc() returned NULL. The kernel lost the
            // pages; Kmem reports it and gives them back.
            Assert.DoesNotContain("Unexpected gfp", log);
            Assert.Contains("kmalloc_order: 65536 bytes with __GFP_HIGHMEM: alloc_pages() gave a HighMem block", log);
            Assert.Equal(0, p);
            m.DrainAllPages();
            Assert.Equal(highFree, high.FreePages + high.PcpPages);
            TestSupport.AssertConsistent(m);
        }
    }

    // ================================================================== __get_free_pages users

    [Theory]
    [InlineData("5.15")]
    [InlineData("4.19")]
    public void Alloc_pages_exact_masks_HighMem_as_get_free_pages_does(string version)
    {
        using var m = Boot(version);
        nint p = m.AllocPagesExact(3 * 4096, Gfp.HighUser);
        Assert.NotEqual(0, p);
        Assert.True(m.VirtAddrValid(p));
        for (int i = 0; i < 3; i++) Assert.False(m.PageHighMem(m.VirtToPage(p + i * 4096)));
        Fill(p + 4096, 4096, 9);
        nint other = m.Vmap([m.VirtToPage(p + 4096)]);                  // a second mapping of the middle page
        AssertFilled(other, 4096, 9);
        m.Vunmap(other);
        m.FreePagesExact(p, 3 * 4096);
    }

    [Fact]
    public void Alloc_pages_exact_with_HighMem_is_the_VM_BUG_ON_before_the_masking()
    {
        using var m = Boot("4.14");
        string before = TestSupport.State(m);
        var e = Assert.Throws<HighMemException>(() => m.AllocPagesExact(2 * 4096, Gfp.HighUser));
        Assert.Equal(HighMemError.NoLinearAddress, e.Error);
        Assert.Contains("VM_BUG_ON((gfp_mask & __GFP_HIGHMEM) != 0) in __get_free_pages", m.Dmesg());
        Assert.Equal(before, TestSupport.State(m));
    }

    // ================================================================== CMA

    [Fact]
    public void A_CMA_area_without_a_base_goes_to_HighMem_first_and_is_not_remapped_at_boot()
    {
        using var high = Boot();
        var area = high.Cma["rk-dma-heap-cma"];
        // cma_declare_contiguous_nid(): the range [0, end of DRAM) straddles high_memory, so highmem is tried first (top-down).
        Assert.Equal(0x3e000000UL, area.Base);
        Assert.Contains("] cma: Reserved 32 MiB at 0x3e000000\n", high.Dmesg());
        // arm's dma_contiguous_remap() clips each area to arm_lowmem_limit: a HighMem area needs no PTE tables.
        Assert.DoesNotContain(high.Layout.Memblock, r => r.Name == "page table (CMA rk-dma-heap-cma)");
        using var low = Boot(cmdline: "rk_dma_heap_cma=32M@0x2800000");
        Assert.Equal(0x02800000UL, low.Cma["rk-dma-heap-cma"].Base);
        Assert.Equal(16, low.Layout.Memblock.Count(r => r.Name == "page table (CMA rk-dma-heap-cma)"));
    }

    [Fact]
    public void A_fixed_CMA_area_across_high_memory_is_refused_and_a_free_one_tries_HighMem_first()
    {
        using var m = Boot(cmdline: "cma=64M@0x2e000000 rk_dma_heap_cma=32M");
        Assert.Contains("] cma: Region at 0x2e000000 defined on low/high memory boundary (0x30000000)\n", m.Dmesg());
        Assert.Contains("] cma: Failed to reserve 64 MiB\n", m.Dmesg());
        Assert.DoesNotContain("reserved", m.Cma.Keys);
        using var free = Boot(cmdline: "cma=64M rk_dma_heap_cma=32M");
        Assert.Equal(0x3c000000UL, free.Cma["reserved"].Base);
        Assert.Equal(0x3a000000UL, free.Cma["rk-dma-heap-cma"].Base);
    }

    [Fact]
    public void Cma_alloc_from_a_HighMem_area_returns_HighMem_pages_and_dma_alloc_remaps_them()
    {
        using var m = Boot();
        var area = m.Cma["rk-dma-heap-cma"];
        var pages = m.CmaAlloc(area, 4, 0);
        Assert.True(m.PageHighMem(pages));
        Assert.Equal(0, m.PageAddress(pages));
        nint k = m.Kmap(pages);
        Fill(k, 4096, 1);
        m.Kunmap(pages);
        nint v = m.Vmap([pages]);
        AssertFilled(v, 4096, 1);
        m.Vunmap(v);
        Assert.True(m.CmaRelease(area, pages, 4));
        // The ISP's coherent buffers come from its CMA area: HighMem, so the CPU address is a remap in the vmalloc window
        // (arch/arm/mm/dma-mapping.c __alloc_from_contiguous() -> __dma_alloc_remap()).
        var isp = m.Devices["ffa00000.rkisp"];
        nint cpu = m.DmaAllocCoherent(isp, 64 << 10, Gfp.Kernel, out ulong handle);
        Assert.NotEqual(0, cpu);
        Assert.True(handle >= area.Base && handle < area.Base + area.Size);
        Assert.True(m.IsVmallocAddr(cpu));
        Assert.Equal(-1, Bytes(cpu, 64 << 10).IndexOfAnyExcept((byte)0));    // zeroed
        for (int i = 0; i < 16; i++)
        {
            var page = m.PfnToPage((handle >> 12) + (ulong)i);
            Assert.True(m.PageHighMem(page));
            Assert.Equal(page, m.VmallocToPage(cpu + i * 4096));
            Fill(cpu + i * 4096, 4096, i);
            nint local = m.KmapLocalPage(page);
            AssertFilled(local, 4096, i);
            m.KunmapLocal(local);
        }
        m.DmaFreeCoherent(isp, 64 << 10, cpu, handle);
        Assert.False(m.IsVmallocAddr(cpu) && m.VmallocAreas.Any(a => a.Address == cpu));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_RK_heap_buffer_of_a_HighMem_area_is_vmapped_and_its_bytes_are_the_pages_bytes()
    {
        using var m = Boot();
        var heap = m.RkDmaHeaps["rk-dma-heap-cma"];
        var buf = heap.BufferAlloc(3 * 4096)!;
        var first = buf.PageBlocks[0].Page;
        Assert.True(m.PageHighMem(first));
        nint v = buf.Vmap();
        Assert.True(m.IsVmallocAddr(v));                                  // no linear address to hand out: dma_buf_vmap maps
        Fill(v, 3 * 4096, 5);
        nint k = m.Kmap(first);
        AssertFilled(k, 4096, 5);
        m.Kunmap(first);
        buf.BeginCpuAccess(DmaDirection.Bidirectional);
        Assert.Equal(Bytes(v, 3 * 4096).ToArray(), buf.Span.ToArray());
        buf.EndCpuAccess(DmaDirection.Bidirectional);
        buf.Vunmap(v);
        heap.BufferFree(buf);
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== system heap and its pools

    [Fact]
    public void The_system_heap_takes_HighMem_blocks_pools_them_on_the_highmem_list_and_shrinks_them_for_highmem_requests()
    {
        using var m = Boot();
        var heap = (SystemHeap)m.DmaHeaps["system"];
        var buf = heap.AllocateBuffer(2 << 20)!;
        Assert.All(buf.PageBlocks, b => Assert.True(m.PageHighMem(b.Page)));       // GFP_HIGHUSER: HighMem first
        Assert.Equal(-1, buf.Span.IndexOfAnyExcept((byte)0));
        nint v = buf.Vmap();
        Assert.True(m.IsVmallocAddr(v));
        Fill(v, 2 << 20, 2);
        var firstPage = buf.PageBlocks[0].Page;
        nint local = m.KmapLocalPage(firstPage);
        AssertFilled(local, 4096, 2);
        Fill(local, 4096, 77);                                        // and back: kmap -> vmap
        m.KunmapLocal(local);
        AssertFilled(v, 4096, 77);
        buf.BeginCpuAccess(DmaDirection.ToDevice);
        buf.EndCpuAccess(DmaDirection.ToDevice);
        buf.Vunmap(v);
        var frames = buf.PageBlocks.Select(b => b.Page).ToList();
        buf.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        // dmabuf_page_pool_add(): PageHighMem() pages go on the highmem list.
        Assert.Equal((8, 0, 2), heap.PoolCounts[0]);
        // The pool hands them out again, zeroed (cleared through the frames, as the kernel clears them through a mapping).
        var again = heap.AllocateBuffer(1 << 20)!;
        Assert.Contains(again.PageBlocks[0].Page, frames);
        nint k = m.Kmap(again.PageBlocks[0].Page);
        Assert.Equal(-1, Bytes(k, 4096).IndexOfAnyExcept((byte)0));
        m.Kunmap(again.PageBlocks[0].Page);
        again.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        Assert.Equal((8, 0, 2), heap.PoolCounts[0]);
        // The shrinker frees highmem pages only for a request that could use them (__GFP_HIGHMEM in the shrink control).
        var shrinker = new PagePoolShrinker(heap.Pools);
        Assert.Equal(Shrinker.ShrinkEmpty, shrinker.CountObjects(new ShrinkControl { GfpMask = Gfp.Kernel }));
        Assert.Equal(512, shrinker.CountObjects(new ShrinkControl { GfpMask = Gfp.HighUser }));
        Assert.Equal(512, shrinker.CountObjects(new ShrinkControl { GfpMask = Gfp.Kernel, Kswapd = true }));   // current_is_kswapd()
        Assert.Equal(512, shrinker.ScanObjects(new ShrinkControl { GfpMask = Gfp.HighUser, NrToScan = 512 }));
        Assert.Equal((8, 0, 0), heap.PoolCounts[0]);
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== streaming DMA

    [Fact]
    public void Dma_map_page_of_a_HighMem_page_works_by_physical_address_and_a_kmap_address_is_no_linear_one()
    {
        using var m = Boot();
        var dev = m.Devices["ffa50000.rkvenc"];
        var page = m.AllocPage(Gfp.HighUser);
        Assert.True(m.PageHighMem(page));
        nint a = m.KmapAtomic(page);
        Fill(a, 4096, 4);
        m.KunmapAtomic(a);
        ulong h = m.DmaMapPage(dev, page, 256, 1024, DmaDirection.Bidirectional);
        Assert.False(m.DmaMappingError(dev, h));
        Assert.Equal(m.PageToPhys(page) + 256, h);                   // dma-direct: the physical address
        m.DmaSyncSingleForCpu(dev, h, 1024, DmaDirection.Bidirectional);
        var cpu = m.DmaCpuAccess(dev, h, 1024);
        nint k = m.Kmap(page);
        Assert.Equal(Bytes(k + 256, 1024).ToArray(), cpu.ToArray());
        m.DmaUnmapPage(dev, h, 1024, DmaDirection.Bidirectional);
        // dma_map_single() needs a linear address: a kmap address is not one (virt_addr_valid() fails).
        var e = Assert.Throws<DmaApiException>(() => m.DmaMapSingle(dev, k, 64, DmaDirection.ToDevice));
        Assert.Contains("maps memory from invalid area", e.Message);
        m.Kunmap(page);
        m.FreePage(page);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Dma_debug_checks_a_HighMem_mapping_by_its_physical_address()
    {
        using var m = Boot(cmdline: "rk_dma_heap_cma=32M dma_debug=on");
        Assert.True(m.DmaDebug);
        var dev = m.Devices["ffa50000.rkvenc"];
        var page = m.AllocPage(Gfp.HighUser);
        ulong h = m.DmaMapPage(dev, page, 0, 4096, DmaDirection.FromDevice);   // no "invalid area": it is RAM, not linear
        Assert.False(m.DmaMappingError(dev, h));
        Assert.Equal(0, m.DmaDebugErrorCount);
        // The device owns it: the CPU may not touch it until the sync (check_sync()/cacheline tracking by physical address).
        var e = Assert.Throws<DmaApiException>(() => m.DmaCpuAccess(dev, h + 128, 64));
        Assert.Contains($"cpu touching an active dma mapped cacheline [cln=0x{(m.PageToPhys(page) + 128) >> 6:x16}]", e.Message);
        m.DmaSyncSingleForCpu(dev, h, 4096, DmaDirection.FromDevice);
        m.DmaCpuAccess(dev, h, 16).Fill(0x3c);
        nint k = m.KmapLocalPage(page);
        Assert.Equal(-1, Bytes(k, 16).IndexOfAnyExcept((byte)0x3c));
        m.KunmapLocal(k);
        m.DmaUnmapPage(dev, h, 4096, DmaDirection.FromDevice);
        m.FreePage(page);
    }

    // ================================================================== pins and user pages

    [Fact]
    public void Pinning_a_HighMem_movable_page_kmaps_it_for_the_pin_and_kunmaps_it_after()
    {
        using var m = Boot();
        using var mp = m.AllocMovable()!;
        Assert.True(m.PageHighMem(mp.Page));                           // GFP_HIGHUSER_MOVABLE: HighMem first
        int idx = (int)(mp.Page.Pfn - m.Pages.BasePfn);
        Assert.Equal(0, m.PageAddress(mp.Page));
        using (var pin = mp.Pin())
        {
            Assert.NotEqual(0, pin.Address);
            Assert.Equal(pin.Address, m.PageAddress(mp.Page));         // a persistent kmap: page_address() finds it
            Assert.Equal(1, m.Kmaps.Pool.Users(idx));
            Fill(pin.Address, 4096, 8);
        }
        Assert.Equal(0, m.Kmaps.Pool.Users(idx));
        nint local = m.KmapLocalPage(mp.Page);
        AssertFilled(local, 4096, 8);
        m.KunmapLocal(local);
        var copy = new byte[4096];
        mp.Read(copy);
        Assert.Equal(Bytes(m.Pages.IdxToVirt(idx), 4096).ToArray(), copy);
        // kmap() may sleep: a pin inside kmap_atomic() is refused, and nothing stays pinned.
        var other = m.AllocPage(Gfp.Kernel);
        nint atomic = m.KmapAtomic(other);
        var ex = Assert.Throws<HighMemException>(() => { using var p = mp.Pin(); });
        Assert.Equal(HighMemError.AtomicContext, ex.Error);
        m.KunmapAtomic(atomic);
        Assert.Equal(0, mp.PinCount);
        using (var pin = mp.Pin()) AssertFilled(pin.Address, 4096, 8);
        m.FreePage(other);
        // A larger HighMem block is vmapped for its pin.
        using var big = m.AllocMovable(Gfp.HighUserMovable, 2)!;
        Assert.True(m.PageHighMem(big.Page));
        using (var pin = big.Pin())
        {
            Assert.True(m.IsVmallocAddr(pin.Address));
            Fill(pin.Address, 4 * 4096, 6);
            nint k = m.Kmap(m.PfnToPage(big.Page.Pfn + 3));
            AssertFilled(k, 4096, 6 + 3 * 4096 * 7);
            m.Kunmap(m.PfnToPage(big.Page.Pfn + 3));
        }
        Assert.DoesNotContain(m.VmallocAreas, a => a.Caller.Contains("vmap") && a.NrPages == 0 && a.Size == 5 * 4096);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void User_pages_are_lowmem_linear_or_VM_USERMAP_never_a_kmap_slot()
    {
        using var m = Boot();
        var k = m.Kernel;
        var low = m.AllocPage(Gfp.Kernel);
        Assert.Equal((int)(low.Pfn - m.Pages.BasePfn), k.UserFrameAt(m.PageAddress(low) + 100));
        var high = m.AllocPage(Gfp.HighUser);
        nint kmapped = m.Kmap(high);
        Assert.Equal(-1, k.UserFrameAt(kmapped));                      // a pkmap slot: the kernel's, not user memory
        nint local = m.KmapLocalPage(high);
        Assert.Equal(-1, k.UserFrameAt(local));
        m.KunmapLocal(local);
        m.Kunmap(high);
        Assert.Equal(-1, k.UserFrameAt(m.Pages.IdxToVirt((int)(high.Pfn - m.Pages.BasePfn))));   // beyond high_memory
        nint plain = m.Vmalloc(4096);
        Assert.Equal(-1, k.UserFrameAt(plain));                        // not VM_USERMAP
        nint user = m.VmallocUser(4096);
        int frame = k.UserFrameAt(user);
        Assert.Equal(m.VmallocToPfn(user) - m.Pages.BasePfn, (ulong)frame);
        Assert.True(m.Pages.IsHighMem(frame));                         // vmalloc_user() pages may be HighMem
        m.Vfree(user);
        m.Vfree(plain);
        m.FreePage(high);
        m.FreePage(low);
    }

    // ================================================================== contiguous exporters (GEM, vb2 dma-contig)

    [Fact]
    public void A_contiguous_GEM_object_in_HighMem_hands_out_its_coherent_remap_not_a_linear_address()
    {
        using var m = Boot();
        var f = m.Drm.Open();
        var d = f.CreateDumb(64, 64, 32);                              // 16 KiB from the vop's CMA area: HighMem
        var obj = f.Lookup(d.Handle);
        var first = obj.PageBlocks[0].Page;
        Assert.True(m.PageHighMem(first));
        Assert.Equal(obj.DmaAddress, m.PageToPhys(first));
        var span = obj.Span;
        nint cpu;
        fixed (byte* p = span) cpu = (nint)p;
        Assert.True(m.IsVmallocAddr(cpu));                             // rk_obj->kvaddr: dma_alloc_attrs()'s remap
        Fill(cpu, 16384, 12);
        for (int i = 0; i < 4; i++)
        {
            nint local = m.KmapLocalPage(m.PfnToPage(first.Pfn + (ulong)i));
            AssertFilled(local, 4096, 12 + i * 4096 * 7);
            m.KunmapLocal(local);
        }
        int fd = f.PrimeHandleToFd(d.Handle);
        var buf = m.DmaBufFds.Peek(fd);
        nint v = buf.Vmap();
        Assert.Equal(cpu, v);                                          // rockchip_gem_prime_vmap() returns kvaddr
        buf.Vunmap(v);
        m.DmaBufFds.Close(fd);
        f.GemClose(d.Handle);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_vb2_dma_contig_plane_in_HighMem_exports_its_coherent_address()
    {
        using var m = Boot();
        var q = m.Vb2QueueInit("isp", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig, Vb2IoModes.Mmap | Vb2IoModes.Dmabuf, false, [3 * 4096]);
        int n = 1;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        nint vaddr = q.PlaneVaddr(q[0]!, 0);
        Assert.True(m.IsVmallocAddr(vaddr));                            // vb2_dc_alloc(): the HighMem CMA run, remapped
        var page = m.PfnToPage(q.PlaneCookie(q[0]!, 0).DmaAddress >> 12);
        Assert.True(m.PageHighMem(page));
        Fill(vaddr, 4096, 30);
        nint k = m.Kmap(page);
        AssertFilled(k, 4096, 30);
        m.Kunmap(page);
        Assert.Equal(0, q.ExpBuf(0, 0, DmaHeap.ORdWr, out int fd));
        nint v = m.DmaBufFds.Peek(fd).Vmap();
        Assert.Equal(vaddr, v);                                         // vb2_dc_dmabuf_ops_vmap(): buf->vaddr
        m.DmaBufFds.Peek(fd).Vunmap(v);
        m.DmaBufFds.Close(fd);
        q.Release();
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== iommu-dma

    [Fact]
    public void Coherent_memory_behind_an_IOMMU_may_be_HighMem_and_is_remapped_for_the_CPU()
    {
        var p = Board();
        p = p with { Devices = [.. p.Devices, new DeviceSpec("ffb80000.rkvdec", true, 32, false, null)] };
        using var m = Machine.Boot(p);
        var dev = m.Devices["ffb80000.rkvdec"];
        Assert.True(dev.HasIommu);
        // __iommu_dma_alloc_pages(): "IOMMU can map any pages, so himem can also be used here" (gfp |= __GFP_HIGHMEM).
        nint cpu = m.DmaAllocCoherent(dev, 8 * 4096, Gfp.Kernel, out ulong iova);
        Assert.NotEqual(0, cpu);
        Assert.True(m.IsVmallocAddr(cpu));
        for (int i = 0; i < 8; i++)
        {
            var page = m.VmallocToPage(cpu + i * 4096);
            Assert.True(m.PageHighMem(page));
            Fill(cpu + i * 4096, 4096, i);
            nint local = m.KmapLocalPage(page);
            AssertFilled(local, 4096, i);
            m.KunmapLocal(local);
        }
        m.DmaFreeCoherent(dev, 8 * 4096, cpu, iova);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Workload_steps_fill_and_verify_HighMem_pages_runs_and_buffers()
    {
        using var m = Boot();
        var r = new WorkloadRunner(m).Run(Workload.Parse("""
        { "steps": [
          { "op": "alloc_pages", "label": "high", "order": 2, "count": 3, "gfp": "GFP_HIGHUSER", "fill": "0x11", "expect": "success" },
          { "op": "cma_alloc", "label": "run", "cma": "rk-dma-heap-cma", "count": 8, "fill": "0x22", "expect": "success" },
          { "op": "alloc_movable", "label": "mov", "count": 4, "fill": "0x33", "expect": "success" },
          { "op": "dma_alloc_coherent", "label": "buf", "device": "ffa00000.rkisp", "size": "16K", "fill": "0x44", "expect": "success" },
          { "op": "verify", "label": "high", "pattern": "0x11" },
          { "op": "verify", "label": "run", "pattern": "0x22" },
          { "op": "verify", "label": "mov", "pattern": "0x33" },
          { "op": "verify", "label": "buf", "pattern": "0x44" },
          { "op": "check" }
        ] }
        """));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        // The run's bytes, filled by the workload through the frames, seen through a kmap of its last page.
        var area = m.Cma["rk-dma-heap-cma"];
        var last = m.PfnToPage(area.BasePfn + 7);
        Assert.True(m.PageHighMem(last));
        nint k = m.Kmap(last);
        Assert.Equal(-1, Bytes(k, 4096).IndexOfAnyExcept((byte)0x22));
        m.Kunmap(last);
        TestSupport.AssertConsistent(m);
    }
}
