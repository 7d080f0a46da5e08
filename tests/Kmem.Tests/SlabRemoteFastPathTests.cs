// The free fast paths for objects of another thread's slab: a run of frees to one foreign slab joins the
// thread's detached freelist, and a run of frees into a sheaf from one slab goes into the main sheaf, both
// without reading a page descriptor. Each test checks the misuse that path must still catch (double free,
// interior pointer, wrong cache after the slab went away) and that nothing is lost.
using System.Collections.Concurrent;

namespace Kmem.Tests;

public sealed unsafe class SlabRemoteFastPathTests
{
    /// <summary>Runs actions one after another on one dedicated thread (the "other CPU"), rethrowing what they throw.</summary>
    private sealed class OtherThread : IDisposable
    {
        private readonly BlockingCollection<(Action Body, TaskCompletionSource Done)> _work = new();
        private readonly Thread _thread;

        public OtherThread()
        {
            _thread = new Thread(() =>
            {
                foreach (var (body, done) in _work.GetConsumingEnumerable())
                {
                    try { body(); done.SetResult(); } catch (Exception e) { done.SetException(e); }
                }
            }) { IsBackground = true };
            _thread.Start();
        }

        public void Run(Action body)
        {
            var done = new TaskCompletionSource();
            _work.Add((body, done));
            try { done.Task.Wait(); } catch (AggregateException e) when (e.InnerException is { } inner) { throw inner; }
        }

        public void Dispose()
        {
            _work.CompleteAdding();
            _thread.Join();
        }
    }

