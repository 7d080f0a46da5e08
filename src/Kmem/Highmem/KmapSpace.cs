// The kmap layer's entry: kmap()/kunmap() over the persistent pool, kmap_local/kmap_atomic over the
// threads' stacks, and page_address() for every frame (the linear address, or a HighMem frame's pool
// address while it has one). Lowmem pages cost nothing anywhere, as in the kernel.
using System.Runtime.CompilerServices;
using System.Text;
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Highmem;

internal sealed class KmapSpace : IDisposable
{
    private readonly PageAllocator _pa;

    public KmapSpace(PageAllocator pa, HighmemSettings settings, string archFile)
    {
        _pa = pa;
        Settings = settings;
        Pool = new PkmapPool(pa, settings);
        Local = new KmapLocal(pa, Pool, settings, archFile);
    }

    public HighmemSettings Settings { get; }

    /// <summary>The persistent kmap pool (LAST_PKMAP slots).</summary>
    public PkmapPool Pool { get; }

    /// <summary>The threads' kmap_local/kmap_atomic stacks.</summary>
    public KmapLocal Local { get; }

    /// <summary>True when the machine has HighMem frames at all.</summary>
    public bool HasHighMem => _pa.HighStartIdx != int.MaxValue;

    /// <summary>page_address(): the linear address of a lowmem frame; a HighMem frame's pool address, or 0 when it has none.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public nint PageAddress(int idx) => idx < _pa.HighStartIdx ? _pa.IdxToVirt(idx) : Pool.AddressOf(idx);

    /// <summary>
    /// kmap(): might_sleep(), then the linear address of a lowmem frame or a reference on the HighMem frame's pool slot
    /// (mapping it, and sleeping while the pool is full).
    /// </summary>
    /// <exception cref="HighMemException">Called in atomic context (inside kmap_atomic): nothing was mapped.</exception>
    public nint Kmap(int idx)
    {
        int atomic = Local.AtomicDepth;
        if (atomic != 0) throw SleepInAtomic(atomic, "kmap");
        return idx < _pa.HighStartIdx ? _pa.IdxToVirt(idx) : Pool.Map(idx);
    }

    /// <summary>kunmap(): drops the reference kmap() took on a HighMem frame's slot (nothing for lowmem).</summary>
    /// <exception cref="HighMemException">The frame has no pool slot or no user left (the kernel's BUG): nothing changed.</exception>
    public void Kunmap(int idx)
    {
        if (idx < _pa.HighStartIdx) return;
        Pool.Kunmap(idx);
    }

    /// <summary>__might_sleep(): the report of a sleeping call in atomic context, and the refusal.</summary>
    public HighMemException SleepInAtomic(int atomicDepth, string call)
    {
        var sb = new StringBuilder();
        sb.Append($"BUG: sleeping function called from invalid context at include/linux/highmem.h ({call})\n");
        sb.Append($"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {Environment.CurrentManagedThreadId}, name: {PageAllocator.TaskName()}\n");
        sb.Append($"preempt_count: {atomicDepth}, expected: 0 ({atomicDepth} kmap_atomic() not yet undone)\n");
        _pa.DumpStack(sb);
        _pa.AddTaint(PageAllocator.TaintWarn);
        _pa.Log.Err(sb.ToString());
        return new HighMemException(HighMemError.AtomicContext,
            $"{call}() may sleep and was called in atomic context ({atomicDepth} kmap_atomic() outstanding); nothing was mapped");
    }

    /// <summary>Wakes the sleepers in kmap() (they fail: the machine is going).</summary>
    public void BeginShutdown() => Pool.BeginShutdown();

    public void Dispose()
    {
        Pool.Dispose();
        Local.Dispose();
    }

    public void Retire()
    {
        Pool.Retire();
        Local.Retire();
    }
}
