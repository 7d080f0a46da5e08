// Fault injection as lib/fault-inject.c does it (struct fault_attr, should_fail()): a failure is forced when
// the attribute is armed (probability > 0), times is not used up (-1: no limit), the space budget is spent, the
// call is the interval-th one, and a draw under the probability (percent) succeeds. Each forced failure prints
// "FAULT_INJECTION: forcing a failure." with the attribute (and a stack at verbose 2). fail_page_alloc and
// failslab filter by GFP mask, order and cache before asking.
using System.Text;

namespace Kmem;

/// <summary>
/// One fault-injection attribute (<c>fail_page_alloc</c>, <c>failslab</c>): set its fields at run time, or with the
/// boot parameter <c>name=interval,probability,space,times</c>. Thread safe.
/// </summary>
public sealed class FaultAttr
{
    private readonly KernelLog _log;
    private readonly Lock _lock = new();
    private Random _random = new(0);
    private long _count;
    private int _times = 1, _probability;
    private long _space, _interval = 1;

    internal FaultAttr(string name, KernelLog log, bool ignoreGfpReclaim, int minOrder)
    {
        Name = name;
        _log = log;
        IgnoreGfpReclaim = ignoreGfpReclaim;
        MinOrder = minOrder;
    }

    /// <summary>The attribute's name (its debugfs directory).</summary>
    public string Name { get; }

    /// <summary>True while <see cref="Probability"/> is above 0: the hook then asks <see cref="ShouldFail"/>.</summary>
    public bool Armed => Volatile.Read(ref _probability) > 0;

    /// <summary>probability: percent of the calls that may fail (0 disarms).</summary>
    public int Probability
    {
        get => Volatile.Read(ref _probability);
        set { ArgumentOutOfRangeException.ThrowIfNegative(value); ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 100); Volatile.Write(ref _probability, value); Changed?.Invoke(); }
    }

    /// <summary>interval: only every interval-th call may fail (1: any).</summary>
    public long Interval { get => Interlocked.Read(ref _interval); set { ArgumentOutOfRangeException.ThrowIfLessThan(value, 1); Interlocked.Exchange(ref _interval, value); } }

    /// <summary>times: how many failures may still be forced (-1: no limit).</summary>
    public int Times { get => Volatile.Read(ref _times); set { ArgumentOutOfRangeException.ThrowIfLessThan(value, -1); Volatile.Write(ref _times, value); } }

    /// <summary>space: bytes (pages × 4096, object sizes) to let through before failures start.</summary>
    public long Space { get => Interlocked.Read(ref _space); set { ArgumentOutOfRangeException.ThrowIfNegative(value); Interlocked.Exchange(ref _space, value); } }

    /// <summary>verbose: 0 silent, 1 one line per failure, 2 the line and a stack.</summary>
    public int Verbose { get; set; } = 2;

    /// <summary>ignore-gfp-wait: calls that may reclaim (__GFP_DIRECT_RECLAIM) are not failed (the kernel's default: true).</summary>
    public bool IgnoreGfpReclaim { get; set; }

    /// <summary>ignore-gfp-highmem (fail_page_alloc): __GFP_HIGHMEM calls are not failed.</summary>
    public bool IgnoreGfpHighmem { get; set; }

    /// <summary>min-order (fail_page_alloc): smaller orders are not failed (the kernel's default: 1).</summary>
    public int MinOrder { get; set; }

    /// <summary>cache-filter (failslab): only caches made with <see cref="SlabFlags.FailSlab"/> fail.</summary>
    public bool CacheFilter { get; set; }

    /// <summary>Failures forced so far.</summary>
    public long Injected => Interlocked.Read(ref _injected);
    private long _injected;

    /// <summary>Seeds the draw (tests replay a sequence with the same seed).</summary>
    public void Seed(int seed) { lock (_lock) _random = new Random(seed); }

    internal Action? Changed { get; set; }

    /// <summary>setup_fault_attr(): "interval,probability,space,times" from the boot parameter.</summary>
    internal void Setup(string field, string value)
    {
        var p = value.Split(',');
        if (p.Length != 4 || !long.TryParse(p[0], out long interval) || !int.TryParse(p[1], out int prob) ||
            !long.TryParse(p[2], out long space) || !int.TryParse(p[3], out int times) || interval < 1 || prob is < 0 or > 100 || space < 0 || times < -1)
            throw new ProfileException(field, $"{Name}={value}: expected interval,probability,space,times (interval ≥ 1, probability 0-100, space ≥ 0, times ≥ -1)");
        Interval = interval; Space = space; Times = times; Probability = prob;
    }

    /// <summary>should_fail(): true when this call is to fail; <paramref name="size"/> counts against <see cref="Space"/>.</summary>
    public bool ShouldFail(long size)
    {
        if (Volatile.Read(ref _probability) == 0) return false;
        lock (_lock)
        {
            if (_times == 0) return false;
            if (_space > size) { _space -= size; return false; }
            if (_interval > 1 && ++_count % _interval != 0) return false;
            if (_probability <= _random.Next(100)) return false;
            if (_times != -1) _times--;
        }
        Interlocked.Increment(ref _injected);
        if (Verbose > 0)
        {
            var sb = new StringBuilder("FAULT_INJECTION: forcing a failure.\n");
            sb.Append($"name {Name}, interval {Interval}, probability {Probability}, space {Space}, times {Times}\n");
            if (Verbose > 1) sb.Append("Call Trace:\n").Append(string.Join('\n', Environment.StackTrace.Split('\n').Skip(2).Take(8).Select(l => " " + l.Trim()))).Append('\n');
            _log.Printk(LogLevel.Info, sb.ToString());
        }
        return true;
    }

    /// <summary>The debugfs directory's files: name → value.</summary>
    internal IEnumerable<(string File, Func<string> Read)> Files(bool pages)
    {
        yield return ("probability", () => $"{Probability}\n");
        yield return ("interval", () => $"{Interval}\n");
        yield return ("times", () => $"{Times}\n");
        yield return ("space", () => $"{Space}\n");
        yield return ("verbose", () => $"{Verbose}\n");
        yield return ("ignore-gfp-wait", () => IgnoreGfpReclaim ? "Y\n" : "N\n");
        if (pages)
        {
            yield return ("ignore-gfp-highmem", () => IgnoreGfpHighmem ? "Y\n" : "N\n");
            yield return ("min-order", () => $"{MinOrder}\n");
        }
        else yield return ("cache-filter", () => CacheFilter ? "Y\n" : "N\n");
    }
}
