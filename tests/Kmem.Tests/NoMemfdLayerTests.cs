// The layers that need no remapping work on the no-memfd fallback exactly as on a memfd: pages, slab, kmalloc,
// mempools, KmemMemoryPool, CMA and movable pages, the DMA API (coherent, streaming, dma-debug), DMA-BUF heaps whose
// buffers are contiguous, DRM dumb buffers without an IOMMU, videobuf2-dma-contig, RTnet, HighMem kmaps and NUMA; each
// gives the same results as the same board on a memfd and leaves nothing behind.
using System.Text;

namespace Kmem.Tests;

public class NoMemfdLayerTests
{
    /// <summary>One pass over the allocators that need no second mapping; the text is what must match a memfd board.</summary>
    private static string Exercise(Machine m)
    {
        var sb = new StringBuilder();
        long before = NoMemfd.FreePages(m);
        var pages = new List<(Page Page, int Order)>();
        for (int order = 0; order < 4; order++)
        {
            var p = m.AllocPages(Gfp.Kernel, order);
            Assert.False(p.IsNull);
            m.PageSpan(p, order).Fill((byte)(order + 1));
            pages.Add((p, order));
        }
        nint exact = m.AllocPagesExact(5 * 4096, Gfp.Kernel | Gfp.Zero);
        Assert.NotEqual(0, exact);
        var cache = m.KmemCacheCreate("nomemfd_obj", 192, 0, SlabFlags.HwcacheAlign);
        var objs = Enumerable.Range(0, 300).Select(_ => cache.Alloc(Gfp.Kernel)).ToList();
        Assert.DoesNotContain(0, objs);
        var kmallocs = Enumerable.Range(1, 64).Select(i => m.Kmalloc(i * 97, Gfp.Kernel)).ToList();
        Assert.DoesNotContain(0, kmallocs);
        sb.Append("ksize ").AppendJoin(',', kmallocs.Select(a => m.Ksize(a))).Append('\n');
        nint big = m.Kvmalloc(3 * 4096 + 1, Gfp.Kernel);          // more than a page: kmalloc's large path here
        Assert.NotEqual(0, big);
        sb.Append("kvmalloc ").Append(m.Ksize(big)).Append('\n');
        var pool = m.MempoolCreateSlabPool(8, cache)!;
        var fromPool = Enumerable.Range(0, 12).Select(_ => pool.Alloc(Gfp.Kernel)).ToList();
        sb.Append($"mempool {pool.CurrNr}/{pool.MinNr} out {pool.Outstanding}\n");
        foreach (var file in new[] { "objs_per_slab", "order", "slab_size", "objects" })
            sb.Append(file).Append(' ').Append(m.ProcFs.Read("/sys/kernel/slab/nomemfd_obj/" + file));
        using (var mp = new KmemMemoryPool(m))
        {
            var owners = Enumerable.Range(0, 8).Select(i => mp.Rent(100 << i)).ToList();
            sb.Append("rent ").AppendJoin(',', owners.Select(o => o.Memory.Length)).Append('\n');
            foreach (var o in owners) { o.Memory.Span.Fill(0x5a); Assert.Equal(-1, o.Memory.Span.IndexOfAnyExcept((byte)0x5a)); }
            foreach (var o in owners) o.Dispose();
            Assert.Equal(0, mp.Rented);
        }
        foreach (var cma in m.Cma.Values.Where(c => !c.Inactive))
        {
            ulong used = cma.Used;
            var run = m.CmaAlloc(cma, 16, 0);
            Assert.False(run.IsNull);
            m.PageSpan(run, 4).Fill(0x33);
            Assert.True(m.CmaRelease(cma, run, 16));
            Assert.Equal(used, cma.Used);
            sb.Append($"cma {cma.Name} ok\n");
        }
        using (var mv = m.AllocMovable())
        {
            Assert.NotNull(mv);
            mv!.Write([1, 2, 3]);
            var back = new byte[3];
            mv.Read(back);
            sb.Append("movable ").AppendJoin(',', back).Append('\n');
        }
        foreach (var f in fromPool) pool.Free(f);
        pool.Destroy();
        foreach (var o in objs) cache.Free(o);
        cache.Destroy();
        foreach (var k in kmallocs) m.Kfree(k);
        m.Kvfree(big);
        m.FreePagesExact(exact, 5 * 4096);
        foreach (var (p, o) in pages)
        {
            Assert.Equal(-1, m.PageSpan(p, o).IndexOfAnyExcept((byte)(o + 1)));
            m.FreePages(p, o);
        }
        // What stays taken (the kmalloc caches keep empty slabs, as the kernel's do) is what a memfd board keeps too.
        sb.Append("kept ").Append(before - NoMemfd.FreePages(m)).Append('\n');
        TestSupport.AssertConsistent(m);
        return sb.ToString();
    }

