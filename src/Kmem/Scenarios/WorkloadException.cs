// The errors of a workload: a malformed file, and a step that failed while it ran.
namespace Kmem;

/// <summary>A workload file that cannot be run; <see cref="Location"/> names the step or field.</summary>
public sealed class WorkloadException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public WorkloadException(string location, string problem)
        : base(OneLine($"workload: {location}: {problem}")) { Location = location; Problem = problem; }

    /// <summary>Creates the exception with an underlying cause.</summary>
    public WorkloadException(string location, string problem, Exception inner)
        : base(OneLine($"workload: {location}: {problem}"), inner) { Location = location; Problem = problem; }

    /// <summary>Where in the workload (e.g. <c>steps[3].order</c>).</summary>
    public string Location { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}

/// <summary>
/// A workload step that failed while it ran (a refused call, or any other exception of the calls it makes);
/// <see cref="Location"/> and <see cref="Op"/> name the step, <see cref="Exception.InnerException"/> is the cause.
/// What the runner held stays held and tracked, so <see cref="WorkloadRunner.ReleaseAll"/> frees it.
/// </summary>
public sealed class WorkloadStepException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public WorkloadStepException(string location, string op, Exception inner)
        : base($"workload: {location} ({op}) failed: {(inner is KmemException ? "" : inner.GetType().Name + ": ")}{inner.Message}", inner)
    {
        Location = location;
        Op = op;
    }

    /// <summary>The step (e.g. <c>steps[2].steps[0]</c>).</summary>
    public string Location { get; }

    /// <summary>The step's operation.</summary>
    public string Op { get; }
}
