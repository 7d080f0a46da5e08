// Workloads: a JSON list of labelled steps (allocate, free, write, drain, reclaim, repeat, ...) that
// a machine runs in order, with every malformed step rejected before anything runs. Later
// subsystems add their own step kinds to the same format.
using System.Text.Json;

namespace Kmem;

/// <summary>One step of a workload: its kind, its arguments, and where it was read from.</summary>
public sealed record WorkloadStep(string Op, string Location, IReadOnlyDictionary<string, JsonElement> Args, IReadOnlyList<WorkloadStep> Children);

/// <summary>A parsed, validated workload.</summary>
public sealed class Workload
{
    private static readonly Dictionary<string, string[]> s_ops = new()
    {
        ["alloc_pages"] = ["label", "order", "gfp", "count", "expect", "fill"],
        ["free_pages"] = ["label", "count", "which"],
        ["alloc_pages_exact"] = ["label", "size", "gfp", "count", "expect"],
        ["get_page"] = ["label"],
        ["put_page"] = ["label"],
        ["write"] = ["label", "pattern"],
        ["verify"] = ["label", "pattern"],
        ["drain"] = [],
        ["reclaim"] = [],
        ["min_free_kbytes"] = ["value"],
        ["repeat"] = ["times", "steps"],
        ["log"] = ["message"],
        ["check"] = [],
        ["kmalloc"] = ["label", "size", "gfp", "count", "expect", "fill"],
        ["kfree"] = ["label", "count", "which"],
        ["kmem_cache_create"] = ["name", "size", "align", "flags", "sheaf_capacity"],
        ["kmem_cache_alloc"] = ["label", "cache", "gfp", "count", "expect", "fill"],
        ["kmem_cache_free"] = ["label", "count", "which"],
        ["kmem_cache_shrink"] = ["cache"],
        ["kmem_cache_destroy"] = ["cache"],
        ["vmalloc"] = ["label", "size", "gfp", "count", "expect", "fill", "user"],
        ["vfree"] = ["label", "count", "which"],
        ["vm_unmap_aliases"] = [],
        ["cma_alloc"] = ["label", "cma", "count", "align", "gfp", "times", "expect", "fill"],
        ["cma_release"] = ["label", "count", "which"],
        ["dma_alloc_coherent"] = ["label", "device", "size", "gfp", "count", "expect", "fill"],
        ["dma_free_coherent"] = ["label", "count", "which"],
        ["alloc_movable"] = ["label", "order", "gfp", "count", "expect", "fill"],
        ["free_movable"] = ["label", "count", "which"],
        ["dma_heap_alloc"] = ["label", "heap", "size", "count", "expect", "fill"],
        ["dma_heap_free"] = ["label", "count", "which"],
        ["rk_dma_heap_alloc"] = ["label", "heap", "size", "name", "thread", "attach", "ino", "count", "expect", "fill"],
        ["rk_dma_heap_free"] = ["label", "count", "which"],
        ["rk_dma_heap_alloc_contig"] = ["label", "heap", "size", "name", "thread", "count", "expect"],
        ["rk_dma_heap_free_contig"] = ["label", "count", "which"],
        ["dmabuf_attach"] = ["label", "device"],
        ["dmabuf_inodes"] = ["count"],
        ["rtnet_nic"] = ["name", "rx_pool"],
        ["rtnet_socket"] = ["socket", "port", "pool"],
        ["rtnet_send"] = ["nic", "port", "size", "count", "pattern"],
        ["rtnet_recv"] = ["socket", "count"],
        ["rtnet_setsockopt"] = ["socket", "option", "count", "expect"],
        ["rtnet_close"] = ["socket", "expect"],
        ["drm_create_dumb"] = ["label", "width", "height", "bpp", "count", "expect"],
        ["drm_close"] = ["label"],
        ["drm_prime_export"] = ["label", "as"],
        ["drm_prime_import"] = ["label", "as", "expect"],
        ["vb2_queue"] = ["queue", "device", "memops", "direction", "format", "width", "height", "size", "min_buffers"],
        ["vb2_reqbufs"] = ["queue", "memory", "count", "expect"],
        ["vb2_expbuf"] = ["queue", "as", "expect"],
        ["vb2_streamon"] = ["queue", "expect"],
        ["vb2_streamoff"] = ["queue", "expect"],
        ["vb2_release"] = ["queue"],
        ["vb2_pipeline"] = ["from", "to", "buffers", "frames", "expect"],
    };

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
        WorkloadRunner.CheckCacheNames(list, new Dictionary<string, string?>(StringComparer.Ordinal), onMachine: null);
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
            if (step.Op == "repeat")
            {
                long body = CountSteps(step.Children, $"{step.Location}.steps");
                long times = step.Args.TryGetValue("times", out var t) && t.TryGetInt64(out long tv) ? tv : 1;
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
            if (!s_ops.TryGetValue(op, out var allowed))
                throw new WorkloadException($"{loc}.op", $"unknown operation '{op}' (known: {string.Join(", ", s_ops.Keys)})");
            var args = new Dictionary<string, JsonElement>();
            var children = new List<WorkloadStep>();
            foreach (var p in el.EnumerateObject())
            {
                if (p.Name == "op") continue;
                if (Array.IndexOf(allowed, p.Name) < 0)
                    throw new WorkloadException($"{loc}.{p.Name}", $"unknown argument for {op} (allowed: {string.Join(", ", allowed)})");
                if (p.Name == "steps")
                {
                    if (p.Value.ValueKind != JsonValueKind.Array) throw new WorkloadException($"{loc}.steps", "must be an array");
                    children = ReadSteps(p.Value, $"{loc}.steps");
                }
                else args[p.Name] = p.Value.Clone();
            }
            var step = new WorkloadStep(op, loc, args, children);
            WorkloadRunner.Validate(step);
            list.Add(step);
            i++;
        }
        return list;
    }
}
