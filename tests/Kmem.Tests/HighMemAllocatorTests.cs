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
        TestSupport.AtRelease("arm", version) with { Dram = [new DramBank(0, 1UL << 30)], Cmdline = cmdline };

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
    public void Vmalloc_with_a_DMA_zone_or_kmalloc_backed_arrays_stays_lowmem_where_the_kernel_says()
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
            // Before: alloc_pages() took HighMem, page_address() was NULL, kmalloc() returned NULL and the pages were lost.
            Assert.DoesNotContain("Unexpected gfp", log);
            Assert.Equal(0, p);
            m.DrainAllPages();
            Assert.Equal(highFree - 16, high.FreePages + high.PcpPages);
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
}