    [Theory]
    [InlineData("rv1106")]
    [InlineData("x86_64")]
    [InlineData("rk3588")]
    [InlineData("rv1126")]
    [InlineData("x86_64-numa2")]
    public void Pages_slab_kmalloc_mempools_the_memory_pool_and_cma_give_what_a_memfd_board_gives(string name)
    {
        using var m = NoMemfd.Boot(name);
        using var reference = NoMemfd.BootMemfd(name);
        string expected = Exercise(reference), actual = Exercise(m);
        // A NUMA board's boot vmallocs its hash tables (and kmallocs their page arrays) only on a memfd: its kmalloc caches
        // start with other partial slabs, so what they keep afterwards may differ by a slab or two there.
        if (name == "x86_64-numa2") (expected, actual) = (expected[..expected.IndexOf("kept ")], actual[..actual.IndexOf("kept ")]);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void The_dma_api_allocates_maps_and_debugs_without_a_remap()
    {
        using var m = NoMemfd.Boot("rv1106", "dma_debug=on");
        var venc = m.Devices["ffa50000.rkvenc"];
        var cma = m.Cma["rk-dma-heap-cma"];
        ulong used = cma.Used;
        nint cpu = m.DmaAllocCoherent(venc, 65536, Gfp.Kernel, out ulong h);
        Assert.NotEqual(0, cpu);
        Assert.False(m.IsVmallocAddr(cpu));
        unsafe { new Span<byte>((void*)cpu, 65536).Fill(0x42); }
        Assert.Equal(-1, m.DmaCpuAccess(venc, h, 65536).IndexOfAnyExcept((byte)0x42));
        Assert.True(cma.Used > used);
        nint buf = m.Kmalloc(512, Gfp.Kernel);
        ulong d = m.DmaMapSingle(venc, buf, 512, DmaDirection.FromDevice);
        Assert.False(m.DmaMappingError(venc, d));
        m.DmaSyncSingleForCpu(venc, d, 512, DmaDirection.FromDevice);
        // dma-debug still catches misuse: the wrong direction is reported and refused.
        Assert.Throws<DmaApiException>(() => m.DmaUnmapSingle(venc, d, 512, DmaDirection.ToDevice));
        Assert.Contains("device driver frees DMA memory with different direction", m.Dmesg());
        m.DmaUnmapSingle(venc, d, 512, DmaDirection.FromDevice);
        m.Kfree(buf);
        m.DmaFreeCoherent(venc, 65536, cpu, h);
        Assert.Equal(used, cma.Used);
        Assert.Equal(0, venc.MappingCount);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_iommu_device_gets_one_contiguous_block_as_a_kernel_without_dma_remap_gives_it()
    {
        using var m = NoMemfd.Boot("rk3588");
        var npu = m.Devices["fdab0000.npu"];
        long before = NoMemfd.FreePages(m);
        const int size = 5 * 4096 + 100;
        nint cpu = m.DmaAllocCoherent(npu, size, Gfp.Kernel, out ulong h);
        Assert.NotEqual(0, cpu);
        unsafe { new Span<byte>((void*)cpu, size).Fill(0x17); }
        Assert.Equal(-1, m.DmaCpuAccess(npu, h, size).IndexOfAnyExcept((byte)0x17));
        Assert.Equal(1, npu.MappingCount);
        m.DmaFreeCoherent(npu, size, cpu, h);
        Assert.Equal(0, npu.MappingCount);
        Assert.Equal(before, NoMemfd.FreePages(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Contiguous_dma_bufs_of_the_cma_and_rk_heaps_map_vmap_and_show_their_bytes()
    {
        using var m = NoMemfd.Boot("rv1106");
        var venc = m.Devices["ffa50000.rkvenc"];
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"].BufferAlloc(100 * 1024, "vmpi")!;
        Assert.NotNull(rk);
        nint v = rk.Vmap();                                      // one block: its linear address, no remap needed
        Assert.NotEqual(0, v);
        rk.Span.Fill(0x66);
        unsafe { Assert.Equal(0x66, *(byte*)v); }
        rk.Vunmap(v);
        var att = rk.Attach(venc);
        var sgt = rk.MapAttachment(att, DmaDirection.FromDevice);
        Assert.Equal(1, sgt.Nents);
        rk.UnmapAttachment(att, sgt, DmaDirection.FromDevice);
        rk.Detach(att);
        Assert.Contains("vmpi", m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
        rk.Put();
        // A small system-heap buffer (one block) works the same way.
        var small = m.DmaHeaps["system"].AllocateBuffer(4096)!;
        small.Span.Fill(1);
        small.Vunmap(small.Vmap());
        small.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        Assert.Empty(m.DmaBufs);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_cma_heap_and_one_block_buffers_of_the_uncached_heap_are_vmapped_at_their_linear_address()
    {
        using var m = NoMemfd.Boot("rk3588");
        var npu = m.Devices["fdab0000.npu"];
        var cma = m.DmaHeaps["reserved"].AllocateBuffer(1 << 20)!;      // the default CMA area's heap: one contiguous run
        nint v = cma.Vmap();
        Assert.False(m.IsVmallocAddr(v));
        cma.Span.Fill(0x3c);
        unsafe { Assert.Equal(0x3c, *(byte*)(v + (1 << 20) - 1)); }
        cma.Vunmap(v);
        var att = cma.Attach(npu);
        var sgt = cma.MapAttachment(att, DmaDirection.Bidirectional);
        cma.UnmapAttachment(att, sgt, DmaDirection.Bidirectional);
        cma.Detach(att);
        cma.Put();
        var unc = m.DmaHeaps["system-uncached"].AllocateBuffer(4096)!;
        unc.Span.Fill(7);
        unc.Put();
        // The freed buffer's pages reach the heap's page pool on the deferred-free worker: let it finish, so that the
        // refusal below is checked against a state nothing else is changing.
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        var big = m.DmaHeaps["system-uncached"].AllocateBuffer(2 << 20)!;  // several blocks: no CPU view here
        Assert.True(big.PageBlocks.Count > 1);
        NoMemfd.Refused(m, "dma_buf_vmap", () => big.Vmap());
        big.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        Assert.Empty(m.DmaBufs);
        Assert.Equal(0UL, m.Cma["reserved"].Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Dumb_buffers_without_an_iommu_and_dma_contig_queues_work_as_on_a_memfd()
    {
        using var m = NoMemfd.Boot("rv1106");
        var card = m.Drm.Open();
        var fb = card.CreateDumb(720, 1280, 32);
        var span = card.Mmap(card.MapDumbOffset(fb.Handle), (long)fb.Size);
        span.Fill(0x21);
        Assert.Equal(-1, card.Lookup(fb.Handle).Span.IndexOfAnyExcept((byte)0x21));
        int fd = card.PrimeHandleToFd(fb.Handle);
        Assert.True(fd >= 0);
        var isp = m.Vb2QueueInit("rkisp_mainpath", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig,
            Vb2IoModes.Mmap | Vb2IoModes.Dmabuf, isOutput: false, [1920 * 1080 * 3 / 2]);
        int n = 4;
        Assert.Equal(0, isp.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.Equal(4, n);
        Assert.Equal(0, isp.QBuf(0));
        Assert.Equal(0, isp.StreamOn());
        var vb = isp.DriverNext()!;
        isp.PlaneSpan(vb, 0).Fill(0x44);
        isp.BufferDone(vb);
        Assert.Equal(0, isp.DQBuf(out int idx));
        Assert.Equal(0, idx);
        Assert.Equal(0, isp.StreamOff());
        n = 0;
        Assert.Equal(0, isp.ReqBufs(Vb2Memory.Mmap, ref n));
        m.DmaBufFds.Close(fd);
        card.Close();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        Assert.Empty(m.Drm.Objects);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Rtnet_pools_sockets_and_the_loopback_work_on_the_fallback()
    {
        using var m = NoMemfd.Boot("rv1106");
        var rt = m.Rtnet;
        var nic = rt.RegisterNic("rteth0");
        var sock = rt.Socket(200)!;
        var frame = new byte[1200];
        var buf = new byte[2048];
        for (int i = 0; i < 100; i++)
        {
            frame[0] = (byte)i;
            Assert.True(nic.Receive(frame, 200));
            Assert.Equal(1200, sock.Receive(buf));
            Assert.Equal((byte)i, buf[0]);
        }
        Assert.Equal(16, nic.RxPool.FreeCount);
        Assert.Equal(16, sock.Pool.FreeCount);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("4.19", "arm")]
    [InlineData("5.15", "arm")]
    [InlineData("5.15", "i386")]
    public void HighMem_pages_are_kmapped_at_their_only_host_address_with_their_bytes(string version, string arch)
    {
        var profile = MachineProfile.Parse($$"""
            { "name": "hi-{{arch}}", "arch": "{{arch}}", "cpus": 2, "version": "{{version}}",
              "dram": [ { "base": "{{(arch == "i386" ? "0x00000000" : "0x80000000")}}", "size": "1G" } ] }
            """);
        using var m = NoMemfd.Boot(profile);
        var hp = m.AllocPages(Gfp.HighUser, 0);
        Assert.True(m.PageHighMem(hp));
        nint a = m.Kmap(hp);
        Assert.NotEqual(0, a);
        unsafe { new Span<byte>((void*)a, 4096).Fill(0x7e); }
        m.Kunmap(hp);
        nint at = m.KmapAtomic(hp);
        unsafe { Assert.Equal(-1, new Span<byte>((void*)at, 4096).IndexOfAnyExcept((byte)0x7e)); }
        m.KunmapAtomic(at);
        if (m.Profile.Version.IsAtLeast(5, 11))
        {
            nint l = m.KmapLocalPage(hp);
            unsafe { Assert.Equal(0x7e, *(byte*)l); }
            m.KunmapLocal(l);
        }
        Assert.NotNull(m.ProcFs.Read("/sys/kernel/debug/kmem/pkmap"));
        m.FreePage(hp);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_rv1126_board_runs_its_highmem_camera_workload_on_the_fallback()
    {
        NoMemfd.AssertRanOrRefused("run", "highmem-camera", "--profile", "rv1126");
    }

    [Fact]
    public void A_numa_board_allocates_node_local_pages_and_objects_on_the_fallback()
    {
        using var m = NoMemfd.Boot("x86_64-numa2");
        var far = m.AllocPagesNode(1, Gfp.Kernel | Gfp.ThisNode, 0);
        Assert.False(far.IsNull);
        Assert.Equal(1, m.PageToNid(far));
        nint o = m.KmallocNode(256, Gfp.Kernel, 1);
        Assert.NotEqual(0, o);
        m.Kfree(o);
        m.FreePage(far);
        Assert.Contains("MemFree", m.ProcFs.Read("/sys/devices/system/node/node1/meminfo"));
        NoMemfd.Refused(m, "vmalloc_node", () => m.VmallocNode(8192, 1));
        TestSupport.AssertConsistent(m);
    }
}
