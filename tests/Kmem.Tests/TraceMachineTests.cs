// Replay knows what machine a trace was recorded on: inference of pointer width, CPUs, cache line, KMALLOC_MIN_SIZE,
// SLUB or SLAB, architecture and version from real traces (an i386 SLUB and an i386 SLAB boot of 3.6, the modern
// excerpts), the explicit-alignment cache search, the SLAB report, the "allocated twice" count and migratetype replay.
namespace Kmem.Tests;

public class TraceMachineTests
{
    private static TraceMachine Infer(string text) => TraceMachineInference.Infer(new StringReader(text));

    private static string Section(string letter)
    {
        var lines = TestSupport.Fixture("ftrace_kmem_modern_small_samples.txt").Split('\n');
        int from = Array.FindIndex(lines, l => l.StartsWith($"### [{letter}]", StringComparison.Ordinal));
        int to = Array.FindIndex(lines, from + 1, l => l.StartsWith("### [", StringComparison.Ordinal));
        return string.Join('\n', lines[from..(to < 0 ? lines.Length : to)]);
    }

    [Fact]
    public void The_i386_slub_boot_trace_is_a_32_bit_one_cpu_slub_machine_with_a_32_byte_line()
    {
        var t = Infer(TestSupport.Fixture("ftrace_kmem_i386_slub_3.6_boot.txt"));
        Assert.Equal(32, t.PointerBits);
        Assert.Equal(Arch.I386, t.Arch);
        Assert.Equal(1, t.Cpus);                                          // "#P:1"
        Assert.Equal("SLUB", t.SlabAllocator);
        Assert.Equal(8, t.KmallocMinAlign);                              // 4→8, 6→8
        Assert.Equal(32, t.CacheLineSize);                               // 132→160, 396→416, 1292→1312
        Assert.Equal("before 4.6", t.VersionRange);                      // GFP_ZERO, raw call sites, no node=/accounted=
        Assert.Equal(new KernelVersion(4, 5), t.Version);
        Assert.Equal(Arch.I386, t.Profile.Arch);
        Assert.Equal((1, 32, 8), (t.Profile.Cpus, t.Profile.CacheLineSize, t.Profile.KmallocMinAlign));
        Assert.Contains(t.Reasons, r => r.StartsWith("CPUs: 1 (the trace header's #P:1)", StringComparison.Ordinal));
        Assert.Contains(t.Reasons, r => r.StartsWith("pointer width: 32-bit", StringComparison.Ordinal));
        Assert.Contains(t.Reasons, r => r.Contains("GFP_ZERO", StringComparison.Ordinal));
    }

