// mempool (Linux 5.10 mm/mempool.c): a reserve of pre-allocated elements that guarantees forward
// progress. Alloc tries the underlying allocator without direct reclaim or I/O, then the reserve, then
// the allocator with the caller's full flags, and a caller that may sleep waits (5 s at a time, woken
// by Free) and starts over, so a blocking Alloc never fails. Free refills the reserve first.
// The alloc and free functions are the caller's: when one throws, the pool's reserve and counters stay
// exact and the exception reaches the caller, except in Destroy, which reports it and goes on.
using System.Runtime.ExceptionServices;
using Kmem.Core;

namespace Kmem;

/// <summary>A memory pool with a guaranteed reserve (<c>mempool_t</c>). Create one with <see cref="Machine.MempoolCreate"/>.</summary>
public sealed class Mempool
{
    private readonly KernelLog _log;
    private readonly KernelLife _life;
    private readonly Func<Gfp, nint> _alloc;
    private readonly Action<nint> _free;
    private readonly object _lock = new();
    private nint[] _elements;
    private int _currNr;
    private long _outstanding;
    private bool _destroyed;

    /// <summary>How long a blocked Alloc sleeps before trying again (the kernel's io_schedule_timeout(5*HZ)).</summary>
    public static readonly TimeSpan WaitTimeout = TimeSpan.FromSeconds(5);

    internal Mempool(string name, int minNr, Func<Gfp, nint> alloc, Action<nint> free, KernelLog log, KernelLife life)
    {
        _life = life;
        Name = name;
        MinNr = minNr;
        _alloc = alloc;
        _free = free;
        _log = log;
        _elements = new nint[minNr];
    }

    /// <summary>
    /// mempool_init(): fills the reserve with GFP_KERNEL; false (everything given back) when that fails. When the
    /// alloc function throws, what was filled is given back too and the exception reaches the caller.
    /// </summary>
    internal bool Fill()
    {
        while (_currNr < MinNr)
        {
            nint e;
            try
            {
                e = _alloc(Gfp.Kernel);
            }
            catch (Exception ex)
            {
                _log.Err($"mempool_create {Name}: the alloc function threw {ex.GetType().Name}: {ex.Message}; the pool was not created");
                FreeReserve("mempool_create");
                throw;
            }
            if (e == 0)
            {
                FreeReserve("mempool_create");
                return false;
            }
            _elements[_currNr++] = e;
        }
        return true;
    }

    /// <summary>
    /// Gives the reserve above <paramref name="keep"/> back to the free function. Every element is offered even when
    /// the function throws for some (each of those is reported); the first exception is returned.
    /// </summary>
    private ExceptionDispatchInfo? FreeReserve(string what, int keep = 0)
    {
        ExceptionDispatchInfo? first = null;
        while (_currNr > keep)
        {
            nint e = _elements[--_currNr];
            _elements[_currNr] = 0;
            try
            {
                _free(e);
            }
            catch (Exception ex)
            {
                ReportFreeFailure(what, e, ex);
                first ??= ExceptionDispatchInfo.Capture(ex);
            }
        }
        return first;
    }

    private void ReportFreeFailure(string what, nint element, Exception ex) =>
        _log.Warn($"WARNING: {what} {Name}: the free function threw {ex.GetType().Name} for element 0x{element:x}: {ex.Message}; " +
                  "the element is no longer the pool's");

    /// <summary>A name for reports.</summary>
    public string Name { get; }

    /// <summary><c>min_nr</c>: the reserve's size.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member but <see cref="Name"/>).</exception>
    public int MinNr { get { _life.ThrowIfDead(); return field; } private set; }

    /// <summary><c>curr_nr</c>: elements in the reserve now.</summary>
    public int CurrNr { get { _life.ThrowIfDead(); LockOrder.Enter(LockRank.Mempool, _lock); lock (_lock) return _currNr; } }

    /// <summary>Elements handed out and not yet freed.</summary>
    public long Outstanding { get { _life.ThrowIfDead(); return Volatile.Read(ref _outstanding); } }

    /// <summary>Blocked allocations so far (each waited for a Free or the timeout).</summary>
    public long Waits { get { _life.ThrowIfDead(); return Volatile.Read(ref _waits); } }
    private long _waits;

