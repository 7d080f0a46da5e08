// A snapshot's fdt (a copy of the board's /sys/firmware/fdt): the machine is derived from the device tree as the kernel
// read it at boot (CPUs, architecture, banks, reserved regions, CMA pools, devices, bootargs), with the orders the
// /proc files show, and that machine is checked against the files: booted, its zones, pageblocks, CMA and memory
// totals are compared with pagetypeinfo, zoneinfo and meminfo, each disagreement a finding at the file's line.
using Kmem.Boot;
using Kmem.Paging;
using Kmem.Scenarios.ProcSnapshots;

namespace Kmem;

public sealed partial class ProcSnapshot
{
    /// <summary>The snapshot's device tree (its <c>fdt</c> file), or null.</summary>
    public DeviceTree? Fdt { get; private set; }

    /// <summary>The machine the device tree describes, with the orders the /proc files show; null without an fdt.</summary>
    internal MachineProfile? FdtProfile { get; private set; }

    /// <summary>
    /// Reads a snapshot given as texts by file name (the names of <see cref="KnownFiles"/>) and, when
    /// <paramref name="fdt"/> is given, the board's flattened device tree (<c>/sys/firmware/fdt</c>): the machine is
    /// then derived from the tree and checked against the files (<see cref="Findings"/>).
    /// </summary>
    /// <exception cref="ArgumentException">A name Kmem does not know.</exception>
    /// <exception cref="ProcSnapshotException">A malformed file or device tree, or neither pagetypeinfo nor buddyinfo.</exception>
    public static ProcSnapshot Parse(IReadOnlyDictionary<string, string> files, byte[]? fdt)
    {
        var s = ParseFiles(files);
        if (fdt is not null)
        {
            s.ReadDeviceTree(fdt);
            s.CheckDeviceTree();
        }
        return s;
    }

