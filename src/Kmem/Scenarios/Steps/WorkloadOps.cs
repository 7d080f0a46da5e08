// The registry of workload operations: every subsystem's step set, in the order the format lists them (the order
// error messages name them in). The parser, the checks and the runner find an operation here and nowhere else.
namespace Kmem.Scenarios.Steps;

/// <summary>All workload operations, by name.</summary>
internal static class WorkloadOps
{
    /// <summary>Every operation, in the format's order.</summary>
    public static readonly IReadOnlyList<WorkloadOp> All =
    [
        .. PageSteps.Ops,
        .. ControlSteps.Ops,
        .. SlabSteps.Ops,
        .. VmallocSteps.Ops,
        .. CmaSteps.Ops,
        .. DmaBufSteps.Ops,
        .. RtnetSteps.Ops,
        .. MediaSteps.Ops,
        .. HighmemSteps.Ops,
    ];

    private static readonly Dictionary<string, WorkloadOp> s_byName = All.ToDictionary(op => op.Name, StringComparer.Ordinal);

    /// <summary>The operation of that name, or null.</summary>
    public static WorkloadOp? Find(string name) => s_byName.GetValueOrDefault(name);

    /// <summary>The operation of a step (one the parser accepted); a step built by other means with an unknown name is refused.</summary>
    /// <exception cref="WorkloadException">No operation has the step's name.</exception>
    public static WorkloadOp Of(WorkloadStep step) =>
        s_byName.GetValueOrDefault(step.Op) ?? throw new WorkloadException(step.Location, $"operation '{step.Op}' is not supported");
}
