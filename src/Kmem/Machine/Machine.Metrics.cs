// The instruments of the layers above the page allocator and slab (vmalloc, kmap on HighMem machines, CMA, the DMA API, DMA-BUF heaps,
// DRM-GEM, RTnet), added to the machine's "Kmem" meter; all observable, read only when a listener collects.
using Kmem.Core;
using Kmem.Diagnostics;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>
    /// Registers the gauges. A collection that races with Dispose reads nothing of the dead machine: each callback
    /// reports 0 (or no measurement) once the machine is dead, instead of throwing into the listener.
    /// </summary>
    private void RegisterMetrics()
    {
        var m = new LiveMetrics(_metrics, Life);
        m.Gauge("kmem.vmalloc.used", () => _vmalloc?.Areas().Sum(a => (long)a.NrPages << 12) ?? 0, "By", "Pages vmalloc areas own (VmallocUsed)");
        m.Gauge("kmem.vmalloc.areas", () => _vmalloc?.Areas().Length ?? 0, "{area}", "Live vmalloc and vmap areas");
        m.GaugeEach("kmem.cma.used", "kmem.cma", () => Cma.Values.Select(c => (c.Name, (long)c.Used << 12)), "By", "Memory allocated from each CMA area");
        m.GaugeEach("kmem.cma.size", "kmem.cma", () => Cma.Values.Select(c => (c.Name, (long)c.Size)), "By", "Size of each CMA area");
        m.GaugeEach("kmem.dma.mappings", "kmem.device", () => Devices.Values.Select(d => (d.Name, (long)d.MappingCount)), "{mapping}", "Coherent buffers and streaming mappings live per device");
        m.Counter("kmem.dma.debug_errors", () => Dma.ErrorCount, "{error}", "DMA-API errors reported (dma-debug's error_count)");
        m.Gauge("kmem.dmabuf.buffers", () => _dmaBufs.Buffers().Length, "{buffer}", "Live dma-bufs");
        m.Gauge("kmem.dmabuf.memory", () => _dmaBufs.Buffers().Sum(b => b.Size), "By", "Bytes in live dma-bufs");
        m.GaugeEach("kmem.dmabuf.pool", "kmem.heap", () => _heaps.Values.Select(h => (h.Name, h.PoolSizeBytes)), "By", "Pages pooled by each DMA-BUF heap");
        m.Gauge("kmem.dmabuf.deferred", () => _deferredFree.Pages << 12, "By", "Released dma-buf memory waiting for the deferred-free worker");
        m.Gauge("kmem.drm.objects", () => _drm?.Objects.Count ?? 0, "{object}", "Live GEM objects");
        m.Gauge("kmem.drm.memory", () => _drm?.Objects.Sum(o => o.Size) ?? 0, "By", "Bytes in live GEM objects");
        m.Gauge("kmem.rtnet.rtskbs", () => _rtnet?.RtskbCount.Current ?? 0, "{rtskb}", "rtskbs in all pools (/proc/rtnet/rtskb)");
        if (_kmaps.HasHighMem) RegisterKmapMetrics(m);
        m.GaugeEach("kmem.rtnet.pool_free", "kmem.pool", () => _rtnet?.Pools.Select(p => (p.Name, (long)p.FreeCount)) ?? [], "{rtskb}", "Free rtskbs per pool");
    }

    /// <summary>The kmap figures of a machine with HighMem (what /sys/kernel/debug/kmem/pkmap prints).</summary>
    private void RegisterKmapMetrics(LiveMetrics m)
    {
        m.Gauge("kmem.kmap.pkmap_in_use", () => _kmaps.Pool.State().InUse, "{slot}", "Persistent kmap slots with users (pkmap_count of 2 or more)");
        m.Gauge("kmem.kmap.pkmap_unused", () => _kmaps.Pool.State().Unused, "{slot}", "Persistent kmap slots mapped without users, freed by the next flush");
        m.Counter("kmem.kmap.pkmap_maps", () => _kmaps.Pool.State().Maps, "{call}", "kmap() calls on HighMem pages (kmap_high)");
        m.Counter("kmem.kmap.pkmap_flushes", () => _kmaps.Pool.State().Flushes, "{flush}", "Flushes of the unused slots when the pool wrapped (flush_all_zero_pkmaps)");
        m.Counter("kmem.kmap.pkmap_sleeps", () => _kmaps.Pool.State().Sleeps, "{sleep}", "Waits in kmap() for a free slot");
        m.Counter("kmem.kmap.local_hits", () => _kmaps.Local.Hits, "{map}", "kmap_atomic/kmap_local mappings of HighMem pages served by the thread's window as it was");
        m.Counter("kmem.kmap.local_cold", () => _kmaps.Local.ColdMaps, "{map}", "kmap_atomic/kmap_local mappings of HighMem pages that needed a new mapping");
    }

    /// <summary>The meter's registration with every callback guarded by the machine's life.</summary>
    private sealed class LiveMetrics(KmemMetrics metrics, KernelLife life)
    {
        public void Gauge(string name, Func<long> read, string unit, string description) =>
            metrics.Gauge(name, () => life.IsDead ? 0 : Guard(read), unit, description);

        public void Counter(string name, Func<long> read, string unit, string description) =>
            metrics.Counter(name, () => life.IsDead ? 0 : Guard(read), unit, description);

        public void GaugeEach(string name, string tag, Func<IEnumerable<(string, long)>> read, string unit, string description) =>
            metrics.GaugeEach(name, tag, () => life.IsDead ? [] : Guard(() => read().ToArray()) ?? [], unit, description);

        private static T? Guard<T>(Func<T> read)
        {
            try { return read(); }
            catch (ObjectDisposedException) { return default; }
        }
    }
}
