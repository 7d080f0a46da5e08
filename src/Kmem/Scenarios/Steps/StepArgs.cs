// Reading a workload step's arguments: strings, booleans, whole numbers in a range, sizes ("64K", 0x hex), GFP
// masks, byte patterns, and the arguments every allocation step shares. Each reader refuses a bad value with a
// WorkloadException naming the step and argument, so the same call serves validation and execution.
using System.Text.Json;

namespace Kmem.Scenarios.Steps;

/// <summary>Argument readers shared by every step set.</summary>
internal static class StepArgs
{
    /// <summary>A string argument, or null when absent.</summary>
    public static string? Str(WorkloadStep step, string key)
    {
        if (!step.Args.TryGetValue(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.String) throw new WorkloadException($"{step.Location}.{key}", "must be a string");
        return v.GetString();
    }

    /// <summary>A boolean argument (false when absent).</summary>
    public static bool Bool(WorkloadStep step, string key)
    {
        if (!step.Args.TryGetValue(key, out var v)) return false;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new WorkloadException($"{step.Location}.{key}", "must be true or false"),
        };
    }

    /// <summary>A whole-number argument in <paramref name="min"/>..<paramref name="max"/>, or <paramref name="dflt"/> when absent.</summary>
    public static int Int(WorkloadStep step, string key, int dflt, int min = int.MinValue, int max = int.MaxValue) =>
        (int)Long(step, key, dflt, min, max);

    /// <summary>A whole-number argument in <paramref name="min"/>..<paramref name="max"/>, or <paramref name="dflt"/> when absent.</summary>
    public static long Long(WorkloadStep step, string key, long dflt, long min = long.MinValue, long max = long.MaxValue)
    {
        if (!step.Args.TryGetValue(key, out var v)) return dflt;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n)) throw new WorkloadException($"{step.Location}.{key}", "must be a whole number");
        if (n < min || n > max) throw new WorkloadException($"{step.Location}.{key}", $"{n} is outside {min}..{max}");
        return n;
    }

    /// <summary>A size argument that is present: bytes, 0x hex, or a number with K, M or G.</summary>
    public static ulong Size(WorkloadStep step, string key)
    {
        var v = step.Args[key];
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong n)) return n;
        if (v.ValueKind == JsonValueKind.String && MachineProfile.TryParseSize(v.GetString()!, out ulong s)) return s;
        throw new WorkloadException($"{step.Location}.{key}", "is not a size (bytes, 0x hex, or a number with K, M or G)");
    }

    /// <summary>The <c>gfp</c> argument (GFP_KERNEL when absent).</summary>
    public static Gfp GfpArg(WorkloadStep step)
    {
        string text = Str(step, "gfp") ?? "GFP_KERNEL";
        if (!GfpFlags.TryParse(text, out var gfp)) throw new WorkloadException($"{step.Location}.gfp", $"'{text}' is not a GFP mask (e.g. GFP_KERNEL|__GFP_ZERO or 0xcc0)");
        return gfp;
    }

    /// <summary>A byte value 0..255 (a number or 0x text); required.</summary>
    public static int Pattern(WorkloadStep step, string key)
    {
        if (!step.Args.TryGetValue(key, out var v)) throw new WorkloadException($"{step.Location}.{key}", "is required");
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n is >= 0 and <= 255) return n;
        if (v.ValueKind == JsonValueKind.String && MachineProfile.TryParseSize(v.GetString()!, out ulong s) && s <= 255) return (int)s;
        throw new WorkloadException($"{step.Location}.{key}", "must be a byte value 0..255 (or 0x00..0xff)");
    }

    /// <summary>Refuses a step without <paramref name="key"/>.</summary>
    public static void Required(WorkloadStep step, string key)
    {
        if (!step.Args.ContainsKey(key)) throw new WorkloadException($"{step.Location}.{key}", "is required");
    }

    /// <summary>Refuses a step of a labelled operation without its <c>label</c>.</summary>
    public static void Label(WorkloadStep step)
    {
        if (string.IsNullOrWhiteSpace(Str(step, "label"))) throw new WorkloadException($"{step.Location}.label", "is required (a name for the allocations)");
    }

    /// <summary>The <c>expect</c> of an allocation step: success, failure or any.</summary>
    public static void Expect(WorkloadStep step)
    {
        if (Str(step, "expect") is { } e && e is not ("success" or "failure" or "any"))
            throw new WorkloadException($"{step.Location}.expect", $"'{e}' is not success, failure or any");
    }

    /// <summary>The arguments every allocation step shares: how many (<paramref name="countKey"/>), <c>expect</c> and <c>fill</c>.</summary>
    public static void AllocArgs(WorkloadStep step, string countKey = "count")
    {
        Long(step, countKey, 1, 1, 10_000_000);
        Expect(step);
        if (step.Args.ContainsKey("fill")) Pattern(step, "fill");
    }

    /// <summary>A positive size argument up to <paramref name="max"/> bytes, required.</summary>
    public static void SizeUpTo(WorkloadStep step, ulong max, string range)
    {
        Required(step, "size");
        if (Size(step, "size") is 0 || Size(step, "size") > max) throw new WorkloadException($"{step.Location}.size", range);
    }
}
