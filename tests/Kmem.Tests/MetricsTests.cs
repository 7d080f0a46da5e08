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
}
