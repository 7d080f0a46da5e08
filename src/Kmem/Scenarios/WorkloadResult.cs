// The outcome of one workload run: steps executed, each label's figures, the expectations that did not hold,
// the figures steps report (a pipeline's frames), and the wall time.
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
    /// <summary>Wall time of the run.</summary>
    public TimeSpan Elapsed { get; internal set; }
    /// <summary>True when every expectation held.</summary>
    public bool Ok => Problems.Count == 0;
}
