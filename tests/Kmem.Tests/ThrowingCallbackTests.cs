// Callbacks that throw (issue 19, section 3): slab constructors, shrinkers and mempool functions. Each test
// makes the caller's function throw and checks that the exception reaches the caller (or a WARN reaches the
// log where no caller can take it), that every invariant holds, that counters are as before, and that the
// object can still be used and destroyed.
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public unsafe class ThrowingCallbackTests
{
    private sealed class CallbackFailure(string message) : Exception(message);

    /// <summary>What a slab cache and the page allocator show, to compare before and after a failed allocation.</summary>
    private static string SlabState(Machine m, SlabCache c) =>
        TestSupport.Buddy(m) + Regex.Match(m.ProcFs.Read("/proc/meminfo"), @"Slab:.*\n.*\n.*\n").Value +
        $"slabs={c.Slabs} objects={c.TotalObjects} inuse={c.ObjectsInUse} partial={c.PartialSlabs}";

    // ================================================================== slab constructors

    [Theory]
    [InlineData(256, SlabFlags.None, 0, 0)]
    [InlineData(256, SlabFlags.None, 5, 0)]
    [InlineData(2000, SlabFlags.None, 3, 0)]                                      // a slab of several pages
    [InlineData(256, SlabFlags.None, 5, 16)]                                      // with sheaves
    [InlineData(256, SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser | SlabFlags.ConsistencyChecks, 5, 0)] // slub_debug
    [InlineData(2000, SlabFlags.RedZone | SlabFlags.StoreUser, 2, 0)]
    public void A_throwing_constructor_unwinds_its_slab_and_the_exception_reaches_the_caller(int size, SlabFlags flags, int throwAt, int sheaf)
    {
        using var m = TestSupport.Small();
        bool fail = true;
        int calls = 0;
        var boom = new CallbackFailure("constructor failed");
        var c = m.KmemCacheCreate("ctor_throws", size, flags: flags, ctor: p =>
        {
            if (fail && calls++ == throwAt) throw boom;
            *(int*)p = 0x1234;
        }, sheafCapacity: sheaf);
        string before = SlabState(m, c);
        int logLen = m.Dmesg().Length;

        for (int round = 0; round < 3; round++)
        {
            calls = 0;
            var ex = Assert.Throws<CallbackFailure>(() => c.Alloc(Gfp.Kernel));
            Assert.Same(boom, ex);                                   // the caller's own exception, not a wrapper
        }
        Assert.Equal(before, SlabState(m, c));                      // no slab, no page, no NR_SLAB_* left behind
        Assert.Contains($"ctor_throws: constructor of object {throwAt} of a new slab threw CallbackFailure", m.Dmesg()[logLen..]);
        TestSupport.AssertConsistent(m);

        // The next allocation tries again and, with a constructor that works, succeeds.
        fail = false;
        var objs = Enumerable.Range(0, c.ObjectsPerSlab + 1).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
        Assert.All(objs, o => Assert.Equal(0x1234, *(int*)o));
        Assert.Equal(2, c.Slabs);
        TestSupport.AssertConsistent(m);
        foreach (var o in objs) c.Free(o);
        c.Destroy();                                                // the cache can be destroyed
        TestSupport.AssertConsistent(m);
        Assert.DoesNotContain("Objects remaining", m.Dmesg());
    }

    [Fact]
    public void A_constructor_that_throws_on_a_later_slab_leaves_the_earlier_slabs_and_their_objects_alone()
    {
        using var m = TestSupport.Small();
        bool fail = false;
        var c = m.KmemCacheCreate("ctor_later", 512, ctor: p =>
        {
            if (fail) throw new CallbackFailure("out of widgets");
            *(long*)p = 7;
        });
        var first = Enumerable.Range(0, c.ObjectsPerSlab).Select(_ => c.Alloc(Gfp.Kernel)).ToList(); // one full slab
        string before = SlabState(m, c);
        fail = true;
        Assert.Throws<CallbackFailure>(() => c.Alloc(Gfp.Kernel));
        Assert.Equal(before, SlabState(m, c));
        TestSupport.AssertConsistent(m);
        foreach (var o in first) Assert.Equal(7, *(long*)o);
        foreach (var o in first) c.Free(o);
        c.Destroy();
        TestSupport.AssertConsistent(m);
    }

    private struct Widget
    {
        public int Id;
        public long Stamp;
    }

    [Fact]
    public void A_typed_cache_whose_constructor_throws_reports_it_and_can_be_destroyed()
    {
        using var m = TestSupport.Small();
        bool fail = true;
        var c = m.KmemCacheCreate<Widget>("widget", ctor: (ref Widget w) =>
        {
            if (fail) throw new InvalidOperationException("widget constructor");
            w.Id = 1;
            w.Stamp = 99;
        });
        string before = SlabState(m, c.Cache);
        Assert.Equal("widget constructor", Assert.Throws<InvalidOperationException>(() => c.Alloc(Gfp.Kernel)).Message);
        Assert.Equal(before, SlabState(m, c.Cache));
        fail = false;
        Widget* w = c.Alloc(Gfp.Kernel);
        Assert.Equal(99, w->Stamp);
        c.Free(w);
        c.Destroy();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Threads_that_meet_a_throwing_constructor_all_see_the_exception_and_nothing_is_lost()
    {
        using var m = TestSupport.Small();
        int n = 0;
        var c = m.KmemCacheCreate("ctor_racy", 192, ctor: p =>
        {
            if (Interlocked.Increment(ref n) % 7 == 0) throw new CallbackFailure("every seventh");
        });
        long thrown = 0;
        var threads = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            var mine = new List<nint>();
            for (int i = 0; i < 400; i++)
            {
                try { mine.Add(c.Alloc(Gfp.Kernel)); }
                catch (CallbackFailure) { Interlocked.Increment(ref thrown); }
                if (mine.Count > 40) { foreach (var o in mine) c.Free(o); mine.Clear(); }
            }
            foreach (var o in mine) c.Free(o);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.True(thrown > 0);
        TestSupport.AssertConsistent(m);
        Assert.Equal(0, c.ObjectsInUse);
        Assert.Equal(c.Slabs * c.ObjectsPerSlab, c.TotalObjects);
        c.Destroy();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_slab_mempool_whose_cache_constructor_throws_is_not_created_and_its_alloc_fails_cleanly()
    {
        using var m = TestSupport.Small();
        bool fail = true;
        var c = m.KmemCacheCreate("pool_obj", 128, ctor: _ => { if (fail) throw new CallbackFailure("no"); });
        Assert.Throws<CallbackFailure>(() => m.MempoolCreateSlabPool(4, c));
        Assert.Equal(0, c.ObjectsInUse);
        Assert.Contains("mempool_create pool_obj: the alloc function threw CallbackFailure", m.Dmesg());
        fail = false;
        var pool = m.MempoolCreateSlabPool(4, c)!;
        c.Shrink();
        long slabs = c.Slabs;
        fail = true;
        var held = Enumerable.Range(0, (int)(c.TotalObjects - c.ObjectsInUse)).Select(_ => pool.Alloc(Gfp.Kernel)).ToList();
        Assert.Throws<CallbackFailure>(() => pool.Alloc(Gfp.Kernel));   // a new slab is needed: the constructor throws
        Assert.Equal(4, pool.CurrNr);
        Assert.Equal(held.Count, pool.Outstanding);
        Assert.Equal(slabs, c.Slabs);
        foreach (var e in held) pool.Free(e);
        pool.Destroy();
        Assert.Equal(0, c.ObjectsInUse);
        c.Destroy();
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== shrinkers

    private static List<Page> Exhaust(Machine m)
    {
        var held = new List<Page>();
        // Without waking kswapd: runs that reclaim nothing count as kswapd_failures, and a node with 16 of them is not
        // woken again (6.6 wakeup_kswapd()), which would leave the kswapd test below to a race.
        while (m.AllocPage((Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn) & ~Gfp.KswapdReclaim) is { IsNull: false } p) held.Add(p);
        return held;
    }

    /// <summary>Frees hoarded pages on request, as ReclaimTests' shrinker does.</summary>
    private sealed class Hoard(Machine m, List<Page> pages) : Shrinker("test-hoard")
    {
        public int Scans;
        public override long CountObjects(ShrinkControl sc) { lock (pages) return pages.Count; }
        public override long ScanObjects(ShrinkControl sc)
        {
            Interlocked.Increment(ref Scans);
            long freed = 0;
            lock (pages)
                for (; freed < sc.NrToScan && pages.Count > 0; freed++)
                {
                    m.FreePage(pages[^1]);
                    pages.RemoveAt(pages.Count - 1);
                }
            return freed;
        }

        public void FreeAll() { lock (pages) { foreach (var p in pages) m.FreePage(p); pages.Clear(); } }
    }

    private sealed class Broken(string where) : Shrinker("broken-cache")
    {
        public int Counts, Scans;
        public override long CountObjects(ShrinkControl sc)
        {
            Interlocked.Increment(ref Counts);
            if (where == "count") throw new CallbackFailure("count went wrong");
            return 1000;
        }

        public override long ScanObjects(ShrinkControl sc)
        {
            Interlocked.Increment(ref Scans);
            throw new CallbackFailure("scan went wrong");
        }
    }

    [Theory]
    [InlineData("count")]
    [InlineData("scan")]
    public void A_throwing_shrinker_is_warned_about_and_unregistered_and_reclaim_goes_on_with_the_others(string where)
    {
        using var m = TestSupport.Small();
        var broken = new Broken(where);
        m.RegisterShrinker(broken);                                 // asked first
        var hoard = new Hoard(m, Exhaust(m));
        m.RegisterShrinker(hoard);

        var p = m.AllocPages(Gfp.Kernel, 2);                       // direct reclaim meets the broken shrinker: no exception
        Assert.False(p.IsNull);
        Assert.True(hoard.Scans > 0);                               // the others were asked all the same
        string log = TestSupport.LogText(m);
        string op = where == "count" ? "count_objects" : "scan_objects";
        Assert.Matches($@"------------\[ cut here \]------------\nWARNING: CPU: \d+ PID: \d+ at mm/vmscan.c do_shrink_slab: shrinker broken-cache: {op} threw CallbackFailure: {where} went wrong\nshrinker broken-cache unregistered", log);
        Assert.Single(Regex.Matches(log, "shrinker broken-cache unregistered"));
        Assert.Contains("Tainted:", log);                          // a WARN taints the kernel
        Assert.False(m.UnregisterShrinker(broken));                 // it is gone

        int counts = broken.Counts, scans = broken.Scans;
        m.Reclaim();
        m.Reclaim();
        Assert.Equal((counts, scans), (broken.Counts, broken.Scans)); // never called again
        Assert.DoesNotContain("reclaim failed", log);

        m.RegisterShrinker(broken);                                 // registered anew, it is asked again
        m.Reclaim();
        Assert.True(broken.Counts > counts);
        Assert.Equal(2, Regex.Matches(TestSupport.LogText(m), "shrinker broken-cache unregistered").Count);

        Assert.True(m.UnregisterShrinker(hoard));
        m.FreePages(p, 2);
        hoard.FreeAll();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Kswapd_survives_a_throwing_shrinker_and_goes_on_with_the_others()
    {
        using var m = TestSupport.Small();
        var broken = new Broken("scan");
        m.RegisterShrinker(broken);
        var hoard = new Hoard(m, Exhaust(m));
        m.RegisterShrinker(hoard);
        var extra = m.AllocPage(Gfp.Atomic | Gfp.NoWarn);           // dips below min: wakes kswapd
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((hoard.Scans == 0 || broken.Scans == 0) && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.True(broken.Scans > 0);
        Assert.True(hoard.Scans > 0);
        deadline = DateTime.UtcNow.AddSeconds(10);
        while (!TestSupport.LogText(m).Contains("shrinker broken-cache unregistered") && DateTime.UtcNow < deadline) Thread.Sleep(10);
        string log = TestSupport.LogText(m);
        Assert.Contains("shrinker broken-cache: scan_objects threw CallbackFailure", log);
        Assert.DoesNotContain("kswapd0: reclaim failed", log);
        Assert.False(m.UnregisterShrinker(broken));
        Assert.True(m.UnregisterShrinker(hoard));
        if (!extra.IsNull) m.FreePage(extra);
        hoard.FreeAll();
        TestSupport.AssertConsistent(m);
    }
}
