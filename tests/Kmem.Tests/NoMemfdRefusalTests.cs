// What the no-memfd fallback cannot give (a page mapped at a second address) is refused cleanly: vmalloc, vmap,
// dma_buf_vmap of a buffer of several blocks, the CPU view of a GEM object of separate pages, videobuf2-vmalloc and
// dma-sg's kernel mapping. Each refusal names the feature and the reason, logs a line, and changes nothing; frees of
// addresses no area can have are the kernel's "nonexistent vm area". The command's workloads, its main job and
// replay run or stop with that message; spans over a disposed machine's memory stay harmless.
using Kmem.Physical;

namespace Kmem.Tests;

public class NoMemfdRefusalTests
{
    [Fact]
    public void Every_vmalloc_and_vmap_entry_point_is_refused_and_changes_nothing()
    {
        using var m = NoMemfd.Boot("x86_64");
        NoMemfd.Refused(m, "vmalloc", () => m.Vmalloc(8192));
        NoMemfd.Refused(m, "vmalloc", () => m.Vmalloc((nuint)8192));
        NoMemfd.Refused(m, "vmalloc", () => m.Vmalloc((nuint)8192, Gfp.Kernel));
        NoMemfd.Refused(m, "vzalloc", () => m.Vzalloc(8192));
        NoMemfd.Refused(m, "vmalloc_user", () => m.VmallocUser(8192));
        NoMemfd.Refused(m, "vmalloc_node", () => m.VmallocNode(8192, Machine.NumaNoNode));
        var p = m.AllocPage(Gfp.Kernel);
        var q = m.AllocPage(Gfp.Kernel);
        NoMemfd.Refused(m, "vmap", () => m.Vmap([p, q]));
        m.FreePage(p);
        m.FreePage(q);
        Assert.Empty(m.VmallocAreas);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Vfree_and_vunmap_of_an_address_no_area_can_have_are_the_kernels_nonexistent_area()
    {
        using var m = NoMemfd.Boot("rv1106");
        nint a = m.Kmalloc(64, Gfp.Kernel);
        m.Vfree(0);
        m.Vunmap(0);
        var ex = TestSupport.Rejected<InvalidAddressException>(m, () => m.Vfree(a), $"Trying to vfree() nonexistent vm area (0x{a:x})");
        Assert.Contains("no vmalloc window", ex.Message);
        TestSupport.Rejected<InvalidAddressException>(m, () => m.Vunmap(a), $"Trying to vunmap() nonexistent vm area (0x{a:x})");
        Assert.False(m.IsVmallocAddr(a));
        Assert.Throws<InvalidAddressException>(() => m.VmallocToPage(a));
        m.Kvfree(a);                                               // not a vmalloc address: kfree
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Kvmalloc_is_kmalloc_with_full_effort_and_fails_with_the_kernels_warning()
    {
        using var m = NoMemfd.Boot("rv1106");
        nint a = m.Kvmalloc(200 * 1024, Gfp.Kernel);            // a contiguous order-6 block instead of vmalloc
        Assert.NotEqual(0, a);
        Assert.False(m.IsVmallocAddr(a));
        Assert.Equal((nuint)(256 * 1024), m.Ksize(a));
        m.Kvfree(a);
        string before = TestSupport.State(m);
        int logLen = m.Dmesg().Length;
        Assert.Equal(0, m.Kvmalloc((nuint)(64 << 20), Gfp.Kernel)); // beyond kmalloc's largest block: no vmalloc to fall back on
        Assert.Contains("WARNING", m.Dmesg()[logLen..]);
        Assert.Equal(before, TestSupport.State(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_system_heap_buffer_of_several_blocks_maps_for_devices_but_its_vmap_is_refused()
    {
        using var m = NoMemfd.Boot("rv1106");
        var venc = m.Devices["ffa50000.rkvenc"];
        var buf = m.DmaHeaps["system"].AllocateBuffer(3 << 20)!;
        Assert.True(buf.PageBlocks.Count > 1);
        var att = buf.Attach(venc);
        var sgt = buf.MapAttachment(att, DmaDirection.FromDevice);
        Assert.True(sgt.Nents >= 1);
        buf.UnmapAttachment(att, sgt, DmaDirection.FromDevice);
        buf.Detach(att);
        string bufinfo = m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo");
        NoMemfd.Refused(m, "dma_buf_vmap", () => buf.Vmap());
        NoMemfd.Refused(m, "dma_buf_vmap", () => _ = buf.Span.Length);
        Assert.Equal(bufinfo, m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo"));
        Assert.Equal(1, buf.RefCount);
        buf.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        Assert.Empty(m.DmaBufs);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_gem_object_of_separate_pages_behind_an_iommu_is_made_but_its_cpu_view_is_refused()
    {
        using var m = NoMemfd.Boot("rk3588");
        Assert.True(m.Drm.UsesIommu);
        var card = m.Drm.Open();
        var fb = card.CreateDumb(1920, 1080, 32);
        var obj = card.Lookup(fb.Handle);
        Assert.Equal(GemBacking.IommuPages, obj.Backing);
        ulong off = card.MapDumbOffset(fb.Handle);
        NoMemfd.Refused(m, "GEM object", () => _ = card.Mmap(off, (long)fb.Size).Length);
        NoMemfd.Refused(m, "GEM object", () => _ = obj.Span.Length);
        int fd = card.PrimeHandleToFd(fb.Handle);                // PRIME export needs no CPU view
        m.DmaBufFds.Close(fd);
        card.Close();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        Assert.Empty(m.Drm.Objects);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Videobuf2_vmalloc_is_refused_at_queue_init_and_dma_sg_planes_have_no_kernel_mapping()
    {
        using var m = NoMemfd.Boot("rk3588");
        NoMemfd.Refused(m, "videobuf2-vmalloc", () => m.Vb2QueueInit("uvc", null, m.Vb2Vmalloc, Vb2IoModes.Mmap, false, [4096]));
        var q = m.Vb2QueueInit("rkisp-sg", m.Devices["fdee0000.rkisp"], m.Vb2DmaSg, Vb2IoModes.Mmap | Vb2IoModes.Dmabuf, false, [3 << 20]);
        int n = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.NotNull(q.PlaneCookie(q[0]!, 0).Table);            // the device's view: one IOMMU range
        Assert.Equal(0, q.PlaneVaddr(q[0]!, 0));                  // vb2_plane_vaddr() is NULL
        var ex = Assert.Throws<Vb2Exception>(() => q.PlaneSpan(q[0]!, 0));
        Assert.Contains("vm_map_ram", ex.Message);
        Assert.Contains("plain native block", ex.Message);
        n = 0;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        TestSupport.AssertConsistent(m);
    }

    public static TheoryData<string, string> Workloads() => new()
    {
        { "camera-pages", "rv1106" }, { "camera-pipeline", "rv1106" }, { "camera-dma", "rv1106" }, { "camera-vb2", "rv1106" },
        { "packet-storm", "rv1106" }, { "highmem-camera", "rv1126" }, { "numa-spill", "x86_64-numa2" },
    };

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Every_built_in_workload_runs_or_stops_with_the_reason(string workload, string profile)
    {
        // On the NUMA board the boot's vmalloc'ed hash tables are not allocated on the fallback: more memory is free.
        NoMemfd.AssertRanOrRefused(sameFigures: profile != "x86_64-numa2", "run", workload, "--profile", profile);
    }

    [Fact]
    public void The_camera_dma_workload_stops_at_its_vmalloc_step_naming_it()
    {
        var (code, _, e) = NoMemfd.Cli("run", "camera-dma");
        Assert.Equal(1, code);
        Assert.Contains("(vmalloc) failed: PlatformNotSupportedException: vmalloc needs remappable memory", e);
    }

    [Fact]
    public void The_main_job_prints_what_it_prints_on_a_memfd()
    {
        var (code, o, e) = NoMemfd.Cli();
        Assert.True(code == 0, e);
        var (refCode, refOut, _) = TestSupport.Cli();
        Assert.Equal(0, refCode);
        Assert.Contains("$ cat /proc/rk_dma_heap/rk-dma-heap-info", o);
        Assert.Equal(NoMemfd.WithoutTimes(refOut), NoMemfd.WithoutTimes(o));
    }

    [Fact]
    public void Replay_of_a_recorded_trace_runs_on_the_fallback()
    {
        string trace = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ftrace_kmem_modern_small_samples.txt");
        NoMemfd.AssertRanOrRefused("replay", trace, "--profile", "x86_64");
        NoMemfd.AssertRanOrRefused("replay", trace);            // the recording machine inferred
        NoMemfd.AssertRanOrRefused("replay", trace, "--profile", "x86_64", "--json");
    }

    [SkippableFact]
    public unsafe void A_span_over_a_disposed_fallback_machines_memory_reads_zeros()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the forced fallback's memory is an anonymous mapping on Linux only");
        var m = NoMemfd.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel, 1);
        nint at = m.PageAddress(p);
        new Span<byte>((void*)at, 8192).Fill(0x99);
        m.Dispose();
        Assert.Equal(-1, new Span<byte>((void*)at, 8192).IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public async Task Off_linux_a_retired_block_is_freed_only_after_the_grace_period()
    {
        // macOS and Windows cannot replace a disposed machine's memory with harmless pages: the block is freed late
        // enough for calls already inside the machine to finish.
        var freed = new TaskCompletionSource<(nint Block, long Ms)>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        RetiredMappings.FreeAfterGrace(0x1234000, b => freed.TrySetResult((b, clock.ElapsedMilliseconds)));
        Assert.False(freed.Task.IsCompleted);
        var (block, ms) = await freed.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0x1234000, block);
        Assert.True(ms >= RetiredMappings.FreeGrace.TotalMilliseconds - 50, $"freed after {ms} ms");
    }
}
