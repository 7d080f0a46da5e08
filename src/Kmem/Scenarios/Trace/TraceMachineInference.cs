// Infers the machine a kmem trace was recorded on from the trace alone: the pointer width from the printed
// addresses, the CPU count from the header (#P:N) or the CPU column, the cache line and KMALLOC_MIN_SIZE from the
// sizes of kmem_cache_alloc and kmalloc, SLUB or SLAB from the kmalloc classes, the architecture from address
// ranges and call-site symbols, and the kernel version from the event formats. Each fact comes with the reason
// it was chosen; the result carries a profile that boots such a machine. Lines are read one at a time.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Kmem;

/// <summary>Reads trace lines and infers the recording machine (see <see cref="Infer"/>).</summary>
public sealed partial class TraceMachineInference
{
    /// <summary>The most CPUs a profile may have (the profile reader's limit).</summary>
    private const int MaxCpus = 1024;

    private int? _headerCpus;
    private int _maxCpu = -1;
    private int _maxPtrDigits;
    private string? _ptrExample;
    private bool _ptrAbove32;
    private readonly Dictionary<string, int> _archVotes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _archExample = new(StringComparer.Ordinal);
    private readonly HashSet<(long Req, long Alloc)> _kmalloc = [], _caches = [];
    private KernelVersion _lo = KernelVersion.Oldest;
    private KernelVersion? _hiExclusive;
    private string? _loWhy, _hiWhy;
    private int SlabL1 { get; set; } = 64;

    [GeneratedRegex(@"#P:(\d+)")]
    private static partial Regex HeaderCpus();

    /// <summary>Reads a whole trace and infers its machine.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="trace"/> is null.</exception>
    public static TraceMachine Infer(TextReader trace)
    {
        ArgumentNullException.ThrowIfNull(trace);
        var inference = new TraceMachineInference();
        string? line;
        while ((line = trace.ReadLine()) is not null) inference.Add(line);
        return inference.Finish();
    }

    /// <summary>Reads one line of a trace.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="line"/> is null.</exception>
    public void Add(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        if (line.TrimStart().StartsWith('#'))
        {
            var m = HeaderCpus().Match(line);
            if (m.Success && int.TryParse(m.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out int p) && p is > 0 and <= 8192)
                _headerCpus = p;
            return;
        }
        if (KmemTraceParser.Parse(line, out var ev, out _) != KmemTraceLineKind.Event) return;
        if (ev.Cpu is int cpu && cpu < 8192) _maxCpu = Math.Max(_maxCpu, cpu);
        string? ptrText = RawField(line, "ptr=") ?? RawField(line, "page=");
        if (ptrText is not null) Pointer(ptrText);
        bool perf = line.Contains(" kmem:", StringComparison.Ordinal);
        string? site = RawField(line, "call_site=");
        if (site is not null) CallSite(site, perf);
        if (ev.Kind is KmemTraceEventKind.PageFree && ev.EventName == "mm_page_free_direct")
            Before(new KernelVersion(3, 3), "mm_page_free_direct events (renamed mm_page_free in 3.3, \"mm-tracepoint: rename page-free events\")");
        if (ev.Kind is KmemTraceEventKind.Kmalloc or KmemTraceEventKind.CacheAlloc)
        {
            (ev.Kind == KmemTraceEventKind.Kmalloc ? _kmalloc : _caches).Add((ev.BytesReq!.Value, ev.BytesAlloc!.Value));
            Formats(line, ev, perf);
        }
    }

    private static string? RawField(string line, string key)
    {
        int i = line.IndexOf(key, StringComparison.Ordinal);
        if (i < 0 || (i > 0 && line[i - 1] != ' ' && line[i - 1] != '\t')) return null;
        var v = line.AsSpan(i + key.Length).TrimStart();
        int end = v.IndexOfAny(' ', '\t');
        if (end >= 0) v = v[..end];
        return v.IsEmpty ? null : v.ToString();
    }

