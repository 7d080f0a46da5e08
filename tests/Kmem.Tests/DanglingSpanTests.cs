// Spans that outlive their memory: a dma-buf's CPU view after its last reference goes, a vmalloc
// area after vfree, the linear map after the machine's dispose. Safe code reading or writing them
// must never take the process down; writes into freed vmalloc areas are reported at the purge, in
// the spirit of KFENCE, naming the area and who made it.
namespace Kmem.Tests;

public sealed unsafe class DanglingSpanTests
{
    [Fact]
    public void A_system_heap_buffers_span_after_put_reads_zeros_and_a_write_is_reported_at_the_purge()
    {
        using var m = Machine.Boot("rv1106");
        var buf = m.DmaHeaps["system"].AllocateBuffer(3 << 20)!;
        var span = buf.Span;                               // a vmap: the buffer is not contiguous
        Assert.True(m.IsVmallocAddr((nint)Unsafe(span)));
        span.Fill(0x5a);
        buf.Put();
        m.Sysctl.Kmem.DmaBufDeferredFreeWorker = true;
        WaitForDeferredFree(m);
        Assert.Equal(0, span[12345]);                      // the machine's pages are gone from under it: zeros
        span[4096 * 7 + 3] = 0x77;                         // a use-after-free write: no fault
        Assert.DoesNotContain("KFENCE", m.Dmesg());
        m.VmUnmapAliases();
        string log = m.Dmesg();
        Assert.Contains("BUG: KFENCE: use-after-free write in ", log);
        Assert.Contains("Use-after-free write at 0x", log);
        Assert.Contains("page 7 of 768", log);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_vmalloc_span_after_vfree_is_harmless_and_its_writes_are_reported_with_the_allocating_caller()
    {
        using var m = Machine.Boot("x86_64");
        nint v = m.Vmalloc(4 * 4096);
        var span = new Span<byte>((void*)v, 4 * 4096);
        span.Fill(1);
        m.Vfree(v);
        Assert.Equal(0, span[100]);
        span[2 * 4096 + 10] = 9;
        span[3 * 4096] = 9;
        m.VmUnmapAliases();
        string log = m.Dmesg();
        Assert.Equal(2, CountOf(log, "BUG: KFENCE: use-after-free write in "));
        Assert.Contains($"Use-after-free write at 0x{v + 2 * 4096 + 10:x}", log);
        Assert.Contains(nameof(A_vmalloc_span_after_vfree_is_harmless_and_its_writes_are_reported_with_the_allocating_caller), log);
        // After the purge the range is reusable address space again; a new area there starts clean.
        nint w = m.Vmalloc(4 * 4096, Gfp.Kernel | Gfp.Zero);
        Assert.Equal(-1, new Span<byte>((void*)w, 4 * 4096).IndexOfAnyExcept((byte)0));
        m.Vfree(w);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Spans_over_a_disposed_machines_memory_read_zeros_instead_of_faulting()
    {
        var m = Machine.Boot("rv1106");
        var page = m.AllocPages(Gfp.Kernel, 1);
        var span = m.PageSpan(page, 1);
        nint v = m.Vmalloc(8192);
        var vspan = new Span<byte>((void*)v, 8192);
        span.Fill(3);
        vspan.Fill(4);
        m.Dispose();
        Assert.Equal(0, span[0]);
        Assert.Equal(0, vspan[8191]);
        span[5] = 1;                                       // lands in a private page of the quarantined range
        vspan[5] = 1;
        Assert.Throws<ObjectDisposedException>(() => m.PageSpan(page, 1).Length);
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }

    private static nint Unsafe(Span<byte> s)
    {
        fixed (byte* p = s) return (nint)p;
    }

    private static void WaitForDeferredFree(Machine m)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (m.ProcFs.Read("/proc/meminfo").Length > 0 && m.VmallocAreas.Any(a => a.Size > 3 << 20) && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
    }
}
