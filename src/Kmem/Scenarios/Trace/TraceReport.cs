// What a trace replay found: lines and events read, replayed and skipped with their reasons, the fidelity of
// Kmem's sizes against the recorded ones (bytes_alloc per bytes_req for kmalloc and caches, page orders),
// peak memory per kind, failures, and the fragmentation left (free blocks per order and the kernel's unusable
// free index), with the final views. Renders as text or JSON.
using System.Text.Json.Serialization;
using System.Text.Json;
using System.Text;
using Kmem.Scenarios.Trace;

namespace Kmem;

/// <summary>The outcome of <see cref="TraceReplayer.Replay"/>.</summary>
public sealed class TraceReport
{
    internal const string KindKmalloc = "kmalloc", KindSlab = "kmem_cache", KindPages = "pages";

    private readonly Dictionary<(long Req, long Rec), (long? Kmem, long Count)> _kmalloc = [], _cache = [];
    private readonly SortedDictionary<int, (long Rec, long Ok, long Failed)> _orders = [];
    private readonly Dictionary<string, long> _current = new(StringComparer.Ordinal);

    /// <summary>The profile the trace was replayed on.</summary>
    public string Profile { get; internal set; } = "";
    /// <summary>Lines read.</summary>
    public long Lines { get; internal set; }
    /// <summary>Lines that are no event (comments, headers, report lines).</summary>
    public long NotEvents { get; internal set; }
    /// <summary>kmem events read (replayable or not).</summary>
    public long Events { get; internal set; }
    /// <summary>Events replayed.</summary>
    public long Replayed { get; internal set; }
    /// <summary>Events whose timestamp is earlier than an event before them (CPUs interleaved out of order).</summary>
    public long OutOfOrder { get; internal set; }
    /// <summary>Events not replayed, by reason.</summary>
    public SortedDictionary<string, long> Skipped { get; } = new(StringComparer.Ordinal);
    /// <summary>Events replayed with a remark (an allocation whose free was not recorded, a page fallback …), by remark.</summary>
    public SortedDictionary<string, long> Notes { get; } = new(StringComparer.Ordinal);
    /// <summary>What was inferred of the recording machine and why, one line each (empty when a profile was given).</summary>
    public List<string> Inference { get; } = [];
    /// <summary>The recording kernel's slab allocator when it was inferred (<c>SLUB</c> or <c>SLAB</c>), else null.</summary>
    public string? RecordedSlabAllocator { get; private set; }
    /// <summary>kmem events by name.</summary>
    public SortedDictionary<string, long> EventsByName { get; } = new(StringComparer.Ordinal);
    /// <summary>kmem events by recorded CPU.</summary>
    public SortedDictionary<string, long> EventsByCpu { get; } = new(StringComparer.Ordinal);
    /// <summary>Other events seen, by name.</summary>
    public SortedDictionary<string, long> OtherEvents { get; } = new(StringComparer.Ordinal);
    /// <summary>Allocations that failed in Kmem, by kind.</summary>
    public SortedDictionary<string, long> FailuresByKind { get; } = new(StringComparer.Ordinal);
    /// <summary>The first failures in words (at most 20 kept).</summary>
    public List<string> Failures { get; } = [];
    /// <summary>Peak bytes per kind (kmalloc, kmem_cache, pages).</summary>
    public SortedDictionary<string, long> PeakBytes { get; } = new(StringComparer.Ordinal);
    /// <summary>Bytes per kind still allocated at the end.</summary>
    public SortedDictionary<string, long> EndBytes { get; } = new(StringComparer.Ordinal);
    /// <summary>Objects and pages still live at the end.</summary>
    public long LiveObjects { get; private set; }
    /// <summary>Page blocks still live at the end.</summary>
    public long LivePageBlocks { get; private set; }
    /// <summary>kmalloc: recorded bytes_alloc against Kmem's, per bytes_req.</summary>
    public List<TraceFidelityRow> Kmalloc { get; private set; } = [];
    /// <summary>kmem_cache_alloc: recorded bytes_alloc against the size of Kmem's cache, per bytes_req.</summary>
    public List<TraceFidelityRow> Caches { get; private set; } = [];
    /// <summary>Page allocations per order.</summary>
    public List<TracePageOrderRow> PageOrders { get; private set; } = [];
    /// <summary>/proc/buddyinfo at the end.</summary>
    public string BuddyInfo { get; private set; } = "";
    /// <summary>/sys/kernel/debug/extfrag/unusable_index at the end.</summary>
    public string UnusableIndex { get; private set; } = "";
    /// <summary>Wall time of the replay.</summary>
    [JsonIgnore] public TimeSpan Elapsed { get; internal set; }
    /// <summary>Wall time in milliseconds.</summary>
    public double ElapsedMs => Elapsed.TotalMilliseconds;

