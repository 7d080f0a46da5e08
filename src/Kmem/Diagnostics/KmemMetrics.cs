// System.Diagnostics.Metrics instruments of one machine (readable with dotnet-counters or
// OpenTelemetry): observable gauges and counters read from the allocators, so the hot paths pay nothing.
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Kmem.Paging;

namespace Kmem.Diagnostics;

/// <summary>The instruments of a machine's page allocator under the meter <c>Kmem</c>.</summary>
internal sealed class KmemMetrics : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "Kmem";

    private readonly Meter _meter;
    private readonly TagList _machine;
    /// <summary>
    /// The instruments' readers, held only from here: the meter (which lives in a process-wide registry until it is
    /// disposed) reaches them through weak references, so an undisposed machine can still be collected.
    /// </summary>
    private readonly List<object> _readers = [];

    /// <summary>A reader the meter reaches weakly; once the machine is gone it reports <paramref name="gone"/>.</summary>
    private Func<T> Weak<T>(Func<T> read, T gone)
    {
        _readers.Add(read);
        var weak = new WeakReference<Func<T>>(read);
        return () =>
        {
            if (!weak.TryGetTarget(out var r)) return gone;
            try
            {
                return r();
            }
            catch (ObjectDisposedException)
            {
                return gone;   // a collection that raced with the machine's dispose reads nothing of it
            }
        };
    }

    /// <summary>
    /// A reader of several measurements, enumerated inside the reader's guard: a lazy sequence enumerated later by the
    /// meter would read a machine that is being disposed outside it and throw into the listener.
    /// </summary>
    private Func<IEnumerable<Measurement<long>>> Weak(Func<IEnumerable<Measurement<long>>> read) =>
        Weak(() => (IEnumerable<Measurement<long>>)read().ToArray(), []);

    private Func<IEnumerable<Measurement<long>>> Weak(Func<Measurement<long>> read) => Weak(() => (IEnumerable<Measurement<long>>)[read()], []);

    public KmemMetrics(PageAllocator pa, Slab.SlabAllocator sa, string machineName, int machineId)
    {
        _meter = new Meter(MeterName, "1.0");
        // Several machines may boot the same profile: the id tells them apart.
        var machine = new TagList { { "kmem.machine", machineName }, { "kmem.machine.id", machineId } };
        _machine = machine;
        IEnumerable<Measurement<long>> PerZone(Func<Zone, long> read) =>
            pa.Zones.Where(z => z.Populated).Select(z =>
            {
                var tags = machine;
                tags.Add("kmem.zone", z.Name);
                tags.Add("kmem.node", z.Node);   // a two-node machine has a Normal zone on each node
                return new Measurement<long>(read(z), tags);
            });
        _meter.CreateObservableGauge("kmem.memory.free", Weak(() => PerZone(z => Volatile.Read(ref z.FreePages) * 4096)), "By", "Free memory on the buddy lists");
        _meter.CreateObservableGauge("kmem.memory.managed", Weak(() => PerZone(z => z.Managed * 4096)), "By", "Memory managed by the page allocator");
        _meter.CreateObservableGauge("kmem.memory.pcp", Weak(() => PerZone(z => pa.PcpTotal(z.Index) * 4096)), "By", "Memory on the per-CPU page lists");
        _meter.CreateObservableGauge("kmem.memory.free_cma", Weak(() => PerZone(z => Volatile.Read(ref z.FreeCmaPages) * 4096)), "By", "Free CMA memory");
        _meter.CreateObservableCounter("kmem.page_alloc.slow_path", Weak(() => new Measurement<long>(Volatile.Read(ref pa.SlowPathCount), machine)), "{call}", "Allocations that entered the slow path");
        _meter.CreateObservableCounter("kmem.page_alloc.reclaim", Weak(() => new Measurement<long>(Volatile.Read(ref pa.ReclaimCount), machine)), "{run}", "Direct reclaim runs");
        _meter.CreateObservableCounter("kmem.page_alloc.failures", Weak(() => new Measurement<long>(Volatile.Read(ref pa.FailureCount), machine)), "{call}", "Page allocations that failed");
        IEnumerable<Measurement<long>> PerCache(Func<SlabCache, long> read) =>
            sa.Caches.Select(c =>
            {
                var tags = machine;
                tags.Add("kmem.cache", c.Name);
                return new Measurement<long>(read(c), tags);
            });
        _meter.CreateObservableGauge("kmem.slab.active_objects", Weak(() => PerCache(c => c.ActiveObjects)), "{object}", "Objects in use or held by threads (slabinfo active_objs)");
        _meter.CreateObservableGauge("kmem.slab.objects", Weak(() => PerCache(c => c.TotalObjects)), "{object}", "Objects in all slabs (slabinfo num_objs)");
        _meter.CreateObservableGauge("kmem.slab.slabs", Weak(() => PerCache(c => c.Slabs)), "{slab}", "Slabs of the cache");
        _meter.CreateObservableGauge("kmem.slab.memory", Weak(() => PerCache(c => c.Slabs * (4096L << c.Order))), "By", "Memory in the cache's slabs");
        _meter.CreateObservableGauge("kmem.memory.slab_reclaimable", Weak(() => new Measurement<long>(pa.Stat.SlabReclaimablePages * 4096, machine)), "By", "SReclaimable");
        _meter.CreateObservableGauge("kmem.memory.slab_unreclaimable", Weak(() => new Measurement<long>(pa.Stat.SlabUnreclaimablePages * 4096, machine)), "By", "SUnreclaim");
        _meter.CreateObservableCounter("kmem.page_alloc.kswapd_wakeups", Weak(() => new Measurement<long>(Volatile.Read(ref pa.KswapdWakeups), machine)), "{wakeup}", "Background reclaim wake-ups");
    }

    /// <summary>A gauge of one value for the machine (the layers above add theirs).</summary>
    public void Gauge(string name, Func<long> read, string unit, string description) =>
        _meter.CreateObservableGauge(name, Weak(() => new Measurement<long>(read(), _machine)), unit, description);

    /// <summary>A counter of one value for the machine.</summary>
    public void Counter(string name, Func<long> read, string unit, string description) =>
        _meter.CreateObservableCounter(name, Weak(() => new Measurement<long>(read(), _machine)), unit, description);

    /// <summary>A gauge with one measurement per item, tagged <paramref name="tag"/> = the item's key.</summary>
    public void GaugeEach(string name, string tag, Func<IEnumerable<(string Key, long Value)>> read, string unit, string description) =>
        _meter.CreateObservableGauge(name, Weak(() => read().Select(kv =>
        {
            var t = _machine;
            t.Add(tag, kv.Key);
            return new Measurement<long>(kv.Value, t);
        })), unit, description);

    public void Dispose() => _meter.Dispose();
}
