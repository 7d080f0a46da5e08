// The vmalloc views: /proc/vmallocinfo in the format of Linux 5.10's s_show() (busy areas by address,
// then the lazily freed ranges as "unpurged vm_area").
using System.Text;
using Kmem.Vmalloc;

namespace Kmem.Diagnostics;

internal static class VmallocViews
{
    public static void Register(ProcFs fs, VmallocSpace space, bool numa) =>
        fs.Register("/proc/vmallocinfo", () => FormatVmallocinfo(space.Areas(), space.Unpurged(), numa));

    /// <summary>
    /// One line per area: <c>0x{start}-0x{end} {size,7} {caller} pages=N [ioremap] [vmalloc] [vmap] [user]
    /// [dma-coherent] [vpages] [N0=N]</c>; the size counts the guard page.
    /// </summary>
    public static string FormatVmallocinfo(IEnumerable<VmArea> areas, IEnumerable<(nint Start, nint End)> unpurged, bool numa)
    {
        var sb = new StringBuilder();
        foreach (var a in areas)
        {
            sb.Append($"0x{a.Address:x16}-0x{a.Address + (nint)a.Size:x16} {a.Size,7}");
            sb.Append(' ').Append(a.Caller);
            if (a.NrPages > 0) sb.Append(" pages=").Append(a.NrPages);
            if ((a.Flags & VmFlags.Ioremap) != 0) sb.Append(" ioremap");
            if ((a.Flags & VmFlags.Alloc) != 0) sb.Append(" vmalloc");
            if ((a.Flags & VmFlags.Map) != 0) sb.Append(" vmap");
            if ((a.Flags & VmFlags.UserMap) != 0) sb.Append(" user");
            if ((a.Flags & VmFlags.DmaCoherent) != 0) sb.Append(" dma-coherent");
            if (a.VPages) sb.Append(" vpages");
            if (numa && a.NrPages > 0) sb.Append(" N0=").Append(a.NrPages);
            sb.Append('\n');
        }
        foreach (var (s, e) in unpurged)
            sb.Append($"0x{s:x16}-0x{e:x16} {(long)(e - s),7} unpurged vm_area\n");
        return sb.ToString();
    }
}
