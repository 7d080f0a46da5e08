// The persistent kmap pool (mm/highmem.c: kmap_high, map_new_virtual, flush_all_zero_pkmaps, kunmap_high):
// LAST_PKMAP slots of a reserved window, each a real remapping of one HighMem frame of the machine's
// memfd, with the kernel's reference counts (0 free, 1 mapped but unused, n+1 for n users), its lazy
// unmapping (a slot whose count falls to 1 keeps its mapping until the pool wraps around and flushes), the
// page → address table page_address() reads, and the sleep when every slot is in use.
using System.Runtime.InteropServices;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Highmem;

/// <summary>
/// The state of the pool at one moment (what <c>/sys/kernel/debug/kmem/pkmap</c> prints). <see cref="Maps"/> counts
/// kmap() calls (<see cref="Hits"/> of them found the page's slot); <see cref="HighGets"/> the references arm's
/// kmap_atomic()/kmap_local_page() took on a slot instead (kmap_high_get()).
/// </summary>
internal readonly record struct PkmapState(int Slots, int Free, int Unused, int InUse, long Users, int LastPkmapNr,
    long Maps, long Hits, long NewMappings, long Flushes, long Unmapped, long Sleeps, int SleepingNow, long HighGets);

internal sealed unsafe class PkmapPool : IDisposable
{
    private readonly PageAllocator _pa;
    private readonly int _fd;
    private readonly int _slots;
    private long _hungTaskTimeoutTicks;
    /// <summary>pkmap_count[]: 0 free, 1 mapped but unused (flushed when the pool wraps), n+1 for n users.</summary>
    private readonly int[] _count;
    /// <summary>The frame mapped at each slot, or -1.</summary>
    private readonly int[] _frame;
    /// <summary>page_address_htable: the slot of each mapped frame (capacity fixed at LAST_PKMAP: adding allocates nothing).</summary>
    private readonly Dictionary<int, int> _slotOf;
    /// <summary>
    /// With kmap_high_get() (arm): one bit a HighMem frame (from <see cref="_highStart"/>), set while it has a slot, a
    /// lock-free "maybe" for <see cref="TryGet"/>'s callers; empty otherwise.
    /// </summary>
    private readonly int[] _hasSlot;
    private readonly int _highStart;
    /// <summary>kmap_lock (a spinlock in the kernel; sleepers wait on pkmap_map_wait, here the monitor of this object).</summary>
    private readonly object _lock = new();
    private readonly nint _window;
    private readonly bool _native;
    private int _lastPkmapNr;
    private int _sleeping;
    private long _maps, _hits, _newMappings, _flushes, _unmapped, _sleeps, _highGets;
    private volatile bool _dead;
    private int _released;

    public PkmapPool(PageAllocator pa, HighmemSettings settings)
    {
        _pa = pa;
        _fd = settings.Fd;
        _slots = settings.LastPkmap;
        _hungTaskTimeoutTicks = settings.HungTaskTimeout.Ticks;
        _count = new int[_slots];
        _frame = new int[_slots];
        Array.Fill(_frame, -1);
        _slotOf = new Dictionary<int, int>(_slots);
        _highStart = pa.HighStartIdx;
        _hasSlot = settings.KmapHighGet && _fd >= 0 && _highStart != int.MaxValue ? new int[(pa.Frames.Count - _highStart + 31) / 32] : [];
        if (_fd >= 0)
        {
            // The window: LAST_PKMAP pages of address space, reserved and inaccessible until a slot is mapped.
            _window = FrameMappings.Reserve((nuint)_slots << PhysicalMemory.PageShift);
            if (_window == 0) throw new OutOfMemoryException($"pkmap: cannot reserve {_slots} pages of address space");
        }
        else
        {
            _native = true;   // no memfd: a slot's address is the frame's own (nothing can be mapped twice)
        }
    }