    [Fact]
    public void On_the_inferred_i386_machine_every_kmalloc_and_kmem_cache_size_comes_out_as_recorded()
    {
        string trace = TestSupport.Fixture("ftrace_kmem_i386_slub_3.6_boot.txt");
        var t = Infer(trace);
        using var m = Machine.Boot(t.Profile);
        var replayer = new TraceReplayer(m);
        var r = replayer.Replay(new StringReader(trace), new TraceReplayOptions { RecordedOn = t });
        Assert.True(r.Kmalloc.Count >= 14, $"{r.Kmalloc.Count} kmalloc sizes");
        Assert.True(r.Caches.Count >= 18, $"{r.Caches.Count} kmem_cache sizes");
        Assert.All(r.Kmalloc, row => Assert.True(row.Match, $"kmalloc({row.BytesReq}): recorded {row.RecordedBytesAlloc}, Kmem {row.KmemBytesAlloc}"));
        Assert.All(r.Caches, row => Assert.True(row.Match, $"kmem_cache({row.BytesReq}): recorded {row.RecordedBytesAlloc}, Kmem {row.KmemBytesAlloc} ({row.CacheFlags})"));
        Assert.Equal("a constructor", r.Caches.Single(c => c.BytesReq == 272).CacheFlags);           // 272 + the free pointer
        Assert.Equal("SLAB_HWCACHE_ALIGN", r.Caches.Single(c => c.BytesReq == 396).CacheFlags);      // on the 32-byte line
        Assert.Empty(r.FailuresByKind);
        Assert.Equal(r.Inference, t.Reasons);
        replayer.ReleaseAll();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_cache_search_tries_explicit_alignments_when_no_flag_gives_the_size()
    {
        // The same i386 sizes on a 64-byte line: SLAB_HWCACHE_ALIGN gives 192 for 132 and 448 for 396, so only an
        // explicit alignment of 32 gives the recorded 160 and 416.
        var p = Infer(TestSupport.Fixture("ftrace_kmem_i386_slub_3.6_boot.txt")).Profile with { CacheLineSize = 64 };
        using var m = Machine.Boot(p);
        var r = new TraceReplayer(m).Replay(new StringReader(string.Join('\n',
            "  init-1 [000] .N.. 0.17: kmem_cache_alloc: call_site=c10a937b ptr=c16111e0 bytes_req=132 bytes_alloc=160 gfp_flags=GFP_KERNEL",
            "  init-1 [000] .N.. 0.17: kmem_cache_alloc: call_site=c10a937b ptr=c16112e0 bytes_req=396 bytes_alloc=416 gfp_flags=GFP_KERNEL",
            "  init-1 [000] .N.. 0.17: kmem_cache_alloc: call_site=c10a937b ptr=c16113e0 bytes_req=100 bytes_alloc=136 gfp_flags=GFP_KERNEL")));
        Assert.Equal("align 32", r.Caches.Single(c => c.BytesReq == 132).CacheFlags);
        Assert.Equal("align 32", r.Caches.Single(c => c.BytesReq == 396).CacheFlags);
        Assert.Equal("none (no flags give the recorded size)", r.Caches.Single(c => c.BytesReq == 100).CacheFlags);
        Assert.Equal(2, r.Caches.Count(c => c.Match));
    }

    [Fact]
    public void A_slab_trace_is_named_slab_and_the_rows_slab_explains_are_marked()
    {
        string trace = TestSupport.Fixture("ftrace_kmem_i386_slab_3.6_boot.txt");
        var t = Infer(trace);
        Assert.Equal("SLAB", t.SlabAllocator);
        Assert.True(t.IsSlab);
        Assert.Equal((32, Arch.I386, 1), (t.PointerBits, t.Arch, t.Cpus));
        Assert.Contains(t.Reasons, r => r.StartsWith("slab allocator: SLAB (kmalloc classes start at 32 bytes and have no 96", StringComparison.Ordinal));
        using var m = Machine.Boot(t.Profile);
        var r = new TraceReplayer(m).Replay(new StringReader(trace), new TraceReplayOptions { RecordedOn = t });
        Assert.Equal("SLAB", r.RecordedSlabAllocator);
        var small = r.Kmalloc.Single(k => k.BytesReq == 6);
        Assert.Equal((32L, 8L, "SLAB"), (small.RecordedBytesAlloc, small.KmemBytesAlloc!.Value, small.Cause));
        var eighty = r.Kmalloc.Single(k => k.BytesReq == 80);                           // no kmalloc-96 on SLAB with 64-byte lines
        Assert.Equal((128L, 96L, "SLAB"), (eighty.RecordedBytesAlloc, eighty.KmemBytesAlloc!.Value, eighty.Cause));
        Assert.All(r.Kmalloc.Where(k => !k.Match), k => Assert.Equal("SLAB", k.Cause));
        Assert.All(r.Kmalloc.Where(k => k.Match), k => Assert.Null(k.Cause));
        var text = r.ToString();
        Assert.Contains("differs (SLAB)", text);
        Assert.Contains("the trace was recorded on SLAB, which Kmem does not model (it models SLUB)", text);
    }

    [Fact]
    public void The_modern_sections_give_their_machines()
    {
        var a = Infer(Section("A"));                     // trace-cmd, x86_64, 6.1x: accounted=, node=, symbols, [004]
        Assert.Equal((64, Arch.X86_64, 5), (a.PointerBits, a.Arch, a.Cpus));
        Assert.Equal("6.1 or later", a.VersionRange);
        Assert.Equal(new KernelVersion(6, 1), a.Version);
        Assert.Equal((8, "SLUB"), (a.KmallocMinAlign, a.SlabAllocator));

        var d = Infer(Section("D"));                     // arm64 6.6: hashed pointers, kmem_cache 2312→2368 on a 64-byte line
        Assert.Equal(64, d.PointerBits);
        Assert.Equal(64, d.CacheLineSize);
        Assert.Equal(new KernelVersion(6, 1), d.Version);

        var e = Infer(Section("E"));                     // perf script on a 3.10-era x86_64 with CPUs up to [047]
        Assert.Equal((64, Arch.X86_64, 48), (e.PointerBits, e.Arch, e.Cpus));
        Assert.Contains(e.Reasons, r => r.StartsWith("CPUs: 48 (at least: the highest CPU column is [047]", StringComparison.Ordinal));
        Assert.Equal("any", e.VersionRange);                            // perf prints its own call sites; the gfp names are plain
        Assert.Equal(KernelVersion.Default, e.Version);

        var h = Infer(Section("H"));                     // POWER: c000… addresses
        Assert.Contains(h.Reasons, r => r.Contains("ppc64 is not modelled", StringComparison.Ordinal));

        var i = Infer(Section("I"));                     // 2.6.3x: mm_page_free_direct
        Assert.Equal(KernelVersion.Oldest, i.Version);
        Assert.Contains(i.Reasons, r => r.Contains("older than Kmem models", StringComparison.Ordinal));
    }

    [Fact]
    public void An_object_allocated_twice_is_replayed_and_not_counted_as_not_replayed()
    {
        using var m = Machine.Boot("x86_64");
        var r = new TraceReplayer(m).Replay(new StringReader(string.Join('\n',
            "  sh-1 [000] ..... 1.0: kmalloc: call_site=x ptr=0xffff888100001000 bytes_req=32 bytes_alloc=32 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.1: kmalloc: call_site=x ptr=0xffff888100001000 bytes_req=32 bytes_alloc=32 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.2: kfree: call_site=x ptr=0xffff888100002000")));
        Assert.Equal((3L, 2L), (r.Events, r.Replayed));
        Assert.Equal(1, r.Skipped.Values.Sum());                                  // only the free of an unknown pointer
        Assert.Equal(r.Events - r.Replayed, r.Skipped.Values.Sum());
        Assert.Equal(1, r.Notes["an object allocated again without its free: the old one freed first"]);
        Assert.Contains("replayed, with a remark:", r.ToString());
    }

    [Fact]
    public void Mm_page_alloc_is_replayed_with_the_mobility_of_its_migratetype()
    {
        using var m = Machine.Boot("x86_64");
        var r = new TraceReplayer(m).Replay(new StringReader(string.Join('\n',
            // GFP_KERNEL (unmovable) recorded with migratetype=1: the page is taken as movable.
            "  sh-1 [000] ..... 1.0: mm_page_alloc: page=0xa pfn=4096 order=0 migratetype=1 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.1: mm_page_alloc: page=0xb pfn=4097 order=0 migratetype=2 gfp_flags=GFP_KERNEL|__GFP_RECLAIMABLE",
            "  sh-1 [000] ..... 1.2: mm_page_alloc: page=0xc pfn=4098 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.3: mm_page_alloc: page=0xd pfn=4099 order=0 migratetype=4 gfp_flags=GFP_KERNEL")));
        Assert.Equal(4, r.Replayed);
        Assert.Equal(1, r.Notes["mm_page_alloc whose gfp_flags do not give its migratetype=1: replayed with Movable's mobility"]);
        Assert.Equal(1, r.Notes["mm_page_alloc with migratetype=4: no GFP mobility gives it, replayed with the recorded gfp_flags"]);
        Assert.Equal(2, r.Notes.Count);
        // Each page came from a pageblock of its recorded migratetype (the GFP_KERNEL one recorded as movable too, which
        // an unmovable allocation would not have).
        Assert.DoesNotContain(r.Notes.Keys, k => k.Contains("fallback", StringComparison.Ordinal));
    }

    [Fact]
    public void A_page_of_a_migratetype_whose_free_lists_are_empty_is_reported_as_a_fallback()
    {
        using var m = Machine.Boot(MachineProfile.Parse("""
            { "name": "small", "arch": "x86_64", "cpus": 1, "cache_line_size": 64, "kmalloc_min_align": 8,
              "dram": [ { "base": "0x100000", "size": "64M" } ] }
            """));
        // Unmovable allocations of all memory steal every movable pageblock; freed again, the memory is free in
        // unmovable pageblocks only, so a movable page has to fall back.
        var held = new List<Page>();
        for (var page = m.AllocPage(Gfp.Kernel | Gfp.NoWarn); !page.IsNull; page = m.AllocPage(Gfp.Kernel | Gfp.NoWarn)) held.Add(page);
        foreach (var p in held) m.FreePage(p);
        m.DrainAllPages();
        long movableFree = m.Zones.Sum(z => Enumerable.Range(0, m.MaxOrder).Sum(o => z.FreeBlocks(o, MigrateType.Movable)));
        Assert.Equal(0, movableFree);
        var r = new TraceReplayer(m).Replay(new StringReader(
            "  sh-1 [000] ..... 1.0: mm_page_alloc: page=0xa pfn=4096 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE"));
        Assert.Equal(1, r.Replayed);
        Assert.Single(r.Notes, n => n.Key.StartsWith("a Movable page taken by fallback: none of its own free lists had one", StringComparison.Ordinal) && n.Value == 1);
    }

    [Fact]
    public void A_trace_of_more_cpus_than_kmem_models_replays_on_the_most_it_models_and_says_so()
    {
        const string trace = "# entries-in-buffer/entries-written: 2/2   #P:2048\n" +
            "            init-1     [000] ....     0.170000: kmalloc: call_site=c104de4f ptr=c143de20 bytes_req=29 bytes_alloc=32 gfp_flags=GFP_KERNEL\n" +
            "            init-1     [000] ....     0.170001: kfree: call_site=c104de4f ptr=c143de20\n";
        var t = Infer(trace);
        Assert.Equal(1024, t.Cpus);
        Assert.Equal(1024, t.Profile.Cpus);
        Assert.Contains(t.Reasons, r => r.Contains("the trace shows 2048; Kmem models at most 1024"));
    }
}
