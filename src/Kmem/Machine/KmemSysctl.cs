// Kmem's own knobs of a machine (machine.Sysctl.Kmem), which no kernel has under /proc/sys: how long the
// bounded waits of reclaim and cma_alloc last (the kernel waits on congestion or sleeps a fixed 100 ms), the
// dma-buf deferred-free worker's switch, and the dma-buf inode counter (the kernel's get_next_ino() is shared
// with every pseudo file, so replaying a dump needs to set it).
using Kmem.Core;
using Kmem.DmaHeaps;
using Kmem.Paging;

namespace Kmem;

/// <summary>
/// Kmem's own tunables, grouped under <c>kmem.*</c> keys in its reports; none is a kernel sysctl (each member says
/// what the kernel does instead). Every member throws <see cref="ObjectDisposedException"/> once the machine is disposed.
/// </summary>
public sealed class KmemSysctl
{
    /// <summary>The longest wait a retry knob takes.</summary>
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    private readonly PageAllocator _pages;
    private readonly CmaArea[] _cma;
    private readonly DeferredFree _deferredFree;
    private readonly DmaBufCore _dmaBufs;
    private readonly Highmem.PkmapPool _pkmap;
    private readonly Lock _cmaLock = new();
    private TimeSpan _cmaBusyRetryWait;

    internal KmemSysctl(PageAllocator pages, IEnumerable<CmaArea> cma, DeferredFree deferredFree, DmaBufCore dmaBufs, Highmem.PkmapPool pkmap)
    {
        _pkmap = pkmap;
        _pages = pages;
        _cma = [.. cma];
        _deferredFree = deferredFree;
        _dmaBufs = dmaBufs;
        _cmaBusyRetryWait = _cma.FirstOrDefault()?.BusyRetryWait ?? TimeSpan.FromMilliseconds(100);
    }

    private KernelLife Life => _pages.Life;

    /// <summary>
    /// <c>kmem.reclaim_retry_wait</c> (Kmem's; default 5 ms): how long a blocking allocation waits for memory to be freed
    /// between reclaim rounds (the kernel retries up to 16 rounds without progress, waiting on congestion; Kmem bounds
    /// each wait by this). Tests set it to zero.
    /// </summary>
    /// <exception cref="SysctlException">The value is negative or more than 10 s.</exception>
    public TimeSpan ReclaimRetryWait
    {
        get => Life.Live(_pages.ReclaimRetryWait);
        set
        {
            Life.ThrowIfDead();
            CheckWait("kmem.reclaim_retry_wait", value);
            _pages.ReclaimRetryWait = value;
        }
    }

    /// <summary>
    /// <c>kmem.cma_busy_retry_wait</c> (Kmem's; default 100 ms, what ACK 5.10's cma_alloc sleeps between its up to 5
    /// rescans after busy ranges): the wait of every CMA area of the machine. Tests set it to zero.
    /// </summary>
    /// <exception cref="SysctlException">The value is negative or more than 10 s.</exception>
    public TimeSpan CmaBusyRetryWait
    {
        get
        {
            Life.ThrowIfDead();
            lock (_cmaLock) return _cmaBusyRetryWait;
        }
        set
        {
            Life.ThrowIfDead();
            CheckWait("kmem.cma_busy_retry_wait", value);
            lock (_cmaLock)
            {
                _cmaBusyRetryWait = value;
                foreach (var c in _cma) c.BusyRetryWait = value;
            }
        }
    }

    /// <summary>
    /// <c>kmem.dmabuf_deferred_free_worker</c> (Kmem's; default true): whether the "dmabuf-deferred-free-worker" thread
    /// frees released heap buffers (the kernel's kthread always runs). Hold it (false) to watch the deferred-free list;
    /// the shrinker still frees the list under memory pressure.
    /// </summary>
    public bool DmaBufDeferredFreeWorker
    {
        get => Life.Live(_deferredFree.WorkerEnabled);
        set
        {
            Life.ThrowIfDead();
            _deferredFree.WorkerEnabled = value;
        }
    }

    /// <summary>
    /// <c>kmem.dmabuf_next_ino</c> (Kmem's): the inode number the next dma-buf gets. The kernel takes it from
    /// get_next_ino(), a counter shared with every pipe, socket and other pseudo file; Kmem keeps a counter per machine
    /// from 1, which a replayed dump sets to reproduce the dump's numbers.
    /// </summary>
    /// <exception cref="SysctlException">The value is above <see cref="long.MaxValue"/>.</exception>
    public ulong DmaBufNextIno
    {
        get => Life.Live(_dmaBufs.PeekIno);
        set
        {
            Life.ThrowIfDead();
            if (value > long.MaxValue)
                throw Sysctl.Refuse(_pages.Log, "kmem.dmabuf_next_ino", $"{value} is outside 0..{long.MaxValue}");
            _dmaBufs.SetNextIno(value);
        }
    }

    /// <summary>
    /// Advances <see cref="DmaBufNextIno"/> by <paramref name="count"/>: the inode numbers other pseudo files (pipes,
    /// sockets …) would have taken from the kernel's shared counter before the next dma-buf.
    /// </summary>
    /// <exception cref="SysctlException"><paramref name="count"/> is negative or would take the counter past <see cref="long.MaxValue"/>.</exception>
    public void DmaBufSkipInodes(long count)
    {
        Life.ThrowIfDead();
        if (count < 0 || (long)_dmaBufs.PeekIno > long.MaxValue - count)
            throw Sysctl.Refuse(_pages.Log, "kmem.dmabuf_next_ino", $"skipping {count} inode numbers from {_dmaBufs.PeekIno}: the counter must stay in 0..{long.MaxValue}");
        _dmaBufs.SkipInodes(count);
    }

    /// <summary>
    /// <c>kmem.hung_task_timeout</c> (the kernel's <c>kernel.hung_task_timeout_secs</c>; default 120 s,
    /// CONFIG_DEFAULT_HUNG_TASK_TIMEOUT): how long a task may sleep in kmap() waiting for a pkmap slot before the
    /// hung-task report ("INFO: task … blocked for more than N seconds.") is logged; it keeps waiting. Zero turns the
    /// report off, as writing 0 to the kernel's file does.
    /// </summary>
    /// <exception cref="SysctlException">The value is negative, more than a day, or not whole seconds (the kernel's knob counts seconds).</exception>
    public TimeSpan HungTaskTimeout
    {
        get => Life.Live(_pkmap.HungTaskTimeout);
        set
        {
            Life.ThrowIfDead();
            if (value < TimeSpan.Zero || value > TimeSpan.FromDays(1) || value.Ticks % TimeSpan.TicksPerSecond != 0)
                throw Sysctl.Refuse(_pages.Log, "kmem.hung_task_timeout", FormattableString.Invariant($"{value.TotalSeconds} s is not a whole number of seconds in 0..86400"));
            _pkmap.HungTaskTimeout = value;
        }
    }

    private void CheckWait(string key, TimeSpan value)
    {
        if (value < TimeSpan.Zero || value > MaxWait)
            throw Sysctl.Refuse(_pages.Log, key, FormattableString.Invariant($"{value.TotalMilliseconds} ms is outside 0..{MaxWait.TotalMilliseconds} ms"));
    }
}
