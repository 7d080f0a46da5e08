// What the steps of one WorkloadRunner share: the machine, the allocations each label holds (kept between runs
// until freed), the current run's result and random source, and each step set's own objects. It runs one step
// by its definition in the registry, naming the step when it fails, and carries the helpers that every
// allocation and free step uses (count, expect, fill, newest/oldest/random). Around a run it records what the summary
// answers: each allocation step's outcome (its first failure's reason as the kernel logged it, the orders and pageblock
// migratetypes of its pages, the buddy allocator's fallbacks while it ran), the fragmentation index and the CMA areas'
// largest free runs before and after.
using System.Runtime.ExceptionServices;
using System.Text.Json;
using Kmem.Core;
using Kmem.Diagnostics;
using Kmem.Paging;

namespace Kmem.Scenarios.Steps;

/// <summary>The state and helpers shared by the steps of one runner.</summary>
internal sealed class StepContext(Machine machine)
{
    private readonly Dictionary<string, List<Held>> _held = new(StringComparer.Ordinal);
    private readonly Dictionary<Type, StepState> _states = [];
    private readonly Dictionary<string, StepOutcome> _outcomes = new(StringComparer.Ordinal);
    private Action<LogRecord>? _onLog;
    private string? _failNote;       // the first warning logged since the allocation under way began

    /// <summary>The machine the steps run on.</summary>
    public Machine Machine { get; } = machine;

    /// <summary>The result of the run under way.</summary>
    public WorkloadResult Result { get; private set; } = new();

    /// <summary>The random source of "which": "random" (seeded by the workload).</summary>
    public Random Random { get; private set; } = new(1);

    /// <summary>Starts a run: a new result and a random source seeded with <paramref name="seed"/>.</summary>
    public void Begin(int seed)
    {
        Random = new Random(seed);
        Result = new WorkloadResult
        {
            UnusableIndexBefore = PageViews.UnusableIndex(Machine.Pages),
            CmaFreeRuns = [.. Machine.Cma.Select(kv => new CmaFreeRun(kv.Key, kv.Value.MaxChunk, kv.Value.Count))],
        };
        _outcomes.Clear();
        _onLog ??= rec => { if (rec.Level <= LogLevel.Warning) _failNote ??= rec.Text; };
        Machine.Log.Logged += _onLog;
    }

    /// <summary>Stops listening to the machine's log (the end of a run, however it ended).</summary>
    public void Detach()
    {
        if (_onLog is not null) Machine.Log.Logged -= _onLog;
    }

    /// <summary>Ends a run: its time, what each label holds now, the fragmentation and the CMA areas' largest free runs.</summary>
    public WorkloadResult Finish(TimeSpan elapsed)
    {
        Result.Elapsed = elapsed;
        Result.UnusableIndexAfter = PageViews.UnusableIndex(Machine.Pages);
        foreach (var run in Result.CmaFreeRuns)
            if (Machine.Cma.TryGetValue(run.Area, out var area)) run.AfterPages = area.MaxChunk;
        foreach (var (label, list) in _held)
        {
            Stats(label).PagesHeld = list.Sum(h => h.Pages);
            Stats(label).BytesHeld = list.Sum(h => h.Bytes);
        }
        return Result;
    }

    /// <summary>Pages currently held by each label.</summary>
    public IReadOnlyDictionary<string, long> PagesHeld => _held.ToDictionary(kv => kv.Key, kv => kv.Value.Sum(h => h.Pages));

    /// <summary>The figures of a label in the run under way.</summary>
    public LabelStats Stats(string label)
    {
        if (!Result.Labels.TryGetValue(label, out var s)) Result.Labels[label] = s = new LabelStats();
        return s;
    }

    /// <summary>What a label holds (created empty).</summary>
    public List<Held> Holder(string label)
    {
        if (!_held.TryGetValue(label, out var l)) _held[label] = l = [];
        return l;
    }

    /// <summary>A step set's own objects in this runner (created on first use).</summary>
    public T State<T>() where T : StepState, new()
    {
        if (!_states.TryGetValue(typeof(T), out var s)) _states[typeof(T)] = s = new T();
        return (T)s;
    }

    /// <summary>Runs one step; an exception it raises is logged and raised again naming the innermost step that failed.</summary>
    public void Execute(WorkloadStep step)
    {
        try
        {
            Result.StepsRun++;
            WorkloadOps.Of(step).Execute(this, step);
        }
        catch (Exception e) when (e is not (WorkloadException or WorkloadStepException))
        {
            Machine.Log.Err($"workload: {step.Location} ({step.Op}) failed: {e.GetType().Name}: {e.Message}");
            // An argument the library refused is the workload's bad input (as at validation); anything else failed at run time.
            if (e is ArgumentException) throw new WorkloadException(step.Location, $"{step.Op}: {e.Message}", e);
            throw new WorkloadStepException(step.Location, step.Op, e);
        }
    }

    /// <summary>
    /// An allocation step: <c>count</c> calls of <paramref name="alloc"/> (null: failed), each checked against
    /// <c>expect</c>, filled with <c>fill</c> when given, and held by the step's label.
    /// </summary>
    public void AllocSteps(WorkloadStep step, string what, Func<Held?> alloc, string countKey = "count")
    {
        string label = StepArgs.Str(step, "label")!;
        long count = StepArgs.Long(step, countKey, 1);
        string expect = StepArgs.Str(step, "expect") ?? "any";
        int? fill = step.Args.ContainsKey("fill") ? StepArgs.Pattern(step, "fill") : null;
        var list = Holder(label);
        var stats = Stats(label);
        var outcome = StepOutcomeOf(step, label);
        long[] fallbacks = FallbackCounts();
        try
        {
            for (long i = 0; i < count; i++)
            {
                _failNote = null;
                var h = alloc();
                if (!Outcome(step, h is not null, expect, $"{what} for '{label}'", stats))
                {
                    outcome.Failed++;
                    outcome.FirstFailure ??= _failNote ?? $"{what} returned nothing (the kernel logged no warning)";
                    continue;
                }
                list.Add(h!);              // held before anything else can throw
                outcome.Allocated++;
                CountSources(outcome, h!);
                if (fill is { } f) h!.Fill(Machine, (byte)f);
            }
        }
        finally
        {
            CountFallbacks(outcome, fallbacks);
        }
    }