    private void Pointer(string text)
    {
        if (text.StartsWith("(null)", StringComparison.Ordinal)) return;
        var hex = text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text;
        if (!ulong.TryParse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v) || v == 0) return;
        if (hex.Length > _maxPtrDigits) { _maxPtrDigits = hex.Length; _ptrExample = text; }
        if (v > uint.MaxValue) _ptrAbove32 = true;
        // Address ranges of the linear maps.
        if (v >> 44 is >= 0xffff8 and < 0xffffd) Vote("x86_64", $"ptr={text} in x86_64's direct map (0xffff888000000000, or 0xffff8…–0xffffc… with KASLR)");
        else if (v >> 48 == 0xffff && v >> 44 < 0xffff8) Vote("arm64", $"ptr={text} in arm64's linear map (0xffff000000000000, 48-bit VA)");
        else if (v >> 60 == 0xc && v > uint.MaxValue) Vote("ppc64", $"ptr={text} in ppc64's linear map (0xc000000000000000)");
    }

    private void CallSite(string text, bool perf)
    {
        var hex = text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text;
        if (ulong.TryParse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v) && v != 0)
        {
            if (v > uint.MaxValue)
            {
                if (v >> 31 == 0x1ffffffff) Vote("x86_64", $"call_site={text} in x86_64's kernel text (0xffffffff80000000) or modules");
            }
            else if (v is >= 0xbf000000 and < 0xc0000000) Vote("arm", $"call_site={text} in 32-bit arm's module area (0xbf000000, below PAGE_OFFSET)");
            else if (v is >= 0xc1000000 and < 0xc4000000) Vote("i386", $"call_site={text}: kernel text at 0xc1000000, i386's PAGE_OFFSET plus its 16 MiB CONFIG_PHYSICAL_START");
            else if (v is >= 0xc0008000 and < 0xc1000000) Vote("arm-or-i386", $"call_site={text}: kernel text just above PAGE_OFFSET 0xc0000000");
            // A bare hexadecimal call site in ftrace's own output is %lx: 5.4 prints %pS (a 0x prefix is the raw-fields option).
            if (!perf && !text.StartsWith("0x", StringComparison.Ordinal)) Before(new KernelVersion(5, 4), $"call_site={text} printed as a number (%pS symbols since 5.4, \"mm, tracing: Print symbol name for call_site in trace events\")");
            return;
        }
        // A symbol: "name+0xoff/0xlen" (ftrace's %pS) or "name+0xoff" (trace-cmd resolving it).
        if (text.Contains("+0x", StringComparison.Ordinal))
            AtLeast(new KernelVersion(5, 4), $"call_site={text} printed as a symbol (%pS since 5.4, \"mm, tracing: Print symbol name for call_site in trace events\")");
        string name = text.Split('+')[0];
        string? arch = name switch
        {
            "el0_svc" or "el0t_64_sync" or "el0_svc_common" or "invoke_syscall" or "el1h_64_irq" => "arm64",
            "do_syscall_64" or "entry_SYSCALL_64" or "system_call_fastpath" or "entry_SYSCALL_64_after_hwframe" => "x86_64",
            "ret_fast_syscall" or "vector_swi" or "__irq_svc" => "arm",
            "do_trap_ecall_u" or "handle_exception" => "riscv",
            _ => null,
        };
        if (arch is not null) Vote(arch, $"call_site {name} exists only on {arch}");
    }

    private void Formats(string line, KmemTraceEvent ev, bool perf)
    {
        if (ev.GfpText is { } gfp && !gfp.StartsWith("0x", StringComparison.Ordinal))
        {
            bool old = false, modern = false;
            foreach (var part in gfp.Split('|'))
            {
                if (part.StartsWith("__GFP_", StringComparison.Ordinal)) modern = true;
                else if (part is "GFP_ZERO" or "GFP_NOWARN" or "GFP_NORETRY" or "GFP_COMP" or "GFP_NOMEMALLOC" or "GFP_REPEAT"
                         or "GFP_NOTRACK" or "GFP_COLD" or "GFP_RECLAIMABLE" or "GFP_MOVABLE" or "GFP_HARDWALL" or "GFP_THISNODE"
                         or "GFP_HIGH" or "GFP_WAIT" or "GFP_IO" or "GFP_FS") old = true;
            }
            // "mm, tracing: unify mm flags handling in tracepoints and printk" (4.6) prints the modifiers as __GFP_*.
            if (old) Before(new KernelVersion(4, 6), $"gfp_flags={gfp} spells modifiers without \"__\" (__GFP_ names since 4.6, \"mm, tracing: unify mm flags handling in tracepoints and printk\")");
            if (modern) AtLeast(new KernelVersion(4, 6), $"gfp_flags={gfp} spells modifiers as __GFP_* (since 4.6, \"mm, tracing: unify mm flags handling in tracepoints and printk\")");
        }
        if (perf || ev.GfpText is null) return;                         // a cut or re-printed line says nothing of fields after gfp_flags
        bool nodeEvent = ev.EventName.EndsWith("_node", StringComparison.Ordinal);
        if (line.Contains(" accounted=", StringComparison.Ordinal))
            AtLeast(new KernelVersion(6, 0), "accounted= in the allocation events (since 6.0, \"mm/tracing: add 'accounted' entry into output of allocation tracepoints\")");
        else
            Before(new KernelVersion(6, 0), "no accounted= in the allocation events (added in 6.0, \"mm/tracing: add 'accounted' entry into output of allocation tracepoints\")");
        if (!nodeEvent)
        {
            if (ev.Node is not null)
                AtLeast(new KernelVersion(6, 1), $"node= in {ev.EventName} events (since 6.1, \"mm/slab_common: unify NUMA and UMA version of tracepoints\")");
            else
                Before(new KernelVersion(6, 1), $"no node= in {ev.EventName} events (added in 6.1, \"mm/slab_common: unify NUMA and UMA version of tracepoints\")");
        }
    }

    private void Vote(string arch, string why)
    {
        _archVotes[arch] = _archVotes.GetValueOrDefault(arch) + 1;
        _archExample.TryAdd(arch, why);
    }

    private void AtLeast(KernelVersion v, string why)
    {
        if (v > _lo) { _lo = v; _loWhy = why; }
    }

    private void Before(KernelVersion v, string why)
    {
        if (_hiExclusive is null || v < _hiExclusive.Value) { _hiExclusive = v; _hiWhy = why; }
    }

    /// <summary>What the lines read so far say of the machine, and a profile for it.</summary>
    public TraceMachine Finish()
    {
        var reasons = new List<string>();
        bool is64 = _ptrAbove32 || _maxPtrDigits > 8;
        reasons.Add(_maxPtrDigits == 0
            ? "pointer width: 64-bit (the trace prints no pointer; assumed)"
            : is64 ? $"pointer width: 64-bit (pointers print {_maxPtrDigits} hex digits, e.g. {_ptrExample})"
                   : $"pointer width: 32-bit (pointers print at most 8 hex digits, e.g. {_ptrExample})");

        var arch = InferArch(is64, out string archWhy);
        reasons.Add($"architecture: {ArchName(arch)} ({archWhy})");

        int recordedCpus = _headerCpus ?? Math.Max(1, _maxCpu + 1);
        int cpus = Math.Min(recordedCpus, MaxCpus);
        if (cpus < recordedCpus) reasons.Add($"CPUs: the trace shows {recordedCpus}; Kmem models at most {MaxCpus}, so the replay uses {MaxCpus}");
        reasons.Add(_headerCpus is not null ? $"CPUs: {cpus} (the trace header's #P:{recordedCpus})"
            : _maxCpu >= 0 ? $"CPUs: {cpus} (at least: the highest CPU column is [{_maxCpu:D3}]; the header with #P: is missing)"
            : "CPUs: 1 (no header and no CPU column; assumed)");

        int ptr = is64 ? 8 : 4;
        int line = InferCacheLine(ptr, out string lineWhy);
        reasons.Add($"cache line: {line} bytes ({lineWhy})");

        string allocator = InferKmalloc(line, arch, out int minAlign, out string slabWhy, out string alignWhy);
        reasons.Add($"slab allocator: {allocator} ({slabWhy})");
        reasons.Add($"kmalloc minimum alignment: {minAlign} bytes ({alignWhy})");

        var version = InferVersion(out string range, out string versionWhy);
        var profile = BuildProfile(arch, cpus, line, minAlign, ref version, ref versionWhy);
        reasons.Add($"kernel version: {version} ({versionWhy})");
        return new TraceMachine
        {
            Profile = profile, Reasons = reasons, Arch = arch, PointerBits = is64 ? 64 : 32, Cpus = cpus,
            CacheLineSize = line, KmallocMinAlign = minAlign, SlabAllocator = allocator, SlabL1CacheBytes = SlabL1, Version = version, VersionRange = range,
        };
    }

    internal static string ArchName(Arch a) => a switch
    {
        Arch.Arm => "arm", Arch.Arm64 => "arm64", Arch.X86_64 => "x86_64", Arch.I386 => "i386",
        Arch.Riscv32 => "riscv32", _ => "riscv64",
    };

    private Arch InferArch(bool is64, out string why)
    {
        int Votes(string a) => _archVotes.GetValueOrDefault(a);
        if (is64)
        {
            var best = new[] { "x86_64", "arm64", "riscv", "ppc64" }.OrderByDescending(Votes).First();
            if (Votes(best) == 0) { why = "no address range or symbol names one; x86_64 assumed"; return Arch.X86_64; }
            if (best == "ppc64") { why = _archExample[best] + "; ppc64 is not modelled, x86_64 used"; return Arch.X86_64; }
            why = _archExample[best];
            return best switch { "arm64" => Arch.Arm64, "riscv" => Arch.Riscv64, _ => Arch.X86_64 };
        }
        if (Votes("arm") > 0 && Votes("arm") >= Votes("i386")) { why = _archExample["arm"]; return Arch.Arm; }
        if (Votes("i386") > 0) { why = _archExample["i386"]; return Arch.I386; }
        if (Votes("riscv") > 0) { why = _archExample["riscv"]; return Arch.Riscv32; }
        why = Votes("arm-or-i386") > 0 ? _archExample["arm-or-i386"] + ", as on both arm and i386; arm assumed"
            : "no address range or symbol names one; arm assumed";
        return Arch.Arm;
    }

    /// <summary>
    /// cache_line_size(): the line for which SLAB_HWCACHE_ALIGN (calculate_alignment() halving the line while the object
    /// fits in half) explains the most kmem_cache sizes that neither the word alignment nor a constructor's free pointer
    /// explain; 64 when no size tells (or on a tie with 64).
    /// </summary>
    private int InferCacheLine(int ptr, out string why)
    {
        var votes = new Dictionary<int, List<(long, long)>> { [32] = [], [64] = [], [128] = [] };
        foreach (var (req, alloc) in _caches.OrderBy(c => c.Req))
        {
            if (req <= 0 || req > 1 << 22) continue;
            long plain = AlignUp(AlignUp(req, ptr), 8), ctor = AlignUp(AlignUp(req, ptr) + ptr, 8);
            if (alloc == plain || alloc == ctor) continue;
            foreach (int l in votes.Keys) if (HwAligned(req, l, ptr) == alloc) votes[l].Add((req, alloc));
        }
        int bestCount = votes.Values.Max(v => v.Count);
        if (bestCount == 0) { why = "no kmem_cache size needs a cache-line alignment; the usual 64 assumed"; return 64; }
        int line = votes[64].Count == bestCount ? 64 : votes.Where(kv => kv.Value.Count == bestCount).Min(kv => kv.Key);
        string rows = string.Join(", ", votes[line].Take(3).Select(r => $"{r.Item1}→{r.Item2}"));
        why = $"{votes[line].Count} kmem_cache size(s) are SLAB_HWCACHE_ALIGN on a {line}-byte line: {rows}";
        return line;
    }

    /// <summary>calculate_alignment() with SLAB_HWCACHE_ALIGN, then the object rounded to it.</summary>
    internal static long HwAligned(long req, int line, int ptr)
    {
        long ralign = line;
        while (req <= ralign / 2) ralign /= 2;
        return AlignUp(AlignUp(req, ptr), Math.Max(ralign, 8));
    }

    private static long AlignUp(long v, long a) => (v + a - 1) / a * a;

    /// <summary>SLUB's kmalloc size for <paramref name="req"/> with KMALLOC_MIN_SIZE <paramref name="min"/> (0 past 8 KiB).</summary>
    internal static long SlubKmalloc(long req, int min)
    {
        if (req > 8192) return 0;
        if (req <= min) return min;
        if (req <= 96 && req > 64) return min >= 64 ? 128 : 96;
        if (req <= 192 && req > 128) return min >= 128 ? 256 : 192;
        return (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)req);
    }

    /// <summary>SLAB's kmalloc size (its malloc_sizes: 32, 64, 96 below a 64-byte line, 128, 192 below a 128-byte line, then powers of two).</summary>
    internal static long SlabKmalloc(long req, int line)
    {
        if (req > 8192) return 0;
        if (req <= 32) return 32;
        if (req <= 64) return 64;
        if (req <= 96 && line < 64) return 96;
        if (req <= 128) return 128;
        if (req <= 192 && line < 128) return 192;
        return (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)req);
    }

    private string InferKmalloc(int line, Arch arch, out int minAlign, out string slabWhy, out string alignWhy)
    {
        var rows = _kmalloc.Where(r => r.Req is > 0 and <= 8192).OrderBy(r => r.Req).ToList();
        int defaultMin = arch == Arch.Arm ? 64 : 8;
        if (rows.Count == 0)
        {
            minAlign = defaultMin;
            slabWhy = "no kmalloc event; SLUB assumed";
            alignWhy = $"no kmalloc event; {ArchName(arch)}'s usual {defaultMin}";
            return "SLUB";
        }
        int bestMin = defaultMin, bestScore = -1;
        foreach (int m in new[] { 8, 16, 32, 64, 128 })
        {
            int s = rows.Count(r => SlubKmalloc(r.Req, m) == r.Alloc);
            if (s > bestScore || (s == bestScore && m == defaultMin)) { bestScore = s; bestMin = m; }
        }
        // SLAB's classes follow L1_CACHE_BYTES (the build's line), which need not be cache_line_size() at run time.
        int l1 = 64, slabScore = -1;
        foreach (int l in new[] { 64, 32, 128 })
        {
            int s = rows.Count(r => SlabKmalloc(r.Req, l) == r.Alloc);
            if (s > slabScore) { slabScore = s; l1 = l; }
        }
        SlabL1 = l1;
        if (slabScore > bestScore)
        {
            var tell = rows.Where(r => SlabKmalloc(r.Req, l1) == r.Alloc && SlubKmalloc(r.Req, bestMin) != r.Alloc).Take(3)
                .Select(r => $"{r.Req}→{r.Alloc}");
            slabWhy = $"kmalloc classes start at 32 bytes{(l1 >= 64 ? " and have no 96" : "")}: {string.Join(", ", tell)}; Kmem models SLUB only";
            minAlign = 8;
            alignWhy = "SLAB's classes hide it; 8 assumed";
            return "SLAB";
        }
        minAlign = bestMin;
        var smallest = rows.MinBy(r => r.Alloc);
        slabWhy = $"{bestScore} of {rows.Count} kmalloc sizes are SLUB's classes, the smallest {smallest.Req}→{smallest.Alloc}";
        var tellMin = rows.Where(r => r.Req < bestMin && r.Alloc == bestMin).Take(2).Select(r => $"{r.Req}→{r.Alloc}").ToList();
        alignWhy = tellMin.Count > 0 ? $"KMALLOC_MIN_SIZE {bestMin}: {string.Join(", ", tellMin)}"
            : rows.Any(r => r.Req <= bestMin) ? $"the smallest class is {bestMin}" : $"no kmalloc small enough to show it; {ArchName(arch)}'s usual {bestMin}";
        return "SLUB";
    }

    private KernelVersion InferVersion(out string range, out string why)
    {
        var lo = _lo;
        var hi = _hiExclusive;
        range = (lo > KernelVersion.Oldest, hi) switch
        {
            (true, { } h) => $"{lo} or later, before {h}",
            (true, null) => $"{lo} or later",
            (false, { } h) => $"before {h}",
            _ => "any",
        };
        if (hi is { } h2 && h2 <= lo && _loWhy is not null)
        {
            why = $"the formats contradict each other ({_loWhy}; {_hiWhy}); {KernelVersion.Default} used";
            return KernelVersion.Default;
        }
        if (hi is { } h3 && h3 <= KernelVersion.Oldest)
        {
            why = $"{_hiWhy}: older than Kmem models, so the oldest it models";
            return KernelVersion.Oldest;
        }
        if ((hi is null || KernelVersion.Default < hi.Value) && KernelVersion.Default >= lo)
        {
            why = lo > KernelVersion.Oldest ? $"{_loWhy}; Kmem's default {KernelVersion.Default} fits" : hi is not null ? $"{_hiWhy}; Kmem's default {KernelVersion.Default} fits" : $"no event format dates the trace; Kmem's default {KernelVersion.Default}";
            return KernelVersion.Default;
        }
        if (hi is { } h4 && h4 <= KernelVersion.Default)
        {
            var v = Previous(h4);
            why = $"{_hiWhy}; the newest release that fits";
            return v;
        }
        why = $"{_loWhy}; the oldest release that fits";
        return lo;
    }

    /// <summary>The release before <paramref name="v"/> (x.0 follows 3.19, 4.20 and 5.19).</summary>
    private static KernelVersion Previous(KernelVersion v) => v.Minor > 0 ? new KernelVersion(v.Major, v.Minor - 1)
        : new KernelVersion(v.Major - 1, v.Major switch { 4 => 19, 5 => 20, _ => 19 });

    private MachineProfile BuildProfile(Arch arch, int cpus, int line, int minAlign, ref KernelVersion version, ref string versionWhy)
    {
        try
        {
            return MachineProfile.Parse(ProfileJson(arch, cpus, line, minAlign, version));
        }
        catch (ProfileException e)
        {
            versionWhy += $"; but {ArchName(arch)} at {version} cannot be modelled ({e.Problem}), so {KernelVersion.Default}";
            version = KernelVersion.Default;
            return MachineProfile.Parse(ProfileJson(arch, cpus, line, minAlign, version));
        }
    }

    private static string ProfileJson(Arch arch, int cpus, int line, int minAlign, KernelVersion version)
    {
        bool is64 = arch is Arch.X86_64 or Arch.Arm64 or Arch.Riscv64;
        string name = ArchName(arch);
        ulong ram = is64 ? 4UL << 30 : 512UL << 20;
        ulong bas = arch switch { Arch.X86_64 or Arch.I386 => 0x100000, Arch.Arm64 or Arch.Arm => 0x40000000, _ => 0x80000000 };
        if (arch is Arch.X86_64 or Arch.I386) ram -= bas;
        return string.Create(CultureInfo.InvariantCulture, $$"""
            {
              "name": "inferred-{{name}}",
              "description": "{{name}} machine inferred from a kmem trace",
              "arch": "{{name}}",
              "version": "{{version.Major}}.{{version.Minor}}",
              "cpus": {{cpus}},
              "cache_line_size": {{line}},
              "kmalloc_min_align": {{minAlign}},
              "dram": [ { "base": "0x{{bas:x}}", "size": "0x{{ram:x}}" } ]
            }
            """);
    }
}
