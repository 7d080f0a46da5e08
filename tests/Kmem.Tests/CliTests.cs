// The `kmem` command run in-process: the main job, each verb, and the exit codes for bad input.
using Kmem.Cli;

namespace Kmem.Tests;

public class CliTests
{

    [Fact]
    public void Main_job_boots_rv1106_runs_the_camera_pipeline_and_prints_the_seed_dump()
    {
        var (code, o, e) = TestSupport.Cli();
        Assert.True(code == 0, e);
        Assert.Contains("booted rv1106", o);
        Assert.Contains("ran workload 'camera-pipeline'", o);
        Assert.Contains("$ cat /proc/rk_dma_heap/rk-dma-heap-info\ndma-heap:<rk-dma-heap-cma> -dmabuf\ti_ino = 5656\n", o);
        Assert.Contains("\nTotal : 0x1634000 (22736 KiB)\n", o);
        // CONFIG_CMA_INACTIVE: the area never enters the buddy allocator, so none of it counts as free CMA memory.
        // Rockchip's meminfo: what the RK heap's bitmap hands out (the seed dump's 22736 KiB), the rest, and CmaFree 0 (CMA_INACTIVE)
        Assert.Contains("$ grep Cma /proc/meminfo\nCmaTotal:          32768 kB\nCmaAllocated:      22736 kB\nCmaReleased:       10032 kB\nCmaFree:               0 kB\n", o);
        Assert.Contains("; CMA free 10032 kB; ", o);   // the summary: what the area's bitmap leaves
        Assert.Contains("$ cat /proc/buddyinfo\nNode 0, zone   Normal ", o);
        Assert.Contains("32 dma-bufs (14856 KiB); all expectations held", o);
        // Then the same board streams through videobuf2 and shares framebuffers through PRIME.
        Assert.Contains("# kmem: then ran workload 'camera-vb2' on the same board\nvb2_pipeline rkisp_mainpath -> rkvenc: 300 frames of 3110400 bytes, 300 read back intact, 300 at the producer's own device address (zero copy)\n", o);
        Assert.Contains("videobuf2_dma_contig\t00005657\t\n\tAttached Devices:\n\tffa50000.rkvenc\nTotal 1 devices attached\n", o);
        Assert.Contains("36 dma-bufs (22440 KiB); all expectations held", o);
        // The dma-buf part is the seed's dump (PART A of the fixture), byte for byte.
        int from = o.IndexOf("dma-heap:", StringComparison.Ordinal), to = o.IndexOf("dma-heap:<rk-dma-heap-cma> -non dmabuf", StringComparison.Ordinal);
        Assert.Equal(RkDumpFixture.PartA(), o[from..to]);
    }

    [Fact]
    public void Cat_shows_the_vmalloc_cma_and_dma_views_after_the_camera_dma_workload()
    {
        var (code, o, e) = TestSupport.Cli("cat", "/proc/vmallocinfo", "--workload", "camera-dma");
        Assert.True(code == 0, e);
        Assert.Matches(@"0x[0-9a-f]{8}-0x[0-9a-f]{8}  618496 rc-tables pages=150 vmalloc\n", o);
        Assert.Contains(" dma_common_contiguous_remap+0x94/0xb0 dma-coherent", o);
        // rv1106_defconfig has no CONFIG_CMA_DEBUGFS: Rockchip's meminfo line says what the area hands out.
        (code, o, e) = TestSupport.Cli("cat", "/proc/meminfo", "--workload", "camera-dma");
        Assert.True(code == 0, e);
        Assert.Contains($"CmaAllocated:   {3976 * 4,8} kB\n", o);   // 2 x 5852K + 4 x 16K + 1952K + 2 x 1M + 2 x 17 pages
        (code, _, e) = TestSupport.Cli("cat", "/sys/kernel/debug/cma/rk-dma-heap-cma/count");
        Assert.NotEqual(0, code);
        Assert.Contains("No such file or directory", e);
        (code, o, e) = TestSupport.Cli("cat", "/sys/kernel/debug/dma-api/dump", "--cmdline", "dma_debug=on", "--workload", "camera-dma");
        Assert.True(code == 0, e);
        Assert.Contains("ffa00000.rkisp rkisp coherent idx ", o);
        (code, o, _) = TestSupport.Cli("cat", "--list");
        Assert.Contains("/proc/vmallocinfo", o);
        Assert.Contains("/proc/rk_dma_heap/rk-dma-heap-info", o);
    }

