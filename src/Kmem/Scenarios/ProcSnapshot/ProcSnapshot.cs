// A board's /proc files as one snapshot: reads what a user copied (pagetypeinfo, buddyinfo, zoneinfo, meminfo,
// slabinfo, vmallocinfo, cmdline, version), cross-checks them line by line, derives the machine they describe and
// rebuilds their free state on a machine: the free blocks of every zone, order and migratetype exactly as counted and
// the pageblock types as counted, with the rest of memory held as named "recorded" allocations.
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
    /// <summary>The file names a snapshot may hold (<c>fdt</c> is read by the device-tree importer, not here).</summary>
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

    /// <summary>Reads the known files present in <paramref name="directory"/> (others, such as <c>fdt</c>, are left alone).</summary>
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
        return Parse(files);
    }

    /// <summary>Reads a snapshot given as texts by file name (the names of <see cref="KnownFiles"/>).</summary>
    /// <exception cref="ArgumentException">A name Kmem does not know.</exception>
    /// <exception cref="ProcSnapshotException">A malformed file, or neither pagetypeinfo nor buddyinfo.</exception>
    public static ProcSnapshot Parse(IReadOnlyDictionary<string, string> files)
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
    /// Rebuilds the snapshot's free state on <paramref name="machine"/>: every free list and pageblock type of every
    /// populated zone as counted (all free blocks as Movable where only buddyinfo was given), the rest of each zone's
    /// memory held as a recorded allocation named after the zone. Nothing changes when it cannot be built.
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
        try
        {
            r = pa.ImportFreeState(FreeState());
        }
        catch (Exception e) when (e is ArgumentException or KmemException and not ProcSnapshotException)
        {
            throw new ProcSnapshotException(file, 0, $"cannot be rebuilt on {machine.Profile.Name}: {e.Message}");
        }
        return new ProcSnapshotImport(machine, r.Held, r.Notes);
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

/// <summary>What <see cref="ProcSnapshot.Apply"/> built: the pages it holds as recorded allocations, and notes.</summary>
public sealed class ProcSnapshotImport
{
    private readonly Machine _m;
    private List<(int Idx, int Count)>? _held;

    internal ProcSnapshotImport(Machine m, IReadOnlyList<(int Idx, int Count)> held, IReadOnlyList<string> notes)
    {
        _m = m;
        _held = held.ToList();
        Notes = notes;
        var names = new List<(string, long)>();
        foreach (var (idx, count) in held)
        {
            var z = m.Pages.ZoneOfIdx(idx)!;
            string name = $"recorded:node{z.Node}:{z.Name}";
            int i = names.FindIndex(n => n.Item1 == name);
            if (i < 0) names.Add((name, count)); else names[i] = (name, names[i].Item2 + count);
        }
        Recorded = names;
    }

    /// <summary>The recorded allocations: one per zone ("recorded:nodeN:Zone"), with their pages.</summary>
    public IReadOnlyList<(string Name, long Pages)> Recorded { get; }

    /// <summary>Pages held in all.</summary>
    public long RecordedPages => Recorded.Sum(r => r.Pages);

    /// <summary>How the import placed blocks where the files leave a choice (for example blocks on another type's pageblock).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Frees every recorded page (once; a second call does nothing).</summary>
    public void Release()
    {
        var held = Interlocked.Exchange(ref _held, null);
        if (held is null) return;
        foreach (var (idx, count) in held)
            for (int i = 0; i < count; i++) _m.Pages.Free(idx + i, 0, "ProcSnapshotImport.Release");
    }
}
