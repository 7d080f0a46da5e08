// The fences of a dma-buf's reservation object: the rules of each release (one exclusive and shared fences before
// 5.19, four usages from 5.19), signalling, and the fence lines of /sys/kernel/debug/dma_buf/bufinfo as 4.9,
// 5.10, 5.17 and 6.6 print them; every misuse refused.
namespace Kmem.Tests;

public class DmaBufFenceTests
{
    private static Machine Boot(string version) =>
        Machine.Boot(MachineProfile.Embedded("rv1106") with { Version = KernelVersion.Parse(version) });

    private static DmaBuf NewBuffer(Machine m, out int fd)
    {
        fd = m.DmaHeaps["system"].Allocate(8192);
        var b = m.DmaBufFds.Get(fd);
        b.Put();
        return b;
    }

    /// <summary>The lines of bufinfo between the buffer's own line and its attached devices.</summary>
    private static string[] FenceLines(Machine m, DmaBuf b)
    {
        var lines = m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo").Split('\n');
        int at = Array.FindIndex(lines, l => l.Contains($"\t{b.Ino:D8}\t"));
        int end = Array.IndexOf(lines, "\tAttached Devices:", at);
        return lines[(at + 1)..end];
    }

    [Fact]
    public void A_5_10_buffer_shows_its_exclusive_fence_then_its_shared_fences()
    {
        using var m = Boot("5.10");
        var b = NewBuffer(m, out int fd);
        Assert.Empty(FenceLines(m, b));
        var render = new DmaFence("panfrost", "fdab0000.gpu-render", 7);
        var scan = new DmaFence("rockchip-vop", "crtc-0", 3);
        var isp = new DmaFence("rkisp", "mi-frame", 12);
        b.AddFence(render, DmaResvUsage.Write);
        b.AddFence(scan, DmaResvUsage.Read);
        b.AddFence(isp, DmaResvUsage.Read);
        Assert.Equal(["\tExclusive fence: panfrost fdab0000.gpu-render unsignalled", "\tShared fence: rockchip-vop crtc-0 unsignalled",
            "\tShared fence: rkisp mi-frame unsignalled"], FenceLines(m, b));
        Assert.False(b.FencesSignaled(DmaResvUsage.Write));
        Assert.True(render.Signal());
        Assert.False(render.Signal());                                      // once only (-EINVAL)
        Assert.True(b.FencesSignaled(DmaResvUsage.Write));
        Assert.False(b.FencesSignaled(DmaResvUsage.Read));
        Assert.Equal("\tExclusive fence: panfrost fdab0000.gpu-render signalled", FenceLines(m, b)[0]);
        // A later fence of the same timeline takes the older one's place; a signalled shared fence is replaced too.
        scan.Signal();
        var scan2 = new DmaFence("rockchip-vop", "crtc-0", 4);
        b.AddFence(scan2, DmaResvUsage.Read);
        Assert.Equal(3, b.Fences.Count);
        Assert.Same(scan2, b.Fences[1].Fence);
        // A new exclusive fence drops every shared one.
        b.AddFence(new DmaFence("panfrost", "fdab0000.gpu-render", 8), DmaResvUsage.Write);
        Assert.Equal(["\tExclusive fence: panfrost fdab0000.gpu-render unsignalled"], FenceLines(m, b));
        m.DmaBufFds.Close(fd);
    }

    [Fact]
    public void From_5_17_the_lines_are_dma_fence_describe_with_the_sequence_number()
    {
        using var m = Boot("5.17");
        var b = NewBuffer(m, out int fd);
        b.AddFence(new DmaFence("panfrost", "render", 41), DmaResvUsage.Write);
        b.AddFence(new DmaFence("rkisp", "mi", 2), DmaResvUsage.Read);
        // dma_resv_describe() prints "\t%s fence:" and dma_fence_describe() follows without a space.
        Assert.Equal(["\tExclusive fence:panfrost render seq 41 unsignalled", "\tShared fence:rkisp mi seq 2 unsignalled"], FenceLines(m, b));
        m.DmaBufFds.Close(fd);
    }

    [Fact]
    public void From_5_19_fences_have_a_usage_each_and_a_writer_keeps_the_readers()
    {
        using var m = Boot("6.6");
        var b = NewBuffer(m, out int fd);
        var read = new DmaFence("rkisp", "mi", 2);
        b.AddFence(read, DmaResvUsage.Read);
        b.AddFence(new DmaFence("panfrost", "render", 41), DmaResvUsage.Write);
        b.AddFence(new DmaFence("ttm", "move", 5), DmaResvUsage.Kernel);
        b.AddFence(new DmaFence("drm_sched", "bookkeeping", 9), DmaResvUsage.Bookkeep);
        read.Signal();
        Assert.Equal(["\tread fence:rkisp mi seq 2 signalled", "\twrite fence:panfrost render seq 41 unsignalled",
            "\tkernel fence:ttm move seq 5 unsignalled"], FenceLines(m, b));            // bookkeeping fences are not listed
        Assert.Equal(4, b.Fences.Count);
        Assert.False(b.FencesSignaled(DmaResvUsage.Read));
        Assert.True(new[] { DmaResvUsage.Read, DmaResvUsage.Write, DmaResvUsage.Kernel, DmaResvUsage.Bookkeep }
            .SequenceEqual(b.Fences.Select(f => f.Usage)));
        // A reader of the writer's timeline does not replace the writer (a weaker usage): it takes the place of the
        // signalled reader.
        b.AddFence(new DmaFence("panfrost", "render", 42), DmaResvUsage.Read);
        Assert.Equal(42UL, b.Fences[0].Fence.Seqno);
        Assert.Equal((41UL, DmaResvUsage.Write), (b.Fences[1].Fence.Seqno, b.Fences[1].Usage));
        m.DmaBufFds.Close(fd);
    }

    [Fact]
    public void Before_4_12_bufinfo_shows_no_fence()
    {
        using var m = Boot("4.9");
        var b = NewBuffer(m, out int fd);
        b.AddFence(new DmaFence("mali", "job", 1), DmaResvUsage.Write);
        Assert.Empty(FenceLines(m, b));
        Assert.Single(b.Fences);
        m.DmaBufFds.Close(fd);
    }

    [Fact]
    public void Fence_misuse_is_refused_with_nothing_attached()
    {
        using var m = Boot("5.10");
        var b = NewBuffer(m, out int fd);
        var e = Assert.Throws<DmaBufException>(() => b.AddFence(new DmaFence("ttm", "move", 1), DmaResvUsage.Kernel));
        Assert.Equal(-22, e.Errno);
        Assert.Contains("came in 5.19", m.Dmesg());
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.AddFence(new DmaFence("a", "b", 1), (DmaResvUsage)7)).Errno);
        Assert.Throws<ArgumentNullException>(() => b.AddFence(null!, DmaResvUsage.Read));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.FencesSignaled((DmaResvUsage)(-1)));
        Assert.Empty(b.Fences);
        Assert.Throws<ArgumentNullException>(() => new DmaFence(null!, "t", 1));
        Assert.Throws<ArgumentException>(() => new DmaFence("", "t", 1));
        Assert.Throws<ArgumentException>(() => new DmaFence("two words", "t", 1));
        Assert.Throws<ArgumentException>(() => new DmaFence("d", new string('x', DmaFence.NameMaxLength + 1), 1));
        m.DmaBufFds.Close(fd);
        Assert.True(b.Released);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.AddFence(new DmaFence("a", "b", 1), DmaResvUsage.Read)).Errno);
    }
}
