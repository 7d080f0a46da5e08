// kmap_local_page()/kunmap_local() and kmap_atomic()/kunmap_atomic(): each thread's stack of short-lived
// mappings (the kernel's per-task kmap_ctrl from 5.11, the per-CPU __kmap_atomic_idx before), at most
// KM_MAX_IDX deep (KM_TYPE_NR before 5.11), undone in reverse order. A lowmem page needs no mapping: its
// linear address comes back at no cost, as in the kernel. A HighMem frame is mapped for real into a small
// window of the thread's own; the window keeps its last mappings (a page mapped again soon after costs no
// system call), which is where Kmem differs from the kernel, which rewrites the fixmap PTE every time.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Highmem;

internal sealed unsafe class KmapLocal : IDisposable
{
    /// <summary>Pages of each thread's window: more than the deepest stack, so a free one is always there to reuse.</summary>
    public const int WindowPages = 32;

    private readonly PageAllocator _pa;
    private readonly PkmapPool _pool;
    private readonly bool _highGet;
    private readonly int _fd;
    private readonly int _maxDepth;
    private readonly bool _hasLocal;
    private readonly string _archFile;
    private readonly string _archUnmap;
    private readonly nint _linear;
    private readonly ulong _linearBytes;
    private readonly ThreadLocal<KmapThread> _threads;
    private readonly List<KmapThread> _all = [];
    /// <summary>The reservations the windows are cut from (under the lock of <see cref="_all"/>).</summary>
    private readonly List<nint> _chunks = [];
    private const int WindowsPerChunk = 16;
    private const nuint ChunkBytes = (nuint)WindowsPerChunk * WindowPages << PhysicalMemory.PageShift;
    private int _released;

    public KmapLocal(PageAllocator pa, PkmapPool pool, HighmemSettings settings, string archFile)
    {
        _pa = pa;
        _pool = pool;
        // Without a memfd nothing is remapped: a pool slot's address is the frame's own and cannot be told from a window's.
        _highGet = settings.KmapHighGet && settings.Fd >= 0;
        _fd = settings.Fd;
        _maxDepth = settings.StackDepth;
        _hasLocal = settings.HasKmapLocal;
        _archFile = archFile;
        _archUnmap = settings.ArchUnmapFunction;
        _linear = pa.IdxToVirt(0);
        _linearBytes = pa.LinearBytes;
        _threads = new ThreadLocal<KmapThread>(NewThread);
    }

    /// <summary>The deepest a thread's stack may grow (KM_MAX_IDX or KM_TYPE_NR).</summary>
    public int MaxDepth => _maxDepth;

    /// <summary>HighMem mappings that needed a new mapping of the frame (a system call), over every thread.</summary>
    public long ColdMaps { get { lock (_all) return _all.Sum(t => Volatile.Read(ref t.Cold)); } }

    /// <summary>HighMem mappings served by a thread's window as it was, over every thread.</summary>
    public long Hits { get { lock (_all) return _all.Sum(t => Volatile.Read(ref t.Hits)); } }

    /// <summary>The address-space reservations the threads' windows are cut from.</summary>
    public int Reservations { get { lock (_all) return _chunks.Count; } }

    /// <summary>HighMem mappings served from the page's pkmap slot (arm's kmap_high_get()), over every thread.</summary>
    public long PoolServed { get { lock (_all) return _all.Sum(t => Volatile.Read(ref t.PoolServed)); } }

    /// <summary>Threads that have had a stack (a window), and the entries on their stacks now.</summary>
    public (int Threads, int Entries, int AtomicDepth) Totals
    {
        get { lock (_all) return (_all.Count, _all.Sum(t => Volatile.Read(ref t.Depth)), _all.Sum(t => Volatile.Read(ref t.Atomic))); }
    }

    /// <summary>One thread's stack and window.</summary>
    private sealed class KmapThread(Thread owner, nint window, int maxDepth)
    {
        public Thread Owner = owner;
        public readonly nint Window = window;
        /// <summary>Mappings on the stack.</summary>
        public int Depth;
        /// <summary>kmap_atomic() calls not yet undone: preempt_disable() + pagefault_disable() (lowmem ones too).</summary>
        public int Atomic;
        /// <summary>Those of <see cref="Atomic"/> that mapped a lowmem page (no stack entry: any lowmem address undoes one).</summary>
        public int LowAtomic;
        /// <summary>
        /// arm (kmap_high_get()): the mappings served from a pkmap slot instead of a stack entry, with the frame they show
        /// and whether kmap_atomic() made them; undone in any order by their own address and call.
        /// </summary>
        public List<(nint Address, int Frame, bool Atomic)>? Served;
        /// <summary>The frame each window page shows, or -1.</summary>
        public readonly int[] Frame = Filled(WindowPages, -1);
        /// <summary>How many stack entries use each window page.</summary>
        public readonly int[] Use = new int[WindowPages];
        /// <summary>Each stack entry: its window page (-1 without a window), its address, and whether kmap_atomic made it.</summary>
        public readonly int[] Slot = new int[maxDepth];
        public readonly nint[] Address = new nint[maxDepth];
        public readonly bool[] IsAtomic = new bool[maxDepth];
        public int Hand;
        /// <summary>HighMem mappings this thread's window served as it was, those that needed a system call, and those a pkmap slot served.</summary>
        public long Hits, Cold, PoolServed;

