// The System.Diagnostics.Metrics instruments: a listener sees each machine's figures by zone.
using System.Diagnostics.Metrics;

namespace Kmem.Tests;

public class MetricsTests
{
    /// <summary>Records this machine's measurements as "instrument/value of <paramref name="tag"/>" (other machines are ignored).</summary>
    private static MeterListener Listen(Machine m, string tag, Dictionary<string, long> seen)
    {
        var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == "Kmem") l.EnableMeasurementEvents(inst); };
        listener.SetMeasurementEventCallback<long>((inst, value, tags, _) =>
        {
            object? id = null;
            string key = "";
            foreach (var t in tags)
            {
                if (t.Key == "kmem.machine.id") id = t.Value;
                if (t.Key == tag) key = (string)t.Value!;
            }
            if (id is int i && i == m.Id) lock (seen) seen[$"{inst.Name}/{key}"] = value;
        });
        listener.Start();
        return listener;
    }

    [Fact]
    public void Free_memory_and_failures_are_published()
    {
        using var m = TestSupport.Small();
        var seen = new Dictionary<string, long>();
        using var listener = Listen(m, "kmem.zone", seen);
        var got = new List<Page>();
        for (int i = 0; i < 8; i++) got.Add(m.AllocPages(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn, 10)); // only 3 fit outside CMA
        Assert.Contains(got, p => p.IsNull);
        foreach (var p in got.Where(p => !p.IsNull)) m.FreePages(p, 10);
        listener.RecordObservableInstruments();
        var normal = m.Zones.Single(z => z.Name == "Normal");
        Assert.Equal(normal.FreePages * 4096, seen["kmem.memory.free/Normal"]);
        Assert.Equal(normal.Managed * 4096, seen["kmem.memory.managed/Normal"]);
        Assert.Equal(normal.FreeCmaPages * 4096, seen["kmem.memory.free_cma/Normal"]);
        Assert.True(seen["kmem.page_alloc.failures/"] >= 1);
        Assert.True(seen["kmem.page_alloc.slow_path/"] >= 1);
    }

    [Fact]
    public void Slab_caches_are_published_per_cache()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("metered", 200, 0, SlabFlags.NoMerge);
        var objs = Enumerable.Range(0, 50).Select(_ => c.Alloc(Gfp.Kernel)).ToList();
        var seen = new Dictionary<string, long>();
        using var listener = Listen(m, "kmem.cache", seen);
        listener.RecordObservableInstruments();
        Assert.Equal(c.TotalObjects, seen["kmem.slab.objects/metered"]);
        Assert.Equal(c.ActiveObjects, seen["kmem.slab.active_objects/metered"]);
        Assert.Equal(c.Slabs, seen["kmem.slab.slabs/metered"]);
        Assert.Equal(c.Slabs * 4096 << c.Order, seen["kmem.slab.memory/metered"]);
        Assert.True(seen["kmem.memory.slab_unreclaimable/"] >= c.Slabs * 4096);
        foreach (var o in objs) c.Free(o);
    }

    [Fact]
    public void Every_subsystem_publishes_through_the_kmem_meter()
    {
        using var m = Machine.Boot("rv1106");
        var runner = new WorkloadRunner(m);
        var run = runner.Run(Kmem.Cli.Commands.LoadWorkload("camera-vb2"));
        Assert.True(run.Ok, string.Join("\n", run.Problems));
        nint v = m.Vmalloc(64 * 1024);
        var pool = m.Rtnet.CreatePool("metered", 4);
        var seen = new Dictionary<string, long>();
        foreach (var tag in new[] { "kmem.cma", "kmem.device", "kmem.heap", "kmem.pool", "" })
        {
            using var l = Listen(m, tag, seen);
            l.RecordObservableInstruments();
        }
        Assert.Equal((long)m.Cma["rk-dma-heap-cma"].Used << 12, seen["kmem.cma.used/rk-dma-heap-cma"]);
        Assert.Equal(32L << 20, seen["kmem.cma.size/rk-dma-heap-cma"]);
        Assert.Equal(m.Devices["ffa00000.rkisp"].MappingCount, seen["kmem.dma.mappings/ffa00000.rkisp"]);
        Assert.True(seen["kmem.dma.mappings/ffa00000.rkisp"] >= 2);      // the two MMAP buffers
        Assert.Equal(m.DmaBufs.Count, seen["kmem.dmabuf.buffers/"]);
        Assert.Equal(m.DmaBufs.Sum(b => b.Size), seen["kmem.dmabuf.memory/"]);
        Assert.Equal(2, seen["kmem.drm.objects/"]);
        Assert.True(seen["kmem.vmalloc.used/"] >= 64 * 1024);
        Assert.Equal(4, seen["kmem.rtnet.pool_free/metered"]);
        Assert.Equal(m.Rtnet.RtskbCount.Current, seen["kmem.rtnet.rtskbs/"]);
        Assert.True(seen.ContainsKey("kmem.dmabuf.pool/system"));
        Assert.True(seen.ContainsKey("kmem.dma.debug_errors/"));
        m.Vfree(v);
        runner.ReleaseAll();
    }

    [Fact]
    public void A_collection_racing_with_another_machines_dispose_never_throws_into_the_listener()
    {
        // Every machine's instruments share the meter name, so a listener collects those of machines other tests are
        // disposing at that moment: a reader of a dying machine must report nothing instead of throwing.
        using var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == "Kmem") l.EnableMeasurementEvents(inst); };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => { });
        listener.Start();
        using var stop = new CancellationTokenSource();
        var errors = new List<Exception>();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try { listener.RecordObservableInstruments(); collections++; }
                catch (Exception e) { lock (errors) errors.Add(e); }
            }
        });
        collector.Start();
        for (int i = 0; i < 40; i++)
        {
            var m = TestSupport.Small();
            var c = m.KmemCacheCreate("metered_dying", 64);
            c.Alloc(Gfp.Kernel);
            m.Dispose();
        }
        stop.Cancel();
        collector.Join();
        Assert.True(collections > 0);
        Assert.True(errors.Count == 0, $"{errors.Count} collections threw, first: {errors.FirstOrDefault()}");
    }

    [Fact]
    public void A_vmalloc_view_read_after_the_window_is_released_refuses_instead_of_reading_a_freed_page_table()
    {
        // The race the collector above can hit: a metrics read passes the machine's life check, then the dispose frees
        // the window's page table before the read takes the window's lock. On a NUMA machine the area list reads that
        // table (each area's pages per node). Released first here, so the read comes after it every time.
        var m = Machine.Boot("x86_64-numa2");
        nint v = m.Vmalloc(64 * 1024);
        Assert.NotEqual(0, v);
        var space = (Kmem.Vmalloc.VmallocSpace)typeof(Machine).GetField("_vmalloc", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(m)!;
        Assert.Single(space.Areas(), a => a.NrPages == 16);
        space.Retire();
        Assert.Throws<ObjectDisposedException>(() => space.Areas());
        Assert.Throws<ObjectDisposedException>(() => space.CheckInvariants());
        m.Dispose();
    }

    private sealed class CountingShrinker() : Shrinker("test-shrinker")
    {
        private long _left = 100;
        public override long CountObjects(ShrinkControl sc) => _left;
        public override long ScanObjects(ShrinkControl sc) { long n = Math.Min(_left, sc.NrToScan); _left -= n; return n; }
    }

    private sealed class KmemEvents : System.Diagnostics.Tracing.EventListener
    {
        public readonly List<(string Name, IReadOnlyList<object?> Payload)> Seen = [];
        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource source)
        {
            if (source.Name == "Kmem") EnableEvents(source, System.Diagnostics.Tracing.EventLevel.Verbose, System.Diagnostics.Tracing.EventKeywords.All);
        }
        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs e)
        {
            if (e.EventSource.Name == "Kmem") lock (Seen) Seen.Add((e.EventName!, e.Payload!.ToList()));
        }
    }

    [Fact]
    public void Rare_events_reach_an_event_listener()
    {
        using var events = new KmemEvents();
        using var m = TestSupport.Small();
        // An allocation failure with its report.
        var got = new List<Page>();
        for (int i = 0; i < 8; i++) got.Add(m.AllocPages(Gfp.Kernel | Gfp.NoRetry, 10));
        foreach (var p in got.Where(p => !p.IsNull)) m.FreePages(p, 10);
        // A shrinker run.
        var s = new CountingShrinker();
        m.RegisterShrinker(s);
        m.Reclaim();
        m.UnregisterShrinker(s);
        // A debug error: a double free in a debugged cache.
        using var dbg = Machine.Boot("x86_64", "slub_debug=FZPU");
        var c = dbg.KmemCacheCreate("evented", 64);
        nint o = c.Alloc(Gfp.Kernel);
        c.Free(o);
        Assert.ThrowsAny<KmemException>(() => c.Free(o));
        List<(string Name, IReadOnlyList<object?> Payload)> seen;
        lock (events.Seen) seen = [.. events.Seen];
        Assert.Contains(seen, e => e.Name == "AllocationFailure" && (int)e.Payload[0]! == 10 && ((string)e.Payload[1]!).Contains("GFP_KERNEL"));
        Assert.Contains(seen, e => e.Name == "OomReport" && ((string)e.Payload[0]!).Contains("page allocation failure: order:10"));
        Assert.Contains(seen, e => e.Name == "ShrinkerRun" && (string)e.Payload[0]! == "test-shrinker" && (long)e.Payload[2]! > 0);
        Assert.Contains(seen, e => e.Name == "DebugError" && (string)e.Payload[0]! == "slub_debug" && ((string)e.Payload[1]!).StartsWith("evented"));
        Assert.Contains(seen, e => e.Name == "Printk");
    }
}
