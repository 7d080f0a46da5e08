// Per-thread sheaves and the barn: frees outside the CPU slab store addresses without touching the
// object, allocations take them back last-in first-out before SLUB's slow path, the barn holds at
// most ten full sheaves, flushes return everything, and misuse is reported without damage.
namespace Kmem.Tests;

public unsafe class SlabSheafTests
{
    /// <summary>A 64-byte sheaf cache on x86_64 and 2 slabs' worth of objects: the first slab is no longer the CPU slab.</summary>
    private static (Machine M, SlabCache C, nint[] Objs) TwoSlabs(int capacity, int slabs = 2)
    {
        var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("sheafy", 64, 0, SlabFlags.None, sheafCapacity: capacity);
        var objs = new nint[c.ObjectsPerSlab * slabs];
        for (int i = 0; i < objs.Length; i++)
        {
            objs[i] = c.Alloc(Gfp.Kernel);
            Assert.NotEqual(0, objs[i]);
        }
        return (m, c, objs);
    }

    [Fact]
    public void Frees_outside_the_cpu_slab_leave_the_object_untouched_and_come_back_last_in_first_out()
    {
        var (m, c, a) = TwoSlabs(capacity: 4);
        using var _ = m;
        Assert.Equal(4, c.SheafCapacity);
        long slabs = c.Slabs;
        for (int i = 0; i < 8; i++) new Span<byte>((void*)a[i], 64).Fill((byte)(0x40 + i));
        for (int i = 0; i < 8; i++) c.Free(a[i]);

        // Only the free pointer's four bytes were written (the mark that makes a second free detectable); every other
        // byte of every freed object is as its user left it.
        for (int i = 0; i < 8; i++)
        {
            var bytes = new Span<byte>((void*)a[i], 64);
            int first = bytes.IndexOfAnyExcept((byte)(0x40 + i)), last = bytes.LastIndexOfAnyExcept((byte)(0x40 + i));
            Assert.True(first >= 0 && last - first < 4, $"object {i}: bytes {first}..{last} changed");
        }
        Assert.Equal(1, c.BarnFullSheaves);             // a0..a3 went to the barn when a4 arrived
        Assert.Equal(a.Length - 8, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());

        // The CPU freelist is empty (the second slab is all handed out): the thread's sheaf first, then the barn's.
        var back = Enumerable.Range(0, 8).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();
        Assert.Equal(new[] { a[7], a[6], a[5], a[4], a[3], a[2], a[1], a[0] }, back);
        Assert.Equal(0, c.BarnFullSheaves);
        Assert.Equal(slabs, c.Slabs);
        Assert.Equal(a.Length, c.ObjectsInUse);

        // Nothing left in any sheaf: the next allocation is SLUB's slow path, a new slab.
        nint fresh = c.Alloc(Gfp.Kernel);
        Assert.DoesNotContain(fresh, a);
        Assert.Equal(slabs + 1, c.Slabs);
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void Gfp_zero_clears_an_object_taken_from_a_sheaf()
    {
        var (m, c, a) = TwoSlabs(capacity: 4);
        using var _ = m;
        new Span<byte>((void*)a[0], 64).Fill(0xee);
        c.Free(a[0]);
        nint p = c.Alloc(Gfp.Kernel | Gfp.Zero);
        Assert.Equal(a[0], p);
        Assert.Equal(-1, new Span<byte>((void*)p, 64).IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public void The_barn_keeps_ten_full_sheaves_then_frees_go_back_to_their_slabs()
    {
        var (m, c, a) = TwoSlabs(capacity: 2, slabs: 3);
        using var _ = m;
        int n = c.ObjectsPerSlab;
        for (int i = 0; i < 2 * n; i++) c.Free(a[i]);   // the first two slabs: neither is the CPU slab
        Assert.Equal(SlabCache.MaxFullSheaves, c.BarnFullSheaves);
        Assert.Equal(n, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());

        // The flush sends the barn's objects home: the first two slabs empty out and stay on the node's partial list
        // (it holds up to min_partial = 5 slabs), so shrinking frees exactly those two; the CPU slab stays.
        Assert.Equal(3, c.Slabs);
        Assert.Equal(2, c.Shrink());
        Assert.Equal(1, c.Slabs);
        Assert.Equal(0, c.BarnFullSheaves);
        Assert.Equal(n, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
        for (int i = 2 * n; i < 3 * n; i++) c.Free(a[i]);
        c.Shrink();
        Assert.Equal(0, c.Slabs);
        Assert.Equal(0, c.ObjectsInUse);
    }

    [Fact]
    public void Objects_freed_by_another_thread_reach_the_allocating_thread_through_the_barn()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("handover", 64, 0, SlabFlags.None, sheafCapacity: 8);
        var first = Enumerable.Range(0, 80).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();
        var freer = new Thread(() =>
        {
            foreach (nint p in first) c.Free(p);
        });
        freer.Start();
        freer.Join();
        Assert.Equal(0, c.ObjectsInUse);
        Assert.Equal(9, c.BarnFullSheaves);                // 72 in the barn, 8 in the freeing thread's sheaf
        long slabs = c.Slabs;
        // This thread's CPU slab has 64 - 16 = 48 objects left; then the barn's 72 objects come back.
        var again = Enumerable.Range(0, 48 + 72).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();
        Assert.Equal(slabs, c.Slabs);
        Assert.Equal(72, again.Intersect(first).Count());
        Assert.Equal(again.Length, again.Distinct().Count());
        Assert.Equal(0, c.BarnFullSheaves);
        foreach (nint p in again) c.Free(p);
        Assert.Equal(0, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
        c.Destroy();                                        // the other thread's sheaf is flushed too: nothing remains
        Assert.DoesNotContain("still has objects", m.Dmesg());
    }

    [Fact]
    public void A_double_free_into_the_sheaf_is_reported_and_changes_nothing()
    {
        var (m, c, a) = TwoSlabs(capacity: 8);
        using var _ = m;
        c.Free(a[0]);
        long inUse = c.ObjectsInUse;
        var e = Assert.Throws<SlabException>(() => c.Free(a[0]));
        Assert.Equal(SlabError.DoubleFree, e.Error);
        Assert.Contains("Object already free", m.Dmesg());
        Assert.Equal(inUse, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
        // The object comes back exactly once.
        Assert.Equal(a[0], c.Alloc(Gfp.Kernel));
        Assert.NotEqual(a[0], c.Alloc(Gfp.Kernel));
    }

    [Fact]
    public void An_object_freed_twice_into_a_sheaf_below_its_top_is_refused_and_freed_once()
    {
        var (m, c, a) = TwoSlabs(capacity: 8);
        using var _ = m;
        c.Free(a[0]);
        c.Free(a[1]);
        var e = Assert.Throws<SlabException>(() => c.Free(a[0])); // not the sheaf's last object: found by the lookup
        Assert.Equal(SlabError.DoubleFree, e.Error);
        Assert.Contains("Object already free", m.Dmesg());
        c.Shrink();
        Assert.Equal(a.Length - 2, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
        var again = Enumerable.Range(0, 2 * c.ObjectsPerSlab).Select(_ => c.Alloc(Gfp.Kernel)).ToArray();
        Assert.Equal(again.Length, again.Distinct().Count());
        Assert.Single(again, p => p == a[0]);
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void A_double_free_at_the_head_of_a_slab_freelist_is_still_caught()
    {
        var (m, c, a) = TwoSlabs(capacity: 2, slabs: 3);
        using var _ = m;
        // Fill the barn, then the thread's sheaf; the next free sends that sheaf back to its slab.
        int k = 0;
        while (c.BarnFullSheaves < SlabCache.MaxFullSheaves) c.Free(a[k++]);
        nint victim = a[k];
        c.Free(a[k++]);                                     // the thread's sheaf is full now: [a(k-2), victim]
        c.Free(a[k++]);                                     // flushed to the slab, victim last: the head of its freelist
        long inUse = c.ObjectsInUse;
        var e = Assert.Throws<SlabException>(() => c.Free(victim));
        Assert.Equal(SlabError.DoubleFree, e.Error);
        Assert.Contains("Object already free", m.Dmesg());
        Assert.Equal(inUse, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
    }

    [Fact]
    public void Debug_flags_turn_sheaves_off()
    {
        using var m = Machine.Boot("x86_64", "slub_debug=FZ,dbg");
        Assert.Equal(0, m.KmemCacheCreate("dbg", 64, 0, SlabFlags.None, sheafCapacity: 8).SheafCapacity);
        Assert.Equal(0, m.KmemCacheCreate("poisoned", 64, 0, SlabFlags.Poison, sheafCapacity: 8).SheafCapacity);
        Assert.Equal(8, m.KmemCacheCreate("plain", 64, 0, SlabFlags.None, sheafCapacity: 8).SheafCapacity);
        Assert.Equal(0, m.FindSlabCache("kmalloc-64")!.SheafCapacity);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(SlabCache.MaxSheafCapacity + 1)]
    public void A_bad_sheaf_capacity_is_rejected_and_creates_nothing(int capacity)
    {
        using var m = Machine.Boot("x86_64");
        int before = m.SlabCaches.Count;
        var e = Assert.Throws<SlabException>(() => m.KmemCacheCreate("bad", 64, 0, SlabFlags.None, sheafCapacity: capacity));
        Assert.Contains("sheaf capacity", e.Message);
        Assert.Null(m.FindSlabCache("bad"));
        Assert.Equal(before, m.SlabCaches.Count);
    }

    [Fact]
    public void Caches_with_sheaves_are_never_merged()
    {
        using var m = Machine.Boot("x86_64");
        var s1 = m.KmemCacheCreate("sheaf_a", 64, 0, SlabFlags.None, sheafCapacity: 16);
        Assert.False(s1.IsAlias);
        var p1 = m.KmemCacheCreate("plain_a", 64);
        Assert.NotSame(s1, p1.Root);
        var s2 = m.KmemCacheCreate("sheaf_b", 64, 0, SlabFlags.None, sheafCapacity: 16);
        Assert.False(s2.IsAlias);
        Assert.NotSame(s1, s2);
    }

    [Fact]
    public void Memory_pressure_empties_the_sheaves()
    {
        var (m, c, a) = TwoSlabs(capacity: 4, slabs: 3);
        using var _ = m;
        foreach (nint p in a) c.Free(p);
        Assert.True(c.BarnFullSheaves > 0);
        m.ShrinkSlabs();
        Assert.Equal(0, c.BarnFullSheaves);
        Assert.Equal(0, c.Slabs);
        Assert.Empty(m.VerifyIntegrity());
    }
}
