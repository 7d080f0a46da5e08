// Reports in the kernel's words: warn_alloc() with show_mem(), bad_page() with __dump_page(),
// WARN_ON_ONCE(), dump_stack() with the managed call trace, and the taint flags they set.
// Locks (docs/architecture.md, "Lock order"): _reportLock (WARN_ONCE keys, warn_alloc's rate limit) and
// zone->lock (show_mem's figures) are never held together; both may write to the log ring, the innermost lock.
using System.Diagnostics;
using System.Text;
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

internal sealed unsafe partial class PageAllocator
{
    /// <summary>The kernel release string reports print (utsname release: the profile's version with Kmem's local suffix).</summary>
    public string Release => _settings.Release;

    /// <summary>The kernel release whose formats the views print.</summary>
    public KernelVersion Version => _settings.Version;

    private readonly Lock _reportLock = new();
    private readonly HashSet<string> _warnedOnce = [];
    private long _warnAllocLastNs = long.MinValue;
    private int _warnAllocMissed;
    private int _badPageShown;
    private long _badPageResumeNs;
    private int _badPageUnshown;
    private int _taint;

    /// <summary>Hardware name printed by dump_stack (the profile's name).</summary>
    public string HardwareName { get; set; } = "Kmem virtual machine";

    // taint_flags[] order (kernel/panic.c): the character when set, and when clear.
    private static readonly (char Set, char Clear)[] s_taintFlags =
    [
        ('P', 'G'), ('F', ' '), ('S', ' '), ('R', ' '), ('M', ' '), ('B', ' '), ('U', ' '), ('D', ' '), ('A', ' '),
        ('W', ' '), ('C', ' '), ('I', ' '), ('O', ' '), ('E', ' '), ('L', ' '), ('K', ' '), ('X', ' '), ('T', ' '),
    ];

    /// <summary>TAINT_BAD_PAGE.</summary>
    public const int TaintBadPage = 5;
    /// <summary>TAINT_DIE: a BUG() or oops happened.</summary>
    public const int TaintDie = 7;
    /// <summary>TAINT_WARN.</summary>
    public const int TaintWarn = 9;

    public void AddTaint(int flag) => Interlocked.Or(ref _taint, 1 << flag);

    /// <summary>print_tainted(): "Not tainted" or "Tainted: G    B      …".</summary>
    public string PrintTainted()
    {
        int t = Volatile.Read(ref _taint);
        if (t == 0) return "Not tainted";
        var sb = new StringBuilder("Tainted: ");
        for (int i = 0; i < s_taintFlags.Length; i++) sb.Append((t & (1 << i)) != 0 ? s_taintFlags[i].Set : s_taintFlags[i].Clear);
        return sb.ToString();
    }

    /// <summary>current->comm: the thread's name, at most 15 characters.</summary>
    public static string TaskName()
    {
        string name = Thread.CurrentThread.Name ?? $"kmem/{Environment.CurrentManagedThreadId}";
        return name.Length > 15 ? name[..15] : name;
    }

    /// <summary>
    /// dump_stack(): the CPU/PID/Comm line, hardware name and the managed call trace. The trace starts at the
    /// public entry point the caller used: the frames of Kmem's internal layers (namespaces below <c>Kmem.</c>) at
    /// its top are left out, however the JIT inlined them.
    /// </summary>
    public void DumpStack(StringBuilder sb)
    {
        sb.Append($"CPU: {CurrentCpu()} PID: {Environment.CurrentManagedThreadId} Comm: {TaskName()} {PrintTainted()} {Release} #1\n");
        sb.Append($"Hardware name: {HardwareName}\n");
        sb.Append("Call Trace:\n");
        var st = new StackTrace(1, fNeedFileInfo: false);
        int shown = 0;
        bool top = true;
        foreach (var frame in st.GetFrames())
        {
            var m = DiagnosticMethodInfo.Create(frame);
            if (m is null) continue;
            string type = m.DeclaringTypeName ?? "";
            if (top && type.StartsWith("Kmem.", StringComparison.Ordinal) && !type.StartsWith("Kmem.Tests", StringComparison.Ordinal)) continue;
            top = false;
            int dot = type.LastIndexOf('.');
            sb.Append(' ').Append(dot >= 0 ? type[(dot + 1)..] : type).Append('.').Append(m.Name).Append('\n');
            if (++shown == 16) break;
        }
    }

