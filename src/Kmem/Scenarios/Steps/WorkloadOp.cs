// One operation of the workload format, defined once: its name, the arguments it takes, the checks made on a
// step before anything runs, and what running it does. Each subsystem's step set (PageSteps, SlabSteps, …) lists
// its operations as WorkloadOp values; WorkloadOps gathers them into the one registry the parser, the checks and
// the runner all read.
namespace Kmem.Scenarios.Steps;

/// <summary>The definition of one workload operation.</summary>
internal sealed class WorkloadOp
{
    /// <summary>Defines an operation.</summary>
    /// <param name="name">The "op" value that names it.</param>
    /// <param name="args">The arguments a step of it may carry (anything else is refused when the workload is read).</param>
    /// <param name="validate">The checks of a step's arguments, made when the workload is read; throws a <see cref="WorkloadException"/>.</param>
    /// <param name="execute">Runs one step through the public API.</param>
    public WorkloadOp(string name, string[] args, Action<WorkloadStep> validate, Action<StepContext, WorkloadStep> execute)
    {
        Name = name;
        Args = args;
        Validate = validate;
        Execute = execute;
    }

    /// <summary>The "op" value.</summary>
    public string Name { get; }

    /// <summary>The arguments a step may carry, in the order the format lists them.</summary>
    public string[] Args { get; }

    /// <summary>Checks a step's arguments before anything runs.</summary>
    public Action<WorkloadStep> Validate { get; }

    /// <summary>Runs one step.</summary>
    public Action<StepContext, WorkloadStep> Execute { get; }

    /// <summary>For an operation that runs the step's children ("repeat"): how many times it runs them.</summary>
    public Func<WorkloadStep, long>? Repeats { get; init; }

    /// <summary>Checks that need the machine a run will use (sizes and values it accepts), made before the run.</summary>
    public Action<Machine, WorkloadStep>? CheckOn { get; init; }

    /// <summary>What the step does to the slab cache names, for the walk that refuses a cache created twice.</summary>
    public Action<CacheNameWalk, WorkloadStep>? Names { get; init; }

    /// <summary>
    /// A free of a label's allocations (whatever kind they are): <c>count</c> of them (a number or "all", default all)
    /// taken by <c>which</c> (newest, oldest or random).
    /// </summary>
    public static WorkloadOp Free(string name) => new(name, ["label", "count", "which"],
        step =>
        {
            StepArgs.Label(step);
            if (step.Args.TryGetValue("count", out var c) && !(c.ValueKind == System.Text.Json.JsonValueKind.String && c.GetString() == "all"))
                StepArgs.Long(step, "count", 1, 0, long.MaxValue);
            if (StepArgs.Str(step, "which") is { } w && w is not ("newest" or "oldest" or "random"))
                throw new WorkloadException($"{step.Location}.which", $"'{w}' is not newest, oldest or random");
        },
        (ctx, step) => ctx.FreeLabel(step));
}