    /// <summary>The outcome of a step in the run under way (created when it first runs).</summary>
    private StepOutcome StepOutcomeOf(WorkloadStep step, string label)
    {
        if (!_outcomes.TryGetValue(step.Location, out var o))
        {
            _outcomes[step.Location] = o = new StepOutcome(step.Location, step.Op, label);
            Result.StepList.Add(o);
        }
        return o;
    }

    /// <summary>Every zone's fallback counts added up, by requested type × types + type taken.</summary>
    private long[] FallbackCounts()
    {
        var sum = new long[PageTypes.MigrateTypes * PageTypes.MigrateTypes];
        foreach (var z in Machine.Pages.Zones)
        {
            LockOrder.Enter(LockRank.Zone, z.Lock);
            lock (z.Lock)
                for (int i = 0; i < sum.Length; i++) sum[i] += z.FallbackCounts[i];
        }
        return sum;
    }

    /// <summary>The fallbacks since <paramref name="before"/>, into the step's outcome.</summary>
    private void CountFallbacks(StepOutcome outcome, long[] before)
    {
        var now = FallbackCounts();
        for (int i = 0; i < now.Length; i++)
            if (now[i] != before[i])
                outcome.AddFallbacks((MigrateType)(i / PageTypes.MigrateTypes), (MigrateType)(i % PageTypes.MigrateTypes), now[i] - before[i]);
    }

    /// <summary>
    /// The order and pageblock migratetype of each block of an allocation, into the step's outcome. Blocks inside a CMA
    /// area came from cma_alloc(), not from the buddy lists: they count as one run (order -1) of all their pages.
    /// </summary>
    private void CountSources(StepOutcome outcome, Held h)
    {
        var pa = Machine.Pages;
        long cmaPages = 0;
        MigrateType cmaType = default;
        foreach (var (page, order) in h.Blocks(Machine))
        {
            int idx = (int)(page.Pfn - pa.BasePfn);
            if (pa.ZoneOfIdx(idx) is not { } zone) continue;
            long pages = order >= 0 ? 1L << order : h.Pages;
            if (order < 0 || InCmaArea(page.Pfn))
            {
                if (cmaPages == 0) cmaType = zone.PageblockType(idx);
                cmaPages += pages;
                continue;
            }
            outcome.AddSource(order, zone.PageblockType(idx), pages);
        }
        // A coherent buffer's one block is reported with its get_order(); the CMA run behind it has only its own pages.
        if (cmaPages > 0) outcome.AddSource(-1, cmaType, Math.Min(cmaPages, h.Pages));
    }

    /// <summary>True when the page frame lies in one of the machine's CMA areas.</summary>
    private bool InCmaArea(ulong pfn)
    {
        foreach (var a in Machine.Cma.Values)
            if (pfn >= a.BasePfn && pfn - a.BasePfn < a.Count) return true;
        return false;
    }

    /// <summary>Counts an allocation's outcome against the step's expectation; true when it succeeded.</summary>
    public bool Outcome(WorkloadStep step, bool ok, string expect, string what, LabelStats stats)
    {
        if (!ok)
        {
            stats.Failed++;
            if (expect == "success") Result.Problems.Add($"{step.Location}: {what} failed");
            return false;
        }
        if (expect == "failure") Result.Problems.Add($"{step.Location}: {what} succeeded but was expected to fail");
        stats.Allocated++;
        return true;
    }

    /// <summary>A free step (see <see cref="WorkloadOp.Free"/>): gives back <c>count</c> of the label's allocations.</summary>
    public void FreeLabel(WorkloadStep step)
    {
        string label = StepArgs.Str(step, "label")!;
        var list = Holder(label);
        long count = step.Args.TryGetValue("count", out var c) && c.ValueKind == JsonValueKind.String ? list.Count : StepArgs.Long(step, "count", list.Count);
        string which = StepArgs.Str(step, "which") ?? "newest";
        var stats = Stats(label);
        for (long i = 0; i < count && list.Count > 0; i++)
        {
            int at = which switch { "oldest" => 0, "random" => Random.Next(list.Count), _ => list.Count - 1 };
            var h = list[at];
            h.Free(Machine);           // a refused free leaves the allocation held and tracked
            list.RemoveAt(at);
            stats.Freed++;
        }
    }

    /// <summary>
    /// Frees everything still held, then releases each step set's objects. A release that throws does not stop the
    /// others: each failure is logged and the first is raised once everything else has been given back.
    /// </summary>
    public void ReleaseAll()
    {
        ExceptionDispatchInfo? first = null;
        void Try(Action release, string what)
        {
            try { release(); }
            catch (Exception e)
            {
                Machine.Log.Err($"workload: releasing {what} failed: {e.GetType().Name}: {e.Message}");
                first ??= ExceptionDispatchInfo.Capture(e);
            }
        }
        foreach (var (label, list) in _held)
        {
            foreach (var h in list) Try(() => h.Free(Machine), $"an allocation of '{label}'");
            list.Clear();
        }
        foreach (var state in _states.Values) Try(state.Release, state.What);
        first?.Throw();
    }
}