    /// <summary>
    /// mempool_alloc(): an element, or 0 only when the caller may not sleep (no <see cref="Gfp.DirectReclaim"/>)
    /// and neither the allocator nor the reserve has one. An exception of the alloc function reaches the caller
    /// with the pool unchanged.
    /// </summary>
    public nint Alloc(Gfp gfp)
    {
        ThrowIfDestroyed();
        if ((gfp & Gfp.Zero) != 0)
            _log.Warn($"WARNING: mempool_alloc({Name}): __GFP_ZERO is not supported by mempools (VM_WARN_ON_ONCE)");
        gfp |= Gfp.NoMemalloc | Gfp.NoRetry | Gfp.NoWarn;
        Gfp gfpTemp = gfp & ~(Gfp.DirectReclaim | Gfp.Io);
        while (true)
        {
            nint e = Call(_alloc, gfpTemp);
            if (e != 0) return Out(e);
            LockOrder.Enter(LockRank.Mempool, _lock);
            lock (_lock)
            {
                if (_currNr > 0)
                {
                    e = _elements[--_currNr];
                    _elements[_currNr] = 0;
                    return Out(e);
                }
                if (gfpTemp != gfp)
                {
                    // The reserve is empty: retry the allocator at once with the full mask.
                    gfpTemp = gfp;
                    continue;
                }
                if ((gfp & Gfp.DirectReclaim) == 0) return 0;
                // Sleep until a Free refills the reserve (or the timeout), then start over. The sleep is cut in slices
                // so that a waiter sees its machine's shutdown (ObjectDisposedException) instead of sleeping on.
                Interlocked.Increment(ref _waits);
                long until = Environment.TickCount64 + (long)WaitTimeout.TotalMilliseconds;
                while (!_life.IsDead && !_destroyed && !Monitor.Wait(_lock, 50) && Environment.TickCount64 < until) { }
            }
            ThrowIfDestroyed();
        }
    }

    /// <summary>
    /// The underlying allocator's call, counted in (the machine's shutdown waits for it; the wait for a Free is not
    /// counted, so a blocked Alloc never holds the shutdown up).
    /// </summary>
    private nint Call(Func<Gfp, nint> alloc, Gfp gfp)
    {
        using var life = _life.Enter();
        return alloc(gfp);
    }

    private void Call(Action<nint> free, nint e)
    {
        using var life = _life.Enter();
        free(e);
    }

    private nint Out(nint e)
    {
        Interlocked.Increment(ref _outstanding);
        return e;
    }

    /// <summary>
    /// mempool_free(): the reserve is refilled first (waking a blocked Alloc); otherwise the element goes back to the
    /// allocator. When the free function throws, the element still counts as given back and the exception reaches the caller.
    /// </summary>
    public void Free(nint element)
    {
        _life.ThrowIfDead();
        if (element == 0) return;
        ThrowIfDestroyed();
        Interlocked.Decrement(ref _outstanding);
        if (Volatile.Read(ref _currNr) < MinNr)
        {
            LockOrder.Enter(LockRank.Mempool, _lock);
            lock (_lock)
            {
                if (_currNr < MinNr)
                {
                    _elements[_currNr++] = element;
                    Monitor.PulseAll(_lock);
                    return;
                }
            }
        }
        Call(_free, element);
    }

    /// <summary>
    /// mempool_resize(): shrinking frees the surplus; growing refills with GFP_KERNEL (a failed refill is not an error).
    /// The pool takes its new size even when a function throws: a shrink offers every surplus element to the free
    /// function and then rethrows the first exception; a grow stops refilling and the exception reaches the caller.
    /// </summary>
    public void Resize(int newMinNr)
    {
        using var life = _life.Enter();
        ThrowIfDestroyed();
        ArgumentOutOfRangeException.ThrowIfLessThan(newMinNr, 1);
        LockOrder.Enter(LockRank.Mempool, _lock);
        lock (_lock)
        {
            if (newMinNr <= MinNr)
            {
                var failed = FreeReserve("mempool_resize", newMinNr);
                MinNr = newMinNr;
                failed?.Throw();
                return;
            }
            Array.Resize(ref _elements, newMinNr);
            MinNr = newMinNr;
        }
        while (true)
        {
            nint e = _alloc(Gfp.Kernel);
            if (e == 0) return;
            LockOrder.Enter(LockRank.Mempool, _lock);
            lock (_lock)
            {
                if (_currNr < MinNr)
                {
                    _elements[_currNr++] = e;
                    Monitor.PulseAll(_lock);
                    continue;
                }
            }
            _free(e);
            return;
        }
    }

    /// <summary>
    /// mempool_destroy(): frees the reserve. With elements still out it is an error: reported in the log,
    /// <see cref="SlabException"/> (<see cref="SlabError.Misuse"/>) is raised and the pool stays usable. A free
    /// function that throws here is reported as a warning and the destroy goes on (mempool_destroy cannot fail).
    /// </summary>
    public void Destroy()
    {
        using var life = _life.Enter();
        LockOrder.Enter(LockRank.Mempool, _lock);
        lock (_lock)
        {
            if (_destroyed) return;
            long out_ = Outstanding;
            if (out_ > 0)
            {
                _log.Err($"mempool_destroy {Name}: {out_} element(s) still in use; the pool was not destroyed");
                throw new SlabException(SlabError.Misuse, Name, 0, $"mempool_destroy {Name}: {out_} element(s) are still in use");
            }
            FreeReserve("mempool_destroy");
            _destroyed = true;
            Monitor.PulseAll(_lock);
        }
    }

    private void ThrowIfDestroyed()
    {
        _life.ThrowIfDead();
        if (_destroyed) throw new ObjectDisposedException(nameof(Mempool), $"the mempool {Name} has been destroyed");
    }
}