    internal Dictionary<(long, long), (long?, long)> KmallocRows => _kmalloc;
    internal Dictionary<(long, long), string> CacheFlags { get; } = [];
    internal Dictionary<(long, long), (long?, long)> CacheRows => _cache;

    internal void Count(IDictionary<string, long> d, string key) => d[key] = d.TryGetValue(key, out long n) ? n + 1 : 1;
    internal void Skip(string reason) => Count(Skipped, reason);
    internal void Note(string remark) => Count(Notes, remark);

    /// <summary>The machine the trace was recorded on, when the replay was told.</summary>
    internal TraceMachine? RecordedOn
    {
        get => _recordedOn;
        init
        {
            _recordedOn = value;
            if (value is null) return;
            Inference.AddRange(value.Reasons);
            RecordedSlabAllocator = value.SlabAllocator;
        }
    }
    private readonly TraceMachine? _recordedOn;

    /// <summary>Why a row that differs does, when SLAB explains it: SLAB's kmalloc classes, or its cache layout (no free
    /// pointer after the object, the word or cache-line alignment).</summary>
    private string? CauseOf(long req, long recorded, long? kmem, bool cache)
    {
        if (kmem == recorded || _recordedOn is not { IsSlab: true } on) return null;
        int ptr = on.PointerBits / 8;
        bool slab = cache
            ? recorded == (req + ptr - 1) / ptr * ptr || recorded == TraceMachineInference.HwAligned(req, on.CacheLineSize, ptr)
            : recorded == TraceMachineInference.SlabKmalloc(req, on.SlabL1CacheBytes);
        return slab ? "SLAB" : null;
    }

    internal void Fail(string kind, string what)
    {
        Count(FailuresByKind, kind);
        if (Failures.Count < 20) Failures.Add($"line {Lines}: {what}");
    }

    internal void Fidelity(Dictionary<(long, long), (long?, long)> rows, long req, long recorded, long? kmem)
    {
        var key = (req, recorded);
        rows[key] = rows.TryGetValue(key, out var v) ? (v.Item1 ?? kmem, v.Item2 + 1) : (kmem, 1);
    }

    internal void PageOrder(int order, bool ok)
    {
        var v = _orders.GetValueOrDefault(order);
        _orders[order] = (v.Rec + 1, v.Ok + (ok ? 1 : 0), v.Failed + (ok ? 0 : 1));
    }

    internal void Add(string kind, long bytes)
    {
        long now = _current.GetValueOrDefault(kind) + bytes;
        _current[kind] = now;
        if (now > PeakBytes.GetValueOrDefault(kind)) PeakBytes[kind] = now;
    }