    private void ReadDeviceTree(byte[] blob)
    {
        MachineProfile p;
        try
        {
            Fdt = DeviceTree.Parse(blob);
            p = MachineProfile.FromDeviceTree(Fdt, new DeviceTreeOptions { Name = "imported", Version = Version }).Profile;
        }
        catch (KmemException e) when (e is DeviceTreeException or ProfileException)
        {
            throw new ProcSnapshotException("fdt", 0, e.Message);
        }
        if (VersionArch is { } va && va != p.Arch)
            Fatal("version", 1, $"the banner names {va}; the device tree's CPUs are {p.Arch}");
        Note($"CPUs ({p.Cpus}), architecture {p.Arch}, memory banks, reserved regions, CMA pools, devices and command line: fdt ({Fdt.TotalSize} bytes)");
        Note(Version is null ? $"release {p.Version}: the default (no /proc/version)" : $"release {p.Version}: version");
        // The orders the files show, which the tree does not hold (the kernel's config does).
        var config = new Dictionary<string, object>(p.ConfigOptions);
        if (p.Arch == Arch.Arm) config["FORCE_MAX_ZONEORDER"] = MaxOrder;
        p = p with { MaxOrder = MaxOrder, PageblockOrder = PageblockOrder ?? p.PageblockOrder, ConfigOptions = config, Description = $"the machine of a /proc snapshot ({string.Join(", ", Files)}, fdt)" };
        Note($"MAX_ORDER {MaxOrder}{(PageblockOrder is { } pb ? $", pageblock order {pb}" : "")}: {(PageTypeInfo is null ? "buddyinfo" : "pagetypeinfo")}");
        if (Cmdline is not null && p.Cmdline.Length > 0 && Normalize(Cmdline) != Normalize(p.Cmdline))
            Warn("cmdline", 1, $"the kernel ran with '{Cmdline}'; the device tree's bootargs are '{p.Cmdline}' (a built-in or appended command line, or a tree changed after boot)");
        FdtProfile = p;

        static string Normalize(string s) => string.Join(' ', s.Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>
    /// Boots the tree's machine and compares it with the files: each zone of pagetypeinfo (its pageblocks in all, its CMA
    /// pageblocks) and zoneinfo (start_pfn, spanned, present), meminfo's CmaTotal with the CMA the tree reserves, and
    /// MemTotal, which cannot exceed the RAM of the tree's memory nodes. A zone or CMA that differs is fatal (the state
    /// cannot be built on that machine); a MemTotal above the tree's RAM is fatal too.
    /// </summary>
    private void CheckDeviceTree()
    {
        var p = FdtProfile!;
        Machine m;
        try
        {
            m = Machine.Boot(p);
        }
        catch (KmemException e)
        {
            Fatal("fdt", 0, $"the device tree's machine does not boot: {e.Message}");
            return;
        }
        using (m)
        {
            var zones = m.Zones.Where(z => z.Populated).ToList();
            if (PageTypeInfo is { } pti)
            {
                var own = FreeListFiles.ParsePageTypeInfo(m.ProcFs.Read("/proc/pagetypeinfo"));
                foreach (var z in pti.Zones)
                {
                    if (z.Blocks is null) continue;
                    var mine = own.Zones.FirstOrDefault(x => x.Node == z.Node && x.Zone == z.Zone && x.Blocks is not null);
                    if (mine is null)
                    {
                        if (z.Blocks.Sum() > 0) Fatal("pagetypeinfo", z.BlocksLine, $"node {z.Node} zone {z.Zone}: the device tree's machine has no such zone (its zones: {string.Join(", ", zones.Select(x => $"node {x.Node} {x.Name}"))})");
                        continue;
                    }
                    long[] theirs = z.Blocks, ours = mine.Blocks!;
                    if (theirs.Sum() != ours.Sum())
                        Fatal("pagetypeinfo", z.BlocksLine, $"node {z.Node} zone {z.Zone}: {theirs.Sum()} pageblocks; the device tree's memory gives the zone {ours.Sum()}");
                    int cma = (int)MigrateType.Cma;
                    if (theirs[cma] != ours[cma])
                        Fatal("pagetypeinfo", z.BlocksLine, $"node {z.Node} zone {z.Zone}: {theirs[cma]} CMA pageblocks; the device tree's CMA pools and command line give {ours[cma]}");
                }
            }
            if (ZoneInfo is { } zi)
                foreach (var z in zi)
                {
                    var mine = m.Zones.FirstOrDefault(x => x.Node == z.Node && x.Name == z.Zone);
                    var expected = new List<(string Key, long Value)> { ("spanned", mine?.Spanned ?? 0), ("present", mine?.Present ?? 0) };
                    if (mine is { Populated: true }) expected.Add(("start_pfn", (long)mine.StartPfn));
                    foreach (var (key, value) in expected)
                        if (z.Fields.TryGetValue(key, out var f) && f.Value != value)
                            Fatal("zoneinfo", f.Line, $"node {z.Node} zone {z.Zone}: {key} {f.Value}; the device tree's machine has {value}{(key == "start_pfn" ? $" (0x{(ulong)value << 12:x})" : "")}");
                }
            if (MemInfo is { } mi)
            {
                var own = StateFiles.ParseMemInfo(m.ProcFs.Read("/proc/meminfo"));
                long cmaKb = own.TryGetValue("CmaTotal", out var oc) ? oc.Value : 0;
                if (mi.TryGetValue("CmaTotal", out var ct) && ct.Value != cmaKb)
                    Fatal("meminfo", ct.Line, $"CmaTotal {ct.Value} kB; the device tree reserves {cmaKb} kB of CMA ({(m.Cma.Count == 0 ? "no pool" : string.Join(", ", m.Cma.Values.Select(c => $"{c.Name} {c.Size >> 10} kB")))})");
                long ramKb = (long)(p.TotalRam >> 10);
                if (mi.TryGetValue("MemTotal", out var mt) && mt.Value > ramKb)
                    Fatal("meminfo", mt.Line, $"MemTotal {mt.Value} kB is more than the {ramKb} kB of the device tree's memory nodes");
            }
        }
    }
}
