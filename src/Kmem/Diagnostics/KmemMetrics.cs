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

    public KmemMetrics(PageAllocator pa, Slab.SlabAllocator sa, string machineName, int machineId)
    {
        _meter = new Meter(MeterName, "1.0");
        // Several machines may boot the same profile: the id tells them apart.
        var machine = new TagList { { "kmem.machine", machineName }, { "kmem.machine.id", machineId } };
        IEnumerable<Measurement<long>> PerZone(Func<Zone, long> read) =>
            pa.Zones.Where(z => z.Populated).Select(z =>
            {
                var tags = machine;
                tags.Add("kmem.zone", z.Name);
                return new Measurement<long>(read(z), tags);
            });
        _meter.CreateObservableGauge("kmem.memory.free", () => PerZone(z => Volatile.Read(ref z.FreePages) * 4096), "By", "Free memory on the buddy lists");
        _meter.CreateObservableGauge("kmem.memory.managed", () => PerZone(z => z.Managed * 4096), "By", "Memory managed by the page allocator");
        _meter.CreateObservableGauge("kmem.memory.pcp", () => PerZone(z => pa.PcpTotal(z.Index) * 4096), "By", "Memory on the per-CPU page lists");
        _meter.CreateObservableGauge("kmem.memory.free_cma", () => PerZone(z => Volatile.Read(ref z.FreeCmaPages) * 4096), "By", "Free CMA memory");
        _meter.CreateObservableCounter("kmem.page_alloc.slow_path", () => new Measurement<long>(Volatile.Read(ref pa.SlowPathCount), machine), "{call}", "Allocations that entered the slow path");
        _meter.CreateObservableCounter("kmem.page_alloc.reclaim", () => new Measurement<long>(Volatile.Read(ref pa.ReclaimCount), machine), "{run}", "Direct reclaim runs");
        _meter.CreateObservableCounter("kmem.page_alloc.failures", () => new Measurement<long>(Volatile.Read(ref pa.FailureCount), machine), "{call}", "Page allocations that failed");
        IEnumerable<Measurement<long>> PerCache(Func<SlabCache, long> read) =>
            sa.Caches.Select(c =>
            {
                var tags = machine;
                tags.Add("kmem.cache", c.Name);
                return new Measurement<long>(read(c), tags);
            });
        _meter.CreateObservableGauge("kmem.slab.active_objects", () => PerCache(c => c.ActiveObjects), "{object}", "Objects in use or held by threads (slabinfo active_objs)");
        _meter.CreateObservableGauge("kmem.slab.objects", () => PerCache(c => c.TotalObjects), "{object}", "Objects in all slabs (slabinfo num_objs)");
        _meter.CreateObservableGauge("kmem.slab.slabs", () => PerCache(c => c.Slabs), "{slab}", "Slabs of the cache");
        _meter.CreateObservableGauge("kmem.slab.memory", () => PerCache(c => c.Slabs * (4096L << c.Order)), "By", "Memory in the cache's slabs");
        _meter.CreateObservableGauge("kmem.memory.slab_reclaimable", () => new Measurement<long>(pa.Stat.SlabReclaimablePages * 4096, machine), "By", "SReclaimable");
        _meter.CreateObservableGauge("kmem.memory.slab_unreclaimable", () => new Measurement<long>(pa.Stat.SlabUnreclaimablePages * 4096, machine), "By", "SUnreclaim");
        _meter.CreateObservableCounter("kmem.page_alloc.kswapd_wakeups", () => new Measurement<long>(Volatile.Read(ref pa.KswapdWakeups), machine), "{wakeup}", "Background reclaim wake-ups");
    }

    public void Dispose() => _meter.Dispose();
}
