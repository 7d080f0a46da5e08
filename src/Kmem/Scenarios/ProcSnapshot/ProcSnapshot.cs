// A board's /proc files as one snapshot: reads what a user copied (pagetypeinfo, buddyinfo, zoneinfo, meminfo,
// slabinfo, vmallocinfo, cmdline, version), cross-checks them line by line, derives the machine they describe and
// rebuilds their state on a machine: the free blocks of every zone, order and migratetype exactly as counted, the
// pageblock types as counted, slabinfo's caches and vmallocinfo's areas as real slabs and vmalloc areas, the CMA
// pageblocks' used pages as movable pages, and the rest of memory held as named "recorded" allocations.
using Kmem.Core;
using Kmem.Paging;
using Kmem.Scenarios.ProcSnapshots;

namespace Kmem;

/// <summary>A disagreement between two files of a snapshot (or within one), with the place it was found.</summary>
/// <param name="Fatal">True when the import cannot honour both files (it refuses to start); false for a warning.</param>
/// <param name="File">The file and line the finding is about.</param>
/// <param name="Line">1-based line, or 0.</param>
/// <param name="Message">What disagrees with what.</param>
public sealed record ProcSnapshotFinding(bool Fatal, string File, int Line, string Message)
{
    /// <summary>"file:line: message" (with "error:" or "warning:").</summary>
    public override string ToString() => $"{File}{(Line > 0 ? $":{Line}" : "")}: {(Fatal ? "error" : "warning")}: {Message}";
}

/// <summary>A /proc snapshot read from a directory (or from texts by file name).</summary>
public sealed partial class ProcSnapshot
{
    /// <summary>The text files a snapshot may hold (the binary <c>fdt</c>, a copy of /sys/firmware/fdt, is read beside them by <see cref="Load"/>).</summary>
    public static IReadOnlyList<string> KnownFiles { get; } = ["pagetypeinfo", "buddyinfo", "zoneinfo", "meminfo", "slabinfo", "vmallocinfo", "cmdline", "version"];

    private ProcSnapshot() { }

    private readonly List<ProcSnapshotFinding> _findings = [];
    private readonly List<string> _derived = [];

    internal PageTypeInfoFile? PageTypeInfo { get; private set; }
    internal IReadOnlyList<BuddyRow>? BuddyInfo { get; private set; }
    internal IReadOnlyList<ZoneInfoZone>? ZoneInfo { get; private set; }
    internal IReadOnlyDictionary<string, (long Value, int Line)>? MemInfo { get; private set; }
    internal IReadOnlyList<SlabRow>? SlabInfo { get; private set; }
    internal IReadOnlyList<VmallocRow>? VmallocInfo { get; private set; }

    /// <summary>The kernel command line (/proc/cmdline), or null.</summary>
    public string? Cmdline { get; private set; }

    /// <summary>The release (/proc/version), or null.</summary>
    public KernelVersion? Version { get; private set; }

    /// <summary>The architecture named by /proc/version's banner, or null.</summary>
    public Arch? VersionArch { get; private set; }

    /// <summary>The files read, in <see cref="KnownFiles"/> order.</summary>
    public IReadOnlyList<string> Files { get; private set; } = [];

    /// <summary>The contradictions found, line by line.</summary>
    public IReadOnlyList<ProcSnapshotFinding> Findings => _findings;

    /// <summary>True when a finding stops the import.</summary>
    public bool HasFatalFindings => _findings.Any(f => f.Fatal);

    /// <summary>What was derived from which file (filled by <see cref="DeriveProfile"/> and the reads).</summary>
    public IReadOnlyList<string> Derived => _derived;

