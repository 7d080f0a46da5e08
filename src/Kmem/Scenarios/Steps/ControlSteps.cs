// The workload steps that steer a run rather than allocate: repeat (a body of steps run a number of times), log
// (a line in the machine's log ring), check (the machine's invariant check, each finding a problem of the run) and
// run_on_cpu (the workload's thread runs as another CPU of the profile, and so allocates from that CPU's node).
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The control operations.</summary>
internal static class ControlSteps
{
    /// <summary>The most times one repeat may run its body.</summary>
    internal const long MaxRepeat = 100_000_000;

    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("repeat", ["times", "steps"],
            step =>
            {
                Required(step, "times");
                Long(step, "times", 1, 0, MaxRepeat);
                if (step.Children.Count == 0) throw new WorkloadException($"{step.Location}.steps", "needs at least one step");
            },
            (ctx, step) =>
            {
                long times = Long(step, "times", 1);
                for (long t = 0; t < times; t++)
                    foreach (var child in step.Children) ctx.Execute(child);
            })
        {
            Repeats = step => Long(step, "times", 1),
        },
        new("run_on_cpu", ["cpu"],
            step =>
            {
                Required(step, "cpu");
                Int(step, "cpu", 0, 0, 1023);
            },
            (ctx, step) => ctx.Machine.MigrateToCpu(Int(step, "cpu", 0))),
        new("log", ["message"], _ => { }, (ctx, step) => ctx.Machine.Log.Info(Str(step, "message") ?? "")),
        new("check", [], _ => { },
            (ctx, step) =>
            {
                foreach (var e in ctx.Machine.VerifyIntegrity()) ctx.Result.Problems.Add($"{step.Location}: {e}");
            }),
    ];
}
