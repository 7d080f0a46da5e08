// slub_debug: each error class with its report in the kernel's words, the bytes restored, nothing
// freed that should not be, and the cache still working with its counters and lists consistent.
namespace Kmem.Tests;

public unsafe class SlubDebugTests
{
    private static (Machine M, SlabCache C) Boot(string debug = "slub_debug=FZPU")
    {
        var m = Machine.Boot("x86_64", debug);
        return (m, m.KmemCacheCreate("dbg_obj", 64, 0, SlabFlags.NoMerge));
    }

    private static string State(Machine m, SlabCache c) => $"{c.ObjectsInUse}/{c.TotalObjects}/{c.Slabs}/{c.PartialSlabs}\n" + m.ProcFs.Read("/proc/slabinfo");

    [Fact]
    public void Layout_and_byte_values_are_the_kernels()
    {
        var (m, c) = Boot();
        using var _ = m;
        Assert.Equal((400, 20, 2), (c.Size, c.ObjectsPerSlab, 1 << c.Order)); // 64 + red zones 8+8, free pointer 8, two tracks 2x152
        nint o = c.Alloc(Gfp.Kernel);
        Assert.True(new Span<byte>((void*)(o - 8), 8).IndexOfAnyExcept(SlabCache.RedActive) < 0, "left red zone active");
        Assert.True(new Span<byte>((void*)o, 63).IndexOfAnyExcept(SlabCache.PoisonFree) < 0, "an allocated object keeps the poison");
        Assert.Equal(SlabCache.PoisonEnd, *(byte*)(o + 63));
        Assert.True(new Span<byte>((void*)(o + 64), 8).IndexOfAnyExcept(SlabCache.RedActive) < 0, "right red zone active");
        c.Free(o);
        Assert.True(new Span<byte>((void*)(o + 64), 8).IndexOfAnyExcept(SlabCache.RedInactive) < 0, "right red zone inactive");
        Assert.Equal(0, c.DebugErrors);
        Assert.Equal("1\n", m.ProcFs.Read("/sys/kernel/slab/dbg_obj/red_zone"));
        // slub_debug applies to the kmalloc caches too, with the kernel's geometry
        var k64 = m.FindSlabCache("kmalloc-64")!;
        Assert.Equal((512, 16, 2), (k64.Size, k64.ObjectsPerSlab, 1 << k64.Order)); // 64-byte alignment: 64-byte left red zone
    }

    [Fact]
    public void Double_free_is_object_already_free()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint o = c.Alloc(Gfp.Kernel), keep = c.Alloc(Gfp.Kernel);
        c.Free(o);
        string before = State(m, c);
        var ex = Assert.Throws<SlabException>(() => c.Free(o));
        Assert.Equal(SlabError.DoubleFree, ex.Error);
        string log = TestSupport.LogText(m);
        Assert.Contains("=============================================================================\nBUG dbg_obj (Not tainted): Object already free\n-----------------------------------------------------------------------------\n", log);
        Assert.Contains($"INFO: Allocated in Double_free_is_object_already_free+SlubDebugTests.cs:", log);
        Assert.Contains($"INFO: Freed in Double_free_is_object_already_free+SlubDebugTests.cs:", log);
        Assert.Contains($"INFO: Object 0x{o:x16} @offset=", log);
        Assert.Contains($"Object 0x{o:x16}: 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk", log);
        Assert.Contains($"FIX dbg_obj: Object at 0x{o:x16} not freed", log);
        Assert.Equal(before, State(m, c));
        Assert.Contains("Tainted: ", m.Dmesg()[m.Dmesg().LastIndexOf("CPU:", StringComparison.Ordinal)..]);
        c.Free(keep);
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Writing_past_the_end_is_redzone_overwritten_and_the_object_is_not_freed()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint o = c.Alloc(Gfp.Kernel);
        *(byte*)(o + 64) = 0x11; // one byte past the object
        string before = State(m, c);
        var ex = Assert.Throws<SlabException>(() => c.Free(o));
        Assert.Equal(SlabError.RedzoneOverwritten, ex.Error);
        string log = TestSupport.LogText(m);
        Assert.Contains("BUG dbg_obj (Not tainted): Redzone overwritten", log);
        Assert.Contains($"INFO: 0x{o + 64:x16}-0x{o + 64:x16} @offset=", log);
        Assert.Contains("First byte 0x11 instead of 0xcc", log);
        Assert.Contains($"Redzone 0x{o + 64:x16}: 11 cc cc cc cc cc cc cc", log);
        Assert.Contains($"FIX dbg_obj: Restoring Redzone 0x{o + 64:x16}-0x{o + 64:x16}=0xcc", log);
        Assert.Equal(before, State(m, c));
        Assert.Equal(SlabCache.RedActive, *(byte*)(o + 64)); // restored
        c.Free(o); // the second try succeeds
        Assert.Equal(0, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Writing_before_the_start_is_caught_in_the_left_red_zone()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint o = c.Alloc(Gfp.Kernel);
        *(byte*)(o - 3) = 0x22;
        Assert.Equal(SlabError.RedzoneOverwritten, Assert.Throws<SlabException>(() => c.Free(o)).Error);
        Assert.Contains("First byte 0x22 instead of 0xcc", m.Dmesg());
        c.Free(o);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Writing_after_free_is_poison_overwritten_at_the_next_allocation()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint o = c.Alloc(Gfp.Kernel), keep = c.Alloc(Gfp.Kernel);
        c.Free(o);
        *(int*)(o + 8) = 0x12345678; // use after free
        nint next = c.Alloc(Gfp.Kernel);
        Assert.NotEqual(o, next);    // the corrupt slab is isolated; the allocation still succeeds
        string log = TestSupport.LogText(m);
        Assert.Contains("BUG dbg_obj (Not tainted): Poison overwritten", log);
        Assert.Contains("First byte 0x78 instead of 0x6b", log);
        Assert.Contains("FIX dbg_obj: Marking all objects used", log);
        Assert.Equal(1, c.DebugErrors);
        c.Free(next);
        c.Free(keep);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_interior_pointer_is_an_invalid_object_pointer()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint o = c.Alloc(Gfp.Kernel);
        string before = State(m, c);
        Assert.Equal(SlabError.InvalidPointer, Assert.Throws<SlabException>(() => c.Free(o + 16)).Error);
        Assert.Contains($"Invalid object pointer 0x{o + 16:x16}", m.Dmesg());
        Assert.Equal(before, State(m, c));
        c.Free(o);
    }