    internal void Finish(Machine m, int liveObjects, int livePages)
    {
        List<TraceFidelityRow> Rows(Dictionary<(long, long), (long?, long)> d, bool caches) =>
            d.OrderBy(kv => kv.Key.Item1).ThenBy(kv => kv.Key.Item2)
             .Select(kv => new TraceFidelityRow(kv.Key.Item1, kv.Key.Item2, kv.Value.Item1, kv.Value.Item2, caches ? CacheFlags.GetValueOrDefault(kv.Key) : null,
                 CauseOf(kv.Key.Item1, kv.Key.Item2, kv.Value.Item1, caches))).ToList();
        Kmalloc = Rows(_kmalloc, false);
        Caches = Rows(_cache, true);
        PageOrders = _orders.Select(kv => new TracePageOrderRow(kv.Key, kv.Value.Rec, kv.Value.Ok, kv.Value.Failed)).ToList();
        foreach (var (k, v) in _current) EndBytes[k] = v;
        LiveObjects = liveObjects;
        LivePageBlocks = livePages;
        BuddyInfo = m.ProcFs.Read("/proc/buddyinfo");
        UnusableIndex = m.ProcFs.Read("/sys/kernel/debug/extfrag/unusable_index");
    }

    /// <summary>The report as JSON (camelCase, indented).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, TraceReportJson.Default.TraceReport);

    /// <summary>The report as text.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var line in Inference) sb.Append("inferred ").Append(line).Append('\n');
        sb.Append($"replay on {Profile}: {Lines} lines, {Events} kmem events, {Replayed} replayed, {Events - Replayed} not ({ElapsedMs:F0} ms)\n");
        if (OutOfOrder > 0) sb.Append($"{OutOfOrder} events earlier than one before them (CPUs interleaved); replayed in file order\n");
        void Section(string title, IEnumerable<KeyValuePair<string, long>> items)
        {
            var list = items.ToList();
            if (list.Count == 0) return;
            sb.Append('\n').Append(title).Append('\n');
            foreach (var (k, v) in list) sb.Append($"  {v,10}  {k}\n");
        }
        Section("events:", EventsByName);
        Section("not replayed:", Skipped);
        Section("replayed, with a remark:", Notes);
        Section("other events (ignored):", OtherEvents);
        Section("failed in Kmem:", FailuresByKind);
        foreach (var f in Failures) sb.Append("  ").Append(f).Append('\n');
        void Table(string title, List<TraceFidelityRow> rows)
        {
            if (rows.Count == 0) return;
            sb.Append('\n').Append(title).Append("\n  bytes_req  recorded bytes_alloc  Kmem bytes_alloc      count\n");
            foreach (var r in rows)
                sb.Append($"  {r.BytesReq,9}  {r.RecordedBytesAlloc,20}  {(r.KmemBytesAlloc is { } k ? k.ToString() : "failed"),16}  {r.Count,9}{(r.Match ? "" : r.Cause is { } c ? "  differs (" + c + ")" : "  differs")}{(r.CacheFlags is { } f ? "  (cache flags: " + f + ")" : "")}\n");
            int same = rows.Count(r => r.Match), bySlab = rows.Count(r => r.Cause == "SLAB");
            sb.Append($"  {same} of {rows.Count} sizes as recorded\n");
            if (RecordedSlabAllocator == "SLAB" && same < rows.Count)
                sb.Append($"  the trace was recorded on SLAB, which Kmem does not model (it models SLUB): {bySlab} of the {rows.Count - same} differing sizes are SLAB's (marked), {rows.Count - same - bySlab} differ for another reason\n");
        }
        Table("kmalloc fidelity:", Kmalloc);
        Table("kmem_cache fidelity:", Caches);
        if (PageOrders.Count > 0)
        {
            sb.Append("\npage allocations:\n  order   recorded   replayed     failed\n");
            foreach (var p in PageOrders) sb.Append($"  {p.Order,5}  {p.Recorded,9}  {p.Replayed,9}  {p.Failed,9}\n");
        }
        sb.Append("\npeak bytes:\n");
        foreach (var (k, v) in PeakBytes) sb.Append($"  {v,12}  {k} (at the end {EndBytes.GetValueOrDefault(k)})\n");
        sb.Append($"\nstill allocated at the end: {LiveObjects} objects, {LivePageBlocks} page blocks\n");
        sb.Append("\n$ cat /proc/buddyinfo\n").Append(BuddyInfo);
        sb.Append("\n$ cat /sys/kernel/debug/extfrag/unusable_index\n").Append(UnusableIndex);
        return sb.ToString();
    }
}