    [Fact]
    public void Slabtop_sorts_by_cache_size_after_a_workload()
    {
        var (code, o, e) = TestSupport.Cli("slabtop", "--workload", "camera-pages", "--lines", "3");
        Assert.True(code == 0, e);
        var rows = o.Split('\n').Where(l => l.Contains('%') && !l.Contains("Active")).ToList();
        Assert.Equal(3, rows.Count);
        Assert.EndsWith("kmalloc-2k", rows[0].Trim());
        Assert.Contains(" Minimum / Average / Maximum Object : ", o);
        var (code2, o2, _) = TestSupport.Cli("slabtop", "--sort", "n", "--profile", "x86_64");
        Assert.Equal(0, code2);
        Assert.True(o2.IndexOf("dma-kmalloc-128", StringComparison.Ordinal) < o2.IndexOf("kmalloc-128", o2.IndexOf("dma-kmalloc-128", StringComparison.Ordinal) + 20, StringComparison.Ordinal));
    }

    [Fact]
    public void The_kernel_command_line_reaches_the_machine()
    {
        var (code, o, e) = TestSupport.Cli("cat", "/sys/kernel/slab/kmalloc-64/red_zone", "--cmdline", "slub_debug=Z,kmalloc-64", "--profile", "x86_64");
        Assert.True(code == 0, e);
        Assert.Equal("1\n", o);
        var (code2, o2, _) = TestSupport.Cli("dmesg", "--cmdline", "slub_debug=FZPU");
        Assert.Equal(0, code2);
        Assert.Contains("Kernel command line: rk_dma_heap_cma=32M@0x2800000 slub_debug=FZPU", o2);   // after the profile's own
    }

    [Fact]
    public void Boot_prints_the_boot_log()
    {
        var (code, o, _) = TestSupport.Cli("boot", "--profile", "x86_64");
        Assert.Equal(0, code);
        Assert.Contains("Zone ranges:", o);
        Assert.Contains("DMA32    [mem 0x0000000001000000-0x00000000ffffffff]", o);
    }

    [Fact]
    public void Profiles_lists_the_embedded_boards()
    {
        var (code, o, _) = TestSupport.Cli("profiles");
        Assert.Equal(0, code);
        Assert.Contains("rv1106 (default)", o);
        Assert.Contains("rk3588", o);
        Assert.Contains("x86_64", o);
        Assert.Contains("DMA DMA32 Normal Movable", o);
        var (code2, json, _) = TestSupport.Cli("profiles", "--json", "rv1106");
        Assert.Equal(0, code2);
        Assert.Equal("rv1106", MachineProfile.Parse(json).Name);
    }

    [Fact]
    public void Cat_prints_one_view()
    {
        var (code, o, _) = TestSupport.Cli("cat", "/proc/buddyinfo", "--profile", "x86_64");
        Assert.Equal(0, code);
        Assert.StartsWith("Node 0, zone      DMA ", o);
        var (code2, list, _) = TestSupport.Cli("cat", "--list");
        Assert.Equal(0, code2);
        Assert.Contains("/proc/zoneinfo", list);
    }

    [Fact]
    public void Cat_after_a_workload_shows_its_effect()
    {
        // The camera pipeline's buffers come from rk-dma-heap-cma (on rv1106 its pages never reach the buddy allocator,
        // so MemFree does not move): Rockchip's CmaAllocated line does.
        static string Allocated(string meminfo) => meminfo.Split('\n').Single(l => l.StartsWith("CmaAllocated:", StringComparison.Ordinal));
        var (_, before, _) = TestSupport.Cli("cat", "/proc/meminfo");
        var (code, after, e) = TestSupport.Cli("cat", "/proc/meminfo", "--workload", KmemCli.DefaultWorkload);
        Assert.True(code == 0, e);
        Assert.Equal("CmaAllocated:          0 kB", Allocated(before));
        Assert.Equal("CmaAllocated:      22736 kB", Allocated(after));
    }

