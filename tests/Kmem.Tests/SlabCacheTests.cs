// Slab caches as a user sees them: real memory, constructors once per object, LIFO reuse, merging,
// destroy with live objects, shrink and memory pressure, the typed face, and bad input.
namespace Kmem.Tests;

public unsafe class SlabCacheTests
{
    [Fact]
    public void Objects_are_real_aligned_memory_and_the_last_freed_comes_back_first()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("obj100", 100, 0, SlabFlags.HwcacheAlign);
        Assert.Equal((128, 64), (c.Size, c.Align));
        var objs = Enumerable.Range(0, 100).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
        Assert.All(objs, o => Assert.Equal(0, o % 64));
        Assert.Equal(100, objs.Distinct().Count());
        for (int i = 0; i < objs.Count; i++) new Span<byte>((void*)objs[i], 100).Fill((byte)i);
        for (int i = 0; i < objs.Count; i++) Assert.True(new Span<byte>((void*)objs[i], 100).IndexOfAnyExcept((byte)i) < 0);
        Assert.Equal(100, c.ObjectsInUse);
        nint last = objs[^1];
        c.Free(last);
        Assert.Equal(last, c.Alloc(Gfp.Kernel));
        foreach (var o in objs) c.Free(o);
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        c.Destroy();
    }

    [Fact]
    public void A_constructor_runs_once_per_object_when_its_slab_is_made()
    {
        using var m = Machine.Boot("x86_64");
        int calls = 0;
        var c = m.KmemCacheCreate("ctor_obj", 64, 0, SlabFlags.None, p => { calls++; *(long*)p = 0x1234; });
        nint a = c.Alloc(Gfp.Kernel);
        Assert.Equal(c.ObjectsPerSlab, calls);
        Assert.Equal(0x1234, *(long*)a);
        *(long*)a = 0x1234; // the caller returns it in constructed state, as the kernel expects
        c.Free(a);
        for (int i = 0; i < 10; i++) c.Free(c.Alloc(Gfp.Kernel));
        Assert.Equal(c.ObjectsPerSlab, calls); // no constructor call per allocation
        Assert.Equal(72, c.Size); // the free pointer moved after the object
    }

    [Fact]
    public void Zero_clears_the_object_and_slabs_are_counted_in_meminfo()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("zero_obj", 300, 0, SlabFlags.ReclaimAccount | SlabFlags.NoMerge);
        nint a = c.Alloc(Gfp.Kernel);
        new Span<byte>((void*)a, 300).Fill(0xee);
        c.Free(a);
        nint b = c.Alloc(Gfp.Kernel | Gfp.Zero);
        Assert.Equal(a, b);
        Assert.True(new Span<byte>((void*)b, 300).IndexOfAnyExcept((byte)0) < 0);
        string meminfo = m.ProcFs.Read("/proc/meminfo");
        long sRecl = long.Parse(System.Text.RegularExpressions.Regex.Match(meminfo, @"SReclaimable:\s+(\d+) kB").Groups[1].Value);
        Assert.Equal(c.Slabs * (4L << c.Order), sRecl);
        c.Free(b);
    }

    [Fact]
    public void Compatible_caches_merge_unless_a_flag_or_constructor_forbids_it()
    {
        using var m = Machine.Boot("x86_64");
        var a = m.KmemCacheCreate("merge_a", 120);
        var b = m.KmemCacheCreate("merge_b", 118);
        Assert.True(b.IsAlias);
        Assert.Same(a, b.Root);
        nint o = b.Alloc(Gfp.Kernel);
        a.Free(o); // the same cache underneath
        Assert.DoesNotContain("merge_b", m.ProcFs.Read("/proc/slabinfo"));
        Assert.Equal("1\n", m.ProcFs.Read("/sys/kernel/slab/merge_a/aliases"));
        Assert.False(m.KmemCacheCreate("merge_c", 120, 0, SlabFlags.NoMerge).IsAlias);
        Assert.False(m.KmemCacheCreate("merge_d", 120, 0, 0, _ => { }).IsAlias);
        Assert.False(m.KmemCacheCreate("merge_e", 120, 0, SlabFlags.ReclaimAccount).IsAlias); // different MERGE_SAME bits
        b.Destroy();
        Assert.Throws<ObjectDisposedException>(() => b.Alloc(Gfp.Kernel));
        a.Destroy();
        using var nomerge = Machine.Boot("x86_64", "slab_nomerge");
        nomerge.KmemCacheCreate("merge_a", 120);
        Assert.False(nomerge.KmemCacheCreate("merge_b", 118).IsAlias);
    }

    [Fact]
    public void Destroy_with_live_objects_reports_them_and_the_cache_stays_usable()
    {
        using var m = Machine.Boot("x86_64", "slub_debug=U,busy_obj");
        var c = m.KmemCacheCreate("busy_obj", 64, 0, SlabFlags.NoMerge);
        nint a = c.Alloc(Gfp.Kernel);
        nint b = c.Alloc(Gfp.Kernel);
        c.Free(b);
        var ex = Assert.Throws<SlabException>(() => c.Destroy());
        Assert.Equal(SlabError.CacheInUse, ex.Error);
        string log = m.Dmesg();
        Assert.Contains("BUG busy_obj (Not tainted): Objects remaining in busy_obj on __kmem_cache_shutdown()", log);
        Assert.Contains($"INFO: Object 0x{a:x16} @offset=", log);
        Assert.Contains("INFO: Allocated in Destroy_with_live_objects_reports_them_and_the_cache_stays_usable+SlabCacheTests.cs:", log);
        Assert.Contains("kmem_cache_destroy busy_obj: Slab cache still has objects", log);
        Assert.DoesNotContain($"INFO: Object 0x{b:x16} @offset=", log);
        *(long*)a = 42; // still ours
        nint again = c.Alloc(Gfp.Kernel);
        c.Free(again);
        c.Free(a);
        c.Destroy();
        Assert.Null(m.FindSlabCache("busy_obj"));
        Assert.Throws<ObjectDisposedException>(() => c.Alloc(Gfp.Kernel));
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("", 64, 0, "a cache needs a name")]
    [InlineData("bad name", 64, 0, "may not contain")]
    [InlineData("zero", 0, 0, "size 0 is not positive")]
    [InlineData("huge", 8 << 20, 0, "above the slab maximum")]
    [InlineData("align3", 64, 3, "alignment 3 is not a power of two")]
    [InlineData("alignbig", 64, 8192, "above the page size")]
    public void Bad_cache_parameters_are_clear_errors(string name, int size, int align, string message)
    {
        using var m = Machine.Boot("x86_64");
        int before = m.SlabCaches.Count;
        var ex = Assert.Throws<SlabException>(() => m.KmemCacheCreate(name, size, align));
        Assert.Contains(message, ex.Message);
        Assert.Equal(before, m.SlabCaches.Count);
        Assert.Contains("failed with error -22", m.Dmesg());
    }

    [Fact]
    public void Duplicate_names_are_rejected()
    {
        using var m = Machine.Boot("x86_64");
        m.KmemCacheCreate("dup", 64);
        Assert.Contains("already exists", Assert.Throws<SlabException>(() => m.KmemCacheCreate("dup", 128)).Message);
        Assert.Contains("already exists", Assert.Throws<SlabException>(() => m.KmemCacheCreate("kmalloc-64", 64)).Message);
    }

    [Fact]
    public void Shrink_returns_every_cached_slab_and_memory_pressure_does_too()
    {
        using var m = TestSupport.Small();
        var c = m.KmemCacheCreate("shrinkme", 512, 0, SlabFlags.NoMerge);
        var objs = Enumerable.Range(0, 2000).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
        long slabs = c.Slabs;
        Assert.True(slabs >= 2000 / c.ObjectsPerSlab);
        foreach (var o in objs) c.Free(o);
        Assert.True(c.Slabs > 0); // min_partial slabs and the thread's CPU slab stay cached
        Assert.True(c.Shrink() > 0);
        Assert.Equal(0, c.Slabs);
        TestSupport.AssertConsistent(m);

        // Under pressure the slab shrinker gives the cached slabs back without being asked.
        objs = Enumerable.Range(0, 2000).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
        foreach (var o in objs) c.Free(o);
        long cached = c.Slabs;
        Assert.True(cached > 0);
        var pages = new List<Page>();
        while (true)
        {
            var p = m.AllocPage(Gfp.Kernel | Gfp.NoWarn);
            if (p.IsNull) break;
            pages.Add(p);
        }
        Assert.Equal(0, c.Slabs);
        foreach (var p in pages) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Typed_caches_hand_out_structs()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate<Packet>("packet", SlabFlags.HwcacheAlign, (ref Packet p) => p.Magic = 0xfeed);
        Packet* p = c.Alloc(Gfp.Kernel);
        Assert.Equal(0xfeedu, p->Magic);
        p->Length = 1500;
        ref Packet r = ref c.AllocRef(Gfp.Kernel);
        r.Length = 60;
        Assert.Equal(1500, p->Length);
        c.Free(ref r);
        c.Free(p);
        Assert.Equal(sizeof(Packet), c.Cache.ObjectSize);
        c.Destroy();
    }

    private struct Packet
    {
        public uint Magic;
        public int Length;
        public long Stamp;
        public fixed byte Header[48];
    }

    [Fact]
    public void A_pointer_of_another_cache_or_of_no_slab_is_rejected_without_damage()
    {
        using var m = Machine.Boot("x86_64");
        var a = m.KmemCacheCreate("cache_a", 64, 0, SlabFlags.NoMerge);
        var b = m.KmemCacheCreate("cache_b", 64, 0, SlabFlags.NoMerge);
        nint oa = a.Alloc(Gfp.Kernel), ob = b.Alloc(Gfp.Kernel);
        string before = m.ProcFs.Read("/proc/slabinfo");
        Assert.Equal(SlabError.WrongCache, Assert.Throws<SlabException>(() => b.Free(oa)).Error);
        Assert.Contains("cache_from_obj: Wrong slab cache. cache_b but object is from cache_a", m.Dmesg());
        Assert.Equal(SlabError.InvalidPointer, Assert.Throws<SlabException>(() => a.Free(oa + 8)).Error);
        Assert.Contains("Invalid object pointer", m.Dmesg());
        nint page = m.GetFreePages(Gfp.Kernel, 0);
        Assert.Equal(SlabError.InvalidPointer, Assert.Throws<SlabException>(() => a.Free(page)).Error);
        Assert.Throws<InvalidAddressException>(() => a.Free(12345));
        Assert.Equal(before, m.ProcFs.Read("/proc/slabinfo"));
        Assert.Equal(1, a.ObjectsInUse);
        a.Free(oa);
        b.Free(ob);
        m.FreePages(page, 0);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_naive_double_free_is_caught_without_debug_flags()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("naive", 64, 0, SlabFlags.NoMerge);
        nint o = c.Alloc(Gfp.Kernel);
        nint keep = c.Alloc(Gfp.Kernel);
        c.Free(o);
        var ex = Assert.Throws<SlabException>(() => c.Free(o));
        Assert.Equal(SlabError.DoubleFree, ex.Error);
        Assert.Contains("BUG naive (Not tainted): Object already free", m.Dmesg());
        Assert.Equal(1, c.ObjectsInUse);
        Assert.Equal(o, c.Alloc(Gfp.Kernel)); // the freelist is intact: o comes back once
        Assert.NotEqual(o, c.Alloc(Gfp.Kernel));
        TestSupport.AssertConsistent(m);
        _ = keep;
    }

    [Fact]
    public void The_object_allocated_last_takes_the_short_free_and_every_check_still_holds()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("last_alloc", 64, 0, SlabFlags.NoMerge);
        // Alloc then free at once (the short path); a second free of it is still a naive double free.
        nint o = c.Alloc(Gfp.Kernel);
        c.Free(o);
        Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(o)).Error);
        Assert.Equal(0, c.ObjectsInUse);
        // An interior pointer of the object allocated last is refused; the object itself then frees.
        nint p = c.Alloc(Gfp.Kernel);
        Assert.Equal(o, p);
        Assert.Equal(SlabError.InvalidPointer, Assert.Throws<SlabException>(() => c.Free(p + 8)).Error);
        Assert.Equal(1, c.ObjectsInUse);
        c.Free(p);
        // The CPU slab goes away between the allocation and the free (a shrink flushes it): the free takes the
        // remote path, and a second free is caught there.
        nint q = c.Alloc(Gfp.Kernel);
        nint keep = c.Alloc(Gfp.Kernel);
        nint r = c.Alloc(Gfp.Kernel);
        c.Shrink();
        c.Free(r);
        Assert.Equal(SlabError.DoubleFree, Assert.Throws<SlabException>(() => c.Free(r)).Error);
        Assert.Equal(2, c.ObjectsInUse);
        // Freed by another thread while it is this thread's last allocation: the object is not handed out twice.
        nint s = c.Alloc(Gfp.Kernel);
        var t = new Thread(() => c.Free(s));
        t.Start();
        t.Join();
        var again = Enumerable.Range(0, 3 * c.ObjectsPerSlab).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
        Assert.Equal(again.Count, again.Distinct().Count());
        Assert.DoesNotContain(q, again);
        Assert.DoesNotContain(keep, again);
        foreach (var x in again) c.Free(x);
        c.Free(q);
        c.Free(keep);
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        c.Shrink();
        Assert.Equal(0, c.Slabs);
    }

    [Fact]
    public void A_write_after_free_that_corrupts_the_hardened_free_pointer_is_isolated_not_followed()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("hardened", 64, 0, SlabFlags.NoMerge);
        nint a = c.Alloc(Gfp.Kernel), b = c.Alloc(Gfp.Kernel), d = c.Alloc(Gfp.Kernel);
        c.Free(d);
        c.Free(b);
        c.Free(a);                                      // a is the hot object; the freelist is b -> d -> ...
        new Span<byte>((void*)b, 64).Fill(0x41);        // the bug: writes over b's free pointer
        Assert.Equal(a, c.Alloc(Gfp.Kernel));           // the last freed comes back first
        nint x = c.Alloc(Gfp.Kernel);                   // b's garbage link is not followed: b and the rest are isolated
        nint y = c.Alloc(Gfp.Kernel);
        Assert.NotEqual(b, x);
        Assert.NotEqual(d, x);
        Assert.NotEqual(0, y);
        new Span<byte>((void*)x, 64).Fill(1);           // real, usable objects
        new Span<byte>((void*)y, 64).Fill(2);
        Assert.Contains("Freepointer corrupt", m.Dmesg());
        Assert.True(c.DebugErrors > 0);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Objects_cached_by_a_thread_that_ended_come_back_on_shrink()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("orphan", 256, 0, SlabFlags.NoMerge);
        nint kept = 0;
        var t = new Thread(() =>
        {
            var objs = Enumerable.Range(0, 100).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
            kept = objs[0];
            foreach (var o in objs.Skip(1)) c.Free(o); // they stay in the thread's CPU slab and partial list
        });
        t.Start();
        t.Join();
        Assert.Equal(1, c.ObjectsInUse);
        c.Free(kept); // freed from another thread than the one that allocated, after it ended
        Assert.Equal(0, c.ObjectsInUse);
        c.Shrink();
        Assert.Equal(0, c.Slabs);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_disposed_machine_refuses_its_caches()
    {
        var m = Machine.Boot("x86_64");
        var a = m.KmemCacheCreate("gone_a", 64);
        var b = m.KmemCacheCreate("gone_b", 64); // an alias of gone_a
        a.Free(a.Alloc(Gfp.Kernel));
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => a.Alloc(Gfp.Kernel));
        Assert.Throws<ObjectDisposedException>(() => b.Alloc(Gfp.Kernel));
    }

    [Fact]
    public void Frees_to_another_threads_slab_are_collected_and_a_double_free_among_them_is_caught()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("detached", 128, 0, SlabFlags.NoMerge);
        var objs = new List<nint>();
        var producer = new Thread(() => { for (int i = 0; i < 200; i++) objs.Add(c.Alloc(Gfp.Kernel)); });
        producer.Start();
        producer.Join();
        // This thread frees objects of the producer's slabs: they gather on its detached freelist.
        c.Free(objs[0]);
        Assert.Equal(199, c.ObjectsInUse);
        var ex = Assert.Throws<SlabException>(() => c.Free(objs[0]));
        Assert.Equal(SlabError.DoubleFree, ex.Error);
        Assert.Equal(199, c.ObjectsInUse);
        foreach (var o in objs.Skip(1)) c.Free(o);
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
        c.Shrink();
        Assert.Equal(0, c.Slabs);
    }
}