        private static int[] Filled(int n, int v) { var a = new int[n]; Array.Fill(a, v); return a; }
    }

    private KmapThread NewThread()
    {
        lock (_all)
        {
            if (_released != 0) throw KernelLife.Dead();
            // A thread that has exited hands its window on (one it left with mappings outstanding stays as it is).
            foreach (var old in _all)
            {
                if (old.Owner.IsAlive || old.Depth != 0 || old.Atomic != 0 || old.Served is { Count: > 0 }) continue;
                old.Owner = Thread.CurrentThread;
                old.Atomic = 0;
                old.LowAtomic = 0;
                old.Served?.Clear();
                return old;
            }
            nint window = 0;
            if (_fd >= 0)
            {
                // Windows come out of reservations of WindowsPerChunk threads each, so that a machine with many threads
                // retires a few ranges at shutdown, not one a thread.
                if (_all.Count % WindowsPerChunk == 0)
                {
                    nint chunk = FrameMappings.Reserve(ChunkBytes);
                    if (chunk == 0) throw new OutOfMemoryException("kmap_local: cannot reserve the threads' windows");
                    _chunks.Add(chunk);
                }
                window = _chunks[^1] + (nint)(_all.Count % WindowsPerChunk) * ((nint)WindowPages << PhysicalMemory.PageShift);
            }
            var t = new KmapThread(Thread.CurrentThread, window, _maxDepth);
            _all.Add(t);
            return t;
        }
    }

    /// <summary>The calling thread's kmap_atomic() depth: non-zero means atomic context (nothing may sleep).</summary>
    public int AtomicDepth => _threads.Value!.Atomic;

    /// <summary>The calling thread's stack depth.</summary>
    public int Depth => _threads.Value!.Depth;

    // ================================================================== map

    /// <summary>kmap_local_page(): the lowmem address, or a new entry on the thread's stack for a HighMem frame.</summary>
    /// <exception cref="HighMemException">Before 5.11 (no kmap_local), or the stack is full.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint MapLocal(int idx)
    {
        if (!_hasLocal) throw NotInRelease("kmap_local_page");
        if (idx < _pa.HighStartIdx) return _pa.IdxToVirt(idx);
        return Push(_threads.Value!, idx, atomic: false);
    }