    /// <summary>WARN_ON_ONCE(): the cut-here block, once per <paramref name="key"/>.</summary>
    public void WarnOnce(string key, string warning)
    {
        lock (_reportLock) if (!_warnedOnce.Add(key)) return;
        Warn(warning);
    }

    /// <summary>
    /// BUG(): the cut-here block with "kernel BUG at <paramref name="where"/>!", what went wrong, the stack and the taint
    /// (D), at KERN_EMERG. Kmem refuses the call instead of dying: the caller throws after this.
    /// </summary>
    public void Bug(string where, string what)
    {
        AddTaint(TaintDie);
        var sb = new StringBuilder();
        sb.Append("------------[ cut here ]------------\n");
        sb.Append($"kernel BUG at {where}!\n");
        sb.Append(what).Append('\n');
        sb.Append("Modules linked in:\n");
        DumpStack(sb);
        sb.Append("---[ end trace 0000000000000000 ]---\n");
        _log.Printk(LogLevel.Emerg, sb.ToString());
    }

    /// <summary>WARN(1, ...): the cut-here block with the warning, the stack and the taint.</summary>
    public void Warn(string warning)
    {
        AddTaint(TaintWarn);
        var sb = new StringBuilder();
        sb.Append("------------[ cut here ]------------\n");
        sb.Append(warning).Append('\n');
        sb.Append("Modules linked in:\n");
        DumpStack(sb);
        sb.Append("---[ end trace 0000000000000000 ]---\n");
        _log.Printk(LogLevel.Warning, sb.ToString());
    }

    // ---------------------------------------------------------------- warn_alloc

    /// <summary>warn_alloc(): "page allocation failure" (rate-limited to one per 10 s), stack and show_mem.</summary>
    public void WarnAlloc(Gfp gfp, int order) => WarnAlloc(gfp, $"page allocation failure: order:{order}");

    /// <summary>
    /// warn_alloc() with the caller's reason (<c>vmalloc: allocation failure: N bytes</c>, …): nothing under
    /// <see cref="Gfp.NoWarn"/>; one report per 10 s shared by every caller, as the kernel's single ratelimit state.
    /// </summary>
    public void WarnAlloc(Gfp gfp, string what)
    {
        if ((gfp & Gfp.NoWarn) != 0) return;
        long now = _log.NowNs;
        lock (_reportLock)
        {
            if (_warnAllocLastNs != long.MinValue && now - _warnAllocLastNs < 10_000_000_000L)
            {
                _warnAllocMissed++;
                return;
            }
            _warnAllocLastNs = now;
            if (_warnAllocMissed > 0)
            {
                _log.Warn($"warn_alloc: {_warnAllocMissed} callbacks suppressed");
                _warnAllocMissed = 0;
            }
        }
        var sb = new StringBuilder();
        sb.Append($"{TaskName()}: {what}, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null),cpuset=/,mems_allowed={MemoryNodeList()}\n");
        DumpStack(sb);
        string mem = ShowMem();
        _log.Printk(LogLevel.Warning, sb.ToString());
        _log.Printk(LogLevel.Warning, mem);
        KmemEventSource.Log.OomReport(sb + mem);
    }