    [Fact]
    public void The_packet_storm_prints_per_pool_figures_and_proc_rtnet_rtskb_shows_its_effect()
    {
        var (code, o, e) = TestSupport.Cli("run", "packet-storm");
        Assert.True(code == 0, e);
        Assert.Contains("all expectations held", o);
        Assert.Matches(@"socket:5001 +│ 16 +│ 0 +│ 16 +│ 0 +│ 9984 ", o);       // the stuck consumer: its own pool dry
        Assert.Matches(@"rteth0-rx +│ 16 +│ 16 +│ 0 +│ 0 +│ 0 ", o);          // the NIC unharmed
        Assert.Contains("rteth0: rx 70000 packets, 9984 dropped; rx pool 16/16 free", o);
        // The figures follow from RTnet's rules (docs/rtnet.md) and the workload, not from an earlier run. rv1106 is
        // 32-bit with 64-byte lines: one rtskb is ALIGN_RTSKB_STRUCT_LEN = ALIGN(88, 64) = 128 bytes of header plus
        // SKB_DATA_ALIGN(RTSKB_SIZE 1544) = 1600 of data.
        const int l = 128 + 1600;
        // At load: the global pool (global_rtskbs 0, plus device_rtskbs 16 for rtlo), ICMP 8, VNIC 32, proxy 32, rtlo's rx 1.
        const int pools0 = 5, skbs0 = 16 + 8 + 32 + 32 + 1;
        // packet-storm: rteth0 (rx pool 16, and 16 more in the global pool), three sockets of socket_rtskbs 16, then
        // telemetry's RT_SO_EXTPOOL 48; at the peak that is all. Then control closes (its pool of 16 goes) and
        // telemetry's RT_SO_SHRPOOL gives back 64.
        const int poolsMax = pools0 + 1 + 3, skbsMax = skbs0 + 16 + 16 + 3 * 16 + 48;
        const int poolsNow = poolsMax - 1, skbsNow = skbsMax - 16 - 64;
        static string Proc(int p, int pm, int s, int sm) => $"Statistics\t\tCurrent\tMaximum\nrtskb pools\t\t{p}\t{pm}\nrtskbs\t\t\t{s}\t{sm}\nrtskb memory need\t{s * l}\t{sm * l}\n";
        (code, o, e) = TestSupport.Cli("cat", "/proc/rtnet/rtskb", "--workload", "packet-storm");
        Assert.True(code == 0, e);
        Assert.Equal(Proc(poolsNow, poolsMax, skbsNow, skbsMax), o);
        (code, o, _) = TestSupport.Cli("cat", "/proc/rtnet/rtskb");
        Assert.Equal(0, code);
        Assert.Equal(Proc(pools0, pools0, skbs0, skbs0), o);
    }

    [Fact]
    public void Run_executes_a_workload_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-wl-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """
        { "name": "tiny", "steps": [
            { "op": "alloc_pages", "label": "a", "order": 3, "count": 4, "expect": "success", "fill": 7 },
            { "op": "verify", "label": "a", "pattern": 7 },
            { "op": "free_pages", "label": "a", "count": 2 },
            { "op": "check" } ] }
        """);
        try
        {
            var (code, o, e) = TestSupport.Cli("run", path, "--profile", "rv1106");
            Assert.True(code == 0, e);
            Assert.Contains("workload tiny on rv1106", o);
            Assert.Contains("all expectations held", o);
            Assert.Contains("Node 0, zone   Normal", o);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Run_fails_with_1_when_an_expectation_does_not_hold()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-wl-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{ "steps": [ { "op": "alloc_pages", "label": "big", "order": 10, "count": 200, "gfp": "GFP_KERNEL|__GFP_NORETRY|__GFP_NOWARN", "expect": "success" } ] }""");
        try
        {
            var (code, _, e) = TestSupport.Cli("run", path);
            Assert.Equal(1, code);
            Assert.Contains("failed", e);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Dmesg_filters_by_level()
    {
        var (code, all, _) = TestSupport.Cli("dmesg");
        Assert.Equal(0, code);
        Assert.Contains("On node 0 totalpages", all); // KERN_DEBUG
        var (_, info, _) = TestSupport.Cli("dmesg", "--level", "6");
        Assert.DoesNotContain("On node 0 totalpages", info);
        Assert.Contains("Zone ranges:", info);
    }

    [Theory]
    [InlineData(new[] { "cat", "/proc/nonsense" }, "No such file or directory")]
    [InlineData(new[] { "boot", "--profile", "pdp11" }, "unknown profile 'pdp11'")]
    [InlineData(new[] { "boot", "--profile", "/nonexistent/board.json" }, "cannot read")]
    [InlineData(new[] { "run", "no-such-workload" }, "neither a file nor a built-in workload")]
    [InlineData(new[] { "frobnicate" }, "kmem:")]
    [InlineData(new[] { "dmesg", "--level", "9" }, "outside 0..7")]
    [InlineData(new[] { "cat" }, "needs a path")]
    [InlineData(new[] { "slabtop", "--sort", "z" }, "--sort z")]
    [InlineData(new[] { "boot", "--cmdline", "slub_min_order=99" }, "slub_min_order=99")]
    public void Bad_input_exits_2_with_a_one_line_reason(string[] args, string reason)
    {
        var (code, _, e) = TestSupport.Cli(args);
        Assert.Equal(2, code);
        Assert.Contains(reason, e);
        Assert.Single(e.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void A_malformed_profile_file_exits_2_naming_the_field()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"name":"b","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"}],"cma":[{"name":"c","base":"0x100000","size":"8M"}]}""");
        try
        {
            var (code, _, e) = TestSupport.Cli("boot", "--profile", path);
            Assert.Equal(2, code);
            Assert.Contains("cma[0].base", e);
        }
        finally { File.Delete(path); }
    }
}
