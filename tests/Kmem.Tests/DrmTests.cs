// DRM-GEM: dumb-buffer pitch and size, handles, mmap offsets, flink names, both backings (contiguous without an
// IOMMU, pages behind one), PRIME export and import with either side released first, the views, and bad input.
namespace Kmem.Tests;

public class DrmTests
{
    private static ulong CmaUsed(Machine m) => m.Cma["rk-dma-heap-cma"].Used;

    [Theory]
    [InlineData(1920u, 1080u, 32u, 7680u, 8294400UL)]
    [InlineData(100u, 10u, 24u, 320u, 3200UL)]      // 300 bytes a line, aligned to 64
    [InlineData(641u, 3u, 16u, 1344u, 4032UL)]
    [InlineData(1u, 1u, 1u, 64u, 64UL)]              // bpp rounds up to a whole byte
    [InlineData(1280u, 720u, 12u, 2560u, 1843200UL)] // 12 bpp: two bytes a pixel
    public void Dumb_buffers_get_rockchips_pitch_and_size(uint w, uint h, uint bpp, uint pitch, ulong size)
    {
        using var m = Machine.Boot("rv1106");
        var f = m.Drm.Open();
        var d = f.CreateDumb(w, h, bpp);
        Assert.Equal((1, pitch, size), (d.Handle, d.Pitch, d.Size));
        var obj = f.Lookup(d.Handle);
        Assert.Equal((long)((size + 4095) & ~4095UL), obj.Size);
        Assert.Equal(GemBacking.Contiguous, obj.Backing);
        Assert.Equal((1, 1), (obj.HandleCount, obj.RefCount));
        f.Close();
        Assert.True(obj.Freed);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Handles_are_the_lowest_free_from_one_and_per_file()
    {
        using var m = Machine.Boot("rv1106");
        var a = m.Drm.Open();
        var b = m.Drm.Open();
        Assert.Equal([1, 2, 3], new[] { a.CreateDumb(64, 64, 32).Handle, a.CreateDumb(64, 64, 32).Handle, a.CreateDumb(64, 64, 32).Handle });
        Assert.Equal(1, b.CreateDumb(64, 64, 32).Handle);
        a.GemClose(2);
        Assert.Equal(2, a.CreateDumb(64, 64, 32).Handle);
        Assert.Equal(4, m.Drm.Objects.Count);
        a.Close(); b.Close();
        Assert.Empty(m.Drm.Objects);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_display_without_an_iommu_gets_one_contiguous_buffer_from_its_cma_area()
    {
        using var m = Machine.Boot("rv1106");
        var cma = m.Cma["rk-dma-heap-cma"];
        ulong before = cma.Used;
        var f = m.Drm.Open();
        var d = f.CreateDumb(1920, 1080, 32);
        var obj = f.Lookup(d.Handle);
        Assert.Equal(before + 2025, cma.Used);                        // 8294400 bytes = 2025 pages
        Assert.InRange(obj.DmaAddress, cma.Base, cma.Base + cma.Size - (ulong)obj.Size);
        var blocks = obj.PageBlocks;
        for (int i = 1; i < blocks.Count; i++)
            Assert.Equal(blocks[i - 1].Page.Pfn + (1UL << blocks[i - 1].Order), blocks[i].Page.Pfn);
        Assert.Equal(obj.DmaAddress, m.PageToPhys(blocks[0].Page));
        Assert.False(m.Drm.UsesIommu);
        Assert.Equal("", m.ProcFs.Read("/sys/kernel/debug/dri/0/mm_dump"));
        f.GemClose(d.Handle);
        Assert.Equal(before, cma.Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_display_behind_an_iommu_gets_pages_at_an_address_of_the_drivers_space()
    {
        using var m = Machine.Boot("rk3588");
        var f = m.Drm.Open();
        Assert.True(m.Drm.UsesIommu);
        var a = f.Lookup(f.CreateDumb(1920, 1080, 32).Handle);
        var b = f.Lookup(f.CreateDumb(64, 64, 32).Handle);
        Assert.Equal(GemBacking.IommuPages, a.Backing);
        Assert.All(a.PageBlocks, pb => Assert.Equal(0, pb.Order));
        Assert.Equal(0UL, a.DmaAddress);                              // best fit from the bottom of the space
        Assert.Equal(8294400UL, b.DmaAddress);
        Assert.Equal(
            "0x0000000000000000-0x00000000007e9000: 8294400: used\n" +
            "0x00000000007e9000-0x00000000007ed000: 16384: used\n" +
            "0x00000000007ed000-0x0000000100000000: 4286656512: free\n" +
            "total: 4294967296, used 8310784 free 4286656512\n", m.ProcFs.Read("/sys/kernel/debug/dri/0/mm_dump"));
        a.Span[12345] = 0x5a;
        Assert.Equal(0x5a, m.PageSpan(a.PageBlocks[12345 / 4096].Page)[12345 % 4096]);
        f.GemClose(1);
        var c = f.Lookup(f.CreateDumb(16, 16, 32).Handle);            // 1 page: the best hole is the freed one at 0
        Assert.Equal(0UL, c.DmaAddress);
        f.Close();
        Assert.StartsWith("0x0000000000000000-0x0000000100000000: 4294967296: free\n", m.ProcFs.Read("/sys/kernel/debug/dri/0/mm_dump"));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Mmap_offsets_come_from_the_offset_space_and_map_the_objects_bytes()
    {
        using var m = Machine.Boot("rk3588");
        var f = m.Drm.Open();
        var a = f.CreateDumb(64, 64, 32);
        var b = f.CreateDumb(64, 64, 32);
        ulong oa = f.MapDumbOffset(a.Handle);
        Assert.Equal(0x100000000UL, oa);                              // DRM_FILE_PAGE_OFFSET_START on 64-bit
        Assert.Equal(oa, f.MapDumbOffset(a.Handle));
        Assert.Equal(oa + 16384, f.MapDumbOffset(b.Handle));
        var map = f.Mmap(oa, 16384);
        map[100] = 7;
        Assert.Equal(7, f.Lookup(a.Handle).Span[100]);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.Mmap(oa + 4096, 4096)).Errno);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.Mmap(oa, 16385)).Errno);
        var other = m.Drm.Open();
        Assert.Equal(-13, Assert.Throws<DrmException>(() => other.Mmap(oa, 4096)).Errno);
        int name = f.Flink(a.Handle);
        var (h1, _) = other.GemOpen(name);                            // two handles: the file is allowed while one is open
        var (h2, _) = other.GemOpen(name);
        other.GemClose(h1);
        Assert.Equal(7, other.Mmap(oa, 4096)[100]);
        other.GemClose(h2);
        Assert.Equal(-13, Assert.Throws<DrmException>(() => other.Mmap(oa, 4096)).Errno);
        ulong ob = f.MapDumbOffset(b.Handle);
        f.GemClose(b.Handle);                                          // the object goes, and its offset with it
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.Mmap(ob, 4096)).Errno);
        Assert.Equal(-2, Assert.Throws<DrmException>(() => f.MapDumbOffset(9)).Errno);
        using var m32 = Machine.Boot("rv1106");
        var g = m32.Drm.Open();
        Assert.Equal(0x10000000UL, g.MapDumbOffset(g.CreateDumb(8, 8, 32).Handle));  // 32-bit
        f.Close(); other.Close(); g.Close();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Flink_names_are_global_and_listed_in_gem_names()
    {
        using var m = Machine.Boot("rv1106");
        var a = m.Drm.Open();
        var b = m.Drm.Open();
        int h = a.CreateDumb(32, 32, 32).Handle;
        int name = a.Flink(h);
        Assert.Equal(1, name);
        Assert.Equal(name, a.Flink(h));
        var (hb, size) = b.GemOpen(name);
        Assert.Equal((1, 4096L), (hb, size));
        Assert.Same(a.Lookup(h), b.Lookup(hb));
        Assert.Equal("  name     size handles refcount\n     1     4096       2        1\n", m.ProcFs.Read("/sys/kernel/debug/dri/0/gem_names"));
        Assert.Equal(-2, Assert.Throws<DrmException>(() => b.GemOpen(2)).Errno);
        a.Close();
        Assert.Contains("     1     4096       1        1\n", m.ProcFs.Read("/sys/kernel/debug/dri/0/gem_names"));
        b.Close();
        Assert.Equal("  name     size handles refcount\n", m.ProcFs.Read("/sys/kernel/debug/dri/0/gem_names"));
        Assert.Equal(-9, Assert.Throws<DrmException>(() => b.CreateDumb(1, 1, 8)).Errno);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Prime_export_is_the_same_memory_and_survives_the_handle_closing_first()
    {
        using var m = Machine.Boot("rv1106");
        ulong before = CmaUsed(m);
        var f = m.Drm.Open();
        var d = f.CreateDumb(256, 256, 32);
        var obj = f.Lookup(d.Handle);
        obj.Span[0] = 0x42;
        int fd = f.PrimeHandleToFd(d.Handle);
        var buf = m.DmaBufFds.Peek(fd);
        Assert.Equal("drm", buf.ExpName);
        Assert.Equal(obj.Size, buf.Size);
        Assert.Equal(0x42, buf.Span[0]);
        Assert.Equal(3, buf.RefCount);                                // the fd, the object's cache, the file's PRIME table
        Assert.Equal(fd + 1, f.PrimeHandleToFd(d.Handle));            // the same dma-buf again
        Assert.Same(buf, m.DmaBufFds.Peek(fd + 1));
        m.DmaBufFds.Close(fd + 1);
        Assert.Equal(2, obj.RefCount);                                // the handles', the dma-buf's
        f.GemClose(d.Handle);
        Assert.False(obj.Freed);
        Assert.Equal((1, 1), (buf.RefCount, obj.RefCount));
        Assert.Equal(0x42, buf.Span[0]);
        m.DmaBufFds.Close(fd);
        Assert.True(buf.Released);
        Assert.True(obj.Freed);
        Assert.Equal(before, CmaUsed(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Prime_export_survives_the_descriptor_closing_first()
    {
        using var m = Machine.Boot("rk3588");
        var f = m.Drm.Open();
        var d = f.CreateDumb(64, 64, 32);
        var obj = f.Lookup(d.Handle);
        int fd = f.PrimeHandleToFd(d.Handle);
        var buf = m.DmaBufFds.Peek(fd);
        m.DmaBufFds.Close(fd);
        Assert.False(buf.Released);
        Assert.Same(buf, obj.ExportedDmaBuf);
        Assert.Contains(buf, m.DmaBufs);
        f.GemClose(d.Handle);
        Assert.True(buf.Released);
        Assert.True(obj.Freed);
        Assert.DoesNotContain(buf, m.DmaBufs);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Importing_its_own_export_gives_the_same_object()
    {
        using var m = Machine.Boot("rv1106");
        var a = m.Drm.Open();
        var b = m.Drm.Open();
        int h = a.CreateDumb(64, 64, 32).Handle;
        int fd = a.PrimeHandleToFd(h);
        Assert.Equal(h, a.PrimeFdToHandle(fd));                       // the file's PRIME table
        int hb = b.PrimeFdToHandle(fd);
        Assert.Same(a.Lookup(h), b.Lookup(hb));
        Assert.Equal(2, a.Lookup(h).HandleCount);
        Assert.Single(m.Drm.Objects);
        a.Close();
        m.DmaBufFds.Close(fd);
        Assert.Single(m.Drm.Objects);
        b.Close();
        Assert.Empty(m.Drm.Objects);
        Assert.Empty(m.DmaBufs);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_system_heap_buffer_is_imported_behind_the_iommu_and_released_in_either_order()
    {
        using var m = Machine.Boot("rk3588");
        int fd = m.DmaHeaps["system"].Allocate(3 << 20);
        var buf = m.DmaBufFds.Peek(fd);
        buf.Span[777] = 9;
        var f = m.Drm.Open();
        int h = f.PrimeFdToHandle(fd);
        var obj = f.Lookup(h);
        Assert.Equal(GemBacking.Imported, obj.Backing);
        Assert.Equal(9, obj.Span[777]);
        Assert.Equal(buf.PageBlocks, obj.PageBlocks);
        Assert.Equal("fdd90000.vop", Assert.Single(buf.Attachments).Device.Name);
        Assert.Contains("\tfdd90000.vop\n", m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo"));
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.MapDumbOffset(h)).Errno);   // imports cannot be mapped
        Assert.Equal(fd + 1, f.PrimeHandleToFd(h));                   // re-export gives the original dma-buf
        Assert.Same(buf, m.DmaBufFds.Peek(fd + 1));
        m.DmaBufFds.Close(fd + 1);
        m.DmaBufFds.Close(fd);                                        // the importer keeps the buffer
        Assert.False(buf.Released);
        f.GemClose(h);
        Assert.True(buf.Released);
        Assert.True(obj.Freed);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_display_without_an_iommu_refuses_a_buffer_it_cannot_see_in_one_piece()
    {
        using var m = Machine.Boot("rv1106");
        // Two free pages that are not neighbours, on top of the per-CPU list: the system heap takes them in that order.
        var p1 = m.AllocPage(Gfp.HighUser);
        var mid = m.AllocPage(Gfp.HighUser);
        var p3 = m.AllocPage(Gfp.HighUser);
        m.FreePage(p1);
        m.FreePage(p3);
        int fd = m.DmaHeaps["system"].Allocate(8192);
        var buf = m.DmaBufFds.Peek(fd);
        var blocks = buf.PageBlocks;
        Assert.NotEqual(blocks[0].Page.Pfn + 1, blocks[1].Page.Pfn);  // the precondition: two separate runs
        var f = m.Drm.Open();
        var e = Assert.Throws<DrmException>(() => f.PrimeFdToHandle(fd));
        Assert.Equal(-22, e.Errno);
        Assert.Contains("failed to map sg_table to contiguous linear address.", TestSupport.LogText(m));
        Assert.Empty(buf.Attachments);                                // nothing left behind
        Assert.Equal(1, buf.RefCount);
        Assert.Empty(m.Drm.Objects);
        // A CMA-heap buffer is contiguous and imports.
        int cfd = m.RkDmaHeaps["rk-dma-heap-cma"].BufferAlloc(1 << 20) is { } cb ? m.DmaBufFds.Install(cb) : -1;
        int h = f.PrimeFdToHandle(cfd);
        Assert.Equal(m.PageToPhys(m.DmaBufFds.Peek(cfd).PageBlocks[0].Page), f.Lookup(h).DmaAddress);
        f.Close();
        m.DmaBufFds.Close(fd);
        m.DmaBufFds.Close(cfd);
        m.FreePage(mid);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Bad_dumb_and_handle_requests_are_refused_with_nothing_changed()
    {
        using var m = Machine.Boot("rv1106");
        var f = m.Drm.Open();
        f.CreateDumb(16, 16, 32);
        ulong cma = CmaUsed(m);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.CreateDumb(0, 16, 32)).Errno);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.CreateDumb(16, 16, 0)).Errno);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.CreateDumb(uint.MaxValue, 2, 32)).Errno);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.CreateDumb(65536, 65536, 32)).Errno);
        Assert.Equal(-12, Assert.Throws<DrmException>(() => f.CreateDumb(8192, 8192, 32)).Errno);  // 256 MiB: no memory
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.GemClose(5)).Errno);
        Assert.Equal(-2, Assert.Throws<DrmException>(() => f.Flink(5)).Errno);
        Assert.Equal(-2, Assert.Throws<DrmException>(() => f.PrimeHandleToFd(5)).Errno);
        Assert.Equal(-22, Assert.Throws<DrmException>(() => f.PrimeHandleToFd(1, 0x40)).Errno);
        Assert.Equal(-9, Assert.Throws<DmaBufException>(() => f.PrimeFdToHandle(99)).Errno);
        Assert.Equal(cma, CmaUsed(m));
        Assert.Equal([1], f.Handles.Select(x => x.Handle));
        Assert.Contains("[drm:drm_mode_create_dumb]", TestSupport.LogText(m));
        f.Close();
        f.Close();                                                    // a second close does nothing
        TestSupport.AssertConsistent(m);
    }
}
