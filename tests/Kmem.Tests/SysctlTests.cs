// The machine's tunables (machine.Sysctl): the vm knobs read what /proc/sys/vm prints, writes reach the layer
// they tune (watermarks, reclaim and CMA waits, the deferred-free worker, the dma-buf inode counter), values out
// of range are reported in the log and refused without changing anything, and a disposed machine refuses every write.
using System.Globalization;
using Kmem.Paging;

namespace Kmem.Tests;

public class SysctlTests
{
    /// <summary>A board with two CMA areas, so that a CMA knob is seen to reach each of them.</summary>
    private const string TwoCmaProfileJson = """
    {
      "name": "two-cma", "arch": "arm", "cpus": 2,
      "dram": [ { "base": "0x60000000", "size": "64M" } ],
      "kernel": { "base": "0x60008000", "code": "1M", "rwdata": "128K", "rodata": "256K", "init": "64K", "bss": "64K" },
      "cma": [ { "name": "cma-a", "base": "0x61000000", "size": "4M" }, { "name": "cma-b", "base": "0x62000000", "size": "4M" } ]
    }
    """;

    [Theory]
    [InlineData("rv1106")]
    [InlineData("rk3588")]
    [InlineData("x86_64")]
    public void Each_vm_knob_reads_what_its_proc_sys_vm_file_prints(string profile)
    {
        using var m = Machine.Boot(profile);
        var vm = m.Sysctl.Vm;
        string Proc(string name) => m.ProcFs.Read($"/proc/sys/vm/{name}");
        Assert.Equal($"{vm.MinFreeKbytes}\n", Proc("min_free_kbytes"));
        Assert.Equal($"{vm.WatermarkScaleFactor}\n", Proc("watermark_scale_factor"));
        Assert.Equal(string.Join('\t', vm.LowmemReserveRatio) + "\n", Proc("lowmem_reserve_ratio"));
        // The kernel's defaults, zone by zone (mm/page_alloc.c: sysctl_lowmem_reserve_ratio).
        Assert.Equal(10, vm.WatermarkScaleFactor);
        Assert.Equal(m.Zones.Select(z => z.Type switch { ZoneType.Dma or ZoneType.Dma32 => 256, ZoneType.Normal => 32, _ => 0 }), vm.LowmemReserveRatio);
        vm.MinFreeKbytes = 3000;
        Assert.Equal("3000\n", Proc("min_free_kbytes"));
    }

    [Fact]
    public void Writing_min_free_kbytes_recomputes_every_watermark_and_is_logged()
    {
        using var m = Machine.Boot("x86_64");
        var before = m.Zones.Select(z => z.WatermarkMin).ToArray();
        m.Sysctl.Vm.MinFreeKbytes = m.Sysctl.Vm.MinFreeKbytes * 2;
        long kb = m.Sysctl.Vm.MinFreeKbytes;
        var expected = Watermarks.ZoneWatermarks(kb, m.Zones.Select(z => (z.Managed, z.Type == ZoneType.HighMem)).ToArray());
        Assert.Equal(expected.Select(w => w.Min), m.Zones.Select(z => z.WatermarkMin));
        Assert.NotEqual(before, m.Zones.Select(z => z.WatermarkMin).ToArray());
        Assert.Contains($"sysctl: vm.min_free_kbytes = {kb}", m.Dmesg());
    }

