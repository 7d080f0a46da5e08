// Trace replay: the real trace excerpts of every format (2.6.3x to 6.x, ftrace, trace-cmd, perf), fidelity of
// the sizes, every kind of damaged or foreign line counted and never fatal, 10⁶ events streamed, JSON, the CLI,
// and the unusable free index view.
namespace Kmem.Tests;

public class TraceReplayTests
{
    [Fact]
    public void The_real_trace_excerpts_replay_with_the_recorded_sizes()
    {
        using var m = Machine.Boot("x86_64");
        var replayer = new TraceReplayer(m);
        using var reader = new StringReader(TestSupport.Fixture("ftrace_kmem_modern_small_samples.txt"));
        var r = replayer.Replay(reader);
        Assert.Equal((84L, 40L, 35L), (r.Lines, r.Events, r.Replayed));
        Assert.Equal(15, r.EventsByName["kmalloc"]);
        Assert.Equal(4, r.EventsByName["mm_page_free_direct"]);                // the 2.6.3x name
        Assert.Equal(1, r.Skipped["a truncated or unreadable line"]);          // section [A]'s last line
        // [B] records kmalloc only: its allocations under one pointer are replayed (the old object freed first), so they
        // are remarks, not events left out; what is not replayed adds up to the events not replayed.
        Assert.Equal(5, r.Notes["an object allocated again without its free: the old one freed first"]);
        Assert.Equal(r.Events - r.Replayed, r.Skipped.Values.Sum());
        Assert.Equal(4, r.Skipped["a free of a page allocated before the trace (or freed twice)"]);
        Assert.All(r.Kmalloc, row => Assert.True(row.Match, $"kmalloc({row.BytesReq})"));
        Assert.Contains(r.Kmalloc, row => row.BytesReq == 216 && row.KmemBytesAlloc == 256);
        Assert.Contains(r.Kmalloc, row => row.BytesReq == 56 && row.RecordedBytesAlloc == 64);  // "bytes_req=56bytes_alloc=64"
        Assert.All(r.Caches, row => Assert.True(row.Match));
        Assert.Equal("SLAB_HWCACHE_ALIGN", r.Caches.Single(c => c.BytesReq == 360).CacheFlags);
        Assert.Equal("a constructor", r.Caches.Single(c => c.RecordedBytesAlloc == 584).CacheFlags);
        Assert.Equal(new TracePageOrderRow(0, 5, 5, 0), Assert.Single(r.PageOrders));
        Assert.True(r.OutOfOrder > 0);
        Assert.Contains("Node 0, zone   Normal ", r.UnusableIndex);
        replayer.ReleaseAll();
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("  cat-1234  [001] d..1  100.000001: kmalloc: call_site=foo+0x10/0x20 ptr=0xffff888100001000 bytes_req=100 bytes_alloc=128 gfp_flags=GFP_KERNEL node=-1 accounted=false", "kmalloc", 128L)]
    [InlineData("fio 264249 [020] 3116264.020748: kmem:kmalloc: (getname_flags+0x4f) call_site=ffffffff8785c74f ptr=0xffff9234810d5000 bytes_req=700 bytes_alloc=1024 gfp_flags=GFP_KERNEL", "kmalloc", 1024L)]
    [InlineData("jbd2/dm-3-8  7666 [000]  4666.621521: kmem:kmalloc: call_site=c0000000003ce108 ptr=0xc000000fcd646360 bytes_req=96 bytes_alloc=96 gfp_flags=GFP_NOFS|GFP_ZERO", "kmalloc", 96L)]
    [InlineData("  4582.696630: kmalloc_node: call_site=x ptr=00000000576339c3 bytes_req=16 bytes_alloc=16 gfp_flags=GFP_KERNEL|__GFP_ZERO node=0", "kmalloc_node", 16L)]
    public void Every_format_of_the_kmalloc_line_is_read(string line, string ev, long kmemAlloc)
    {
        using var m = Machine.Boot("x86_64");
        var r = new TraceReplayer(m).Replay(new StringReader(line));
        Assert.Equal(1, r.Replayed);
        Assert.Equal(1, r.EventsByName[ev]);
        Assert.Equal(kmemAlloc, Assert.Single(r.Kmalloc).KmemBytesAlloc);
    }

