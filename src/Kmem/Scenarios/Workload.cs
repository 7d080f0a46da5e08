// Workloads: a JSON list of labelled steps (allocate, free, write, drain, reclaim, repeat, ...) that
// a machine runs in order, with every malformed step rejected before anything runs. The operations, their
// arguments and their checks come from the step registry (Scenarios/Steps), where each subsystem defines its own.
using System.Text.Json;
using Kmem.Core;
using Kmem.Scenarios.Steps;

namespace Kmem;

/// <summary>A parsed, validated workload.</summary>
public sealed class Workload
{
    /// <summary>The operations by name with their arguments, in the format's order (from the step registry).</summary>
    private static readonly Dictionary<string, string[]> s_ops = WorkloadOps.All.ToDictionary(op => op.Name, op => op.Args.ToArray(), StringComparer.Ordinal);

    private Workload(string name, string description, int seed, IReadOnlyList<WorkloadStep> steps)
    {
        Name = name;
        Description = description;
        Seed = seed;
        Steps = steps;
    }

    /// <summary>The workload's name.</summary>
    public string Name { get; }
    /// <summary>What it does.</summary>
    public string Description { get; }
    /// <summary>Seed for steps that choose at random ("which": "random").</summary>
    public int Seed { get; }
    /// <summary>The top-level steps.</summary>
    public IReadOnlyList<WorkloadStep> Steps { get; }

    /// <summary>The step kinds this version understands, with their arguments.</summary>
    public static IReadOnlyDictionary<string, string[]> Operations => s_ops;

    /// <summary>Reads and validates a workload file.</summary>
    /// <exception cref="WorkloadException">Not readable, not JSON, or a malformed step.</exception>
    public static Workload Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(JsonInput.ReadFile(path, (m, e) => new WorkloadException("(file)", m, e)));
    }

    /// <summary>Parses and validates workload JSON.</summary>
    public static Workload Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = JsonInput.Parse(json, (f, m, e) => new WorkloadException(f, m, e));
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new WorkloadException("(root)", "must be a JSON object");
        foreach (var p in root.EnumerateObject())
            if (p.Name is not ("name" or "description" or "seed" or "steps"))
                throw new WorkloadException(p.Name, "unknown key (allowed: name, description, seed, steps)");
        string name = root.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "workload";
        string desc = root.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "";
        int seed = 1;
        if (root.TryGetProperty("seed", out var s))
            if (s.ValueKind != JsonValueKind.Number || !s.TryGetInt32(out seed)) throw new WorkloadException("seed", "must be a whole number");
        if (!root.TryGetProperty("steps", out var steps) || steps.ValueKind != JsonValueKind.Array)
            throw new WorkloadException("steps", "is required and must be an array");
        var list = ReadSteps(steps, "steps");
        CountSteps(list, "steps");
        new CacheNameWalk(onMachine: null).Walk(list);
        return new Workload(name, desc, seed, list);
    }

    /// <summary>The most steps one run of a workload may execute, a repeated step counting each time it runs.</summary>
    public const long MaxTotalSteps = 100_000_000;

    /// <summary>How many steps a run of <paramref name="steps"/> executes (a repeat counts once plus its body each
    /// time); refuses, naming the step, a workload whose nested repeats would exceed <see cref="MaxTotalSteps"/>.</summary>
    private static long CountSteps(IReadOnlyList<WorkloadStep> steps, string where)
    {
        long total = 0;
        foreach (var step in steps)
        {
            long n = 1;
            if (WorkloadOps.Of(step).Repeats is { } repeats)
            {
                long body = CountSteps(step.Children, $"{step.Location}.steps");
                long times = repeats(step);
                if (times > 0 && body > (MaxTotalSteps - 1) / times)
                    throw new WorkloadException($"{step.Location}.times", $"repeats {times} times a body of {body} steps: more than the limit of {MaxTotalSteps} steps a workload may run");
                n += times * body;
            }
            total += n;
            if (total > MaxTotalSteps)
                throw new WorkloadException(step.Location, $"the steps up to here run {total} times in all: more than the limit of {MaxTotalSteps} steps a workload may run (in {where})");
        }
        return total;
    }

    private static List<WorkloadStep> ReadSteps(JsonElement arr, string path)
    {
        var list = new List<WorkloadStep>();
        int i = 0;
        foreach (var el in arr.EnumerateArray())
        {
            string loc = $"{path}[{i}]";
            if (el.ValueKind != JsonValueKind.Object) throw new WorkloadException(loc, "a step must be an object");
            if (!el.TryGetProperty("op", out var opEl) || opEl.ValueKind != JsonValueKind.String)
                throw new WorkloadException(loc, "needs \"op\" (one of: " + string.Join(", ", s_ops.Keys) + ")");
            string op = opEl.GetString()!;
            if (WorkloadOps.Find(op) is not { } definition)
                throw new WorkloadException($"{loc}.op", $"unknown operation '{op}' (known: {string.Join(", ", s_ops.Keys)})");
            var args = new Dictionary<string, JsonElement>();
            var children = new List<WorkloadStep>();
            foreach (var p in el.EnumerateObject())
            {
                if (p.Name == "op") continue;
                if (Array.IndexOf(definition.Args, p.Name) < 0)
                    throw new WorkloadException($"{loc}.{p.Name}", $"unknown argument for {op} (allowed: {string.Join(", ", definition.Args)})");
                if (p.Name == "steps")
                {
                    if (p.Value.ValueKind != JsonValueKind.Array) throw new WorkloadException($"{loc}.steps", "must be an array");
                    children = ReadSteps(p.Value, $"{loc}.steps");
                }
                else args[p.Name] = p.Value.Clone();
            }
            var step = new WorkloadStep(op, loc, args, children);
            definition.Validate(step);
            list.Add(step);
            i++;
        }
        return list;
    }
}
