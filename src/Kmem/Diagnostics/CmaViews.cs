// The CMA debugfs files of Linux 6.x (/sys/kernel/debug/cma/<name>/): base_pfn, count, order_per_bit,
// used, maxchunk and bitmap (the u32 words, space separated), in mm/cma_debug.c's formats; only with CONFIG_CMA_DEBUGFS.
namespace Kmem.Diagnostics;

internal static class CmaViews
{
    public static void Register(ProcFs fs, IEnumerable<CmaArea> areas)
    {
        foreach (var c in areas)
        {
            string dir = $"/sys/kernel/debug/cma/{c.Name}/";
            fs.Register(dir + "base_pfn", () => $"{c.BasePfn}\n");
            fs.Register(dir + "count", () => $"{c.Count}\n");
            fs.Register(dir + "order_per_bit", () => $"{c.OrderPerBit}\n");
            fs.Register(dir + "used", () => $"{c.Used}\n");
            fs.Register(dir + "maxchunk", () => $"{c.MaxChunk}\n");
            fs.Register(dir + "bitmap", () => string.Join(' ', c.Bitmap()) + "\n");
        }
    }
}
