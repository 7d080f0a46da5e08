// The fuzzing targets and the one rule they all check, shared by the fuzzing program and the test that
// replays the kept corpora: an input either parses or is refused with the parser's documented exception.
// Any other exception escapes from Run (the fuzzer records it as a crash, the test fails); a hang shows
// as the fuzzer's timeout or the test's time limit.
using System.Text;
using Kmem.Boot;

namespace Kmem.Fuzzing;

/// <summary>The parsers under fuzzing, by target name.</summary>
internal static class FuzzTargets
{
    /// <summary>The target names, as given on the fuzzing program's command line and as corpus folder names.</summary>
    public static readonly string[] Names = ["profile", "cmdline", "workload", "trace", "rkdma", "fdt", "procsnap"];

    /// <summary>The targets that read the input bytes as they are (a binary format); the others read them as text.</summary>
    public static readonly string[] Binary = ["fdt"];

    /// <summary>The largest machine the procsnap target boots (all banks together), so that one input stays well
    /// under the fuzzer's time limit; a snapshot describing more is parsed and derived, not booted.</summary>
    public const ulong MaxBootRam = 256UL << 20;

    /// <summary>The most NUMA nodes the procsnap target boots.</summary>
    public const int MaxBootNodes = 2;

    /// <summary>How the raw input bytes become text: UTF-8, invalid sequences replaced (as File.ReadAllText does).</summary>
    public static string Decode(ReadOnlySpan<byte> data) => Encoding.UTF8.GetString(data);

    /// <summary>
    /// Runs <paramref name="target"/> over the raw input: the bytes as they are for a binary target, else the bytes
    /// decoded as text (<see cref="Decode"/>). Returns whether the input was accepted; anything undocumented escapes.
    /// </summary>
    public static bool Run(string target, byte[] data) =>
        target == "fdt" ? Refused<DeviceTreeException, ProfileException>(() => Fdt(data)) : Run(target, Decode(data));

    /// <summary>
    /// Runs <paramref name="target"/>'s parser over <paramref name="input"/>. Returns whether the input was
    /// accepted (true) or refused with the documented exception (false); anything else escapes.
    /// </summary>
    public static bool Run(string target, string input) => target switch
    {
        "profile" => Refused<ProfileException>(() => MachineProfile.Parse(input)),
        "cmdline" => Refused<ProfileException>(() => Cmdline(input)),
        "workload" => Refused<WorkloadException>(() => Workload.Parse(input)),
        "trace" => Trace(input),
        "rkdma" => Refused<DumpFormatException>(() => RkDma(input)),
        "fdt" => Run(target, Encoding.UTF8.GetBytes(input)),
        "procsnap" => Refused<ProcSnapshotException>(() => ProcSnap(input)),
        _ => throw new ArgumentException($"unknown target '{target}' (one of: {string.Join(", ", Names)})", nameof(target)),
    };

    private static bool Refused<TDocumented>(Action parse) where TDocumented : Exception =>
        Refused<TDocumented, TDocumented>(parse);

    /// <summary>As <see cref="Refused{TDocumented}(Action)"/>, for a chain whose refusals are of either of two types.</summary>
    private static bool Refused<TDocumented, TAlso>(Action parse) where TDocumented : Exception where TAlso : Exception
    {
        try
        {
            parse();
            return true;
        }
        catch (Exception e) when (e is TDocumented or TAlso)
        {
            // The documented refusal must explain itself on one line.
            if (string.IsNullOrWhiteSpace(e.Message) || e.Message.Contains('\n'))
                throw new InvalidOperationException($"{e.GetType().Name} without a one-line reason: '{e.Message}'", e);
            return false;
        }
    }

    /// <summary>
    /// The rk-dma-heap-info dump; when it is in the <c>grep Alloc</c> form (entries that name no heap), it is also replayed
    /// on an rv1106, so that the choice of the board's heap (<see cref="RkDmaHeapImport.BoardHeap"/>) and the replay's own
    /// checks are under the rule too.
    /// </summary>
    private static void RkDma(string text)
    {
        var entries = RkDmaHeapImport.Parse(text);
        if (!entries.Any(e => e.Heap == RkDmaHeapImport.UnnamedHeap)) return;
        using var m = Machine.Boot("rv1106");
        _ = RkDmaHeapImport.BoardHeap(m) ?? throw new InvalidOperationException("rv1106 has no RK-DMA-HEAP area for the grep form");
        var r = RkDmaHeapImport.Replay(m, entries);
        if (r.UnnamedHeapTakenAs is null) throw new InvalidOperationException("the grep form's entries were replayed without a heap");
    }

