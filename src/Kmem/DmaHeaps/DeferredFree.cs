// The dma-buf heaps' deferred-free helper (ACK 5.10 deferred-free-helper.c): released buffers wait on one
// list (added at the head, freed from the head: LIFO) for a background worker thread,
// "dmabuf-deferred-free-worker", which frees them one at a time in the normal way (zeroed, back to the
// page pools); under memory pressure its shrinker frees them straight to the page allocator. A free that
// throws on the worker is reported and the worker goes on: nothing may end the thread.
using Kmem.Core;

namespace Kmem.DmaHeaps;

/// <summary>How a deferred buffer is freed.</summary>
internal enum DeferredFreeReason
{
    /// <summary>DF_NORMAL: by the worker; pages are zeroed and go back to the pools.</summary>
    Normal,
    /// <summary>DF_UNDER_PRESSURE: by the shrinker; pages go straight back to the page allocator.</summary>
    UnderPressure,
}

/// <summary>The deferred-free list and its worker thread.</summary>
internal sealed class DeferredFree : IDisposable
{
    private sealed record Item(Action<DeferredFreeReason> Free, long Pages);

    private readonly LinkedList<Item> _list = [];
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _work = new(0);
    private readonly ManualResetEventSlim _idle = new(true);
    private readonly Thread _worker;
    private long _pages;
    private volatile bool _stop;
    private int _busy;
    private readonly KernelLog? _log;

    /// <summary>The machine's life, held weakly: the worker thread must not keep a machine nobody holds alive.</summary>
    private readonly WeakReference<KernelLife> _life;

    public DeferredFree(string machineName, KernelLife life, KernelLog? log = null)
    {
        _life = new(life);
        _log = log;
        _worker = new Thread(Run) { IsBackground = true, Name = "dmabuf-deferred-free-worker", Priority = ThreadPriority.BelowNormal };
        _worker.Start();
        MachineName = machineName;
    }

    public string MachineName { get; }

    /// <summary>list_nr_pages: pages waiting.</summary>
    public long Pages { get { lock (_lock) return _pages; } }

    /// <summary>When false, the worker waits (a test or a user may hold it to see the list); the shrinker still runs.</summary>
    public bool WorkerEnabled { get; set; } = true;

    /// <summary>deferred_free(): adds the item at the head of the list and wakes the worker.</summary>
    public void Add(Action<DeferredFreeReason> free, long pages)
    {
        lock (_lock)
        {
            _list.AddFirst(new Item(free, pages));
            _pages += pages;
            _idle.Reset();
        }
        _work.Release();
    }

    /// <summary>Takes the first item, or null.</summary>
    private Item? Take()
    {
        lock (_lock)
        {
            var first = _list.First;
            if (first is null) return null;
            _list.RemoveFirst();
            _pages -= first.Value.Pages;
            _busy++;
            return first.Value;
        }
    }

    private void Done()
    {
        lock (_lock)
        {
            _busy--;
            if (_list.Count == 0 && _busy == 0) _idle.Set();
        }
    }

    private void Run()
    {
        while (!_stop)
        {
            _work.Wait(100);
            if (_stop) break;
            if (!FreeAvailable()) return;
        }
    }

    /// <summary>
    /// Frees what is on the list; false when the machine went away under the worker. A method of its own so that no
    /// item stays referenced from the waiting worker's stack (that would keep a machine nobody holds alive).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private bool FreeAvailable()
    {
        while (WorkerEnabled && !_stop)
        {
            // Each free is a counted call: the machine's shutdown waits for it, and none starts once it is dead.
            if (!_life.TryGetTarget(out var owner) || !owner.TryEnter(out var life)) return false;
            using var _ = life;
            if (Take() is not { } item) break;
            try { item.Free(DeferredFreeReason.Normal); }
            catch (ObjectDisposedException) { return false; }   // the machine went away under the worker
            catch (Exception e)
            {
                // The kernel's worker cannot fail; here a free that throws is reported and the next one runs.
                _log?.Warn($"WARNING: dmabuf-deferred-free-worker: freeing a buffer of {item.Pages} pages threw {e.GetType().Name}: {e.Message}");
            }
            finally { Done(); }
        }
        return true;
    }

    /// <summary>The shrinker's scan: frees whole items under pressure until <paramref name="nrToScan"/> pages are freed.</summary>
    public long ShrinkUnderPressure(long nrToScan)
    {
        long freed = 0;
        while (freed < nrToScan && Take() is { } item)
        {
            try { item.Free(DeferredFreeReason.UnderPressure); }
            finally { Done(); }
            freed += item.Pages;
        }
        return freed;
    }

    /// <summary>Waits until the list is empty and no free is running (false on timeout).</summary>
    public bool WaitIdle(TimeSpan timeout)
    {
        _work.Release();
        return _idle.Wait(timeout);
    }

    /// <summary>
    /// Stops the worker (machine shutdown). What is left on the list is dropped, not freed: the whole memory goes away
    /// with the machine, and the page allocator no longer takes calls.
    /// </summary>
    public void Dispose()
    {
        _stop = true;
        _work.Release();
        if (Thread.CurrentThread != _worker) _worker.Join(TimeSpan.FromSeconds(5));
        lock (_lock)
        {
            _list.Clear();
            _pages = 0;
            if (_busy == 0) _idle.Set();
        }
    }
}