    /// <summary>
    /// show_mem(): "Mem-Info:", show_free_areas() and the page totals. show_free_areas() prints one "Node %d active_anon:…"
    /// line per online node (all_unreclaimable from the node's kswapd_failures), then each populated zone's line, its
    /// lowmem_reserve and its buddy line, the zone lines and buddy lines prefixed "Node %d " with CONFIG_NUMA (show_node()).
    /// </summary>
    public string ShowMem()
    {
        var sb = new StringBuilder();
        sb.Append("Mem-Info:\n");
        long free = 0, freeCma = 0, freePcp = 0;
        foreach (var z in Zones)
        {
            free += z.FreePages;
            freeCma += z.FreeCmaPages;
            if (z.Populated) freePcp += PcpTotal(z.Index);
        }
        long slabR = Stat.SlabReclaimablePages, slabU = Stat.SlabUnreclaimablePages;
        sb.Append("active_anon:0 inactive_anon:0 isolated_anon:0\n");
        sb.Append(" active_file:0 inactive_file:0 isolated_file:0\n");
        sb.Append(" unevictable:0 dirty:0 writeback:0\n");
        sb.Append($" slab_reclaimable:{slabR} slab_unreclaimable:{slabU}\n");
        sb.Append(" mapped:0 shmem:0 pagetables:0 bounce:0\n");
        sb.Append($" free:{free} free_pcp:{freePcp} free_cma:{freeCma}\n");
        for (int nid = 0; nid < NodeCount; nid++)
        {
            bool unreclaimable = Volatile.Read(ref _nodes[nid].KswapdFailures) >= MaxReclaimRetries;
            sb.Append($"Node {nid} active_anon:0kB inactive_anon:0kB active_file:0kB inactive_file:0kB unevictable:0kB isolated(anon):0kB isolated(file):0kB mapped:0kB dirty:0kB writeback:0kB shmem:0kB writeback_tmp:0kB kernel_stack:0kB all_unreclaimable? {(unreclaimable ? "yes" : "no")}\n");
        }
        int cpu = CurrentCpu();
        foreach (var z in Zones)
        {
            if (!z.Populated) continue;
            long pcp = PcpTotal(z.Index);
            // " boost:" from 5.16 ("mm/page_alloc.c: show watermark_boost of zone in zoneinfo"); Kmem never boosts.
            sb.Append($"{ShowNode(z)}{z.Name} free:{K(z.FreePages)}kB{(Version.IsAtLeast(5, 16) ? " boost:0kB" : "")} min:{K(z.WmarkMin)}kB low:{K(z.WmarkLow)}kB high:{K(z.WmarkHigh)}kB reserved_highatomic:{K(z.NrReservedHighatomic)}KB active_anon:0kB inactive_anon:0kB active_file:0kB inactive_file:0kB unevictable:0kB writepending:0kB present:{K(z.Present)}kB managed:{K(z.Managed)}kB mlocked:0kB pagetables:0kB bounce:0kB free_pcp:{K(pcp)}kB local_pcp:{K(PcpCount(z.Index, cpu))}kB free_cma:{K(z.FreeCmaPages)}kB\n");
            sb.Append("lowmem_reserve[]:");
            foreach (var r in z.LowmemReserve) sb.Append(' ').Append(r);
            sb.Append('\n');
        }
        foreach (var z in Zones)
        {
            if (!z.Populated) continue;
            sb.Append(ShowNode(z)).Append(BuddyLine(z)).Append('\n');
        }
        sb.Append("0 total pagecache pages\n");
        long total = 0, reserved = 0, high = 0;
        foreach (var z in Zones)
        {
            if (!z.Populated) continue;
            total += z.Present;
            reserved += z.Present - z.Managed;
            if (z.Type == ZoneType.HighMem) high += z.Present;
        }
        sb.Append($"{total} pages RAM\n");
        sb.Append($"{high} pages HighMem/MovableOnly\n");
        sb.Append($"{reserved} pages reserved\n");
        sb.Append($"{TotalCmaPages} pages cma reserved\n");
        return sb.ToString();
    }

    /// <summary>show_node(): "Node %d " before a zone's name with CONFIG_NUMA, nothing without.</summary>
    private string ShowNode(Zone z) => _settings.Numa ? $"Node {z.Node} " : "";