    [Fact]
    public void Freeing_to_the_wrong_cache_is_refused()
    {
        var (m, c) = Boot();
        using var _ = m;
        var other = m.KmemCacheCreate("dbg_other", 64, 0, SlabFlags.NoMerge);
        nint o = other.Alloc(Gfp.Kernel);
        string before = State(m, c) + State(m, other);
        Assert.Equal(SlabError.WrongCache, Assert.Throws<SlabException>(() => c.Free(o)).Error);
        Assert.Contains("Wrong slab cache. dbg_obj but object is from dbg_other", m.Dmesg());
        Assert.Equal(before, State(m, c) + State(m, other));
        other.Free(o);
    }

    [Fact]
    public void A_corrupt_free_pointer_is_freepointer_corrupt()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint a = c.Alloc(Gfp.Kernel), b = c.Alloc(Gfp.Kernel), keep = c.Alloc(Gfp.Kernel);
        c.Free(a);
        c.Free(b);
        // The free pointer of a debug object with poison lives after the red zone (offset 72).
        *(uint*)(b + 72) ^= 0x00ff00ffu;
        nint x = c.Alloc(Gfp.Kernel);
        Assert.Contains("Freepointer corrupt", m.Dmesg());
        Assert.NotEqual(0, x);
        c.Free(x);
        c.Free(keep);
        Assert.True(c.DebugErrors >= 1);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Padding_at_the_end_of_the_slab_is_checked()
    {
        using var m = Machine.Boot("x86_64", "slub_debug=FP,pad_obj");
        var c = m.KmemCacheCreate("pad_obj", 1000, 0, SlabFlags.NoMerge); // 1000-byte objects leave padding at the slab end
        nint o = c.Alloc(Gfp.Kernel);
        nint slabEnd = m.PageAddress(m.VirtToPage(o)) + (4096 << c.Order);
        *(byte*)(slabEnd - 1) = 0;
        c.Free(o);
        Assert.Contains("Padding overwritten.", m.Dmesg());
        Assert.Contains("FIX pad_obj: Restoring slab padding", m.Dmesg());
    }

    [Fact]
    public void Validate_walks_every_slab()
    {
        var (m, c) = Boot();
        using var _ = m;
        nint a = c.Alloc(Gfp.Kernel), b = c.Alloc(Gfp.Kernel);
        c.Free(b);
        Assert.Equal(0, c.Validate());
        *(byte*)(b + 5) = 0;    // write after free
        *(byte*)(a + 64) = 1;   // overrun of a live object
        Assert.Equal(2, c.Validate());
        Assert.Equal(0, c.Validate()); // both were restored
        c.Free(a);
    }

    [Fact]
    public void Slub_debug_syntax_selects_caches_and_letters()
    {
        using var m = Machine.Boot("x86_64", "slub_debug=FZ,kmalloc-64;U,dbg_*");
        Assert.Equal(SlabFlags.ConsistencyChecks | SlabFlags.RedZone, m.FindSlabCache("kmalloc-64")!.Flags & SlabFlags.DebugFlags);
        Assert.Equal(SlabFlags.None, m.FindSlabCache("kmalloc-128")!.Flags & SlabFlags.DebugFlags);
        Assert.Equal(SlabFlags.StoreUser, m.KmemCacheCreate("dbg_x", 100).Flags & SlabFlags.DebugFlags);
        Assert.Equal(SlabFlags.None, m.KmemCacheCreate("other_x", 100).Flags & SlabFlags.DebugFlags);
        using var all = Machine.Boot("x86_64", "slub_debug");
        Assert.Equal(SlabFlags.ConsistencyChecks | SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser,
            all.FindSlabCache("kmalloc-8")!.Flags & SlabFlags.DebugFlags);
        using var q = Machine.Boot("x86_64", "slub_debug=Fq");
        Assert.Contains("slub_debug option 'q' unknown. skipped", q.Dmesg());
        Assert.Throws<ProfileException>(() => Machine.Boot("x86_64", "slub_max_order=x"));
        using var t = Machine.Boot("x86_64", "slub_debug=T,traced");
        var tc = t.KmemCacheCreate("traced", 32);
        tc.Free(tc.Alloc(Gfp.Kernel));
        Assert.Contains("TRACE traced alloc 0x", t.Dmesg());
        Assert.Contains("TRACE traced free 0x", t.Dmesg());
        Assert.Contains("Kernel command line: slub_debug=T,traced", t.Dmesg());
    }
}
