// The outcome of one workload run: steps executed, each label's figures, each allocation step's outcome (success,
// first failure, the orders and migratetypes its pages came from), the expectations that did not hold, the figures
// steps report (a pipeline's frames), the fragmentation and the CMA areas' largest free runs before and after, and
// the wall time.
namespace Kmem;

/// <summary>The outcome of <see cref="WorkloadRunner.Run"/>.</summary>
public sealed class WorkloadResult
{
    /// <summary>Steps executed (a repeated step counts each time).</summary>
    public long StepsRun { get; internal set; }
    /// <summary>Per-label figures, by label.</summary>
    public SortedDictionary<string, LabelStats> Labels { get; } = new(StringComparer.Ordinal);
    /// <summary>Expectations that did not hold ("expect": "success" that failed, a "verify" mismatch, a failed "check").</summary>
    public List<string> Problems { get; } = [];
    /// <summary>Figures the steps report (a pipeline's frames), in the order they ran.</summary>
    public List<string> Notes { get; } = [];
    /// <summary>Each allocation step that ran, in the order each first ran (a repeated step adds up over its repetitions).</summary>
    public IReadOnlyList<StepOutcome> Steps => StepList;

    internal List<StepOutcome> StepList { get; } = [];

    /// <summary>/sys/kernel/debug/extfrag/unusable_index when the run started.</summary>
    public string UnusableIndexBefore { get; internal set; } = "";

    /// <summary>/sys/kernel/debug/extfrag/unusable_index when the run ended.</summary>
    public string UnusableIndexAfter { get; internal set; } = "";

    /// <summary>The largest free run of each CMA area when the run started and when it ended, by area name.</summary>
    public IReadOnlyList<CmaFreeRun> CmaFreeRuns { get; internal set; } = [];

    /// <summary>Wall time of the run.</summary>
    public TimeSpan Elapsed { get; internal set; }
    /// <summary>True when every expectation held.</summary>
    public bool Ok => Problems.Count == 0;
}