    /// <summary>How long a sleeper waits before the hung-task report (zero: never reported).</summary>
    public TimeSpan HungTaskTimeout
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _hungTaskTimeoutTicks));
        set => Interlocked.Exchange(ref _hungTaskTimeoutTicks, value.Ticks);
    }

    /// <summary>LAST_PKMAP.</summary>
    public int Slots => _slots;

    /// <summary>The address of slot <paramref name="nr"/> (PKMAP_ADDR).</summary>
    private nint SlotAddress(int nr) => _window + ((nint)nr << PhysicalMemory.PageShift);

    /// <summary>
    /// kmap_high(): the frame's address in the pool, mapping it into a free slot when it has none (flushing the unused
    /// slots when the search wraps, sleeping while every slot is in use). Takes one reference on the slot.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The machine is shut down (or shuts down while the caller sleeps).</exception>
    public nint Map(int idx)
    {
        // Counted in the machine's life: the memfd stays open until the mapping is made, and shutdown waits for this call
        // (it wakes a sleeper first, which then fails).
        using var life = _pa.Life.Enter();
        lock (_lock)
        {
            if (_dead) throw KernelLife.Dead();
            _maps++;
            if (!_slotOf.TryGetValue(idx, out int nr))
            {
                nr = MapNewVirtual(idx);
                if (nr < 0)
                {
                    // Another thread mapped it while this one slept.
                    nr = _slotOf[idx];
                    _hits++;
                }
            }
            else _hits++;
            // pkmap_count[nr]++: a fresh slot goes 1 → 2; BUG_ON(pkmap_count[nr] < 2) in the kernel.
            _count[nr]++;
            return _native ? _pa.IdxToVirt(idx) : SlotAddress(nr);
        }
    }

    /// <summary>map_new_virtual(): a free slot for <paramref name="idx"/>; -1 when another thread mapped the page meanwhile.</summary>
    private int MapNewVirtual(int idx)
    {
        DateTime? since = null;
        bool reported = false;
        while (true)
        {
            int count = _slots;
            while (true)
            {
                _lastPkmapNr = (_lastPkmapNr + 1) & (_slots - 1);
                if (_lastPkmapNr == 0)
                {
                    FlushAllZeroPkmaps();
                    count = _slots;
                }
                if (_count[_lastPkmapNr] == 0) break;
                if (--count == 0) break;
            }
            if (count > 0) break;
            // Every slot is in use: sleep on pkmap_map_wait until kunmap() wakes us, then look again.
            _sleeps++;
            _sleeping++;
            try
            {
                since ??= DateTime.UtcNow;
                // Until kunmap() pulses; the timed waits only look for shutdown and the hung-task deadline.
                while (!Monitor.Wait(_lock, TimeSpan.FromMilliseconds(50)))
                {
                    if (_dead) throw KernelLife.Dead();
                    var timeout = HungTaskTimeout;
                    if (reported || timeout <= TimeSpan.Zero || DateTime.UtcNow - since.Value < timeout) continue;
                    reported = true;
                    _pa.Log.Err($"INFO: task {PageAllocator.TaskName()}:{Environment.CurrentManagedThreadId} blocked for more than " +
                        $"{(int)timeout.TotalSeconds} seconds.\n" +
                        $"      {_pa.PrintTainted()} {_pa.Release} #1\n" +
                        "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n" +
                        $"task: waiting in kmap_high: all {_slots} pkmap slots are in use");
                }
                if (_dead) throw KernelLife.Dead();
            }
            finally { _sleeping--; }
            if (_slotOf.ContainsKey(idx)) return -1;
        }
        int nr = _lastPkmapNr;
        MapSlot(nr, idx);
        _count[nr] = 1;
        _frame[nr] = idx;
        _slotOf[idx] = nr;
        if (_hasSlot.Length > 0) Interlocked.Or(ref _hasSlot[(idx - _highStart) >> 5], 1 << ((idx - _highStart) & 31));
        _newMappings++;
        return nr;
    }

    private void MapSlot(int nr, int idx)
    {
        if (_native) return;
        if (!FrameMappings.MapFrames(SlotAddress(nr), _fd, idx, 1))
            throw new OutOfMemoryException($"pkmap: cannot map pfn 0x{_pa.BasePfn + (ulong)idx:x} at slot {nr}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>
    /// flush_all_zero_pkmaps(): every slot with count 1 (mapped, no user) is unmapped and freed; its page no longer has
    /// an address. A stale pointer into a flushed slot reaches a harmless page, not the frame.
    /// </summary>
    private void FlushAllZeroPkmaps()
    {
        _flushes++;
        int i = 0;
        while (i < _slots)
        {
            if (_count[i] != 1) { i++; continue; }
            int run = 0;
            while (i + run < _slots && _count[i + run] == 1)
            {
                int nr = i + run;
                _count[nr] = 0;
                _slotOf.Remove(_frame[nr]);
                if (_hasSlot.Length > 0) Interlocked.And(ref _hasSlot[(_frame[nr] - _highStart) >> 5], ~(1 << ((_frame[nr] - _highStart) & 31)));
                _frame[nr] = -1;
                _unmapped++;
                run++;
            }
            if (!_native && !RetiredMappings.MakeHarmless(SlotAddress(i), (nuint)run << PhysicalMemory.PageShift))
                _pa.Log.Err($"pkmap: cannot unmap slots {i}..{i + run - 1}: errno {Marshal.GetLastPInvokeError()}");
            i += run;
        }
    }

    /// <summary>
    /// kunmap_high(): drops one reference; the last user leaves the slot mapped but unused (count 1) and wakes the
    /// sleepers. False (nothing changed) when the page has no pool address or no user: the kernel's BUG.
    /// </summary>
    public bool Unmap(int idx, out string problem)
    {
        lock (_lock)
        {
            if (!_slotOf.TryGetValue(idx, out int nr))
            {
                problem = "kunmap_high: the page has no pkmap address (BUG_ON(!vaddr)): it was not kmap()ed, or it was kunmap()ed and flushed";
                return false;
            }
            if (_count[nr] <= 1)
            {
                problem = $"kunmap_high: pkmap slot {nr} has no user left (pkmap_count would drop to 0): more kunmap() than kmap()";
                return false;
            }
            if (--_count[nr] == 1 && _sleeping > 0) Monitor.PulseAll(_lock);
            problem = "";
            return true;
        }
    }

    /// <summary>True when the frame may have a slot (exact under the lock; a clear bit means no slot).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool MaybeMapped(int idx) => (Volatile.Read(ref _hasSlot[(idx - _highStart) >> 5]) & (1 << ((idx - _highStart) & 31))) != 0;

    /// <summary>
    /// kmap_high_get(): when the frame has a slot (in use or lazily kept), one more reference on it and its address;
    /// else false and nothing changes.
    /// </summary>
    public bool TryGet(int idx, out nint address)
    {
        lock (_lock)
        {
            if (!_slotOf.TryGetValue(idx, out int nr)) { address = 0; return false; }
            _highGets++;
            _count[nr]++;
            address = _native ? _pa.IdxToVirt(idx) : SlotAddress(nr);
            return true;
        }
    }

    /// <summary>
    /// kmap_high_unmap_local(): drops one reference of the slot at <paramref name="address"/> (kunmap_high() of the page
    /// the slot shows), under one hold of the lock; false (nothing changed) when the slot has no user left.
    /// </summary>
    public bool UnmapAddress(nint address, int frame, out string problem)
    {
        int nr = (int)((address - _window) >> PhysicalMemory.PageShift);
        lock (_lock)
        {
            if (_frame[nr] != frame || _count[nr] <= 1)
            {
                problem = _frame[nr] != frame
                    ? $"kunmap_high: pkmap slot {nr} no longer shows this page: its references were dropped (by kunmap()) and the slot flushed"
                    : $"kunmap_high: pkmap slot {nr} has no user left (pkmap_count would drop to 0): it was unmapped already";
                return false;
            }
            if (--_count[nr] == 1 && _sleeping > 0) Monitor.PulseAll(_lock);
            problem = "";
            return true;
        }
    }

    /// <summary>kunmap_high(): <see cref="Unmap"/>, or the kernel's BUG report and a refusal (nothing changed).</summary>
    /// <exception cref="HighMemException">The frame has no slot or no user left.</exception>
    public void Kunmap(int idx)
    {
        if (Unmap(idx, out string problem)) return;
        string pfn = $"pfn 0x{_pa.BasePfn + (ulong)idx:x}";
        _pa.Bug("mm/highmem.c", $"{problem} ({pfn})");
        throw new HighMemException(HighMemError.NotMapped, $"kunmap({pfn}): {problem}; nothing was unmapped");
    }

    /// <summary>page_address() of a HighMem frame: its pool address while it has a slot (used or lazily kept), else 0.</summary>
    public nint AddressOf(int idx)
    {
        lock (_lock) return _slotOf.TryGetValue(idx, out int nr) ? (_native ? _pa.IdxToVirt(idx) : SlotAddress(nr)) : 0;
    }

    /// <summary>The frame whose pool mapping holds <paramref name="address"/>, or -1 (a slot with no user counts too).</summary>
    public int FrameAt(nint address)
    {
        if (_native) return -1;
        nint off = address - _window;
        if (off < 0 || off >= ((nint)_slots << PhysicalMemory.PageShift)) return -1;
        lock (_lock) return _frame[(int)(off >> PhysicalMemory.PageShift)];
    }

    /// <summary>True if the address lies in the pool's window.</summary>
    public bool Contains(nint address) => !_native && address - _window >= 0 && address - _window < ((nint)_slots << PhysicalMemory.PageShift);

    /// <summary>The users of the frame's slot (pkmap_count - 1), 0 when it has none or no slot.</summary>
    public int Users(int idx)
    {
        lock (_lock) return _slotOf.TryGetValue(idx, out int nr) ? _count[nr] - 1 : 0;
    }

    /// <summary>The pool's counters at one moment.</summary>
    public PkmapState State()
    {
        lock (_lock)
        {
            int free = 0, unused = 0, inUse = 0;
            long users = 0;
            foreach (int c in _count)
            {
                if (c == 0) free++;
                else if (c == 1) unused++;
                else { inUse++; users += c - 1; }
            }
            return new PkmapState(_slots, free, unused, inUse, users, _lastPkmapNr, _maps, _hits, _newMappings, _flushes, _unmapped, _sleeps, _sleeping, _highGets);
        }
    }

    /// <summary>Wakes every sleeper (they fail: the machine is going) and stops new mappings.</summary>
    public void BeginShutdown()
    {
        _dead = true;
        lock (_lock) Monitor.PulseAll(_lock);
    }

    /// <summary>Unmaps the window (nothing may point into it any more: the finalizer's case).</summary>
    public void Dispose() => Release(retire: false);

    /// <summary>Replaces the window with harmless pages kept in quarantine (a pointer still held reads zeros).</summary>
    public void Retire() => Release(retire: true);

    private void Release(bool retire)
    {
        _dead = true;
        if (_native || _window == 0 || Interlocked.Exchange(ref _released, 1) != 0) return;
        nuint size = (nuint)_slots << PhysicalMemory.PageShift;
        if (retire) RetiredMappings.Retire(_window, size, size);
        else Libc.Munmap(_window, size);
    }
}
