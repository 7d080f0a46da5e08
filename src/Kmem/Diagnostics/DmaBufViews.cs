// The dma-buf views: /sys/kernel/debug/dma_buf/bufinfo, /sys/kernel/dma_heap/total_pools_kb, and for
// Rockchip boards /proc/rk_dma_heap/rk-dma-heap-info (with its code name dma_heap_info), alloc_bitmap,
// the debugfs copy and /sys/kernel/rk_dma_heap/rk_total_pools_kb.
using Kmem.DmaHeaps;

namespace Kmem.Diagnostics;

internal static class DmaBufViews
{
    public static void Register(ProcFs fs, DmaBufCore core, IEnumerable<DmaHeap> heaps, IEnumerable<RkDmaHeap> rkHeaps, int paDigits)
    {
        fs.Register("/sys/kernel/debug/dma_buf/bufinfo", core.Bufinfo);
        var hs = heaps.ToArray();
        fs.Register("/sys/kernel/dma_heap/total_pools_kb", () => $"{hs.Sum(h => h.PoolSizeBytes) / 1024}\n");
        var rk = rkHeaps.ToArray();
        if (rk.Length == 0) return;
        // rk_heap_list: the most recently added heap first.
        string Info() => string.Concat(rk.Reverse().Select(h => h.Entries(paDigits))) + Total();
        string Total()
        {
            long total = rk.Sum(h => h.TotalSize);
            return $"\nTotal : 0x{total:x} ({total >> 10} KiB)\n";
        }
        fs.Register("/proc/rk_dma_heap/rk-dma-heap-info", Info);
        fs.Register("/proc/rk_dma_heap/dma_heap_info", Info);
        fs.Register("/sys/kernel/debug/rk_dma_heap/dma_heap_info", Info);
        fs.Register("/proc/rk_dma_heap/alloc_bitmap", () => rk[^1].AllocBitmap());
        fs.Register("/sys/kernel/rk_dma_heap/rk_total_pools_kb", () => "0\n");
    }
}
