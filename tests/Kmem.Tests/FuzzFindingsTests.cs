// What fuzzing the input parsers found, each pinned at its root: lone UTF-16 surrogates in JSON strings and keys,
// kernel command-line words split by any white space, one-line reasons whatever the input quotes, and numbers in a
// rk-dma-heap-info dump too large for their field. The raw fuzzer inputs are replayed by FuzzCorpusTests.
using Kmem.Boot;
using Kmem.Cli;

namespace Kmem.Tests;

public class FuzzFindingsTests
{
    private const string Board = """{"name":"b","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"}]""";

    [Theory]
    [InlineData("""{"name":"b\ud800","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"}]}""", "name")]
    [InlineData("""{"name":"b","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M\udfff"}]}""", "dram[0].size")]
    [InlineData("""{"name":"b","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"}],"devices":[{"name":"d","driver":"x\udc00y"}]}""", "devices[0].driver")]
    [InlineData("""{"name":"b","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M","\ud800":1}]}""", "dram[0]")]
    [InlineData("""{"\udbff":"b"}""", "(root)")]
    public void A_lone_surrogate_in_a_profile_is_refused_naming_the_field(string json, string field)
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json));
        Assert.Equal(field, e.Field);
        Assert.Contains("lone UTF-16 surrogate", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("""{"steps":[{"op":"log","message":"half \ud83d of a pair"}]}""", "steps[0].message")]
    [InlineData("""{"name":"\udead","steps":[]}""", "name")]
    [InlineData("""{"steps":[{"op":"repeat","times":2,"steps":[{"op":"alloc_pages","label":"a\ud800"}]}]}""", "steps[0].steps[0].label")]
    [InlineData("""{"steps":[{"op":"log","\udc00":"x"}]}""", "steps[0]")]
    public void A_lone_surrogate_in_a_workload_is_refused_naming_the_step(string json, string location)
    {
        var e = Assert.Throws<WorkloadException>(() => Workload.Parse(json));
        Assert.Equal(location, e.Location);
        Assert.Contains("lone UTF-16 surrogate", e.Message);
    }

    [Fact]
    public void A_surrogate_pair_is_text_like_any_other()
    {
        var w = Workload.Parse("""{"name":"camera \ud83d\udcf7","steps":[{"op":"log","message":"\ud83d\ude00"}]}""");
        Assert.Equal("camera \U0001F4F7", w.Name);
        var p = MachineProfile.Parse(Board + ""","description":"board \ud83d\ude00"}""");
        Assert.Equal("board \U0001F600", p.Description);
    }


    [Theory]
    [InlineData("run", """{"steps":[{"op":"alloc_pages","label":"frames\ud800","order":0}]}""", "steps[0].label")]
    [InlineData("boot", """{"name":"b","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"}],"description":"\udfff"}""", "description")]
    public void The_cli_exits_2_with_one_line_naming_the_field(string verb, string json, string field)
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-surrogate-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        try
        {
            var (code, _, err) = verb == "run" ? TestSupport.Cli("run", path) : TestSupport.Cli("boot", "--profile", path);
            Assert.Equal(2, code);
            Assert.Contains($": {field}: ", err);
            Assert.Contains("lone UTF-16 surrogate", err);
            Assert.Single(err.TrimEnd('\n').Split('\n'));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Command_line_words_are_split_by_any_white_space_as_the_kernel_does()
    {
        var c = KernelCmdline.Parse("slub_min_order=1\nslab_nomerge\tdma_debug=on\r\nslub_min_objects=8", "cmdline");
        Assert.Equal(1, c.SlubMinOrder);
        Assert.True(c.SlabNoMerge);
        Assert.True(c.DmaDebug);
        Assert.Equal(8, c.SlubMinObjects);
        Assert.Empty(c.Unknown);
        // The fuzzer's finding: a value cut by a newline is the value before it, the rest another word.
        var e = Assert.Throws<ProfileException>(() => Machine.Boot("rv1106", "failslab=2\n50,4096,100").Dispose());
        Assert.Equal("profile: cmdline: failslab=2: expected interval,probability,space,times (interval ≥ 1, probability 0-100, space ≥ 0, times ≥ -1)", e.Message);
        using var m = Machine.Boot("rv1106", "failslab=2,50,4096,100\nslab_nomerge");
        Assert.Equal(50, m.Failslab.Probability);
    }

    [Fact]
    public void A_reason_stays_on_one_line_whatever_the_input_quotes()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(Board + ""","cmdline":"dma_debug=o\u0001\u2028x"}"""));
        Assert.Equal("profile: cmdline: dma_debug=o\\x01\\u2028x must be on or off", e.Message);
        var w = Assert.Throws<WorkloadException>(() => Workload.Parse("""{"steps":[{"op":"line\nbreak"}]}"""));
        Assert.Contains("line\\nbreak", w.Message);
        Assert.DoesNotContain('\n', w.Message);
        var d = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse("dma-heap:<h> -dmabuf\nAlloc by (a\u000bb ) [0x1000-0x1fff] 0x1000\r\ntwo\u0085lines"));
        Assert.DoesNotContain('\n', d.Message);
        Assert.Contains("\\x85", d.Message);
    }

    [Theory]
    [InlineData("dma-heap:<h> -dmabuf i_ino = 99999999999999999999\nAlloc by (a ) [0x1000-0x1fff] 0x1000", 1, "inode number 99999999999999999999 is too large")]
    [InlineData("dma-heap:<h> -dmabuf\ni_ino = 9223372036854775808\nAlloc by (a ) [0x1000-0x1fff] 0x1000", 2, "inode number 9223372036854775808 is too large")]
    [InlineData("dma-heap:<h> -dmabuf\nAlloc by (a ) [0x10000000000000000-0x1fff] 0x1000", 2, "0x10000000000000000 does not fit in 64 bits")]
    [InlineData("dma-heap:<h> -dmabuf\nAlloc by (a ) [0x1000-0x1fff] 0x1000 (99999999999999999999 KiB)", 2, "99999999999999999999 KiB does not match 0x1000")]
    [InlineData("dma-heap:<h> -dmabuf\nAlloc by (a ) [0x1000-0x1fff] 0x1000\nAttached Devices:\nTotal 4294967296 devices attached", 4, "4294967296 devices announced, 0 listed")]
    [InlineData("dma-heap:<h> -dmabuf i_ino = \u0663\nAlloc by (a ) [0x1000-0x1fff] 0x1000", 1, "unexpected line")]
    public void Numbers_too_large_for_a_dump_field_are_refused_naming_the_line(string dump, int line, string problem)
    {
        var e = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(dump));
        Assert.Equal(line, e.Line);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void The_largest_inode_number_is_read()
    {
        var entries = RkDmaHeapImport.Parse("dma-heap:<h> -dmabuf i_ino = 9223372036854775807\nAlloc by (a ) [0x1000-0x1fff] 0x1000 (4 KiB)\nAttached Devices:\nTotal 0 devices attached");
        Assert.Equal(long.MaxValue, Assert.Single(entries).Ino);
    }

    [Fact]
    public void Long_damaged_lines_are_read_in_linear_time()
    {
        // Both were quadratic: 200 KB of ": " took 3.6 s in the trace parser, 30 000 blanks in "Alloc by (" 18 s.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(KmemTraceLineKind.NotAnEvent, KmemTraceParser.Parse("a" + string.Concat(Enumerable.Repeat(": ", 500_000)), out _, out _));
        Assert.Equal(KmemTraceLineKind.NotAnEvent, KmemTraceParser.Parse("kmalloc: " + string.Concat(Enumerable.Repeat("(: ", 300_000)), out _, out _));
        var e = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse("dma-heap:<h> -dmabuf\nAlloc by (" + new string(' ', 1_000_000) + "x"));
        Assert.Equal("dump: line 2: line of 1000011 characters (at most 1024)", e.Message);
        var worst = "dma-heap:<h> -dmabuf\n" + string.Concat(Enumerable.Repeat("Alloc by (" + new string(' ', RkDmaHeapImport.MaxLine - 12) + "x\n", 20));
        Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(worst));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"{sw.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public void Trace_fields_beyond_an_int_are_unreadable_not_wrapped()
    {
        Assert.Equal(KmemTraceLineKind.Truncated, KmemTraceParser.Parse("mm_page_alloc: page=0x1 pfn=0x1000 order=4294967296 migratetype=0 gfp_flags=0xcc0", out _, out _));
        Assert.Equal(KmemTraceLineKind.Event, KmemTraceParser.Parse("kmalloc: call_site=f+0x1 ptr=0xffff888000001000 bytes_req=8 bytes_alloc=8 gfp_flags=0xcc0 node=4294967296", out var ev, out _));
        Assert.Null(ev.Node);
        Assert.Equal(KmemTraceLineKind.Event, KmemTraceParser.Parse("mm_page_alloc: page=0x1 pfn=0x1000 order=2 migratetype=1 gfp_flags=0xcc0", out ev, out _));
        Assert.Equal(2, ev.Order);
    }
}