    [Fact]
    public void Damaged_foreign_and_unmatched_lines_are_counted_never_fatal()
    {
        using var m = Machine.Boot(TestSupport.GenericArm());          // MAX_ORDER 11: the 4 MiB kmalloc fits
        string trace = string.Join('\n',
            "# tracer: nop",
            "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
            "",
            "  sh-1 [000] ..... 1.000: kfree: call_site=x ptr=0xdead0000",                             // allocated before the trace
            "  sh-1 [000] ..... 1.001: kfree: call_site=x ptr=          (null)",                          // kfree(NULL)
            "  sh-1 [000] ..... 1.002: kmalloc: call_site=x ptr=0x1000 bytes_req=64",                      // truncated
            "  sh-1 [000] ..... 1.003: sched_switch: prev_comm=sh prev_pid=1",                              // another event
            "  sh-1 [000] ..... 1.004: mm_page_alloc: page=0x0 pfn=0 order=0 migratetype=0 gfp_flags=GFP_KERNEL",   // failed there
            "  sh-1 [000] ..... 1.005: mm_page_alloc: page=0xa pfn=0x4000 order=30 migratetype=0 gfp_flags=GFP_KERNEL",  // impossible order
            "  sh-1 [000] ..... 1.006: mm_page_alloc: page=0xb pfn=0x5000 order=2 migratetype=1 gfp_flags=0x152c4a",
            "  sh-1 [001] ..... 1.000: mm_page_free: page=0xb pfn=0x5000 order=0",                           // other CPU, earlier; wrong order
            "  sh-1 [000] ..... 1.007: mm_page_free: page=0xb pfn=0x5000 order=2",                           // already freed
            "  sh-1 [000] ..... 1.008: kmalloc: call_site=x ptr=0x2000 bytes_req=0 bytes_alloc=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.009: kmalloc: call_site=x ptr=0x3000 bytes_req=99999999999 bytes_alloc=0 gfp_flags=GFP_KERNEL",
            "  sh-1 [000] ..... 1.010: kmalloc: call_site=x ptr=0x4000 bytes_req=4194304 bytes_alloc=4194304 gfp_flags=GFP_KERNEL",
            "garbage without any event at all ::: ===",
            "  64.49%  call_site=perf_event_mmap ptr=0xffff8d733b2e8000 bytes_req=4096 bytes_alloc=4096 gfp_flags=GFP_KERNEL");
        var r = new TraceReplayer(m).Replay(new StringReader(trace));
        Assert.Equal(17, r.Lines);
        Assert.Equal(1, r.Skipped["a free of memory allocated before the trace (or freed twice)"]);
        Assert.Equal(1, r.Skipped["kfree(NULL): nothing to do"]);
        Assert.Equal(1, r.Skipped["a truncated or unreadable line"]);
        Assert.Equal(1, r.OtherEvents["sched_switch"]);
        Assert.Equal(1, r.Skipped["an allocation that failed on the recorded board (pfn 0)"]);
        Assert.Equal(1, r.Skipped["an order this machine does not have"]);
        Assert.Equal(1, r.Notes["a page freed at another order than it was allocated: freed at its own"]);     // replayed
        Assert.Equal(r.Events - r.Replayed, r.Skipped.Values.Sum());
        Assert.Equal(1, r.Skipped["a free of a page allocated before the trace (or freed twice)"]);
        Assert.Equal(2, r.Skipped["kmalloc of 0 or of more than 2 GiB"]);
        Assert.Equal(1, r.OutOfOrder);
        Assert.Equal(5, r.NotEvents);
        Assert.Equal(0, r.LivePageBlocks);
        Assert.Equal(1, r.LiveObjects);                                  // the 4 MiB kmalloc
        TestSupport.AssertConsistent(m);
    }

    /// <summary>A trace that is made as it is read: a million events without a file or a string holding them.</summary>
    private sealed class GeneratedTrace(int pairs) : TextReader
    {
        private int _i;
        public override string? ReadLine()
        {
            if (_i >= pairs * 2) return null;
            int n = _i++;
            int k = n / 2;
            ulong ptr = 0xffff888100000000UL + (ulong)(k % 512) * 0x1000;
            return (n & 1) == 0
                ? $"  w-{k % 7} [{k % 4:D3}] ..... {k}.000001: kmalloc: call_site=x+0x1 ptr=0x{ptr:x} bytes_req={16 + k % 200} bytes_alloc=0 gfp_flags=GFP_KERNEL node=-1 accounted=false"
                : $"  w-{k % 7} [{k % 4:D3}] ..... {k}.000002: kfree: call_site=y+0x1 ptr=0x{ptr:x}";
        }
    }