    /// <summary>Reads the known files present in <paramref name="directory"/>, and its <c>fdt</c> when there is one (the machine is then
    /// derived from the device tree and checked against the files); other files are left alone.</summary>
    /// <exception cref="DirectoryNotFoundException">No such directory.</exception>
    /// <exception cref="ProcSnapshotException">A malformed file (file and line), or no file Kmem can import.</exception>
    public static ProcSnapshot Load(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"import: no directory '{directory}'");
        var files = new Dictionary<string, string>();
        foreach (var name in KnownFiles)
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path)) files[name] = File.ReadAllText(path);
        }
        string fdt = Path.Combine(directory, "fdt");
        return Parse(files, File.Exists(fdt) ? File.ReadAllBytes(fdt) : null);
    }

    /// <summary>Reads a snapshot given as texts by file name (the names of <see cref="KnownFiles"/>).</summary>
    /// <exception cref="ArgumentException">A name Kmem does not know.</exception>
    /// <exception cref="ProcSnapshotException">A malformed file, or neither pagetypeinfo nor buddyinfo.</exception>
    public static ProcSnapshot Parse(IReadOnlyDictionary<string, string> files) => Parse(files, null);

    private static ProcSnapshot ParseFiles(IReadOnlyDictionary<string, string> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        foreach (var name in files.Keys)
            if (!KnownFiles.Contains(name)) throw new ArgumentException($"unknown snapshot file '{name}' (known: {string.Join(", ", KnownFiles)})", nameof(files));
        var s = new ProcSnapshot();
        string? Text(string n) => files.TryGetValue(n, out var t) ? t ?? throw new ArgumentException($"{n}: null text", nameof(files)) : null;
        if (Text("pagetypeinfo") is { } pti) s.PageTypeInfo = FreeListFiles.ParsePageTypeInfo(pti);
        if (Text("buddyinfo") is { } bi) s.BuddyInfo = FreeListFiles.ParseBuddyInfo(bi);
        if (Text("zoneinfo") is { } zi) s.ZoneInfo = StateFiles.ParseZoneInfo(zi);
        if (Text("meminfo") is { } mi) s.MemInfo = StateFiles.ParseMemInfo(mi);
        if (Text("slabinfo") is { } si) s.SlabInfo = StateFiles.ParseSlabInfo(si);
        if (Text("vmallocinfo") is { } vi) s.VmallocInfo = StateFiles.ParseVmallocInfo(vi);
        if (Text("cmdline") is { } cl) s.Cmdline = StateFiles.ParseCmdline(cl);
        if (Text("version") is { } ve)
        {
            var (v, arch, _) = StateFiles.ParseVersion(ve);
            s.Version = v;
            s.VersionArch = arch;
        }
        if (s.PageTypeInfo is null && s.BuddyInfo is null)
            throw new ProcSnapshotException("", 0, "the snapshot has neither pagetypeinfo nor buddyinfo: there is no free state to import");
        s.Files = KnownFiles.Where(files.ContainsKey).ToList();
        if (s.PageTypeInfo is { } p) s._derived.AddRange(p.Notes);
        s.CrossCheck();
        return s;
    }

    /// <summary>The free state to import: pagetypeinfo's tables, else buddyinfo's counts as Movable blocks.</summary>
    internal IReadOnlyList<FreeStateZone> FreeState()
    {
        if (PageTypeInfo is { } p)
            return p.Zones.Select(z => new FreeStateZone(z.Node, z.Zone, z.Free, z.Blocks)).ToList();
        var rows = BuddyInfo!;
        return rows.Select(r =>
        {
            var free = new long[PageTypes.MigrateTypes, r.Free.Length];
            for (int o = 0; o < r.Free.Length; o++) free[(int)MigrateType.Movable, o] = r.Free[o];
            return new FreeStateZone(r.Node, r.Zone, free, null);
        }).ToList();
    }

    /// <summary>MAX_ORDER (the number of orders) the files show: pagetypeinfo's order columns, else buddyinfo's.</summary>
    public int MaxOrder => PageTypeInfo?.MaxOrder ?? BuddyInfo![0].Free.Length;

    /// <summary>The pageblock order pagetypeinfo states, or null.</summary>
    public int? PageblockOrder => PageTypeInfo?.PageblockOrder;

    /// <summary>
    /// Rebuilds the snapshot's state on <paramref name="machine"/>: every free list and pageblock type of every
    /// populated zone as counted (all free blocks as Movable where only buddyinfo was given); from the pages the files do
    /// not show free, slabinfo's caches (slabs and active objects) and vmallocinfo's areas, the CMA pageblocks' used
    /// pages as movable pages ("recorded:cma:AREA"), the rest of each zone held as a recorded allocation named after the
    /// zone. Nothing changes when it cannot be built (more slab or vmalloc than used memory is a fatal finding).
    /// </summary>
    /// <exception cref="ProcSnapshotException">A fatal finding, or a machine whose zones, orders or pageblocks differ
    /// from the snapshot's (the message names the zone and what differs).</exception>
    public ProcSnapshotImport Apply(Machine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        if (HasFatalFindings)
            throw new ProcSnapshotException(_findings.First(f => f.Fatal).File, _findings.First(f => f.Fatal).Line,
                $"the files contradict each other ({_findings.Count(f => f.Fatal)} errors; the first: {_findings.First(f => f.Fatal).Message})");
        var pa = machine.Pages;
        string file = PageTypeInfo is null ? "buddyinfo" : "pagetypeinfo";
        if (MaxOrder != pa.MaxOrder)
            throw new ProcSnapshotException(file, 0, $"{MaxOrder} orders, the machine {machine.Profile.Name} has {pa.MaxOrder} (MAX_ORDER)");
        if (PageblockOrder is { } pb && pb != pa.PageblockOrder)
            throw new ProcSnapshotException(file, 0, $"page block order {pb}, the machine {machine.Profile.Name} has {pa.PageblockOrder}");
        FreeStateResult r;
        var rebuild = new SnapshotRebuild(machine, SlabInfo, VmallocInfo);
        try
        {
            r = pa.ImportFreeState(FreeState(), rebuild);
        }
        catch (ProcSnapshotException e) when (e.File is "slabinfo" or "vmallocinfo")
        {
            // The used memory the files describe does not fit what they leave allocated: a finding, nothing built.
            Fatal(e.File, e.Line, e.Problem);
            throw;
        }
        catch (Exception e) when (e is ArgumentException or KmemException and not ProcSnapshotException)
        {
            throw new ProcSnapshotException(file, 0, $"cannot be rebuilt on {machine.Profile.Name}: {e.Message}");
        }
        return new ProcSnapshotImport(machine, r, rebuild);
    }

    /// <summary>Boots the machine the files describe (or <paramref name="profile"/>) and applies the snapshot to it.</summary>
    /// <exception cref="ProcSnapshotException">As for <see cref="DeriveProfile"/> and <see cref="Apply"/>, or a derived machine
    /// that cannot boot (the profile's reason given); the machine is disposed when the import fails.</exception>
    /// <exception cref="ProfileException"><paramref name="profile"/> (given, not derived) cannot boot.</exception>
    public (Machine Machine, ProcSnapshotImport Import) Boot(MachineProfile? profile = null)
    {
        var p = profile ?? DeriveProfile();
        // The snapshot's command line is not booted with: its cma=, mem= and the like made the layout the files show already.
        Machine m;
        try
        {
            m = Machine.Boot(p);
        }
        catch (ProfileException e) when (profile is null)
        {
            throw new ProcSnapshotException("", 0, $"the machine the files describe does not boot: {e.Message}");
        }
        try
        {
            return (m, Apply(m));
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }
}

