// The machine's DMA-BUF entry points: the heaps by name (/dev/dma_heap), Rockchip's RK-DMA-HEAP, the
// descriptor table, the live buffers, and waiting for the deferred-free worker (its switch is in Sysctl.Kmem).
using Kmem.Diagnostics;
using Kmem.DmaHeaps;
using Kmem.Physical;

namespace Kmem;

public sealed partial class Machine
{
    private DmaBufCore _dmaBufs = null!;
    private DeferredFree _deferredFree = null!;
    private PagePool[] _heapPools = [];
    private Dictionary<string, DmaHeap> _heaps = [];
    private Dictionary<string, RkDmaHeap> _rkHeaps = [];

    /// <summary>The DMA-BUF heaps by name: <c>system</c>, <c>system-uncached</c> and a CMA heap for the default area.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every DMA-BUF member of the machine).</exception>
    public IReadOnlyDictionary<string, DmaHeap> DmaHeaps
    {
        get
        {
            ThrowIfDisposed();
            return _heaps;
        }
    }

    /// <summary>Rockchip RK-DMA-HEAP heaps by name (<c>rk-dma-heap-cma</c> on boards that declare that CMA area).</summary>
    public IReadOnlyDictionary<string, RkDmaHeap> RkDmaHeaps
    {
        get
        {
            ThrowIfDisposed();
            return _rkHeaps;
        }
    }

    /// <summary>rk_dma_heap_find(): the RK heap of that name, or null.</summary>
    public RkDmaHeap? RkDmaHeapFind(string name)
    {
        ThrowIfDisposed();
        return _rkHeaps.GetValueOrDefault(name);
    }

    /// <summary>The descriptor table user space holds dma-bufs through (DMA_HEAP_IOCTL_ALLOC's fds).</summary>
    public DmaBufFdTable DmaBufFds
    {
        get
        {
            ThrowIfDisposed();
            return _dmaBufs.Fds;
        }
    }

    /// <summary>Every live dma-buf, newest first (the list bufinfo walks).</summary>
    public IReadOnlyList<DmaBuf> DmaBufs
    {
        get
        {
            ThrowIfDisposed();
            return _dmaBufs.Buffers();
        }
    }

    /// <summary>Pages waiting on the dma-buf heaps' deferred-free list.</summary>
    public long DmaBufDeferredPages
    {
        get
        {
            ThrowIfDisposed();
            return _deferredFree.Pages;
        }
    }

    /// <summary>Waits until the deferred-free worker has freed every released buffer (false on timeout).</summary>
    public bool DmaBufWaitDeferredFree(TimeSpan timeout)
    {
        ThrowIfDisposed();
        return _deferredFree.WaitIdle(timeout);
    }

    /// <summary>Frees every deferred buffer at once, straight to the page allocator (what the shrinker does under pressure).</summary>
    internal long DmaBufFreeDeferredUnderPressure() => _deferredFree.ShrinkUnderPressure(long.MaxValue);

    /// <summary>Builds the dma-buf core, the heaps, their pools, the deferred-free worker, shrinkers and views.</summary>
    private void InitDmaBuf(MachineProfile profile)
    {
        _dmaBufs = new DmaBufCore(Pages, Dma, _vmalloc, Id, firstIno: 1) { Version = profile.Version };
        foreach (var d in Devices.Values) d.Life = Life;             // the devices were made before the DMA layers
        _deferredFree = new DeferredFree(profile.Name, Life, Log);
        _heapPools = [.. SystemHeap.Orders.Select(o => new PagePool(Pages, o > 0 ? SystemHeap.HighOrderGfp : SystemHeap.LowOrderGfp, o))];
        var heaps = new Dictionary<string, DmaHeap>
        {
            ["system"] = new SystemHeap("system", _dmaBufs, _heapPools, _deferredFree, uncached: false),
            ["system-uncached"] = new SystemHeap("system-uncached", _dmaBufs, _heapPools, _deferredFree, uncached: true),
        };
        if (Cma.GetValueOrDefault("reserved") is { } def) heaps[def.Name] = new CmaHeap(_dmaBufs, def);
        _heaps = heaps;
        _rkHeaps = Cma.Values.Where(c => c.Name == "rk-dma-heap-cma").ToDictionary(c => c.Name, c => new RkDmaHeap(_dmaBufs, c));
        Pages.RegisterShrinker(new PagePoolShrinker(_heapPools));
        Pages.RegisterShrinker(new DeferredFreeShrinker(_deferredFree));
        DmaBufViews.Register(ProcFs, _dmaBufs, _heaps.Values, _rkHeaps.Values, profile.Is64Bit ? 16 : 8);
    }

    /// <summary>
    /// Machine shutdown of the layers above the slab (Dispose calls it once the machine is marked dead): the counted
    /// calls in flight are waited for, the RTnet stack's pools are closed to their real-time paths, and the deferred-free
    /// worker stops. Nothing is given back to the page allocator: the whole memory goes away next.
    /// </summary>
    private void ShutdownDmaBuf()
    {
        // The pools' pages and the deferred buffers go away with the machine's memory: nothing is freed one by one.
        Life.WaitUntilQuiet();
        ShutdownRtnet();
        _deferredFree?.Dispose();
    }
}