    private static nint[] AllocSlabs(SlabCache c, int slabs) =>
        Enumerable.Range(0, slabs * c.ObjectsPerSlab).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    public void A_run_of_frees_to_one_foreign_slab_refuses_a_double_free_and_an_interior_pointer_and_loses_nothing(int sheaf)
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("rf_run", 96, 0, SlabFlags.NoMerge, sheafCapacity: sheaf);
        var objs = AllocSlabs(c, 3);
        long inUse = c.ObjectsInUse;
        using var b = new OtherThread();
        // The first slab's objects are not in the other thread's CPU slab: its frees take the remote paths.
        b.Run(() => { for (int i = 0; i < 10; i++) c.Free(objs[i]); });
        Assert.Equal(inUse - 10, c.ObjectsInUse);
        foreach (int i in new[] { 9, 4, 0 })
            b.Run(() => Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[i])).Error));
        b.Run(() => Assert.Equal(SlabError.InvalidPointer, Assert.Throws<SlabException>(() => c.Free(objs[12] + 8)).Error));
        Assert.Equal(inUse - 10, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        // The run goes on after the refusals, and the main thread's double free of one of them is refused as well.
        b.Run(() => { for (int i = 10; i < 20; i++) c.Free(objs[i]); });
        Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[15])).Error);
        Assert.Equal(inUse - 20, c.ObjectsInUse);
        foreach (nint p in objs.Skip(20)) c.Free(p);
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        // Nothing is handed out twice.
        var again = AllocSlabs(c, 3);
        Assert.Equal(again.Length, again.Distinct().Count());
        Assert.Equal(again.Length, c.ObjectsInUse);
        foreach (nint p in again) c.Free(p);
        c.Destroy();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void More_frees_to_one_foreign_slab_than_a_detached_batch_holds_are_pushed_in_batches()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("rf_batch", 8, 0, SlabFlags.NoMerge);
        Assert.True(c.ObjectsPerSlab > SlabCache.RemoteBatch + 7, $"{c.ObjectsPerSlab} objects per slab");
        var objs = AllocSlabs(c, 2);
        using var b = new OtherThread();
        int n = SlabCache.RemoteBatch + 7;
        int detached = -1;
        b.Run(() => { for (int i = 0; i < n; i++) c.Free(objs[i]); detached = c.FreeFastPathState().Detached; });
        Assert.InRange(detached, 1, n - SlabCache.RemoteBatch); // a full batch was pushed; the rest waits on the list
        Assert.Equal(objs.Length - n, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        // Whichever batch an object went with, freeing it again is refused.
        foreach (int i in new[] { 0, SlabCache.RemoteBatch - 1, SlabCache.RemoteBatch, n - 1 })
            b.Run(() => Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[i])).Error));
        foreach (nint p in objs.Skip(n)) c.Free(p);
        Assert.Equal(0, c.ObjectsInUse);
        var again = AllocSlabs(c, 2);
        Assert.Equal(again.Length, again.Distinct().Count());
        foreach (nint p in again) c.Free(p);
        TestSupport.AssertConsistent(m);
    }

    /// <summary>
    /// The slab a fast path last checked goes away (flushed by a shrink on another thread, then freed), and its page
    /// becomes another cache's slab: a free of that cache's object to the first cache must be refused as a wrong
    /// cache, not taken by the fast path on the strength of the old check.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    public void After_a_shrink_a_stale_slab_range_is_checked_again_and_a_wrong_cache_free_is_refused(int sheaf)
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("rf_stale", 128, 0, SlabFlags.NoMerge, sheafCapacity: sheaf);
        var d = m.KmemCacheCreate("rf_other", 128, 0, SlabFlags.NoMerge);
        var objs = AllocSlabs(c, 2);
        int perSlab = c.ObjectsPerSlab;
        using var b = new OtherThread();
        // The other thread's free of the first slab's object sets its fast path on that slab.
        b.Run(() => c.Free(objs[0]));
        for (int i = 1; i < perSlab; i++) c.Free(objs[i]);
        c.Shrink();                                        // every thread's lists and sheaves flushed; the empty slab freed
        nint first = objs[0] & ~(nint)(Machine.PageSize - 1);
        // Another cache's new slab takes the freed page (the page allocator hands the page freed last out first).
        var dObjs = new List<nint>();
        for (int i = 0; i < 4 * d.ObjectsPerSlab && !dObjs.Any(p => (p & ~(nint)(Machine.PageSize - 1)) == first); i++)
            dObjs.Add(d.Alloc(Gfp.Kernel));
        nint reused = dObjs.FirstOrDefault(p => (p & ~(nint)(Machine.PageSize - 1)) == first);
        Assert.True(reused != 0, "the freed slab's page was not reused by the other cache");
        long dInUse = d.ObjectsInUse;
        b.Run(() => Assert.Equal(SlabError.WrongCache, Assert.Throws<SlabException>(() => c.Free(reused)).Error));
        Assert.Equal(dInUse, d.ObjectsInUse);
        Assert.Equal(perSlab, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        foreach (nint p in dObjs) d.Free(p);
        foreach (nint p in objs.Skip(perSlab)) c.Free(p);
        Assert.Equal(0, c.ObjectsInUse);
        Assert.Equal(0, d.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    /// <summary>
    /// The sheaf's fast path relies on the object that set it staying in the main sheaf (so that its slab stays this
    /// cache's): every step that takes an object out of the main sheaf, replaces the sheaf or flushes it drops the
    /// fast path, and the next free is checked against the page descriptor again.
    /// </summary>
    [Fact]
    public void Every_step_that_takes_from_or_replaces_the_main_sheaf_drops_its_fast_path()
    {
        using var m = Machine.Boot("x86_64");
        const int Capacity = 4;
        var c = m.KmemCacheCreate("rf_pin", 128, 0, SlabFlags.NoMerge, sheafCapacity: Capacity);
        var objs = AllocSlabs(c, 3);
        using var b = new OtherThread();
        (nuint Remote, nuint Sheaf, int InSheaf, int Detached) state = default;
        void Look() => state = c.FreeFastPathState();
        nuint slabBytes = (nuint)(c.ObjectsPerSlab * c.Size);

        b.Run(() => { c.Free(objs[0]); Look(); });          // the checked path sets the fast path on the first slab
        Assert.Equal((0u, slabBytes, 1), ((uint)state.Remote, state.Sheaf, state.InSheaf));
        b.Run(() => { c.Free(objs[1]); c.Free(objs[2]); Look(); });
        Assert.Equal((slabBytes, 3), (state.Sheaf, state.InSheaf));
        b.Run(() => { nint p = c.Alloc(Gfp.Kernel); Assert.Equal(objs[2], p); Look(); c.Free(p); });
        Assert.Equal((0u, 2), ((uint)state.Sheaf, state.InSheaf));   // the pop dropped it
        b.Run(Look);                                           // the free after the pop took the checked path and set it again
        Assert.Equal((slabBytes, 3), (state.Sheaf, state.InSheaf));
        // A full sheaf goes to the barn: the new main sheaf holds nothing of the slab yet.
        b.Run(() => { c.Free(objs[3]); c.Free(objs[4]); Look(); });
        Assert.Equal(1, state.InSheaf);
        Assert.Equal(slabBytes, state.Sheaf);                  // set again by the object that went into the new sheaf
        // A flush by another thread (shrink) empties the sheaf and drops the fast path.
        c.Shrink();
        b.Run(Look);
        Assert.Equal((0u, 0), ((uint)state.Sheaf, state.InSheaf));
        // The slow allocation path takes from the sheaf too: it drops the fast path as well.
        b.Run(() => { c.Free(objs[5]); c.Free(objs[6]); });
        b.Run(() => { for (int i = 0; i < 2; i++) Assert.NotEqual(0, c.Alloc(Gfp.Kernel)); Look(); });
        Assert.Equal(0u, (uint)state.Sheaf);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_detached_freelist_fast_path_ends_when_its_list_is_pushed()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("rf_detach", 128, 0, SlabFlags.NoMerge);
        var objs = AllocSlabs(c, 3);
        int perSlab = c.ObjectsPerSlab;
        nuint slabBytes = (nuint)(perSlab * c.Size);
        using var b = new OtherThread();
        (nuint Remote, nuint Sheaf, int InSheaf, int Detached) state = default;
        b.Run(() => { c.Free(objs[0]); c.Free(objs[1]); state = c.FreeFastPathState(); });
        Assert.Equal(slabBytes, state.Remote);
        // A free to another slab pushes the list and starts one on that slab.
        b.Run(() => { c.Free(objs[perSlab]); state = c.FreeFastPathState(); });
        Assert.Equal(slabBytes, state.Remote);
        Assert.Equal(objs.Length - 3, c.ObjectsInUse);
        // Its own allocation slow path pushes the list first: the fast path ends.
        b.Run(() => { nint p = c.Alloc(Gfp.Kernel); state = c.FreeFastPathState(); c.Free(p); });
        Assert.Equal(0u, (uint)state.Remote);
        c.Shrink();
        b.Run(() => state = c.FreeFastPathState());
        Assert.Equal(0u, (uint)state.Remote);
        foreach (nint p in objs.Skip(2).Where(p => p != objs[perSlab])) c.Free(p);
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_free_after_the_machine_is_disposed_is_refused_even_with_a_fast_path_set()
    {
        var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("rf_dead", 128, 0, SlabFlags.NoMerge, sheafCapacity: 16);
        var objs = AllocSlabs(c, 2);
        using var b = new OtherThread();
        b.Run(() => c.Free(objs[0]));                      // the sheaf's fast path is set on the first slab
        m.Dispose();
        b.Run(() => Assert.ThrowsAny<ObjectDisposedException>(() => c.Free(objs[1])));
    }
}
