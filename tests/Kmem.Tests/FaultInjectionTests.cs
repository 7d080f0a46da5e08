// fail_page_alloc and failslab: the kernel's rules (interval, probability, space, times; the GFP and order filters;
// cache-filter), the FAULT_INJECTION report, the boot parameters and debugfs files, and every caller surviving
// failures injected at random with everything consistent afterwards.
namespace Kmem.Tests;

public class FaultInjectionTests
{
    [Fact]
    public void Fail_page_alloc_from_the_boot_line_fails_as_many_times_as_asked()
    {
        using var m = Machine.Boot("rv1106", "fail_page_alloc=1,100,0,3");
        Assert.Equal("3\n", m.ProcFs.Read("/sys/kernel/debug/fail_page_alloc/times"));
        Assert.Equal("1\n", m.ProcFs.Read("/sys/kernel/debug/fail_page_alloc/min-order"));
        Assert.False(m.AllocPage(Gfp.Atomic).IsNull);                       // order 0 is below min-order
        Assert.False(m.AllocPages(Gfp.Kernel, 1).IsNull is var k && k);     // may reclaim: ignore-gfp-wait spares it
        for (int i = 0; i < 3; i++) Assert.True(m.AllocPages(Gfp.Atomic, 1).IsNull);
        var ok = m.AllocPages(Gfp.Atomic, 1);                               // times used up
        Assert.False(ok.IsNull);
        Assert.Equal("0\n", m.ProcFs.Read("/sys/kernel/debug/fail_page_alloc/times"));
        Assert.Equal(3, m.FailPageAlloc.Injected);
        Assert.Contains("FAULT_INJECTION: forcing a failure.\nname fail_page_alloc, interval 1, probability 100, space 0, times 2\n", TestSupport.LogText(m));
        m.FreePages(ok, 1);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Arming_fail_page_alloc_reaches_a_thread_whose_order0_lists_are_warm()
    {
        // The fast paths have no test of their own for fault injection: arming it closes them for every thread, so a
        // thread that already holds pages on its lists fails too, frees while it is armed, and gets its fast path back.
        using var m = Machine.Boot("x86_64");
        var warm = Enumerable.Range(0, 8).Select(_ => m.AllocPage(Gfp.Kernel)).ToList();
        m.FreePage(warm[^1]);                                              // a page on this thread's list
        var f = m.FailPageAlloc;
        f.Verbose = 0;
        f.MinOrder = 0;
        f.Probability = 100;
        f.Times = 2;
        Assert.True(m.AllocPage(Gfp.Atomic | Gfp.NoWarn).IsNull);
        m.FreePage(warm[^2]);                                              // a free while armed
        Assert.True(m.AllocPage(Gfp.Atomic | Gfp.NoWarn).IsNull);
        Assert.Equal(2, f.Injected);
        var after = m.AllocPage(Gfp.Atomic);                               // times used up: allocations succeed again
        Assert.False(after.IsNull);
        f.Probability = 0;
        var fast = m.AllocPage(Gfp.Kernel);
        Assert.False(fast.IsNull);
        foreach (var p in warm.Take(6).Append(after).Append(fast)) m.FreePage(p);
        Assert.Equal(2, f.Injected);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Failslab_follows_interval_space_and_the_cache_filter()
    {
        using var m = Machine.Boot("x86_64");
        var plain = m.KmemCacheCreate("plain", 100);
        var filtered = m.KmemCacheCreate("filtered", 100, 0, SlabFlags.FailSlab | SlabFlags.NoMerge);
        var f = m.Failslab;
        f.IgnoreGfpReclaim = false;
        f.Verbose = 0;
        f.Times = -1;
        f.Interval = 2;
        f.Probability = 100;
        var got = Enumerable.Range(0, 10).Select(_ => m.Kmalloc(64, Gfp.Kernel)).ToList();
        Assert.Equal(5, got.Count(p => p == 0));                            // every second call
        Assert.Equal(0, m.Kmalloc(64, Gfp.Kernel | Gfp.NoFail) is var nf && nf == 0 ? 1 : 0);   // __GFP_NOFAIL is never failed
        m.Kfree(nf);
        f.CacheFilter = true;
        f.Interval = 1;
        Assert.NotEqual(0, plain.Alloc(Gfp.Kernel) is var po ? po : 0);
        Assert.Equal(0, filtered.Alloc(Gfp.Kernel));
        f.CacheFilter = false;
        f.Space = 1000;                                                     // space > size lets nine 100-byte objects through
        var spaced = Enumerable.Range(0, 12).Select(_ => plain.Alloc(Gfp.Kernel)).ToList();
        Assert.Equal(9, spaced.Count(p => p != 0));
        f.Probability = 0;
        Assert.NotEqual(0, filtered.Alloc(Gfp.Kernel) is var fo ? fo : 0);
        foreach (var p in got.Where(p => p != 0)) m.Kfree(p);
        foreach (var p in spaced.Where(p => p != 0).Append(po)) plain.Free(p);
        filtered.Free(fo);
        Assert.Equal(5 + 1 + 3, f.Injected);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Failslab_armed_after_a_merge_reaches_the_merged_cache_too()
    {
        // A cache merged into an existing one is a second handle on the same slabs; arming failslab afterwards must
        // reach allocations through either handle (and disarming must give both back).
        using var m = Machine.Boot("x86_64");
        var first = m.KmemCacheCreate("merge-first", 200);
        var second = m.KmemCacheCreate("merge-second", 200);
        Assert.True(second.IsAlias && ReferenceEquals(second.Root, first));
        var f = m.Failslab;
        f.IgnoreGfpReclaim = false;
        f.Verbose = 0;
        f.Times = -1;
        f.Probability = 100;
        Assert.Equal(0, first.Alloc(Gfp.Kernel));
        Assert.Equal(0, second.Alloc(Gfp.Kernel));
        f.Probability = 0;
        nint a = first.Alloc(Gfp.Kernel), b = second.Alloc(Gfp.Kernel);
        Assert.True(a != 0 && b != 0);
        first.Free(a);
        second.Free(b);
        Assert.Equal(2, f.Injected);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_bad_boot_parameter_is_refused()
    {
        var e = Assert.Throws<ProfileException>(() => Machine.Boot("rv1106", "failslab=1,200,0,1"));
        Assert.Contains("failslab=1,200,0,1", e.Message);
        using var m = Machine.Boot("rv1106");
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Failslab.Probability = 101);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Failslab.Interval = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailPageAlloc.Times = -2);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailPageAlloc.Space = -1);
        Assert.Equal(("0\n", "1\n", "1\n", "0\n"), (m.ProcFs.Read("/sys/kernel/debug/failslab/probability"), m.ProcFs.Read("/sys/kernel/debug/failslab/interval"),
            m.ProcFs.Read("/sys/kernel/debug/fail_page_alloc/times"), m.ProcFs.Read("/sys/kernel/debug/fail_page_alloc/space")));
        Assert.False(m.Failslab.Armed || m.FailPageAlloc.Armed);
    }

    [Fact]
    public void Every_caller_survives_failures_injected_at_random()
    {
        using var m = Machine.Boot("rv1106");
        var rnd = new Random(8);
        var kmallocs = new List<nint>();
        var pages = new List<(Page Page, int Order)>();
        var bufs = new List<DmaBuf>();
        var vmallocs = new List<nint>();
        int failures = 0;
        var cache = m.KmemCacheCreate("chaos", 300);
        var objs = new List<nint>();
        var pool = m.MempoolCreateSlabPool(4, cache)!;                     // its reserve covers failures
        var pooled = new List<nint>();
        var drm = m.Drm.Open();
        foreach (var f in new[] { m.FailPageAlloc, m.Failslab })
        {
            f.Seed(8);
            f.Verbose = 0;
            f.Times = -1;
            f.IgnoreGfpReclaim = false;
            f.Probability = 25;
        }
        m.FailPageAlloc.MinOrder = 0;
        for (int i = 0; i < 3000; i++)
        {
            switch (rnd.Next(8))
            {
                case 0: { var p = m.Kmalloc(rnd.Next(1, 20000), Gfp.Kernel | Gfp.NoWarn); if (p == 0) failures++; else kmallocs.Add(p); break; }
                case 1: { int o = rnd.Next(0, 4); var p = m.AllocPages(Gfp.Kernel | Gfp.NoWarn, o); if (p.IsNull) failures++; else pages.Add((p, o)); break; }
                case 2: { var b = m.DmaHeaps["system"].AllocateBuffer(rnd.Next(1, 64) * 4096); if (b is null) failures++; else bufs.Add(b); break; }
                case 3: { var v = m.Vmalloc((nuint)rnd.Next(1, 64) * 4096, Gfp.Kernel | Gfp.NoWarn); if (v == 0) failures++; else vmallocs.Add(v); break; }
                case 4: { var o = cache.Alloc(Gfp.Kernel | Gfp.NoWarn); if (o == 0) failures++; else objs.Add(o); break; }
                case 5: { var o = pool.Alloc(Gfp.Atomic); if (o != 0) pooled.Add(o); else failures++; break; }
                case 6:
                    try { drm.CreateDumb(64, (uint)rnd.Next(1, 64), 32); }
                    catch (DrmException e) { Assert.Equal(-12, e.Errno); failures++; }
                    break;
                default:
                    if (kmallocs.Count > 0) { m.Kfree(kmallocs[^1]); kmallocs.RemoveAt(kmallocs.Count - 1); }
                    if (pooled.Count > 0) { pool.Free(pooled[^1]); pooled.RemoveAt(pooled.Count - 1); }
                    break;
            }
        }
        Assert.True(failures > 100, $"{failures} failures");
        Assert.True(m.FailPageAlloc.Injected > 0 && m.Failslab.Injected > 0);
        TestSupport.AssertConsistent(m);
        m.FailPageAlloc.Probability = 0;
        m.Failslab.Probability = 0;
        foreach (var p in kmallocs) m.Kfree(p);
        foreach (var (p, o) in pages) m.FreePages(p, o);
        foreach (var b in bufs) b.Put();
        foreach (var v in vmallocs) m.Vfree(v);
        foreach (var o in objs) cache.Free(o);
        foreach (var o in pooled) pool.Free(o);
        pool.Destroy();
        drm.Close();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        TestSupport.AssertConsistent(m);
    }
}