    [Fact]
    public void The_bounds_are_accepted_and_the_kmem_knobs_reach_their_layers()
    {
        using var m = Machine.Boot(MachineProfile.Parse(TwoCmaProfileJson));
        var vm = m.Sysctl.Vm;
        var k = m.Sysctl.Kmem;
        long quarter = (long)(m.Profile.TotalRam / 4 / 1024);
        vm.MinFreeKbytes = quarter;
        Assert.Equal(quarter, vm.MinFreeKbytes);
        vm.MinFreeKbytes = 0;
        Assert.Equal(0, vm.MinFreeKbytes);

        Assert.Equal(TimeSpan.FromMilliseconds(5), k.ReclaimRetryWait);        // the defaults
        Assert.Equal(TimeSpan.FromMilliseconds(100), k.CmaBusyRetryWait);
        Assert.True(k.DmaBufDeferredFreeWorker);
        k.ReclaimRetryWait = TimeSpan.FromSeconds(10);
        Assert.Equal(TimeSpan.FromSeconds(10), m.Pages.ReclaimRetryWait);
        k.ReclaimRetryWait = TimeSpan.Zero;
        Assert.Equal(TimeSpan.Zero, m.Pages.ReclaimRetryWait);
        k.CmaBusyRetryWait = TimeSpan.FromMilliseconds(7);
        Assert.Equal(2, m.Cma.Count);
        Assert.All(m.Cma.Values, c => Assert.Equal(TimeSpan.FromMilliseconds(7), c.BusyRetryWait));
        Assert.Equal(TimeSpan.FromMilliseconds(7), k.CmaBusyRetryWait);

        // The inode counter: the next dma-buf takes the number set, after the numbers skipped.
        var heap = m.DmaHeaps["system"];
        k.DmaBufNextIno = 700;
        k.DmaBufSkipInodes(5);
        Assert.Equal(705UL, k.DmaBufNextIno);
        var buf = heap.AllocateBuffer(4096)!;
        Assert.Equal(705UL, buf.Ino);
        Assert.Equal(706UL, k.DmaBufNextIno);

        // The worker held, a released buffer stays on the deferred list until the worker runs again.
        k.DmaBufDeferredFreeWorker = false;
        buf.Put();
        Assert.Equal(1, m.DmaBufDeferredPages);
        k.DmaBufDeferredFreeWorker = true;
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, m.DmaBufDeferredPages);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_value_out_of_range_is_reported_and_refused_leaving_every_knob_as_it_was()
    {
        using var m = Machine.Boot("rv1106");
        var vm = m.Sysctl.Vm;
        var k = m.Sysctl.Kmem;
        k.DmaBufNextIno = 42;
        string Knobs() => string.Join(",", vm.MinFreeKbytes, k.ReclaimRetryWait, k.CmaBusyRetryWait, k.DmaBufDeferredFreeWorker, k.DmaBufNextIno,
            string.Join(";", m.Cma.Values.Select(c => c.BusyRetryWait)));
        long quarter = (long)(m.Profile.TotalRam / 4 / 1024);
        Assert.Equal(65536, quarter);                                             // a quarter of rv1106's 256 MiB
        void Refused(Action write, string key, string problem)
        {
            var e = TestSupport.Rejected<SysctlException>(m, write, $"sysctl: setting key \"{key}\": Invalid argument ({problem})", Knobs);
            Assert.Equal(key, e.Key);
            Assert.Equal(problem, e.Problem);
            Assert.IsAssignableFrom<KmemException>(e);
        }
        Refused(() => vm.MinFreeKbytes = -1, "vm.min_free_kbytes", "-1 is outside 0..65536 KiB");
        Refused(() => vm.MinFreeKbytes = quarter + 1, "vm.min_free_kbytes", "65537 is outside 0..65536 KiB");
        Refused(() => k.ReclaimRetryWait = TimeSpan.FromMilliseconds(-1), "kmem.reclaim_retry_wait", "-1 ms is outside 0..10000 ms");
        Refused(() => k.ReclaimRetryWait = TimeSpan.FromSeconds(10) + TimeSpan.FromTicks(1), "kmem.reclaim_retry_wait",
            (10000.0001).ToString(CultureInfo.InvariantCulture) + " ms is outside 0..10000 ms");
        Refused(() => k.CmaBusyRetryWait = TimeSpan.FromMinutes(1), "kmem.cma_busy_retry_wait", "60000 ms is outside 0..10000 ms");
        Refused(() => k.DmaBufNextIno = (ulong)long.MaxValue + 1, "kmem.dmabuf_next_ino", $"{(ulong)long.MaxValue + 1} is outside 0..{long.MaxValue}");
        Refused(() => k.DmaBufSkipInodes(-1), "kmem.dmabuf_next_ino", $"skipping -1 inode numbers from 42: the counter must stay in 0..{long.MaxValue}");
        Refused(() => k.DmaBufSkipInodes(long.MaxValue - 41), "kmem.dmabuf_next_ino",
            $"skipping {long.MaxValue - 41} inode numbers from 42: the counter must stay in 0..{long.MaxValue}");
        k.DmaBufSkipInodes(long.MaxValue - 42);                                   // exactly to the top is allowed
        Assert.Equal((ulong)long.MaxValue, k.DmaBufNextIno);
    }

    [Fact]
    public void A_disposed_machine_refuses_every_write()
    {
        var m = Machine.Boot("rv1106");
        var sysctl = m.Sysctl;
        var vm = sysctl.Vm;
        var k = sysctl.Kmem;
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.Sysctl);
        Assert.Throws<ObjectDisposedException>(() => sysctl.Vm);
        Assert.Throws<ObjectDisposedException>(() => sysctl.Kmem);
        Assert.Throws<ObjectDisposedException>(() => vm.MinFreeKbytes = 1024);
        Assert.Throws<ObjectDisposedException>(() => k.ReclaimRetryWait = TimeSpan.Zero);
        Assert.Throws<ObjectDisposedException>(() => k.CmaBusyRetryWait = TimeSpan.Zero);
        Assert.Throws<ObjectDisposedException>(() => k.DmaBufDeferredFreeWorker = false);
        Assert.Throws<ObjectDisposedException>(() => k.DmaBufNextIno = 1);
        Assert.Throws<ObjectDisposedException>(() => k.DmaBufSkipInodes(1));
        Assert.Throws<ObjectDisposedException>(() => vm.MinFreeKbytes = -1);     // dead before invalid
    }
}