    /// <summary>kmap_atomic(): preemption and page faults off, then the address (a stack entry for a HighMem frame).</summary>
    /// <exception cref="HighMemException">The stack is full (nothing changed).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint MapAtomic(int idx)
    {
        var t = _threads.Value!;
        if (idx < _pa.HighStartIdx)
        {
            t.Atomic++;
            t.LowAtomic++;
            return _pa.IdxToVirt(idx);
        }
        nint a = Push(t, idx, atomic: true);
        t.Atomic++;
        return a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private nint Push(KmapThread t, int idx, bool atomic)
    {
        // arm: a page with a pkmap slot is served from it (kmap_high_get(): arch/arm/mm/highmem.c before 5.11,
        // arch_kmap_local_high_get() in mm/highmem.c from 5.11).
        if (_highGet && _pool.MaybeMapped(idx) && _pool.TryGet(idx, out nint pkmap))
        {
            (t.Served ??= []).Add((pkmap, idx, atomic));
            t.PoolServed++;
            return pkmap;
        }
        int d = t.Depth;
        if ((uint)d >= (uint)_maxDepth) throw Overflow(t, atomic);
        nint address;
        int slot;
        if (t.Window == 0)
        {
            slot = -1;
            address = _pa.IdxToVirt(idx);
        }
        else
        {
            slot = Array.IndexOf(t.Frame, idx);
            if (slot < 0) slot = MapCold(t, idx);
            else t.Hits++;
            t.Use[slot]++;
            address = t.Window + ((nint)slot << PhysicalMemory.PageShift);
        }
        t.Slot[d] = slot;
        t.Address[d] = address;
        t.IsAtomic[d] = atomic;
        t.Depth = d + 1;
        return address;
    }

    /// <summary>Maps the frame into a window page no stack entry uses (the oldest such, clockwise).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int MapCold(KmapThread t, int idx)
    {
        using var _ = _pa.Life.Enter();   // the memfd stays open until this returns
        int slot = t.Hand;
        while (t.Use[slot] != 0) slot = (slot + 1) % WindowPages;
        t.Hand = (slot + 1) % WindowPages;
        nint at = t.Window + ((nint)slot << PhysicalMemory.PageShift);
        t.Frame[slot] = -1;
        if (!FrameMappings.MapFrames(at, _fd, idx, 1)) throw new OutOfMemoryException($"kmap_local: cannot map pfn 0x{_pa.BasePfn + (ulong)idx:x}: errno {Marshal.GetLastPInvokeError()}");
        t.Frame[slot] = idx;
        t.Cold++;
        return slot;
    }

    // ================================================================== unmap

    /// <summary>kunmap_local(): undoes the most recent kmap_local_page() (a lowmem address needs nothing).</summary>
    /// <exception cref="HighMemException">Not the most recent mapping, not a mapping at all, or a kmap_atomic() one.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void UnmapLocal(nint address)
    {
        if (!_hasLocal) throw NotInRelease("kunmap_local");
        if (IsLowmem(address)) return;
        var t = _threads.Value!;
        int d = t.Depth - 1;
        if (d < 0 || t.Address[d] != (address & ~(nint)(PhysicalMemory.PageSize - 1)) || t.IsAtomic[d]) UnmapOther(t, address, atomic: false);
        else Pop(t, d);
    }

    /// <summary>kunmap_atomic(): undoes the most recent kmap_atomic(), then preemption and page faults are on again.</summary>
    /// <exception cref="HighMemException">No kmap_atomic() outstanding, not the most recent mapping, or a kmap_local_page() one.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void UnmapAtomic(nint address)
    {
        var t = _threads.Value!;
        if (t.Atomic == 0) throw BadUnmap(t, address, atomic: true);
        if (IsLowmem(address))
        {
            // A lowmem kmap_atomic() has no stack entry; without one outstanding this would undo a HighMem one's
            // preempt_disable() and leave its entry on the stack for good.
            if (t.LowAtomic == 0) throw BadUnmap(t, address, atomic: true);
            t.LowAtomic--;
        }
        else
        {
            int d = t.Depth - 1;
            if (d >= 0 && t.Address[d] == (address & ~(nint)(PhysicalMemory.PageSize - 1)) && t.IsAtomic[d]) Pop(t, d);
            else UnmapOther(t, address, atomic: true);
        }
        t.Atomic--;
    }

    /// <summary>
    /// An address that is not the top of the stack: on arm a pkmap address this thread was served by kmap_high_get(), with
    /// the call that made it, drops its reference (kmap_high_unmap_local() or __kunmap_atomic(), then kunmap_high());
    /// anything else is refused with its report.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void UnmapOther(KmapThread t, nint address, bool atomic)
    {
        nint page = address & ~(nint)(PhysicalMemory.PageSize - 1);
        int found = ServedIndex(t, page, atomic);
        if (found < 0) throw BadUnmap(t, address, atomic);
        var (_, frame, _) = t.Served![found];
        if (!_pool.UnmapAddress(page, frame, out string problem))
        {
            string pfn = $"pfn 0x{_pa.BasePfn + (ulong)frame:x}";
            _pa.Bug("mm/highmem.c", $"{problem} ({pfn})");
            throw new HighMemException(HighMemError.NotMapped, $"{(atomic ? "kunmap_atomic" : "kunmap_local")}(0x{address:x}) of {pfn}: {problem}; nothing was unmapped");
        }
        t.Served.RemoveAt(found);
    }

    /// <summary>The most recent mapping served from the pool at <paramref name="page"/> made by the given call, or -1.</summary>
    private static int ServedIndex(KmapThread t, nint page, bool atomic)
    {
        var served = t.Served;
        if (served is null) return -1;
        for (int i = served.Count - 1; i >= 0; i--) if (served[i].Address == page && served[i].Atomic == atomic) return i;
        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pop(KmapThread t, int d)
    {
        int slot = t.Slot[d];
        if (slot >= 0) t.Use[slot]--;
        t.Depth = d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsLowmem(nint address) => (ulong)(address - _linear) < _linearBytes;

    // ================================================================== reports

    private HighMemException NotInRelease(string call)
    {
        string m = $"{call}() does not exist in Linux {_pa.Release}: it came with 5.11; use kmap_atomic() or kmap()";
        _pa.Log.Err($"kmem: {m}");
        return new HighMemException(HighMemError.NotInRelease, m);
    }

    private HighMemException Overflow(KmapThread t, bool atomic)
    {
        string where = _hasLocal ? "mm/highmem.c" : "include/linux/highmem.h";
        string fn = _hasLocal ? "kmap_local_idx_push" : "kmap_atomic_idx_push";
        string limit = _hasLocal ? "KM_MAX_IDX" : "KM_TYPE_NR";
        string what = $"{fn}: the thread already holds {t.Depth} {(atomic ? "kmap_atomic" : "kmap_local")} mappings, {limit} is {_maxDepth}";
        Bug(where, what + StackText(t));
        return new HighMemException(HighMemError.StackOverflow, what + "; nothing was mapped");
    }

    private HighMemException BadUnmap(KmapThread t, nint address, bool atomic)
    {
        string call = atomic ? "kunmap_atomic" : "kunmap_local";
        int d = t.Depth - 1;
        nint page = address & ~(nint)(PhysicalMemory.PageSize - 1);
        int at = -1;
        for (int i = d; i >= 0; i--) if (t.Address[i] == page) { at = i; break; }
        HighMemError error;
        string what;
        if (atomic && t.Atomic == 0)
        {
            error = HighMemError.Unbalanced;
            what = $"{call}(0x{address:x}) with no kmap_atomic() outstanding (preempt count underflow)";
        }
        else if (atomic && IsLowmem(address))
        {
            error = HighMemError.Unbalanced;
            what = $"{call}(0x{address:x}) of a lowmem address with no kmap_atomic() of a lowmem page outstanding: " +
                   (d >= 0 ? $"undo the most recent mapping, 0x{t.Address[d]:x}" : "the outstanding ones were served from pkmap slots: undo them by their addresses");
        }
        else if (ServedIndex(t, page, !atomic) >= 0)
        {
            error = HighMemError.Unbalanced;
            what = atomic
                ? $"kunmap_atomic(0x{address:x}) of a kmap_local_page() mapping: use kunmap_local()"
                : $"kunmap_local(0x{address:x}) of a kmap_atomic() mapping: use kunmap_atomic()";
        }
        else if (at < 0)
        {
            error = HighMemError.NotMapped;
            what = $"{call}(0x{address:x}): not an address this thread's {(atomic ? "kmap_atomic" : "kmap_local_page")}() returned (or it is unmapped already)";
        }
        else if (at != d)
        {
            error = HighMemError.OutOfOrder;
            what = $"{call}(0x{address:x}) out of order: it is entry {at} of {t.Depth}, the most recent is 0x{t.Address[d]:x}";
        }
        else
        {
            error = HighMemError.Unbalanced;
            what = t.IsAtomic[d]
                ? $"kunmap_local(0x{address:x}) of a kmap_atomic() mapping: use kunmap_atomic()"
                : $"kunmap_atomic(0x{address:x}) of a kmap_local_page() mapping: use kunmap_local()";
        }
        if (_hasLocal) _pa.Warn($"WARNING: CPU: {_pa.CurrentCpu()} PID: {Environment.CurrentManagedThreadId} at mm/highmem.c kunmap_local_indexed\n{what}{StackText(t)}");
        else Bug(_archFile, _archUnmap + ": " + what + StackText(t));
        return new HighMemException(error, what + "; nothing was unmapped");
    }

    private string StackText(KmapThread t)
    {
        if (t.Depth == 0) return "\nkmap stack: empty";
        var sb = new StringBuilder("\nkmap stack (most recent first):");
        for (int i = t.Depth - 1; i >= 0; i--)
        {
            int frame = t.Slot[i] >= 0 ? t.Frame[t.Slot[i]] : (int)((t.Address[i] - _linear) >> PhysicalMemory.PageShift);
            sb.Append($"\n  [{i}] 0x{t.Address[i]:x} pfn 0x{_pa.BasePfn + (ulong)frame:x} ({(t.IsAtomic[i] ? "kmap_atomic" : "kmap_local_page")})");
        }
        return sb.ToString();
    }

    private void Bug(string where, string what) => _pa.Bug(where, what);

    // ================================================================== teardown

    /// <summary>Unmaps every window (nothing may point into them any more: the finalizer's case).</summary>
    public void Dispose() => Release(retire: false);

    /// <summary>Replaces every window with harmless pages kept in quarantine.</summary>
    public void Retire() => Release(retire: true);

    private void Release(bool retire)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        nint[] chunks;
        lock (_all) chunks = [.. _chunks];
        foreach (var c in chunks)
        {
            if (retire) RetiredMappings.Retire(c, ChunkBytes, ChunkBytes);
            else Libc.Munmap(c, ChunkBytes);
        }
        if (!retire) _threads.Dispose();
    }
}
