// Runs a workload on a machine: keeps the allocations of each label, performs each step through
// the public API (so the kernel's checks and reports apply), and collects a summary. A step that throws
// is reported naming the step; what the runner holds stays tracked, so ReleaseAll frees it.
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Text.Json;

namespace Kmem;

/// <summary>What one label holds and did during a run.</summary>
public sealed class LabelStats
{
    /// <summary>Successful allocations.</summary>
    public long Allocated { get; internal set; }
    /// <summary>Failed allocations.</summary>
    public long Failed { get; internal set; }
    /// <summary>Frees.</summary>
    public long Freed { get; internal set; }
    /// <summary>Pages held now (page allocations).</summary>
    public long PagesHeld { get; internal set; }
    /// <summary>Bytes held now in kmalloc buffers and slab objects (their ksize / object size).</summary>
    public long BytesHeld { get; internal set; }
}

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

/// <summary>Executes workloads (see docs/workloads.md for the format).</summary>
public sealed partial class WorkloadRunner
{
    /// <summary>One allocation a label holds: pages (Page, Order), an exact allocation or a vmalloc area (Address,
    /// ExactSize), a kmalloc buffer (Address, ObjectSize) or a slab object (Address, ObjectSize, Cache).</summary>
    private sealed record Held(Page Page, int Order, nint Address, nuint ExactSize, nuint ObjectSize = 0, SlabCache? Cache = null, bool Kmalloc = false, bool Vmalloc = false)
    {
        /// <summary>A CMA run (Page, Address, ExactSize = its bytes) from this area.</summary>
        public CmaArea? Cma { get; init; }
        /// <summary>A coherent DMA buffer (Address = CPU address, ExactSize) of this device, with its handle.</summary>
        public Device? Device { get; init; }
        public ulong Handle { get; init; }
        /// <summary>A movable block (its pages move; reached through the handle).</summary>
        public MovablePage? Movable { get; init; }
        /// <summary>A dma-buf reference (Address = its CPU view, ExactSize = its size).</summary>
        public DmaBuf? Buf { get; init; }
        /// <summary>An RK-DMA-HEAP page run of this heap (Page, Address, ExactSize), with the name it was given.</summary>
        public RkDmaHeap? Rk { get; init; }

        public long Pages => Kmalloc || Cache is not null ? 0 : ExactSize > 0 ? (long)((ExactSize + 4095) / 4096) : 1L << Order;
        public long Bytes => Kmalloc || Cache is not null ? (long)ObjectSize : 0;
    }

    private readonly Machine _m;
    private readonly Dictionary<string, List<Held>> _held = new(StringComparer.Ordinal);
    private Random _random = new(1);
    private WorkloadResult _result = new();

    /// <summary>Creates a runner for a machine; allocations stay held between runs until freed.</summary>
    public WorkloadRunner(Machine machine) => _m = machine ?? throw new ArgumentNullException(nameof(machine));

    /// <summary>
    /// Reports progress as (steps run so far, top-level step index, top-level step count). An exception it throws
    /// ends the run and reaches the caller of <see cref="Run"/> as it is; what the runner holds stays tracked.
    /// </summary>
    public Action<long, int, int>? Progress { get; set; }