    /// <summary>The show_free_areas() buddy line: "Normal: 3*4kB (UM) 1*8kB (U) … = 20kB".</summary>
    public string BuddyLine(Zone z)
    {
        var sb = new StringBuilder();
        sb.Append(z.Name).Append(": ");
        long total = 0;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            for (int o = 0; o < MaxOrder; o++)
            {
                long nr = z.AreaFree(o);
                total += nr << o;
                sb.Append(nr).Append('*').Append(4L << o).Append("kB ");
                if (nr == 0) continue;
                sb.Append('(');
                for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
                    if (!z.ListEmpty(o, mt)) sb.Append(PageTypes.MigrateTypeLetters[mt]);
                sb.Append(") ");
            }
        }
        sb.Append("= ").Append(K(total)).Append("kB");
        return sb.ToString();
    }

    private static long K(long pages) => pages << (PhysicalMemory.PageShift - 10);

    // ---------------------------------------------------------------- bad_page

    /// <summary>bad_page(): logs the report (60 per minute at most), taints, and returns the exception to throw.</summary>
    public BadPageStateException BadPage(int idx, string reason, string caller)
    {
        ulong pfn = BasePfn + (ulong)idx;
        long now = _log.NowNs;
        bool show = true;
        lock (_reportLock)
        {
            if (_badPageShown == 60)
            {
                if (now < _badPageResumeNs) { _badPageUnshown++; show = false; }
                else
                {
                    if (_badPageUnshown > 0) _log.Printk(LogLevel.Alert, $"BUG: Bad page state: {_badPageUnshown} messages suppressed");
                    _badPageUnshown = 0;
                    _badPageShown = 0;
                }
            }
            if (show && _badPageShown++ == 0) _badPageResumeNs = now + 60_000_000_000L;
        }
        AddTaint(TaintBadPage);
        KmemEventSource.Log.DebugError("page", $"Bad page state pfn:{pfn:x5}: {reason} ({caller})");
        if (show)
        {
            var sb = new StringBuilder();
            sb.Append($"BUG: Bad page state in process {TaskName()}  pfn:{pfn:x5}\n");
            DumpPage(sb, idx, reason);
            sb.Append($"caller: {caller}\n");
            sb.Append("Modules linked in:\n");
            DumpStack(sb);
            _log.Printk(LogLevel.Alert, sb.ToString());
        }
        return new BadPageStateException(pfn, reason);
    }

    /// <summary>__dump_page(): descriptor address, refcount, mapcount, flags, raw words, reason.</summary>
    public void DumpPage(StringBuilder sb, int idx, string reason)
    {
        ref PageFrame f = ref _f[idx];
        ulong pfn = BasePfn + (ulong)idx;
        nint desc = (nint)(_f + idx);
        int head = CompoundHead(idx);
        sb.Append($"page:{desc:x16} refcount:{_f[head].RefCount} mapcount:{f.MapCount} mapping:0000000000000000 index:0x0 pfn:0x{pfn:x}\n");
        if (head != idx || (f.Flags & PageFlags.Head) != 0)
            sb.Append($"head:{(nint)(_f + head):x16} order:{_f[head].Order} compound_mapcount:0\n");
        ulong kflags = 0;
        var names = new List<string>();
        if ((_f[head].Flags & PageFlags.Slab) != 0) { kflags |= 1UL << 9; names.Add("slab"); }
        if ((_f[head].Flags & PageFlags.Reserved) != 0) { kflags |= 1UL << 12; names.Add("reserved"); }
        if ((_f[head].Flags & PageFlags.Head) != 0) { kflags |= 1UL << 16; names.Add("head"); }
        var zone = ZoneOfIdx(idx);
        bool cma = zone is not null && zone.PageblockType(idx) == MigrateType.Cma;
        sb.Append($"flags: 0x{kflags:x}({string.Join('|', names)}){(cma ? " CMA" : "")}\n");
        ulong* raw = (ulong*)(_f + idx);
        sb.Append($"raw: {raw[0]:x16} {raw[1]:x16} {raw[2]:x16} {raw[3]:x16}\n");
        if (head != idx)
        {
            ulong* hraw = (ulong*)(_f + head);
            sb.Append($"head: {hraw[0]:x16} {hraw[1]:x16} {hraw[2]:x16} {hraw[3]:x16}\n");
        }
        sb.Append($"page dumped because: {reason}\n");
    }
}
