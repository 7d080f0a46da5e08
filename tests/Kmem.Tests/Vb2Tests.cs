// videobuf2: the queue's state machine and its checks, each allocator (dma-contig, dma-sg, vmalloc) with MMAP,
// USERPTR and DMABUF memory, EXPBUF lifetimes, and the zero-copy hand-over from an ISP queue to an encoder queue.
namespace Kmem.Tests;

public class Vb2Tests
{
    private const long Nv12_1080p = 1920 * 1080 * 3 / 2;

    private static Vb2Queue Isp(Machine m, int min = 0, Vb2IoModes io = Vb2IoModes.Mmap | Vb2IoModes.Userptr | Vb2IoModes.Dmabuf) =>
        m.Vb2QueueInit("rkisp_mainpath", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig, io, isOutput: false, [Nv12_1080p], min);

    private static Vb2Queue Encoder(Machine m) =>
        m.Vb2QueueInit("rkvenc", m.Devices["ffa50000.rkvenc"], m.Vb2DmaContig, Vb2IoModes.Dmabuf | Vb2IoModes.Mmap, isOutput: true, [Nv12_1080p]);

    [Fact]
    public void Mmap_buffers_go_through_the_states_of_videobuf2_core()
    {
        using var m = Machine.Boot("rv1106");
        var q = Isp(m, min: 2);
        int n = 4;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.Equal(4, n);
        Assert.Equal([0L, 3112960, 6225920, 9338880], Enumerable.Range(0, 4).Select(i => q[i]!.Planes[0].MemOffset));
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(Vb2BufferState.Dequeued, q[i]!.State));
        Assert.Equal(0, q.QBuf(0));
        Assert.Equal(Vb2BufferState.Queued, q[0]!.State);
        Assert.Equal(0, q.StreamOn());
        Assert.Equal(Vb2BufferState.Queued, q[0]!.State);             // min_buffers_needed 2: not started yet
        Assert.Null(q.DriverNext());
        Assert.Equal(0, q.QBuf(1));
        Assert.Equal((Vb2BufferState.Active, Vb2BufferState.Active, 2), (q[0]!.State, q[1]!.State, q.OwnedByDriver));
        var vb = q.DriverNext()!;
        Assert.Equal(0, vb.Index);
        q.PlaneSpan(vb, 0)[0] = 0x11;
        q.BufferDone(vb);
        Assert.Equal(Vb2BufferState.Done, vb.State);
        Assert.Equal(0, q.DQBuf(out int idx));
        Assert.Equal((0, Vb2BufferState.Dequeued), (idx, q[0]!.State));
        Assert.Equal(-11, q.DQBuf(out _));                            // -EAGAIN: buffer 1 is still with the driver
        q.BufferDone(q.DriverNext()!, Vb2BufferState.Error);
        Assert.Equal(0, q.DQBuf(out idx));
        Assert.Equal(1, idx);
        Assert.Equal(0, q.QBuf(2));
        Assert.Equal(Vb2BufferState.Active, q[2]!.State);             // streaming: straight to the driver
        Assert.Equal(0, q.StreamOff());
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(Vb2BufferState.Dequeued, q[i]!.State));
        Assert.Equal((0, 0, false), (q.QueuedCount, q.OwnedByDriver, q.Streaming));
        n = 0;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.Equal(0, q.NumBuffers);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Mmap_planes_of_dma_contig_are_one_coherent_buffer_of_the_devices_cma_area()
    {
        using var m = Machine.Boot("rv1106");
        var cma = m.Cma["rk-dma-heap-cma"];
        ulong before = cma.Used;
        var q = Isp(m);
        int n = 3;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.Equal(before + 3 * 760UL, cma.Used);                   // 3110400 bytes = 760 pages each
        var cookie = q.PlaneCookie(q[1]!, 0);
        Assert.InRange(cookie.DmaAddress, cma.Base, cma.Base + cma.Size);
        Assert.Equal(1, q.Ops.NumUsers(q[1]!.Planes[0].Mem!));
        q.Release();
        Assert.Equal(before, cma.Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_isp_fills_exported_buffers_that_the_encoder_reads_from_the_same_pages()
    {
        using var m = Machine.Boot("rv1106");
        var isp = Isp(m);
        var enc = Encoder(m);
        int n = 4;
        Assert.Equal(0, isp.ReqBufs(Vb2Memory.Mmap, ref n));
        var fds = new int[4];
        for (int i = 0; i < 4; i++) Assert.Equal(0, isp.ExpBuf(i, 0, DmaHeap.OCloexec | DmaHeap.ORdWr, out fds[i]));
        int k = 4;
        Assert.Equal(0, enc.ReqBufs(Vb2Memory.Dmabuf, ref k));
        for (int i = 0; i < 4; i++) Assert.Equal(0, isp.QBuf(i));
        Assert.Equal(0, isp.StreamOn());
        Assert.Equal(0, enc.StreamOn());
        for (int frame = 0; frame < 12; frame++)
        {
            var cap = isp.DriverNext()!;                               // the ISP writes a frame
            var bytes = isp.PlaneSpan(cap, 0);
            bytes.Fill((byte)(frame * 7 + 1));
            bytes[^1] = (byte)frame;
            isp.BufferDone(cap);
            Assert.Equal(0, isp.DQBuf(out int i));
            Assert.Equal(frame % 4, i);
            Assert.Equal(0, enc.QBufDmabuf(i, fds[i]));                // user space hands the buffer over
            var work = enc.DriverNext()!;                              // the encoder reads it
            var seen = enc.PlaneSpan(work, 0);
            Assert.Equal((byte)(frame * 7 + 1), seen[0]);
            Assert.Equal((byte)frame, seen[(int)Nv12_1080p - 1]);
            Assert.Equal(isp.PlaneCookie(cap, 0).DmaAddress, enc.PlaneCookie(work, 0).DmaAddress);
            Assert.Equal(m.DmaBufFds.Peek(fds[i]).PageBlocks, work.Planes[0].DmaBuf!.PageBlocks);
            enc.BufferDone(work);
            Assert.Equal(0, enc.DQBuf(out int j));
            Assert.Equal(i, j);
            Assert.Equal(0, isp.QBuf(i));
        }
        var bufinfo = m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo");
        Assert.Equal(4, bufinfo.Split("videobuf2_dma_contig").Length - 1);
        Assert.Equal(4, bufinfo.Split("\tffa50000.rkvenc\n").Length - 1);
        // The planes stayed attached and mapped across frames: one attachment each.
        Assert.All(fds, fd => Assert.Single(m.DmaBufFds.Peek(fd).Attachments));
        enc.Release();
        isp.Release();
        foreach (var fd in fds) m.DmaBufFds.Close(fd);
        Assert.Empty(m.DmaBufs);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_rk_heap_buffer_imported_by_both_queues_shows_both_attachments()
    {
        using var m = Machine.Boot("rv1106");
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"];
        var isp = Isp(m);
        var enc = Encoder(m);
        int n = 1;
        Assert.Equal(0, isp.ReqBufs(Vb2Memory.Dmabuf, ref n));
        Assert.Equal(0, enc.ReqBufs(Vb2Memory.Dmabuf, ref n));
        int fd = m.DmaBufFds.Install(rk.BufferAlloc(Nv12_1080p, "vmpi")!);
        Assert.Equal(0, isp.QBufDmabuf(0, fd));
        Assert.Equal(0, enc.QBufDmabuf(0, fd));
        var info = m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info");
        Assert.Contains("\t\tffa00000.rkisp\n", info);
        Assert.Contains("\t\tffa50000.rkvenc\n", info);
        isp.Release();
        enc.Release();
        Assert.Empty(m.DmaBufFds.Peek(fd).Attachments);
        m.DmaBufFds.Close(fd);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_exported_plane_outlives_reqbufs_zero_and_goes_with_its_last_descriptor()
    {
        using var m = Machine.Boot("rv1106");
        var cma = m.Cma["rk-dma-heap-cma"];
        ulong before = cma.Used;
        var q = Isp(m);
        int n = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        q.PlaneSpan(q[1]!, 0)[5] = 0xee;
        Assert.Equal(0, q.ExpBuf(1, 0, DmaHeap.ORdWr, out int fd));
        var buf = m.DmaBufFds.Peek(fd);
        Assert.Equal(2, q.Ops.NumUsers(q[1]!.Planes[0].Mem!));
        n = 0;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));             // orphaned, not refused
        Assert.Contains("memory in use, orphaning buffers", TestSupport.LogText(m));
        Assert.Equal(before + 760, cma.Used);
        Assert.Equal(0xee, buf.Span[5]);
        m.DmaBufFds.Close(fd);
        Assert.Equal(before, cma.Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Dma_sg_gathers_split_pages_and_maps_them_in_one_table()
    {
        using var m = Machine.Boot("rk3588");
        var q = m.Vb2QueueInit("rkisp-sg", m.Devices["fdee0000.rkisp"], m.Vb2DmaSg, Vb2IoModes.Mmap | Vb2IoModes.Userptr | Vb2IoModes.Dmabuf, false, [3 << 20]);
        int n = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        var mem = q[0]!.Planes[0].Mem!;
        var cookie = q.PlaneCookie(q[0]!, 0);
        Assert.NotNull(cookie.Table);
        Assert.Equal(1, cookie.Table!.Nents);                          // the IOMMU merges the segments
        Assert.Equal(768, mem.Blocks.Count);                          // split to single pages
        q.PlaneSpan(q[0]!, 0)[(3 << 20) - 1] = 3;
        Assert.True(m.IsVmallocAddr(q.PlaneVaddr(q[0]!, 0)));
        Assert.Equal(0, q.ExpBuf(0, 0, DmaHeap.ORdWr, out int fd));
        var buf = m.DmaBufFds.Peek(fd);
        Assert.Equal("videobuf2_dma_sg", buf.ExpName);
        Assert.Equal(3, buf.Span[(3 << 20) - 1]);
        q.Release();
        m.DmaBufFds.Close(fd);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Vmalloc_planes_need_no_device_and_imports_are_vmapped()
    {
        using var m = Machine.Boot("rk3588");
        var q = m.Vb2QueueInit("uvc", null, m.Vb2Vmalloc, Vb2IoModes.Mmap | Vb2IoModes.Dmabuf, false, [100_000]);
        int n = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        nint v = q.PlaneVaddr(q[0]!, 0);
        Assert.True(m.IsVmallocAddr(v));
        Assert.Equal(default, q.PlaneCookie(q[0]!, 0));
        q.PlaneSpan(q[0]!, 0)[99_999] = 1;
        Assert.Equal(0, q.ExpBuf(0, 0, DmaHeap.ORdWr, out int fd));
        Assert.Equal("videobuf2_vmalloc", m.DmaBufFds.Peek(fd).ExpName);
        Assert.Equal(1, m.DmaBufFds.Peek(fd).Span[99_999]);
        m.DmaBufFds.Close(fd);
        n = 1;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Dmabuf, ref n));          // switching memory frees the MMAP buffers
        int sys = m.DmaHeaps["system"].Allocate(1 << 20);
        m.DmaBufFds.Peek(sys).Span[4] = 44;
        Assert.Equal(-22, q.QBufDmabuf(0, sys, 4096));                 // shorter than the plane
        Assert.Equal(0, q.QBufDmabuf(0, sys));
        Assert.Empty(m.DmaBufFds.Peek(sys).Attachments);              // vmalloc attaches no device
        Assert.Equal(44, q.PlaneSpan(q[0]!, 0)[4]);
        q.Release();
        m.DmaBufFds.Close(sys);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Userptr_pages_must_map_in_one_piece_for_dma_contig_but_not_for_dma_sg()
    {
        using var m = Machine.Boot("rv1106");
        var contig = m.Vb2QueueInit("c", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig, Vb2IoModes.Userptr, false, [8192]);
        var sg = m.Vb2QueueInit("s", m.Devices["ffa00000.rkisp"], m.Vb2DmaSg, Vb2IoModes.Userptr, false, [8192]);
        int n = 1;
        Assert.Equal(0, contig.ReqBufs(Vb2Memory.Userptr, ref n));
        Assert.Equal(0, sg.ReqBufs(Vb2Memory.Userptr, ref n));
        var run = m.AllocPages(Gfp.Kernel, 1);                        // two neighbouring pages, each with its count
        m.SplitPage(run, 1);
        nint runAddr = m.PageAddress(run);
        Assert.Equal(0, contig.QBufUserptr(0, runAddr, 8192));
        Assert.Equal(m.PageToPhys(run), contig.PlaneCookie(contig[0]!, 0).DmaAddress);
        Assert.Equal(2, m.PageCount(run));                            // pinned
        // Two pages in the reverse order of their frames: never one device range without an IOMMU.
        var a = m.AllocPage(Gfp.Kernel);
        var b = m.AllocPage(Gfp.Kernel);
        nint user = m.Vmap([b, a], VmFlags.Map | VmFlags.UserMap);   // user-mappable, as get_user_pages needs
        int free0 = contig.QueuedCount;
        Assert.Equal(-22, contig.QBufUserptr(0, user, 8192));          // buffer 0 is queued already
        Assert.Equal(0, sg.QBufUserptr(0, user, 8192));
        Assert.Equal(2, sg.PlaneCookie(sg[0]!, 0).Table!.Nents);
        var c2 = m.Vb2QueueInit("c2", m.Devices["ffa50000.rkvenc"], m.Vb2DmaContig, Vb2IoModes.Userptr, false, [8192]);
        Assert.Equal(0, c2.ReqBufs(Vb2Memory.Userptr, ref n));
        Assert.Equal(-14, c2.QBufUserptr(0, user, 8192));
        Assert.Contains("contiguous mapping is too small", TestSupport.LogText(m));
        Assert.Equal(-22, c2.QBufUserptr(0, user + 8, 8192 - 8));      // shorter than the plane
        Assert.Equal(-14, c2.QBufUserptr(0, 0x1000, 8192));            // not memory of the machine
        Assert.Equal(Vb2BufferState.Dequeued, c2[0]!.State);
        Assert.Equal(free0, contig.QueuedCount);
        contig.Release(); sg.Release(); c2.Release();
        Assert.Equal(1, m.PageCount(run));                            // unpinned
        m.Vunmap(user);
        m.FreePage(a); m.FreePage(b); m.FreePage(run); m.FreePage(m.PfnToPage(run.Pfn + 1));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Bad_queue_calls_return_the_ioctls_errors_and_change_nothing()
    {
        using var m = Machine.Boot("rv1106");
        var q = Isp(m, io: Vb2IoModes.Mmap | Vb2IoModes.Dmabuf);
        Assert.Equal(-22, q.DQBuf(out _));                            // not streaming
        Assert.Equal(-22, q.StreamOn());                              // no buffers
        int n = 2;
        Assert.Equal(-22, q.ReqBufs(Vb2Memory.Userptr, ref n));        // not in io_modes
        Assert.Equal(-22, q.ReqBufs((Vb2Memory)3, ref n));
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.Equal(-22, q.QBufDmabuf(0, 3));                         // wrong memory type
        Assert.Equal(-22, q.QBuf(2));                                  // index out of range
        Assert.Equal(0, q.QBuf(0));
        Assert.Equal(-22, q.QBuf(0));                                  // already queued
        Assert.Contains("invalid buffer state queued for buffer 0", TestSupport.LogText(m));
        Assert.Equal(0, q.StreamOn());
        Assert.Equal(0, q.StreamOn());                                 // already streaming: fine
        Assert.Equal(-11, q.DQBuf(out _));                            // nothing done
        Assert.Equal(-110, q.DQBuf(out _, nonblocking: false, timeoutMs: 10));
        int again = 2;
        Assert.Equal(-16, q.ReqBufs(Vb2Memory.Mmap, ref again));       // REQBUFS while streaming
        Assert.Equal(-16, q.SetFormat(100));
        Assert.Equal(Nv12_1080p, q.PlaneSizes[0]);
        Assert.Equal(-22, q.ExpBuf(0, 1, 0, out _));                   // no plane 1
        Assert.Equal(-22, q.ExpBuf(0, 0, 0x40, out _));
        Assert.Equal((2, 1, true), (q.NumBuffers, q.QueuedCount, q.Streaming));
        var vb = q.DriverNext()!;
        q.BufferDone(vb);
        q.BufferDone(vb);                                              // not active any more: a WARN, nothing else
        Assert.Contains("WARNING: vb2_buffer_done", TestSupport.LogText(m));
        Assert.Equal(0, q.DQBuf(out int idx));
        Assert.Equal(0, idx);
        Assert.Equal(-11, q.DQBuf(out _));
        var dq = m.Vb2QueueInit("dmabuf-only", m.Devices["ffa50000.rkvenc"], m.Vb2DmaContig, Vb2IoModes.Dmabuf, true, [4096]);
        int one = 1;
        Assert.Equal(0, dq.ReqBufs(Vb2Memory.Dmabuf, ref one));
        Assert.Equal(-22, dq.ExpBuf(0, 0, 0, out _));                  // not MMAP
        Assert.Equal(-22, dq.QBufDmabuf(0, 77));                       // no such descriptor
        Assert.Equal(Vb2BufferState.Dequeued, dq[0]!.State);
        var sgPlane = m.Vb2DmaSg.Alloc(m.Devices["ffa00000.rkisp"], 4096, DmaDirection.FromDevice, 0)!;
        Assert.Equal(-22, Assert.Throws<Vb2Exception>(() => m.Vb2DmaContig.Vaddr(sgPlane)).Errno);   // another allocator's plane
        Assert.Null(m.Vb2DmaContig.Alloc(null, 4096, DmaDirection.FromDevice, 0));                    // dma-contig needs a device
        m.Vb2DmaSg.Put(sgPlane);
        Assert.Throws<ArgumentException>(() => m.Vb2QueueInit("x", null, m.Vb2DmaContig, 0, false, [1]));
        Assert.Throws<ArgumentException>(() => m.Vb2QueueInit("x", null, m.Vb2DmaContig, Vb2IoModes.Mmap, false, []));
        var idle = m.Vb2QueueInit("idle", null, m.Vb2Vmalloc, Vb2IoModes.Mmap, false, [4096]);
        Assert.Equal(-22, idle.SetFormat(0));
        Assert.Equal(-22, idle.SetFormat());
        Assert.Equal([4096L], idle.PlaneSizes);
        q.Release(); dq.Release();
        TestSupport.AssertConsistent(m);
    }
}

public class MediaWorkloadTests
{
    [Fact]
    public void The_camera_vb2_workload_streams_zero_copy_and_releases_everything()
    {
        using var m = Machine.Boot("rv1106");
        var cmaFree = m.Cma["rk-dma-heap-cma"].Used;
        var runner = new WorkloadRunner(m);
        var r = runner.Run(Kmem.Cli.Commands.LoadWorkload("camera-vb2"));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal("vb2_pipeline rkisp_mainpath -> rkvenc: 300 frames of 3110400 bytes, 300 read back intact, 300 at the producer's own device address (zero copy)", Assert.Single(r.Notes));
        Assert.Equal(2, m.DmaBufs.Count(b => b.ExpName == "videobuf2_dma_contig" && b.Attachments.Any(a => a.Device.Name == "ffa50000.rkvenc")));
        Assert.Equal(2, m.DmaBufs.Count(b => b.ExpName == "drm"));
        Assert.Equal(2, m.Drm.Objects.Count);
        runner.ReleaseAll();
        Assert.Empty(m.DmaBufs);
        Assert.Empty(m.Drm.Objects);
        Assert.Equal(cmaFree, m.Cma["rk-dma-heap-cma"].Used);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("""{"op": "vb2_queue", "queue": "q", "device": "ffa00000.rkisp", "memops": "dma-magic", "size": 4096}""", "steps[0].memops")]
    [InlineData("""{"op": "vb2_queue", "queue": "q", "device": "ffa00000.rkisp"}""", "steps[0]")]
    [InlineData("""{"op": "vb2_reqbufs", "queue": "q", "count": 40}""", "steps[0].count")]
    [InlineData("""{"op": "vb2_reqbufs", "queue": "q", "count": 2, "memory": "overlay"}""", "steps[0].memory")]
    [InlineData("""{"op": "vb2_pipeline", "from": "a", "to": "b", "buffers": "x"}""", "steps[0].frames")]
    [InlineData("""{"op": "drm_create_dumb", "label": "fb", "width": 0, "height": 10}""", "steps[0].width")]
    [InlineData("""{"op": "drm_prime_export", "label": "fb"}""", "steps[0].as")]
    public void Bad_media_steps_are_refused_before_anything_runs(string step, string where)
    {
        var e = Assert.ThrowsAny<KmemException>(() => Workload.Parse($$"""{"name": "bad", "steps": [{{step}}]}"""));
        Assert.Contains(where, e.Message);
    }

    [Fact]
    public void A_step_on_a_queue_that_does_not_exist_names_it()
    {
        using var m = Machine.Boot("rv1106");
        var wl = Workload.Parse("""{"name": "q", "steps": [{"op": "vb2_streamon", "queue": "ghost"}]}""");
        var e = Assert.ThrowsAny<KmemException>(() => new WorkloadRunner(m).Run(wl));
        Assert.Contains("no vb2 queue 'ghost'", e.Message);
    }
}

public class Vb2FrameLoopTests
{
    [Fact]
    public void A_dmabuf_frame_loop_allocates_no_managed_memory_once_warm()
    {
        using var m = Machine.Boot("rv1106");
        using var loop = new Vb2FrameLoop(m, 4);
        for (int i = 0; i < 100; i++) loop.Frame();                     // first hand-overs attach and map
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 2000; i++) loop.Frame();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(2100, loop.Frames);
    }
}
