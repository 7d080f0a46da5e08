// The CMA areas a boot reserves in memblock: the profile's "cma" entries, each at its fixed base or placed
// top-down below the lowmem limit (x86_64: below 4 GiB), aligned to PAGE_SIZE << max(MAX_ORDER - 1, pageblock_order).
using Kmem.Core;

namespace Kmem.Boot;

internal static class CmaReservations
{
    /// <summary>Reserves the profile's CMA areas in <paramref name="memblock"/>, in the kernel's order; returns them.</summary>
    public static List<CmaArea> Place(MachineProfile p, Memblock memblock, ulong limit)
    {
        var areas = new List<CmaArea>();
        foreach (var c in p.Cma)
        {
            ulong cbase;
            if (c.Base is { } fixedBase)
            {
                cbase = fixedBase;
                memblock.Reserve(cbase, c.Size, c.Name);
            }
            else
            {
                ulong top = Math.Min(limit, p.Arch == Arch.X86_64 ? 4UL << 30 : limit);
                cbase = memblock.AllocRange(c.Size, p.CmaAlignment, 0, top, c.Name)
                    ?? throw new ProfileException($"cma '{c.Name}'", $"no free {c.Size >> 20} MiB window aligned to {p.CmaAlignment >> 20} MiB below 0x{top:x}");
            }
            areas.Add(new CmaArea(c.Name, cbase >> KernelFacts.PageShift, c.Size >> KernelFacts.PageShift, c.OrderPerBit));
        }
        return areas;
    }
}
