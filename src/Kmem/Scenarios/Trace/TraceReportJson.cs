// The source-generated JSON contract of a trace report.
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kmem.Scenarios.Trace;

/// <summary>The source-generated JSON contract of <see cref="TraceReport"/> (camelCase, indented).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(TraceReport))]
internal sealed partial class TraceReportJson : JsonSerializerContext;
