// The check that no kmem_cache_create takes a name that is in use: walks the steps in the order they run (a
// repeat's body twice when it runs more than once, which is enough to see a create without its destroy), with
// each operation saying through its definition what it does to the names.
namespace Kmem.Scenarios.Steps;

/// <summary>Walks a workload's steps and refuses a cache created under a name that is taken.</summary>
/// <param name="onMachine">Whether the machine has a cache (or alias) of a name the walk has not met; null when
/// the workload is checked without a machine.</param>
internal sealed class CacheNameWalk(Func<string, bool>? onMachine)
{
    /// <summary>Each cache name the walk has met, with the step that made it (null once destroyed).</summary>
    private readonly Dictionary<string, string?> _seen = new(StringComparer.Ordinal);

    /// <summary>Walks <paramref name="steps"/> in the order they run.</summary>
    /// <exception cref="WorkloadException">A create of a name in use, naming the step.</exception>
    public void Walk(IReadOnlyList<WorkloadStep> steps)
    {
        foreach (var step in steps)
        {
            var op = WorkloadOps.Of(step);
            op.Names?.Invoke(this, step);
            if (op.Repeats is { } repeats)
                for (long i = 0, times = repeats(step); i < Math.Min(times, 2); i++) Walk(step.Children);
        }
    }

    /// <summary>A cache of <paramref name="name"/> is created by <paramref name="step"/>.</summary>
    public void Create(WorkloadStep step, string name)
    {
        string? by = _seen.TryGetValue(name, out var made) ? made : onMachine?.Invoke(name) == true ? "the machine" : null;
        if (by is not null)
            throw new WorkloadException($"{step.Location}.name", $"a cache named '{name}' already exists (made by {by}, not destroyed before this step)");
        _seen[name] = step.Location;
    }

    /// <summary>The cache of <paramref name="name"/> is destroyed.</summary>
    public void Destroy(string name) => _seen[name] = null;
}
