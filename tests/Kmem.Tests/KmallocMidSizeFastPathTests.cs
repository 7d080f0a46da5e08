// kmalloc of 193 bytes to 8 KiB tries its cache's per-thread fast path before the slow path counts itself in:
// the fast path must still step aside for failslab and for a disposed machine, and serve the right size class.
namespace Kmem.Tests;

public unsafe class KmallocMidSizeFastPathTests
{
    private static readonly int[] Sizes = [193, 256, 300, 1000, 2048, 4096, 5000, 8192];

    [Fact]
    public void Every_size_class_fails_while_failslab_is_armed_even_with_objects_on_the_thread()
    {
        using var m = Machine.Boot("x86_64");
        foreach (int size in Sizes) m.Kfree(m.Kmalloc(size, Gfp.Kernel)); // each cache now has a CPU slab on this thread
        var f = m.Failslab;
        f.IgnoreGfpReclaim = false;
        f.Verbose = 0;
        f.Times = -1;
        f.Interval = 1;
        f.Probability = 100;
        foreach (int size in Sizes) Assert.Equal(0, m.Kmalloc(size, Gfp.Kernel | Gfp.NoWarn));
        Assert.Equal(Sizes.Length, f.Injected);
        f.Probability = 0;
        foreach (int size in Sizes)
        {
            nint p = m.Kmalloc(size, Gfp.Kernel);
            Assert.NotEqual(0, p);
            Assert.Equal(size <= 256 ? 256u : (nuint)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)size), m.Ksize(p));
            new Span<byte>((void*)p, size).Fill(0xA5);
            m.Kfree(p);
        }
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_reclaimable_and_dma_kinds_get_their_own_caches()
    {
        using var m = Machine.Boot("x86_64");
        nint n = m.Kmalloc(1000, Gfp.Kernel), r = m.Kmalloc(1000, Gfp.Kernel | Gfp.Reclaimable), d = m.Kmalloc(1000, Gfp.Kernel | Gfp.Dma);
        string slabinfo = m.ProcFs.Read("/proc/slabinfo");
        Assert.Matches(@"(?m)^kmalloc-1k\s+[1-9]", slabinfo);
        Assert.Matches(@"(?m)^kmalloc-rcl-1k\s+[1-9]", slabinfo);
        Assert.Matches(@"(?m)^dma-kmalloc-1k\s+[1-9]", slabinfo);
        foreach (var p in new[] { n, r, d }) m.Kfree(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_disposed_machine_refuses_a_mid_size_kmalloc_without_touching_its_memory()
    {
        var m = Machine.Boot("x86_64");
        m.Kfree(m.Kmalloc(4096, Gfp.Kernel));
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.Kmalloc(4096, Gfp.Kernel));
        Assert.Throws<ObjectDisposedException>(() => m.Kmalloc(300, Gfp.Kernel));
    }
}
