// The two judgements a snapshot needs before it is built: whether its files agree with each other (findings, line by
// line: buddyinfo against pagetypeinfo is fatal, the kernel counters against the free lists are warnings), and which
// machine they describe (architecture, release, orders, zones and their sizes, CMA), each derivation noted with its file.
using Kmem.Boot;
using Kmem.Paging;
using Kmem.Scenarios.ProcSnapshots;

namespace Kmem;

public sealed partial class ProcSnapshot
{
    private void Fatal(string file, int line, string msg) => _findings.Add(new ProcSnapshotFinding(true, file, line, msg));
    private void Warn(string file, int line, string msg) => _findings.Add(new ProcSnapshotFinding(false, file, line, msg));

    /// <summary>
    /// The cross-checks. buddyinfo and pagetypeinfo both count the free lists and the import reproduces both exactly, so
    /// a difference between them is fatal. zoneinfo's free counts, meminfo's MemFree/CmaTotal/CmaFree/Slab and
    /// slabinfo are kernel counters read at other moments (per-CPU lists and vmstat drift move them): a difference is a warning.
    /// </summary>
    private void CrossCheck()
    {
        var p = PageTypeInfo;
        if (p is not null && BuddyInfo is { } bi)
        {
            foreach (var r in bi)
            {
                var z = p.Zones.FirstOrDefault(x => x.Node == r.Node && x.Zone == r.Zone);
                if (z is null) { Fatal("buddyinfo", r.Line, $"node {r.Node} zone {r.Zone} is not in pagetypeinfo"); continue; }
                if (r.Free.Length != p.MaxOrder) { Fatal("buddyinfo", r.Line, $"{r.Free.Length} orders; pagetypeinfo has {p.MaxOrder}"); continue; }
                for (int o = 0; o < p.MaxOrder; o++)
                    if (r.Free[o] != z.FreeBlocks(o))
                        Fatal("buddyinfo", r.Line, $"node {r.Node} zone {r.Zone} order {o}: {r.Free[o]} free blocks; pagetypeinfo lines {Lines(z)} add up to {z.FreeBlocks(o)}");
            }
            foreach (var z in p.Zones)
                if (!bi.Any(r => r.Node == z.Node && r.Zone == z.Zone))
                    Fatal("pagetypeinfo", z.FreeLine.Where(l => l > 0).Min(), $"node {z.Node} zone {z.Zone} is not in buddyinfo");
        }
        var free = FreeState();
        string freeFile = p is null ? "buddyinfo" : "pagetypeinfo";
        long FreePages(FreeStateZone z, bool cmaOnly)
        {
            long n = 0;
            for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
            {
                if (mt == (int)MigrateType.Isolate || (cmaOnly && mt != (int)MigrateType.Cma)) continue;
                for (int o = 0; o < z.Free.GetLength(1); o++) n += z.Free[mt, o] << o;
            }
            return n;
        }
        if (ZoneInfo is { } zi)
        {
            foreach (var z in zi)
            {
                var f = free.FirstOrDefault(x => x.Node == z.Node && x.Zone == z.Zone);
                if (f is null)
                {
                    if (z.Get("present") is > 0) Warn("zoneinfo", z.Line, $"node {z.Node} zone {z.Zone} has {z.Get("present")} present pages but no {freeFile} row");
                    continue;
                }
                if (z.Fields.TryGetValue("pages free", out var pf) && pf.Value != FreePages(f, false))
                    Warn("zoneinfo", pf.Line, $"node {z.Node} zone {z.Zone}: pages free {pf.Value}; {freeFile} counts {FreePages(f, false)} (the kernel's counter leaves out per-CPU lists and drifts)");
                if (p is not null && z.Fields.TryGetValue("nr_free_cma", out var fc) && fc.Value != FreePages(f, true))
                    Warn("zoneinfo", fc.Line, $"node {z.Node} zone {z.Zone}: nr_free_cma {fc.Value}; pagetypeinfo's CMA rows count {FreePages(f, true)}");
            }
        }
        foreach (var r in SlabInfo ?? [])
        {
            // Rows the rebuild cannot make: slabs with no object room, or objects of no size.
            if (r.ObjPerSlab == 0 && r.NumSlabs > 0) Fatal("slabinfo", r.Line, $"{r.Name}: {r.NumSlabs} slabs of 0 objects each");
            if (r.ObjSize == 0) Fatal("slabinfo", r.Line, $"{r.Name}: objects of 0 bytes");
        }
        if (MemInfo is { } mi)
        {
            long freeKb = free.Sum(z => FreePages(z, false)) * 4;
            if (mi.TryGetValue("MemFree", out var mf) && mf.Value != freeKb)
                Warn("meminfo", mf.Line, $"MemFree {mf.Value} kB; {freeFile} counts {freeKb} kB on the free lists (per-CPU lists and counter drift)");
            if (p is not null)
            {
                long cmaKb = p.Zones.Sum(z => z.Blocks![(int)MigrateType.Cma]) << p.PageblockOrder << 2;
                if (mi.TryGetValue("CmaTotal", out var ct) && ct.Value != cmaKb)
                    Warn("meminfo", ct.Line, $"CmaTotal {ct.Value} kB; pagetypeinfo has {cmaKb} kB of CMA pageblocks");
                long cmaFree = free.Sum(z => FreePages(z, true)) * 4;
                if (mi.TryGetValue("CmaFree", out var cf) && cf.Value != cmaFree)
                    Warn("meminfo", cf.Line, $"CmaFree {cf.Value} kB; pagetypeinfo's CMA rows count {cmaFree} kB");
            }
            if (SlabInfo is { } si && mi.TryGetValue("Slab", out var sl))
            {
                long slabKb = si.Sum(r => r.NumSlabs * r.PagesPerSlab) * 4;
                if (slabKb != sl.Value)
                    Warn("meminfo", sl.Line, $"Slab {sl.Value} kB; slabinfo's slabs (num_slabs x pagesperslab) hold {slabKb} kB");
            }
        }
    }