    /// <summary>
    /// A flattened device tree (the bytes as they are) and, when it parses, the profile derived from it; the derived
    /// profile's commented JSON must load back (as its documentation promises).
    /// </summary>
    private static void Fdt(byte[] blob)
    {
        var tree = DeviceTree.Parse(blob);
        var derived = MachineProfile.FromDeviceTree(tree);
        try
        {
            _ = MachineProfile.Parse(derived.Json);
        }
        catch (ProfileException e)
        {
            throw new InvalidOperationException($"the derived profile's JSON does not load back: {e.Message}", e);
        }
    }

    /// <summary>
    /// The files of a /proc snapshot in one input, the way <c>tail</c> prints several files: each file starts after a line
    /// <c>==&gt; NAME &lt;==</c> (NAME one of <see cref="ProcSnapshot.KnownFiles"/>, or a path ending in one) and runs to
    /// the next such line; the blank line <c>tail</c> prints before a header is not part of the file. Text before the first
    /// header and sections of other names are left out (as <c>kmem import proc</c> leaves other files of a directory); a
    /// name given twice keeps its last section.
    /// </summary>
    public static Dictionary<string, string> Sections(string text)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        string? name = null;
        var body = new StringBuilder();
        void Close()
        {
            if (name is not null && ProcSnapshot.KnownFiles.Contains(name)) files[name] = body.ToString();
            body.Clear();
        }
        static bool IsHeader(string line) =>
            line.StartsWith("==> ", StringComparison.Ordinal) && line.TrimEnd('\r').EndsWith(" <==", StringComparison.Ordinal) && line.TrimEnd('\r').Length >= 8;
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (IsHeader(line))
            {
                Close();
                name = line.TrimEnd('\r')[4..^4].Trim();
                int slash = name.LastIndexOf('/');
                if (slash >= 0) name = name[(slash + 1)..];
                continue;
            }
            bool blankBeforeHeader = line.Length == 0 && i + 1 < lines.Length && IsHeader(lines[i + 1]);
            if (blankBeforeHeader) continue;
            body.Append(line);
            if (i + 1 < lines.Length) body.Append('\n');
        }
        Close();
        return files;
    }

    /// <summary>
    /// A /proc snapshot (<see cref="Sections"/>): parsed and cross-checked, its machine derived, and, when that machine is
    /// small (<see cref="MaxBootRam"/>, <see cref="MaxBootNodes"/>), booted with the snapshot's state rebuilt on it, the
    /// recorded pages released and the machine disposed. The whole chain is under the rule.
    /// </summary>
    private static void ProcSnap(string text)
    {
        var snapshot = ProcSnapshot.Parse(Sections(text));
        _ = snapshot.Findings.Select(f => f.ToString()).ToList();
        var profile = snapshot.DeriveProfile();
        if (profile.TotalRam > MaxBootRam || profile.NodeCount > MaxBootNodes) return;
        // Booted from the derived profile as `kmem import proc` boots it (without a profile of the user's).
        var (m, import) = snapshot.Boot();
        using (m)
            import.Release();
    }

    /// <summary>The kernel command line as a profile's "cmdline" gives it, with the fault-injection values it carries.</summary>
    private static void Cmdline(string text)
    {
        var c = KernelCmdline.Parse(text, "cmdline");
        foreach (string name in new[] { "fail_page_alloc", "failslab" })
            if (c[name] is { } value) new FaultAttr(name, new KernelLog(1 << 12), false, 0).Setup("cmdline", value);
        _ = c.SlubDebug.For("kmalloc-64");
    }

    /// <summary>The trace parser never throws: every line is an event or one of the other line kinds.</summary>
    private static bool Trace(string text)
    {
        bool any = false;
        foreach (string line in text.Split('\n'))
        {
            var kind = KmemTraceParser.Parse(line, out var ev, out string? other);
            if (!Enum.IsDefined(kind)) throw new InvalidOperationException($"line kind {(int)kind} out of range");
            if (kind == KmemTraceLineKind.Event && ev.EventName is null) throw new InvalidOperationException("an event without a name");
            if (kind == KmemTraceLineKind.OtherEvent && other is null) throw new InvalidOperationException("another event without a name");
            any |= kind == KmemTraceLineKind.Event;
        }
        return any;
    }
}
