// Runs a workload on a machine: each step by its operation's definition in the step registry (so the kernel's
// checks and reports apply through the public API), with the allocations of each label kept between runs, and
// a summary collected. A step that throws is reported naming the step; what the runner holds stays tracked, so
// ReleaseAll frees it.
using System.Diagnostics;
using Kmem.Scenarios.Steps;

namespace Kmem;

/// <summary>Executes workloads (see docs/workloads.md for the format).</summary>
public sealed class WorkloadRunner
{
    private readonly Machine _m;
    private readonly StepContext _ctx;

    /// <summary>Creates a runner for a machine; allocations stay held between runs until freed.</summary>
    public WorkloadRunner(Machine machine)
    {
        _m = machine ?? throw new ArgumentNullException(nameof(machine));
        _ctx = new StepContext(machine);
    }

    /// <summary>
    /// Reports progress as (steps run so far, top-level step index, top-level step count). An exception it throws
    /// ends the run and reaches the caller of <see cref="Run"/> as it is; what the runner holds stays tracked.
    /// </summary>
    public Action<long, int, int>? Progress { get; set; }

    /// <summary>Pages currently held by each label.</summary>
    public IReadOnlyDictionary<string, long> PagesHeld => _ctx.PagesHeld;

    /// <summary>
    /// Runs the workload's steps in order. A step that throws ends the run: the failure is logged naming the step and
    /// raised as a <see cref="WorkloadStepException"/>, or as a <see cref="WorkloadException"/> when the library refused
    /// an argument (a <see cref="WorkloadException"/> stays as it is); everything the runner allocated so far stays
    /// tracked, for <see cref="ReleaseAll"/>.
    /// </summary>
    public WorkloadResult Run(Workload workload)
    {
        ArgumentNullException.ThrowIfNull(workload);
        Check(workload);
        _ctx.Begin(workload.Seed);
        try
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < workload.Steps.Count; i++)
            {
                _ctx.Execute(workload.Steps[i]);
                Progress?.Invoke(_ctx.Result.StepsRun, i + 1, workload.Steps.Count);
            }
            sw.Stop();
            return _ctx.Finish(sw.Elapsed);
        }
        finally
        {
            _ctx.Detach();
        }
    }

    /// <summary>
    /// Frees everything still held. A free that throws does not stop the others: each failure is logged and the
    /// first is raised once everything else has been given back (the runner forgets what it could not free).
    /// </summary>
    public void ReleaseAll() => _ctx.ReleaseAll();

    /// <summary>
    /// Checks the workload against this runner's machine before anything runs: <c>kmem_cache_create</c> sizes within
    /// the machine's KMALLOC_MAX_SIZE and names that no cache has (the machine's or one the workload made before
    /// and did not destroy), and <c>min_free_kbytes</c> values the machine accepts.
    /// </summary>
    /// <exception cref="WorkloadException">Naming the step and argument at fault.</exception>
    public void Check(Workload workload)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ForEachStep(workload.Steps, step => WorkloadOps.Of(step).CheckOn?.Invoke(_m, step));
        new CacheNameWalk(name => _m.FindSlabCache(name) is not null).Walk(workload.Steps);
    }

    private static void ForEachStep(IReadOnlyList<WorkloadStep> steps, Action<WorkloadStep> check)
    {
        foreach (var s in steps)
        {
            check(s);
            ForEachStep(s.Children, check);
        }
    }
}
