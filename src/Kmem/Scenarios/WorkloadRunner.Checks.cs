// Workload checks that look at more than one step or at the machine, made before anything runs: a cache
// created twice, a cache size above KMALLOC_MAX_SIZE, min_free_kbytes beyond what the machine takes.
using System.Text.Json;

namespace Kmem;

public sealed partial class WorkloadRunner
{
    /// <summary>The largest slab object on any profile: KMALLOC_MAX_SIZE is capped at 32 MiB.</summary>
    internal const long MaxCacheObjectSize = 1L << 25;

    /// <summary>The most vm.min_free_kbytes can be (the sysctl is an int).</summary>
    internal const long MaxMinFreeKbytes = int.MaxValue;

    /// <summary>
    /// Checks the workload against this runner's machine before anything runs: <c>kmem_cache_create</c> sizes within
    /// the machine's KMALLOC_MAX_SIZE and names that no cache has (the machine's or one the workload made before
    /// and did not destroy), and <c>min_free_kbytes</c> values the machine accepts.
    /// </summary>
    /// <exception cref="WorkloadException">Naming the step and argument at fault.</exception>
    public void Check(Workload workload)
    {
        ArgumentNullException.ThrowIfNull(workload);
        long maxKb = (long)(_m.Profile.TotalRam / 4 / 1024);
        ForEachStep(workload.Steps, step =>
        {
            if (step.Op == "kmem_cache_create" && (long)Size(step, "size") > _m.KmallocMaxSize)
                throw new WorkloadException($"{step.Location}.size", $"{Size(step, "size")} bytes is above KMALLOC_MAX_SIZE ({_m.KmallocMaxSize}) of {_m.Profile.Name}");
            if (step.Op == "min_free_kbytes" && Long(step, "value", 0) > maxKb)
                throw new WorkloadException($"{step.Location}.value", $"{Long(step, "value", 0)} KiB is more than a quarter of {_m.Profile.Name}'s memory (0..{maxKb})");
        });
        CheckCacheNames(workload.Steps, new Dictionary<string, string?>(StringComparer.Ordinal), name => _m.FindSlabCache(name) is not null);
    }

    private static void ForEachStep(IReadOnlyList<WorkloadStep> steps, Action<WorkloadStep> check)
    {
        foreach (var s in steps)
        {
            check(s);
            ForEachStep(s.Children, check);
        }
    }

    /// <summary>Walks the steps in the order they run (a repeat's body twice when it runs more than once, which is
    /// enough to see a create without its destroy) and refuses a <c>kmem_cache_create</c> whose name is taken.
    /// <paramref name="seen"/> maps each cache name the walk has met to the step that made it (null once destroyed);
    /// <paramref name="onMachine"/> tells whether the machine has a cache (or alias) of a name the walk has not met.</summary>
    internal static void CheckCacheNames(IReadOnlyList<WorkloadStep> steps, Dictionary<string, string?> seen, Func<string, bool>? onMachine)
    {
        foreach (var step in steps)
        {
            switch (step.Op)
            {
                case "kmem_cache_create":
                {
                    string name = Str(step, "name")!;
                    string? by = seen.TryGetValue(name, out var made) ? made : onMachine?.Invoke(name) == true ? "the machine" : null;
                    if (by is not null)
                        throw new WorkloadException($"{step.Location}.name", $"a cache named '{name}' already exists (made by {by}, not destroyed before this step)");
                    seen[name] = step.Location;
                    break;
                }
                case "kmem_cache_destroy":
                    seen[Str(step, "cache")!] = null;
                    break;
                case "repeat":
                {
                    long times = step.Args.TryGetValue("times", out var t) && t.ValueKind == JsonValueKind.Number && t.TryGetInt64(out long n) ? n : 1;
                    for (long i = 0; i < Math.Min(times, 2); i++) CheckCacheNames(step.Children, seen, onMachine);
                    break;
                }
            }
        }
    }

    /// <summary>The static checks of <c>kmem_cache_create</c>: a name the kernel's sysfs could show, a size a slab
    /// can hold on some profile, an alignment that is 0 or a power of two up to the page size.</summary>
    private static void ValidateCacheCreate(WorkloadStep step)
    {
        string? name = Str(step, "name");
        if (string.IsNullOrWhiteSpace(name)) throw new WorkloadException($"{step.Location}.name", "is required");
        if (name.Contains('/') || name.Any(char.IsWhiteSpace)) throw new WorkloadException($"{step.Location}.name", $"'{name}' may not contain '/' or white space");
        if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
        ulong size = Size(step, "size");
        if (size == 0 || size > MaxCacheObjectSize)
            throw new WorkloadException($"{step.Location}.size", $"{size} bytes is not a slab object size (1 .. {MaxCacheObjectSize}, and at most the machine's KMALLOC_MAX_SIZE)");
        int align = Int(step, "align", 0, 0, 4096);
        if ((align & (align - 1)) != 0) throw new WorkloadException($"{step.Location}.align", $"{align} is not a power of two");
        Int(step, "sheaf_capacity", 0, 0, SlabCache.MaxSheafCapacity);
        SlabFlagsArg(step);
    }
}
