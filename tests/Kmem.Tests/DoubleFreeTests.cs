// Double frees of slab objects without debug flags: every second free is caught and refused with
// nothing changed, wherever the object sits (hot object, CPU freelist, slab freelist, another
// thread's detached freelist, a sheaf or the barn), from the freeing thread or another one; and a
// randomized campaign from three threads against a model in which no address is ever live twice.
using System.Collections.Concurrent;

namespace Kmem.Tests;

public sealed unsafe class DoubleFreeTests
{
    [Fact]
    public void Kfree_p_then_q_then_p_is_refused_and_p_and_q_come_back_once_each()
    {
        using var m = Machine.Boot("x86_64");
        nint p = m.Kmalloc(128, Gfp.Kernel), q = m.Kmalloc(128, Gfp.Kernel);
        m.Kfree(p);
        m.Kfree(q);
        var e = Assert.Throws<SlabException>(() => m.Kfree(p));
        Assert.Equal(SlabError.DoubleFree, e.Error);
        Assert.Equal("kmalloc-128", e.Cache);
        Assert.Contains("BUG kmalloc-128 (Not tainted): Object already free", m.Dmesg());
        var again = Enumerable.Range(0, 4).Select(_ => m.Kmalloc(128, Gfp.Kernel)).ToArray();
        Assert.Equal(4, again.Distinct().Count());
        Assert.Single(again, a => a == p);
        Assert.Single(again, a => a == q);
        foreach (nint a in again) m.Kfree(a);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_second_free_from_another_thread_is_refused()
    {
        using var m = Machine.Boot("x86_64");
        nint p = m.Kmalloc(128, Gfp.Kernel), q = m.Kmalloc(128, Gfp.Kernel);
        m.Kfree(p);
        m.Kfree(q);
        Exception? seen = null;
        var t = new Thread(() => seen = Record(() => m.Kfree(p)));
        t.Start();
        t.Join();
        Assert.Equal(SlabError.DoubleFree, Assert.IsType<SlabException>(seen).Error);
        var again = Enumerable.Range(0, 2).Select(_ => m.Kmalloc(128, Gfp.Kernel)).ToHashSet();
        Assert.Equal(new HashSet<nint> { p, q }, again);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_object_on_another_threads_detached_freelist_or_deep_in_a_cpu_freelist_is_found()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("df_lists", 96, 0, SlabFlags.NoMerge);
        var objs = Enumerable.Range(0, 3 * c.ObjectsPerSlab).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();
        // Another thread frees a run of the first slab: they wait on its detached freelist.
        var t = new Thread(() => { for (int i = 0; i < 5; i++) c.Free(objs[i]); });
        t.Start();
        t.Join();
        long inUse = c.ObjectsInUse;
        Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[2])).Error);
        // This thread frees objects of its CPU slab (the last one): the hot object and several deep in the freelist.
        int last = objs.Length - 1;
        for (int i = 0; i < 6; i++) c.Free(objs[last - i]);
        foreach (int i in new[] { last, last - 3, last - 5 })
            Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[i])).Error);
        Assert.Equal(inUse - 6, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        c.Shrink();                                        // everything flushed to the slabs' own freelists
        Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[1])).Error);
        Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(objs[last - 2])).Error);
        TestSupport.AssertConsistent(m);
        var back = Enumerable.Range(0, 11).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();
        Assert.Equal(11, back.Distinct().Count());
        Assert.Empty(back.Intersect(objs.Skip(5).Take(objs.Length - 11)));
    }

    [Fact]
    public void An_object_whose_contents_happen_to_look_free_is_still_freed()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("df_lookalike", 64, 0, SlabFlags.NoMerge);
        nint a = c.Alloc(Gfp.Kernel), b = c.Alloc(Gfp.Kernel);
        c.Free(b);
        // Copy a free object's bytes (its free pointer included) into a live one: the lookup must not find it free.
        nint d = c.Alloc(Gfp.Kernel);
        Assert.Equal(b, d);
        nint e = c.Alloc(Gfp.Kernel);
        c.Free(e);
        new ReadOnlySpan<byte>((void*)e, 64).CopyTo(new Span<byte>((void*)a, 64));
        c.Free(a);                                         // a legal free: no exception
        Assert.DoesNotContain("Object already free", m.Dmesg());
        c.Free(d);
        TestSupport.AssertConsistent(m);
        Assert.Equal(0, c.ObjectsInUse);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Random_double_frees_from_three_threads_are_all_caught_and_no_address_is_live_twice(int seed)
    {
        using var m = Machine.Boot("x86_64");
        var plain = m.KmemCacheCreate("df_plain", 128, 0, SlabFlags.NoMerge);
        var sheafy = m.KmemCacheCreate("df_sheaf", 128, 0, SlabFlags.NoMerge, sheafCapacity: 16);
        const int Threads = 3, Ops = 40_000;
        // Normal operations run concurrently (read side); a double free runs alone (write side), so that the model
        // knows exactly which addresses are free at that moment.
        var gate = new ReaderWriterLockSlim();
        var live = new ConcurrentDictionary<nint, int>();         // address -> kind (0 kmalloc, 1 plain, 2 sheafy)
        var freed = new ConcurrentDictionary<nint, int>();        // freed and not handed out since
        var handoff = Enumerable.Range(0, Threads).Select(_ => new ConcurrentQueue<(nint, int)>()).ToArray();
        long attempts = 0, caught = 0;
        var failures = new ConcurrentQueue<string>();

        void Free(nint p, int kind)
        {
            if (kind == 0) m.Kfree(p); else if (kind == 1) plain.Free(p); else sheafy.Free(p);
        }

        void Worker(int id)
        {
            var rnd = new Random(seed * 100 + id);
            var mine = new List<(nint P, int Kind)>();
            for (int op = 0; op < Ops && failures.IsEmpty; op++)
            {
                int r = rnd.Next(100);
                if (r < 2)
                {
                    gate.EnterWriteLock();
                    try
                    {
                        if (freed.IsEmpty) continue;
                        var victims = freed.Keys.ToArray();
                        nint p = victims[rnd.Next(victims.Length)];
                        int kind = freed[p];
                        attempts++;
                        try
                        {
                            Free(p, kind);
                            failures.Enqueue($"seed {seed}: the second free of 0x{p:x} (kind {kind}) from thread {id} was accepted");
                        }
                        catch (SlabException e) when (e.Error == SlabError.DoubleFree) { caught++; }
                        catch (KmemException) { caught++; }           // its slab went back to the page allocator meanwhile
                    }
                    finally { gate.ExitWriteLock(); }
                    continue;
                }
                gate.EnterReadLock();
                try
                {
                    if (r < 50 || mine.Count == 0)
                    {
                        int kind = rnd.Next(3);
                        nint p = kind == 0 ? m.Kmalloc((nuint)rnd.Next(97, 129), Gfp.Kernel) : kind == 1 ? plain.Alloc(Gfp.Kernel) : sheafy.Alloc(Gfp.Kernel);
                        freed.TryRemove(p, out _);
                        if (!live.TryAdd(p, kind)) failures.Enqueue($"seed {seed}: 0x{p:x} handed out while live");
                        if (rnd.Next(2) == 0) handoff[(id + 1 + rnd.Next(Threads - 1)) % Threads].Enqueue((p, kind));
                        else mine.Add((p, kind));
                    }
                    else
                    {
                        (nint p, int kind) = handoff[id].TryDequeue(out var h) ? h : Take(mine, rnd);
                        live.TryRemove(p, out _);
                        freed[p] = kind;
                        Free(p, kind);
                    }
                }
                finally { gate.ExitReadLock(); }
            }
            foreach (var (p, kind) in mine) { live.TryRemove(p, out _); Free(p, kind); }
        }

        var threads = Enumerable.Range(0, Threads).Select(i => new Thread(() =>
        {
            try { Worker(i); } catch (Exception e) { failures.Enqueue($"seed {seed}, thread {i}: {e}"); }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        foreach (var q in handoff)
            while (q.TryDequeue(out var h)) { live.TryRemove(h.Item1, out _); Free(h.Item1, h.Item2); }

        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)));
        Assert.True(attempts > 500, $"only {attempts} double frees were tried");
        Assert.Equal(attempts, caught);
        Assert.Empty(live);
        Assert.Equal(0, plain.ObjectsInUse);
        Assert.Equal(0, sheafy.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    private static (nint, int) Take(List<(nint P, int Kind)> list, Random rnd)
    {
        int i = rnd.Next(list.Count);
        var x = list[i];
        list[i] = list[^1];
        list.RemoveAt(list.Count - 1);
        return x;
    }

    private static Exception? Record(Action a)
    {
        try { a(); return null; } catch (Exception e) { return e; }
    }
}
