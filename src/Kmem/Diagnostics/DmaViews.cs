// dma-debug's debugfs directory (/sys/kernel/debug/dma-api/): error_count, all_errors, num_errors,
// disabled and the dump of every live entry. Present only when dma-debug is on, as in the kernel.
using Kmem.Dma;

namespace Kmem.Diagnostics;

internal static class DmaViews
{
    public static void Register(ProcFs fs, DmaMapper dma, IEnumerable<Device> devices)
    {
        if (!dma.DebugEnabled) return;
        const string dir = "/sys/kernel/debug/dma-api/";
        fs.Register(dir + "error_count", () => $"{dma.ErrorCount}\n");
        fs.Register(dir + "all_errors", () => "1\n");      // Kmem reports every error (the kernel's default is the first only)
        fs.Register(dir + "num_errors", () => "1\n");
        fs.Register(dir + "disabled", () => "N\n");
        fs.Register(dir + "dump", () => dma.Dump(devices));
    }
}