    private static string Lines(ZoneFreeRows z)
    {
        var l = z.FreeLine.Where(x => x > 0).ToList();
        return l.Count == 0 ? "?" : $"{l.Min()}-{l.Max()}";
    }

    /// <summary>
    /// The machine the files describe: the architecture (/proc/version's banner, else the zone names: DMA32 means
    /// x86_64, HighMem 32-bit arm), the release (/proc/version), MAX_ORDER and the pageblock order (pagetypeinfo's
    /// header and order columns, else buddyinfo's), the nodes and zones with one memory bank per zone sized by its
    /// counted pageblocks (pagetypeinfo's block table) and placed at zoneinfo's start_pfn where it is given, the CMA
    /// pageblocks as one CMA area at the top of their zone, and the command line. Everything else (CPUs, cache line,
    /// kernel image) comes from the embedded profile of that architecture. With an <c>fdt</c> the device tree gives the
    /// machine instead (<see cref="Fdt"/>). <see cref="Derived"/> says what came from where.
    /// </summary>
    /// <exception cref="ProcSnapshotException">The files do not say enough (which is named).</exception>
    public MachineProfile DeriveProfile()
    {
        // With the board's device tree the machine is the tree's (checked against the files when it was read).
        if (FdtProfile is { } fromTree) return fromTree;
        var p = PageTypeInfo ?? throw new ProcSnapshotException("", 0,
            "without pagetypeinfo the zone sizes are unknown (buddyinfo counts free blocks only): give a profile");
        var names = p.Zones.Select(z => z.Zone).ToHashSet();
        Arch arch;
        if (VersionArch is { } va) { arch = va; Note($"architecture {arch}: version's banner"); }
        else if (names.Contains("DMA32")) { arch = Arch.X86_64; Note("architecture x86_64: pagetypeinfo has a DMA32 zone (no /proc/version naming it)"); }
        else if (names.Contains("HighMem")) { arch = Arch.Arm; Note("architecture arm (32-bit): pagetypeinfo has a HighMem zone (no /proc/version naming it)"); }
        else throw new ProcSnapshotException("", 0, "the architecture is not in the files (no /proc/version banner naming it, no DMA32 or HighMem zone): give a profile");
        int nodes = p.Zones.Max(z => z.Node) + 1;
        string baseName = arch switch
        {
            Arch.X86_64 => nodes > 1 ? "x86_64-numa2" : "x86_64",
            Arch.Arm => "rv1106",
            Arch.Arm64 => "rk3588",
            _ => throw new ProcSnapshotException("version", 1, $"no embedded profile to start from for {arch}: give a profile"),
        };
        var b = MachineProfile.Embedded(baseName);
        if (nodes > b.NodeCount) throw new ProcSnapshotException("pagetypeinfo", 0, $"{nodes} nodes; the embedded {baseName} profile has {b.NodeCount}: give a profile");
        Note($"CPUs, cache line, kernel image: the embedded {baseName} profile");
        var version = Version ?? b.Version;
        Note(Version is null ? $"release {version}: the {baseName} profile (no /proc/version)" : $"release {version}: version");
        Note($"MAX_ORDER {p.MaxOrder} (orders 0-{p.MaxOrder - 1}), pageblock order {p.PageblockOrder}: pagetypeinfo header and order columns");
        ulong pbBytes = 4096UL << p.PageblockOrder;
        var dram = new List<DramBank>();
        var cma = new List<CmaAreaSpec>();
        ulong cursor = 0, dmaEnd = 0, lowEnd = 0;
        var order = new[] { "DMA", "DMA32", "Normal", "HighMem", "Movable" };
        foreach (var z in p.Zones.OrderBy(z => z.Node).ThenBy(z => Array.IndexOf(order, z.Zone)))
        {
            long blocks = z.Blocks!.Sum();
            if (blocks == 0) continue;
            var zi = ZoneInfo?.FirstOrDefault(x => x.Node == z.Node && x.Zone == z.Zone);
            ulong floor = arch == Arch.X86_64 ? z.Zone switch { "DMA32" => 16UL << 20, "Normal" => 4UL << 30, _ => 0 } : 0;
            ulong start = zi?.Get("start_pfn") is { } sp ? (ulong)sp << 12 : Math.Max(cursor, floor);
            ulong end = (start & ~(pbBytes - 1)) + (ulong)blocks * pbBytes;
            if (start < cursor) throw new ProcSnapshotException("zoneinfo", zi?.Line ?? 0, $"node {z.Node} zone {z.Zone} starts below the zone before it");
            dram.Add(new DramBank(start, end - start) { Node = z.Node });
            Note($"node {z.Node} {z.Zone}: 0x{start:x}-0x{end - 1:x}, {blocks} pageblocks (pagetypeinfo line {z.BlocksLine}{(zi?.Get("start_pfn") is not null ? $", start_pfn from zoneinfo line {zi.Fields["start_pfn"].Line}" : "")})");
            long cmaBlocks = z.Blocks![(int)MigrateType.Cma];
            if (cmaBlocks > 0)
            {
                ulong size = (ulong)cmaBlocks * pbBytes;
                cma.Add(new CmaAreaSpec($"reserved{(cma.Count == 0 ? "" : cma.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))}", end - size, size, 0));
                Note($"CMA: {size >> 20} MiB at 0x{end - size:x} in node {z.Node} {z.Zone} ({cmaBlocks} CMA pageblocks, pagetypeinfo line {z.BlocksLine}; their place in the zone is not in the files)");
            }
            if (z.Zone == "DMA") dmaEnd = end;
            if (z.Zone is "DMA" or "Normal") lowEnd = end;
            cursor = end;
        }
        var config = new Dictionary<string, object>(b.ConfigOptions);
        var zones = b.GivenZones;
        if (arch == Arch.Arm)
        {
            config["HIGHMEM"] = names.Contains("HighMem");
            config["ZONE_DMA"] = names.Contains("DMA");
            config["FORCE_MAX_ZONEORDER"] = p.MaxOrder;
            config["CMA"] = cma.Count > 0 || config.ContainsKey("CMA");
            config["CMA_INACTIVE"] = false;
            config["DMABUF_HEAPS_ROCKCHIP"] = false;
            zones = new ZoneLimits(names.Contains("DMA") ? dmaEnd : null, null, names.Contains("HighMem") ? lowEnd : null);
            Note($"lowmem ends at 0x{lowEnd:x}: the end of the {(names.Contains("DMA") ? "DMA" : "Normal")} zone");
        }
        if (Cmdline is not null) Note($"command line '{Cmdline}': cmdline (shown, not booted with: the layout it made is in the other files)");
        return b with
        {
            Name = "imported",
            Description = $"the machine of a /proc snapshot ({string.Join(", ", Files)})",
            Version = version,
            MaxOrder = p.MaxOrder,
            PageblockOrder = p.PageblockOrder,
            Dram = dram,
            Cma = cma,
            Reserved = [],
            Devices = [],
            Cmdline = "",
            ConfigOptions = config,
            GivenZones = zones,
        };
    }

    private void Note(string s)
    {
        if (!_derived.Contains(s)) _derived.Add(s);
    }
}