    /// <summary>Pages currently held by each label.</summary>
    public IReadOnlyDictionary<string, long> PagesHeld =>
        _held.ToDictionary(kv => kv.Key, kv => kv.Value.Sum(h => h.Pages));

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
        _random = new Random(workload.Seed);
        _result = new WorkloadResult();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < workload.Steps.Count; i++)
        {
            Execute(workload.Steps[i]);
            Progress?.Invoke(_result.StepsRun, i + 1, workload.Steps.Count);
        }
        sw.Stop();
        _result.Elapsed = sw.Elapsed;
        foreach (var (label, list) in _held)
        {
            Stats(label).PagesHeld = list.Sum(h => h.Pages);
            Stats(label).BytesHeld = list.Sum(h => h.Bytes);
        }
        return _result;
    }

    /// <summary>
    /// Frees everything still held. A free that throws does not stop the others: each failure is logged and the
    /// first is raised once everything else has been given back (the runner forgets what it could not free).
    /// </summary>
    public void ReleaseAll()
    {
        ExceptionDispatchInfo? first = null;
        void Try(Action release, string what)
        {
            try { release(); }
            catch (Exception e)
            {
                _m.Log.Err($"workload: releasing {what} failed: {e.GetType().Name}: {e.Message}");
                first ??= ExceptionDispatchInfo.Capture(e);
            }
        }
        foreach (var (label, list) in _held)
        {
            foreach (var h in list) Try(() => FreeOne(h), $"an allocation of '{label}'");
            list.Clear();
        }
        Try(ReleaseMedia, "the media objects");
        first?.Throw();
    }

    private LabelStats Stats(string label)
    {
        if (!_result.Labels.TryGetValue(label, out var s)) _result.Labels[label] = s = new LabelStats();
        return s;
    }

    private List<Held> Holder(string label)
    {
        if (!_held.TryGetValue(label, out var l)) _held[label] = l = [];
        return l;
    }

    /// <summary>Runs one step; an exception it raises is logged and raised again naming the innermost step that failed.</summary>
    private void Execute(WorkloadStep step)
    {
        try
        {
            ExecuteStep(step);
        }
        catch (Exception e) when (e is not (WorkloadException or WorkloadStepException))
        {
            _m.Log.Err($"workload: {step.Location} ({step.Op}) failed: {e.GetType().Name}: {e.Message}");
            // An argument the library refused is the workload's bad input (as at validation); anything else failed at run time.
            if (e is ArgumentException) throw new WorkloadException(step.Location, $"{step.Op}: {e.Message}", e);
            throw new WorkloadStepException(step.Location, step.Op, e);
        }
    }

    private void ExecuteStep(WorkloadStep step)
    {
        _result.StepsRun++;
        switch (step.Op)
        {
            case "alloc_pages":
            {
                int order = Int(step, "order", 0);
                var gfp = GfpArg(step);
                AllocSteps(step, $"allocation of order {order}", () => _m.AllocPages(gfp, order) is { IsNull: false } p ? new Held(p, order, 0, 0) : null);
                break;
            }
            case "alloc_pages_exact":
            {
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                AllocSteps(step, $"exact allocation of {size} bytes", () => _m.AllocPagesExact((nuint)size, gfp) is var a && a != 0 ? new Held(default, 0, a, (nuint)size) : null);
                break;
            }
            case "kmalloc":
            {
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                AllocSteps(step, $"kmalloc({size})", () => _m.Kmalloc((nuint)size, gfp, "workload") is var a && a != 0
                    ? new Held(default, 0, a, 0, size == 0 ? 0 : _m.Ksize(a, "workload"), null, Kmalloc: true) : null);
                break;
            }
            case "vmalloc":
            {
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                bool user = Bool(step, "user");
                string label = Str(step, "label")!;   // /proc/vmallocinfo names the label as the caller
                AllocSteps(step, $"vmalloc({size})", () =>
                    (user ? _m.VmallocUser((nuint)size, label, "", 0) : _m.Vmalloc((nuint)size, gfp, label, "", 0)) is var a && a != 0
                        ? new Held(default, 0, a, (nuint)size, Vmalloc: true) : null);
                break;
            }
            case "vm_unmap_aliases":
                _m.VmUnmapAliases();
                break;
            case "cma_alloc":
            {
                var cma = _m.Cma.GetValueOrDefault(Str(step, "cma")!) ?? throw new WorkloadException($"{step.Location}.cma", $"no CMA area '{Str(step, "cma")}' on {_m.Profile.Name} (areas: {string.Join(", ", _m.Cma.Keys)})");
                int count = Int(step, "count", 1), align = Int(step, "align", 0);
                var gfp = GfpArg(step);
                AllocSteps(step, $"cma_alloc({cma.Name}, {count})", () => _m.CmaAlloc(cma, count, align, gfp) is { IsNull: false } p
                    ? new Held(p, 0, _m.PageAddress(p), (nuint)count * 4096) { Cma = cma } : null, "times");
                break;
            }
            case "dma_alloc_coherent":
            {
                var dev = _m.Devices.GetValueOrDefault(Str(step, "device")!) ?? throw new WorkloadException($"{step.Location}.device", $"no device '{Str(step, "device")}' on {_m.Profile.Name} (devices: {string.Join(", ", _m.Devices.Keys)})");
                ulong size = Size(step, "size");
                var gfp = GfpArg(step);
                AllocSteps(step, $"dma_alloc_coherent({dev.Name}, {size})", () => _m.DmaAllocCoherent(dev, (nuint)size, gfp, out ulong h, "workload") is var a && a != 0
                    ? new Held(default, 0, a, (nuint)size) { Device = dev, Handle = h } : null);
                break;
            }
            case "alloc_movable":
            {
                int order = Int(step, "order", 0);
                var gfp = step.Args.ContainsKey("gfp") ? GfpArg(step) : Gfp.HighUserMovable;
                AllocSteps(step, $"movable allocation of order {order}", () => _m.AllocMovable(gfp, order) is { } mv ? new Held(default, order, 0, 0) { Movable = mv } : null);
                break;
            }
            case "kmem_cache_create":
            {
                string name = Str(step, "name")!;
                int align = Int(step, "align", 0);
                _m.KmemCacheCreate(name, (int)Size(step, "size"), align, SlabFlagsArg(step), sheafCapacity: Int(step, "sheaf_capacity", 0));
                break;
            }
            case "kmem_cache_alloc":
            {
                var cache = CacheArg(step);
                var gfp = GfpArg(step);
                AllocSteps(step, $"kmem_cache_alloc({cache.Name})", () => cache.Alloc(gfp, "workload") is var a && a != 0
                    ? new Held(default, 0, a, 0, (nuint)cache.ObjectSize, cache) : null);
                break;
            }
            case "kmem_cache_shrink":
                CacheArg(step).Shrink();
                break;
            case "kmem_cache_destroy":
                CacheArg(step).Destroy();
                break;
            case "free_pages" or "kfree" or "kmem_cache_free" or "vfree" or "cma_release" or "dma_free_coherent" or "free_movable"
                or "dma_heap_free" or "rk_dma_heap_free" or "rk_dma_heap_free_contig":
            {
                string label = Str(step, "label")!;
                var list = Holder(label);
                long count = step.Args.TryGetValue("count", out var c) && c.ValueKind == JsonValueKind.String ? list.Count : Long(step, "count", list.Count);
                string which = Str(step, "which") ?? "newest";
                var stats = Stats(label);
                for (long i = 0; i < count && list.Count > 0; i++)
                {
                    int at = which switch { "oldest" => 0, "random" => _random.Next(list.Count), _ => list.Count - 1 };
                    var h = list[at];
                    FreeOne(h);                // a refused free leaves the allocation held and tracked
                    list.RemoveAt(at);
                    stats.Freed++;
                }
                break;
            }
            case "get_page":
                foreach (var h in Holder(Str(step, "label")!)) if (!h.Page.IsNull) _m.GetPage(h.Page);
                break;
            case "put_page":
                foreach (var h in Holder(Str(step, "label")!)) if (!h.Page.IsNull) _m.PutPage(h.Page);
                break;
            case "write":
            {
                byte b = (byte)Pattern(step, "pattern");
                foreach (var h in Holder(Str(step, "label")!)) Fill(h, b);
                break;
            }
            case "verify":
            {
                byte b = (byte)Pattern(step, "pattern");
                string label = Str(step, "label")!;
                foreach (var h in Holder(label))
                {
                    int bad = FirstOther(h, b);
                    if (bad >= 0) { _result.Problems.Add($"{step.Location}: '{label}' byte {bad} of {h.Page} is not 0x{b:x2}"); break; }
                }
                break;
            }
            case "drain":
                _m.DrainAllPages();
                break;
            case "reclaim":
                _m.Reclaim();
                break;
            case "min_free_kbytes":
                _m.MinFreeKbytes = Long(step, "value", 0);
                break;
            case "log":
                _m.Log.Info(Str(step, "message") ?? "");
                break;
            case "check":
                foreach (var e in _m.VerifyIntegrity()) _result.Problems.Add($"{step.Location}: {e}");
                break;
            case "repeat":
            {
                long times = Long(step, "times", 1);
                for (long t = 0; t < times; t++)
                    foreach (var child in step.Children) Execute(child);
                break;
            }
            default:
                if (!ExecuteDmaBuf(step) && !ExecuteRtnet(step) && !ExecuteMedia(step)) throw new WorkloadException(step.Location, $"operation '{step.Op}' is not supported");
                break;
        }
    }

    private unsafe Span<byte> Span(Held h) =>
        h.Buf is not null ? h.Buf.Span
        : h.Kmalloc || h.Cache is not null ? new Span<byte>((void*)h.Address, (int)h.ObjectSize)
        : h.ExactSize > 0 ? new Span<byte>((void*)h.Address, (int)h.ExactSize)
        : _m.PageSpan(h.Page, h.Order);

    /// <summary>Fills an allocation (a movable block under a pin, so that it cannot move meanwhile).</summary>
    private void Fill(Held h, byte b)
    {
        if (h.Movable is { } mv)
        {
            using var pin = mv.Pin();
            pin.Span.Fill(b);
        }
        else Span(h).Fill(b);
    }

    /// <summary>The first byte of an allocation that is not <paramref name="b"/>, or -1.</summary>
    private int FirstOther(Held h, byte b)
    {
        if (h.Movable is { } mv)
        {
            using var pin = mv.Pin();
            return pin.Span.IndexOfAnyExcept(b);
        }
        return Span(h).IndexOfAnyExcept(b);
    }

    private void FreeOne(Held h)
    {
        if (h.Kmalloc) _m.Kfree(h.Address, "workload");
        else if (h.Vmalloc) _m.Vfree(h.Address, "workload");
        else if (h.Cma is not null) _m.CmaRelease(h.Cma, h.Page, (int)(h.ExactSize / 4096));
        else if (h.Device is not null) _m.DmaFreeCoherent(h.Device, h.ExactSize, h.Address, h.Handle, "workload");
        else if (h.Movable is not null) h.Movable.Dispose();
        else if (h.Buf is not null) h.Buf.Put();
        else if (h.Rk is not null) h.Rk.FreeContigPages(h.Page, (long)h.ExactSize);
        else if (h.Cache is not null) h.Cache.Free(h.Address, "workload");
        else if (h.ExactSize > 0) _m.FreePagesExact(h.Address, h.ExactSize);
        else _m.FreePages(h.Page, h.Order);
    }

    /// <summary>
    /// An allocation step: <c>count</c> calls of <paramref name="alloc"/> (null: failed), each checked against
    /// <c>expect</c>, filled with <c>fill</c> when given, and held by the step's label.
    /// </summary>
    private void AllocSteps(WorkloadStep step, string what, Func<Held?> alloc, string countKey = "count")
    {
        string label = Str(step, "label")!;
        long count = Long(step, countKey, 1);
        string expect = Str(step, "expect") ?? "any";
        int? fill = step.Args.ContainsKey("fill") ? Pattern(step, "fill") : null;
        var list = Holder(label);
        var stats = Stats(label);
        for (long i = 0; i < count; i++)
        {
            var h = alloc();
            if (!Outcome(step, h is not null, expect, $"{what} for '{label}'", stats)) continue;
            list.Add(h!);              // held before anything else can throw
            if (fill is { } f) Fill(h!, (byte)f);
        }
    }

    /// <summary>Counts an allocation's outcome against the step's expectation; true when it succeeded.</summary>
    private bool Outcome(WorkloadStep step, bool ok, string expect, string what, LabelStats stats)
    {
        if (!ok)
        {
            stats.Failed++;
            if (expect == "success") _result.Problems.Add($"{step.Location}: {what} failed");
            return false;
        }
        if (expect == "failure") _result.Problems.Add($"{step.Location}: {what} succeeded but was expected to fail");
        stats.Allocated++;
        return true;
    }

    private SlabCache CacheArg(WorkloadStep step)
    {
        string name = Str(step, "cache")!;
        return _m.FindSlabCache(name) ?? throw new WorkloadException($"{step.Location}.cache", $"no slab cache named '{name}'");
    }

    private static readonly Dictionary<string, SlabFlags> s_slabFlagNames = new(StringComparer.Ordinal)
    {
        ["SLAB_CONSISTENCY_CHECKS"] = SlabFlags.ConsistencyChecks, ["SLAB_RED_ZONE"] = SlabFlags.RedZone, ["SLAB_POISON"] = SlabFlags.Poison,
        ["SLAB_HWCACHE_ALIGN"] = SlabFlags.HwcacheAlign, ["SLAB_CACHE_DMA"] = SlabFlags.CacheDma, ["SLAB_CACHE_DMA32"] = SlabFlags.CacheDma32,
        ["SLAB_STORE_USER"] = SlabFlags.StoreUser, ["SLAB_PANIC"] = SlabFlags.Panic, ["SLAB_TYPESAFE_BY_RCU"] = SlabFlags.TypesafeByRcu,
        ["SLAB_TRACE"] = SlabFlags.Trace, ["SLAB_NOLEAKTRACE"] = SlabFlags.NoLeakTrace, ["SLAB_NO_MERGE"] = SlabFlags.NoMerge,
        ["SLAB_RECLAIM_ACCOUNT"] = SlabFlags.ReclaimAccount, ["SLAB_ACCOUNT"] = SlabFlags.Account,
    };

    private static SlabFlags SlabFlagsArg(WorkloadStep step)
    {
        string text = Str(step, "flags") ?? "0";
        SlabFlags flags = 0;
        foreach (string part in text.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "0") continue;
            if (!s_slabFlagNames.TryGetValue(part, out var f))
                throw new WorkloadException($"{step.Location}.flags", $"'{part}' is not a SLAB_ flag ({string.Join(", ", s_slabFlagNames.Keys)})");
            flags |= f;
        }
        return flags;
    }

    // ------------------------------------------------------------------ argument checking

    /// <summary>Checks a step's arguments before anything runs.</summary>
    internal static void Validate(WorkloadStep step)
    {
        string[] needsLabel = ["alloc_pages", "free_pages", "alloc_pages_exact", "get_page", "put_page", "write", "verify",
            "kmalloc", "kfree", "kmem_cache_alloc", "kmem_cache_free", "vmalloc", "vfree", "cma_alloc", "cma_release",
            "dma_alloc_coherent", "dma_free_coherent", "alloc_movable", "free_movable", .. DmaBufLabelOps];
        if (needsLabel.Contains(step.Op))
        {
            string? label = Str(step, "label");
            if (string.IsNullOrWhiteSpace(label)) throw new WorkloadException($"{step.Location}.label", "is required (a name for the allocations)");
        }
        switch (step.Op)
        {
            case "alloc_pages":
                Int(step, "order", 0, 0, 63);
                GfpArg(step);
                AllocArgs(step);
                break;
            case "alloc_pages_exact":
                if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
                ulong size = Size(step, "size");
                if (size == 0 || size > 1UL << 32) throw new WorkloadException($"{step.Location}.size", "must be 1 byte .. 4 GiB");
                GfpArg(step);
                Long(step, "count", 1, 1, 10_000_000);
                Expect(step);
                break;
            case "kmalloc":
                if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
                if (Size(step, "size") > 1UL << 31) throw new WorkloadException($"{step.Location}.size", "must be at most 2 GiB");
                GfpArg(step);
                AllocArgs(step);
                break;
            case "vmalloc":
                if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
                if (Size(step, "size") > int.MaxValue) throw new WorkloadException($"{step.Location}.size", "must be below 2 GiB");
                GfpArg(step);
                Bool(step, "user");
                AllocArgs(step);
                break;
            case "cma_alloc":
                if (string.IsNullOrWhiteSpace(Str(step, "cma"))) throw new WorkloadException($"{step.Location}.cma", "is required (the area's name)");
                Int(step, "count", 1, 1, 1 << 24);
                Int(step, "align", 0, 0, 30);
                GfpArg(step);
                AllocArgs(step, "times");
                break;
            case "dma_alloc_coherent":
                if (string.IsNullOrWhiteSpace(Str(step, "device"))) throw new WorkloadException($"{step.Location}.device", "is required (the device's name)");
                if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
                if (Size(step, "size") is 0 or > int.MaxValue) throw new WorkloadException($"{step.Location}.size", "must be 1 byte .. 2 GiB");
                GfpArg(step);
                AllocArgs(step);
                break;
            case "alloc_movable":
                Int(step, "order", 0, 0, 10);
                if (step.Args.ContainsKey("gfp") && (GfpArg(step) & Gfp.Movable) == 0) throw new WorkloadException($"{step.Location}.gfp", "a movable allocation needs __GFP_MOVABLE");
                AllocArgs(step);
                break;
            case "kmem_cache_create":
                ValidateCacheCreate(step);
                break;
            case "kmem_cache_alloc" or "kmem_cache_shrink" or "kmem_cache_destroy":
                if (string.IsNullOrWhiteSpace(Str(step, "cache"))) throw new WorkloadException($"{step.Location}.cache", "is required");
                if (step.Op == "kmem_cache_alloc")
                {
                    GfpArg(step);
                    AllocArgs(step);
                }
                break;
            case "free_pages" or "kfree" or "kmem_cache_free" or "vfree" or "cma_release" or "dma_free_coherent" or "free_movable"
                or "dma_heap_free" or "rk_dma_heap_free" or "rk_dma_heap_free_contig":
                if (step.Args.TryGetValue("count", out var c) && !(c.ValueKind == JsonValueKind.String && c.GetString() == "all"))
                    Long(step, "count", 1, 0, long.MaxValue);
                if (Str(step, "which") is { } w && w is not ("newest" or "oldest" or "random"))
                    throw new WorkloadException($"{step.Location}.which", $"'{w}' is not newest, oldest or random");
                break;
            case "write" or "verify":
                Pattern(step, "pattern");
                break;
            case "min_free_kbytes":
                if (!step.Args.ContainsKey("value")) throw new WorkloadException($"{step.Location}.value", "is required");
                Long(step, "value", 0, 0, MaxMinFreeKbytes);
                break;
            case var op when DmaBufOps.Contains(op):
                ValidateDmaBuf(step);
                break;
            case var op when op.StartsWith("rtnet_", StringComparison.Ordinal):
                ValidateRtnet(step);
                break;
            case var op when op.StartsWith("drm_", StringComparison.Ordinal) || op.StartsWith("vb2_", StringComparison.Ordinal):
                ValidateMedia(step);
                break;
            case "repeat":
                if (!step.Args.ContainsKey("times")) throw new WorkloadException($"{step.Location}.times", "is required");
                Long(step, "times", 1, 0, 100_000_000);
                if (step.Children.Count == 0) throw new WorkloadException($"{step.Location}.steps", "needs at least one step");
                break;
        }
    }

    /// <summary>The arguments every allocation step shares: how many (<paramref name="countKey"/>), <c>expect</c> and <c>fill</c>.</summary>
    private static void AllocArgs(WorkloadStep step, string countKey = "count")
    {
        Long(step, countKey, 1, 1, 10_000_000);
        Expect(step);
        if (step.Args.ContainsKey("fill")) Pattern(step, "fill");
    }

    private static void Expect(WorkloadStep step)
    {
        if (Str(step, "expect") is { } e && e is not ("success" or "failure" or "any"))
            throw new WorkloadException($"{step.Location}.expect", $"'{e}' is not success, failure or any");
    }

    private static string? Str(WorkloadStep step, string key)
    {
        if (!step.Args.TryGetValue(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.String) throw new WorkloadException($"{step.Location}.{key}", "must be a string");
        return v.GetString();
    }

    private static bool Bool(WorkloadStep step, string key)
    {
        if (!step.Args.TryGetValue(key, out var v)) return false;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new WorkloadException($"{step.Location}.{key}", "must be true or false"),
        };
    }

    private static int Int(WorkloadStep step, string key, int dflt, int min = int.MinValue, int max = int.MaxValue) =>
        (int)Long(step, key, dflt, min, max);

    private static long Long(WorkloadStep step, string key, long dflt, long min = long.MinValue, long max = long.MaxValue)
    {
        if (!step.Args.TryGetValue(key, out var v)) return dflt;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n)) throw new WorkloadException($"{step.Location}.{key}", "must be a whole number");
        if (n < min || n > max) throw new WorkloadException($"{step.Location}.{key}", $"{n} is outside {min}..{max}");
        return n;
    }

    private static ulong Size(WorkloadStep step, string key)
    {
        var v = step.Args[key];
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong n)) return n;
        if (v.ValueKind == JsonValueKind.String && MachineProfile.TryParseSize(v.GetString()!, out ulong s)) return s;
        throw new WorkloadException($"{step.Location}.{key}", "is not a size (bytes, 0x hex, or a number with K, M or G)");
    }

    private static Gfp GfpArg(WorkloadStep step)
    {
        string text = Str(step, "gfp") ?? "GFP_KERNEL";
        if (!GfpFlags.TryParse(text, out var gfp)) throw new WorkloadException($"{step.Location}.gfp", $"'{text}' is not a GFP mask (e.g. GFP_KERNEL|__GFP_ZERO or 0xcc0)");
        return gfp;
    }

    private static int Pattern(WorkloadStep step, string key)
    {
        if (!step.Args.TryGetValue(key, out var v)) throw new WorkloadException($"{step.Location}.{key}", "is required");
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n is >= 0 and <= 255) return n;
        if (v.ValueKind == JsonValueKind.String && MachineProfile.TryParseSize(v.GetString()!, out ulong s) && s <= 255) return (int)s;
        throw new WorkloadException($"{step.Location}.{key}", "must be a byte value 0..255 (or 0x00..0xff)");
    }
}
