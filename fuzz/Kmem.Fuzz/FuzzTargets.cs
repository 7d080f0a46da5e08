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
    public static readonly string[] Names = ["profile", "cmdline", "workload", "trace", "rkdma"];

    /// <summary>How the raw input bytes become text: UTF-8, invalid sequences replaced (as File.ReadAllText does).</summary>
    public static string Decode(ReadOnlySpan<byte> data) => Encoding.UTF8.GetString(data);

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
        "rkdma" => Refused<DumpFormatException>(() => RkDmaHeapImport.Parse(input)),
        _ => throw new ArgumentException($"unknown target '{target}' (one of: {string.Join(", ", Names)})", nameof(target)),
    };

    private static bool Refused<TDocumented>(Action parse) where TDocumented : Exception
    {
        try
        {
            parse();
            return true;
        }
        catch (TDocumented e)
        {
            // The documented refusal must explain itself on one line.
            if (string.IsNullOrWhiteSpace(e.Message) || e.Message.Contains('\n'))
                throw new InvalidOperationException($"{typeof(TDocumented).Name} without a one-line reason: '{e.Message}'", e);
            return false;
        }
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
