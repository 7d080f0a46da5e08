// The vmalloc views: /proc/vmallocinfo as mm/vmalloc.c's s_show() prints it in the machine's release — busy
// areas by address with their caller, pages=, phys= and flag words, and the lazily freed ranges as
// "unpurged vm_area" (in place before 5.4, at the end from 5.4, not at all before 4.13) — with addresses of
// the pointer width of the machine.
using System.Text;
using Kmem.Vmalloc;

namespace Kmem.Diagnostics;

/// <summary>What /proc/vmallocinfo needs to know about the machine (set by the machine at boot).</summary>
internal sealed record VmallocViewConfig
{
    /// <summary>CONFIG_NUMA: the <c> N0=</c> counts.</summary>
    public bool Numa { get; init; }

    /// <summary>The kernel release the lines are printed in.</summary>
    public KernelVersion Version { get; init; } = KernelVersion.Default;

    /// <summary>
    /// 0 on 64-bit machines, whose lines show the host addresses the program uses (16 digits). On 32-bit machines
    /// the kernel's VMALLOC_START: the window's first byte stands for it and addresses print with 8 digits.
    /// </summary>
    public ulong KernelBase32 { get; init; }

    /// <summary>Hex digits of a phys_addr_t (<c>%pa</c>): 16 on 64-bit machines, 8 on 32-bit ones (no LPAE or PAE).</summary>
    public int PhysDigits { get; init; } = 16;
}

internal static class VmallocViews
{
    public static void Register(ProcFs fs, VmallocSpace space, VmallocViewConfig config) =>
        fs.Register("/proc/vmallocinfo", () => FormatVmallocinfo(space, config));

    /// <summary>/proc/vmallocinfo of a machine without a vmalloc window (its memory cannot be remapped): no area, an empty file.</summary>
    public static void RegisterEmpty(ProcFs fs) => fs.Register("/proc/vmallocinfo", () => "");

    private static string FormatVmallocinfo(VmallocSpace space, VmallocViewConfig c)
    {
        var v = c.Version;
        // "vmalloc: show more detail info in vmallocinfo for clarify" (4.13) lists lazily freed areas in place;
        // "mm/vmalloc: do not keep unpurged areas in the busy tree" (5.4) moves them to the end.
        IEnumerable<(nint Start, nint End)> inPlace = v.IsAtLeast(4, 13) && !v.IsAtLeast(5, 4) ? space.UnpurgedAreas() : [];
        IEnumerable<(nint Start, nint End)> atEnd = v.IsAtLeast(5, 4) ? space.Unpurged() : [];
        return FormatVmallocinfo(space.Areas(), inPlace, atEnd, c, space.Start);
    }

    /// <summary>
    /// One line per area: <c>0x{start}-0x{end} {size,7} {caller} pages=N phys=… [ioremap] [vmalloc] [vmap] [user]
    /// [dma-coherent] [vpages] [N0=N]</c>; the size counts the guard page.
    /// </summary>
    public static string FormatVmallocinfo(IEnumerable<VmArea> areas, IEnumerable<(nint Start, nint End)> unpurgedInPlace,
        IEnumerable<(nint Start, nint End)> unpurgedAtEnd, VmallocViewConfig c, nint windowStart)
    {
        var sb = new StringBuilder();
        string A(nint p) => c.KernelBase32 == 0 ? $"0x{p:x16}" : $"0x{(uint)(c.KernelBase32 + (ulong)(p - windowStart)):x8}";
        void Unpurged(nint s, nint e) => sb.Append($"{A(s)}-{A(e)} {(long)(e - s),7} unpurged vm_area\n");
        var pending = new Queue<(nint Start, nint End)>(unpurgedInPlace.OrderBy(u => u.Start));
        foreach (var a in areas)
        {
            while (pending.Count > 0 && pending.Peek().Start < a.Address) { var u = pending.Dequeue(); Unpurged(u.Start, u.End); }
            sb.Append($"{A(a.Address)}-{A(a.Address + (nint)a.Size)} {a.Size,7}");
            sb.Append(' ').Append(a.Caller);
            if (a.NrPages > 0) sb.Append(" pages=").Append(a.NrPages);
            // " phys=%llx" until "mm: cleanups for printing phys_addr_t and dma_addr_t" (4.11) made it %pa.
            if (a.Phys != 0) sb.Append(c.Version.IsAtLeast(4, 11) ? $" phys=0x{a.Phys.ToString($"x{c.PhysDigits}")}" : $" phys={a.Phys:x}");
            if ((a.Flags & VmFlags.Ioremap) != 0) sb.Append(" ioremap");
            if ((a.Flags & VmFlags.Alloc) != 0) sb.Append(" vmalloc");
            if ((a.Flags & VmFlags.Map) != 0) sb.Append(" vmap");
            if ((a.Flags & VmFlags.UserMap) != 0) sb.Append(" user");
            // VM_DMA_COHERENT and its word came in 5.3 ("vmalloc: lift the arm flag for coherent mappings to common code").
            if ((a.Flags & VmFlags.DmaCoherent) != 0 && c.Version.IsAtLeast(5, 3)) sb.Append(" dma-coherent");
            if (a.VPages) sb.Append(" vpages");
            // show_numa_info() (mm/vmalloc.c): with CONFIG_NUMA, " N%u=%u" for each node holding some of the area's pages.
            if (c.Numa)
                for (int n = 0; n < a.PagesPerNode.Count; n++)
                    if (a.PagesPerNode[n] > 0) sb.Append(" N").Append(n).Append('=').Append(a.PagesPerNode[n]);
            sb.Append('\n');
        }
        while (pending.Count > 0) { var u = pending.Dequeue(); Unpurged(u.Start, u.End); }
        foreach (var (s, e) in unpurgedAtEnd) Unpurged(s, e);
        return sb.ToString();
    }
}
