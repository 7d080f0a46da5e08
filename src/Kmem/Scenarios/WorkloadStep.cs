// One step of a workload as read from its JSON: the operation's name, its arguments, where in the file it was
// (for error messages), and the steps it runs (a repeat's body).
using System.Text.Json;

namespace Kmem;

/// <summary>One step of a workload: its kind, its arguments, and where it was read from.</summary>
public sealed record WorkloadStep(string Op, string Location, IReadOnlyDictionary<string, JsonElement> Args, IReadOnlyList<WorkloadStep> Children);