    [Fact]
    public void A_million_events_stream_through()
    {
        using var m = Machine.Boot("rv1106");
        long progress = 0;
        var r = new TraceReplayer(m).Replay(new GeneratedTrace(500_000), new TraceReplayOptions { Progress = n => progress = n });
        Assert.Equal((1_000_000L, 1_000_000L), (r.Events, r.Replayed));
        Assert.Equal(1_000_000L, progress);
        Assert.Equal(0, r.LiveObjects);
        Assert.Equal(4, r.EventsByCpu.Count);
        Assert.Equal(0, r.EndBytes["kmalloc"]);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_report_is_json_for_scripts_and_the_cli_streams_a_file()
    {
        using var m = Machine.Boot("x86_64");
        var r = new TraceReplayer(m).Replay(new StringReader(TestSupport.Fixture("ftrace_kmem_modern_small_samples.txt")));
        using var doc = System.Text.Json.JsonDocument.Parse(r.ToJson());
        Assert.Equal(35, doc.RootElement.GetProperty("replayed").GetInt64());
        Assert.Equal(9, doc.RootElement.GetProperty("kmalloc").GetArrayLength());
        Assert.True(doc.RootElement.GetProperty("kmalloc")[0].GetProperty("match").GetBoolean());
        string path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ftrace_kmem_modern_small_samples.txt");
        var o = new StringWriter();
        Assert.Equal(0, Kmem.Cli.KmemCli.Run(["replay", path, "--profile", "x86_64"], o, new StringWriter()));
        Assert.Contains("replay on x86_64: 84 lines, 40 kmem events, 35 replayed, 5 not", o.ToString());
        Assert.Contains("9 of 9 sizes as recorded", o.ToString());
        var j = new StringWriter();
        Assert.Equal(0, Kmem.Cli.KmemCli.Run(["replay", path, "--json", "--no-pages"], j, new StringWriter()));
        using var doc2 = System.Text.Json.JsonDocument.Parse(j.ToString());
        Assert.Equal(10, doc2.RootElement.GetProperty("skipped").GetProperty("a kind this replay leaves out").GetInt64());
        var err = new StringWriter();
        Assert.Equal(2, Kmem.Cli.KmemCli.Run(["replay", "/nonexistent/trace.txt"], new StringWriter(), err));
        Assert.Contains("no trace file", err.ToString());
    }

    [Fact]
    public void The_unusable_free_index_follows_the_kernels_formula()
    {
        using var m = Machine.Boot("rv1106");
        string before = m.ProcFs.Read("/sys/kernel/debug/extfrag/unusable_index");
        Assert.Matches(@"^Node 0, zone   Normal (\d\.\d{3} ){9}\n$", before);
        Assert.StartsWith("Node 0, zone   Normal 0.000 ", before);          // every free page is usable at order 0
        // Fragment the zone: every other page free. Then the view must agree with buddyinfo through the formula.
        var held = new List<Page>();
        while (m.AllocPage(Gfp.Kernel | Gfp.NoWarn) is { IsNull: false } p) held.Add(p);
        for (int i = 0; i < held.Count; i += 2) m.FreePage(held[i]);
        m.DrainAllPages();
        var counts = m.ProcFs.Read("/proc/buddyinfo").Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[4..].Select(long.Parse).ToArray();
        long free = counts.Select((n, o) => n << o).Sum();
        var expected = new System.Text.StringBuilder("Node 0, zone   Normal ");
        for (int order = 0; order < counts.Length; order++)
        {
            long suitable = 0;
            for (int o = order; o < counts.Length; o++) suitable += counts[o] << (o - order);
            long index = (free - (suitable << order)) * 1000 / free;
            expected.Append($"{index / 1000}.{index % 1000:D3} ");
        }
        string after = m.ProcFs.Read("/sys/kernel/debug/extfrag/unusable_index");
        Assert.Equal(expected + "\n", after);
        Assert.NotEqual(before, after);
        double order1 = double.Parse(after.Split(' ', StringSplitOptions.RemoveEmptyEntries)[5], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(order1 > 0.5, after);                                // most free memory is single pages now
        for (int i = 1; i < held.Count; i += 2) m.FreePage(held[i]);
    }
}
