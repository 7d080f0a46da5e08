// Mempools: the kernel's order of attempts, the reserve, a blocking Alloc that a Free on another
// thread satisfies, resize, the ready-made kinds, and destroy with elements out.
namespace Kmem.Tests;

public class MempoolTests
{
    /// <summary>An allocator that can be switched off and records the flags it was called with.</summary>
    private sealed class Switchable(Machine m)
    {
        public volatile bool Fail;
        public readonly List<Gfp> Calls = [];
        public nint Alloc(Gfp gfp)
        {
            lock (Calls) Calls.Add(gfp);
            return Fail ? 0 : m.Kmalloc(128, gfp);
        }
        public void Free(nint p) => m.Kfree(p);
    }

    [Fact]
    public void The_allocator_comes_first_without_reclaim_then_the_reserve()
    {
        using var m = Machine.Boot("x86_64");
        var a = new Switchable(m);
        var pool = m.MempoolCreate(4, a.Alloc, a.Free, "test")!;
        Assert.Equal(4, pool.CurrNr);
        Assert.All(a.Calls, g => Assert.Equal(Gfp.Kernel, g)); // the reserve is filled with GFP_KERNEL
        a.Calls.Clear();
        nint e = pool.Alloc(Gfp.Kernel);
        Assert.NotEqual(0, e);
        Assert.Equal(4, pool.CurrNr);
        Assert.Equal((Gfp.Kernel | Gfp.NoMemalloc | Gfp.NoRetry | Gfp.NoWarn) & ~(Gfp.DirectReclaim | Gfp.Io), Assert.Single(a.Calls));
        a.Fail = true;
        var fromReserve = Enumerable.Range(0, 4).Select(_ => pool.Alloc(Gfp.Kernel)).ToList();
        Assert.All(fromReserve, x => Assert.NotEqual(0, x));
        Assert.Equal(0, pool.CurrNr);
        a.Calls.Clear();
        Assert.Equal(0, pool.Alloc(Gfp.Atomic)); // may not sleep, nothing to strip: one try
        Assert.Single(a.Calls);
        a.Calls.Clear();
        Assert.Equal(0, pool.Alloc(Gfp.NoWait | Gfp.Io)); // the first try drops __GFP_IO, the retry has the full mask
        Assert.Equal([Gfp.NoWait | Gfp.NoMemalloc | Gfp.NoRetry | Gfp.NoWarn, Gfp.NoWait | Gfp.Io | Gfp.NoMemalloc | Gfp.NoRetry | Gfp.NoWarn], a.Calls);
        foreach (var x in fromReserve) pool.Free(x);   // refills the reserve first
        Assert.Equal(4, pool.CurrNr);
        pool.Free(e);                                   // reserve full: back to the allocator
        Assert.Equal(4, pool.CurrNr);
        Assert.Equal(0, pool.Outstanding);
        pool.Destroy();
        Assert.Equal(0, m.FindSlabCache("kmalloc-128")!.ObjectsInUse);
    }

    [Fact]
    public void A_blocking_alloc_waits_for_a_free_from_another_thread()
    {
        using var m = Machine.Boot("x86_64");
        var a = new Switchable(m);
        var pool = m.MempoolCreate(1, a.Alloc, a.Free, "blocking")!;
        a.Fail = true;
        nint first = pool.Alloc(Gfp.Kernel);
        nint got = 0;
        var waiter = new Thread(() => got = pool.Alloc(Gfp.Kernel));
        waiter.Start();
        SpinWait.SpinUntil(() => pool.Waits > 0, 5000);
        Assert.True(waiter.IsAlive, "the allocation must block, not fail");
        Assert.Equal(0, got);
        pool.Free(first); // refills the reserve and wakes the waiter
        Assert.True(waiter.Join(5000));
        Assert.Equal(first, got);
        pool.Free(got);
        pool.Destroy();
    }

    [Fact]
    public void Resize_shrinks_and_grows_the_reserve()
    {
        using var m = Machine.Boot("x86_64");
        var cache = m.KmemCacheCreate("pool_obj", 256, 0, SlabFlags.NoMerge);
        var pool = m.MempoolCreateSlabPool(8, cache)!;
        Assert.Equal(8, cache.ObjectsInUse);
        pool.Resize(3);
        Assert.Equal((3, 3), (pool.MinNr, pool.CurrNr));
        Assert.Equal(3, cache.ObjectsInUse);
        pool.Resize(10);
        Assert.Equal((10, 10), (pool.MinNr, pool.CurrNr));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Resize(0));
        pool.Destroy();
        Assert.Equal(0, cache.ObjectsInUse);
        cache.Destroy();
    }

    [Fact]
    public void Kmalloc_and_page_pools_use_their_allocators()
    {
        using var m = Machine.Boot("x86_64");
        var k = m.MempoolCreateKmallocPool(2, 300)!;
        nint b = k.Alloc(Gfp.Kernel);
        Assert.Equal((nuint)512, m.Ksize(b));
        k.Free(b);
        k.Destroy();
        // Order-1 elements are 8 KiB buddy blocks: they bypass the per-CPU lists, so the zones' free counts show each
        // element as two pages, and each starts at an even PFN.
        long Free() => m.Zones.Sum(z => z.FreePages);
        long free = Free();
        var p = m.MempoolCreatePagePool(2, 1)!;
        Assert.Equal(free - 2 * 2, Free());                            // the reserve: two elements
        nint pg = p.Alloc(Gfp.Kernel);                                 // mempool_alloc tries the allocator first
        Assert.Equal(free - 3 * 2, Free());
        var page = m.VirtToPage(pg);
        Assert.Equal(m.PageAddress(page), pg);
        Assert.Equal(0UL, m.PageToPfn(page) % 2);
        var bytes = m.PageSpan(page, 1);
        Assert.Equal(8192, bytes.Length);
        bytes.Fill(0x5a);
        p.Free(pg);                                                    // the reserve is full: back to the allocator
        Assert.Equal(free - 2 * 2, Free());
        p.Destroy();
        Assert.Equal(free, Free());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Destroy_with_elements_out_is_reported_and_the_pool_stays_usable()
    {
        using var m = Machine.Boot("x86_64");
        var pool = m.MempoolCreateKmallocPool(2, 64)!;
        nint e = pool.Alloc(Gfp.Kernel);
        var ex = Assert.Throws<SlabException>(() => pool.Destroy());
        Assert.Equal(SlabError.Misuse, ex.Error);
        Assert.Contains("mempool_destroy kmalloc-64: 1 element(s) still in use", m.Dmesg());
        Assert.Equal(2, pool.CurrNr);
        pool.Free(e);
        pool.Destroy();
        Assert.Throws<ObjectDisposedException>(() => pool.Alloc(Gfp.Kernel));
    }

    [Fact]
    public void A_reserve_that_cannot_be_filled_gives_no_pool_and_keeps_nothing()
    {
        using var m = TestSupport.Small();
        var before = TestSupport.Buddy(m);
        Assert.Null(m.MempoolCreatePagePool(10_000, 0));
        Assert.Equal(before, TestSupport.Buddy(m));
    }
}
