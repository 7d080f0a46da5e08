// Per-CPU page lists for order-0 pages, made correct for .NET threads. Each thread that allocates
// gets its own set of lists per zone (a "magazine", the kernel's per_cpu_pages), used with plain
// loads and stores. Another thread may drain it (drain_all_pages) with an asymmetric handshake:
// the owner publishes Busy around each operation; the drainer raises DrainRequested, issues a
// process-wide memory barrier and waits for Busy to clear, after which it owns the lists until it
// lowers DrainRequested. An owner that sees DrainRequested takes the slow path under DrainLock.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Paging;

/// <summary>
/// One zone's order-0 lists for one thread: one stack per per-CPU migratetype, the top being the
/// hot end (the kernel's list head) and the bottom the cold end (its tail).
/// </summary>
internal sealed class PerCpuPages
{
    private readonly int[] _buf;   // PcpTypes stacks of _cap entries each
    private readonly int _cap;
    private readonly int[] _len = new int[PageTypes.PcpTypes];

    public PerCpuPages(Zone zone)
    {
        Zone = zone;
        _cap = zone.PcpHigh + zone.PcpBatch + 2;
        _buf = new int[_cap * PageTypes.PcpTypes];
    }

    public Zone Zone { get; }

    /// <summary>pcp->count: pages on all lists.</summary>
    public int Count;

    public int Length(int mt) => _len[mt];

    /// <summary>Takes the most recently freed page of list <paramref name="mt"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PopHot(int mt)
    {
        ref int len = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_len), mt);
        int n = len;
        if (n == 0) return -1;
        len = n - 1;
        Count--;
        return Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), mt * _cap + n - 1);
    }

    /// <summary>Puts a page on the hot end of list <paramref name="mt"/>; the caller keeps Count below the capacity.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PushHot(int mt, int idx)
    {
        ref int len = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_len), mt);
        int n = len;
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), mt * _cap + n) = idx;
        len = n + 1;
        Count++;
    }

    /// <summary>Removes up to <paramref name="max"/> of the coldest pages of list <paramref name="mt"/> into <paramref name="into"/>.</summary>
    public int TakeCold(int mt, Span<int> into, int max)
    {
        int n = _len[mt];
        int take = Math.Min(Math.Min(n, max), into.Length);
        var list = _buf.AsSpan(mt * _cap, n);
        list[..take].CopyTo(into);
        list[take..].CopyTo(list);
        _len[mt] = n - take;
        Count -= take;
        return take;
    }

    /// <summary>Whether one more page fits (always true while Count stays below high + batch).</summary>
    public bool HasRoom(int mt) => _len[mt] < _cap;

    /// <summary>The pages on list <paramref name="mt"/>, hot end first (for checks; not for concurrent use).</summary>
    public IEnumerable<int> Pages(int mt)
    {
        for (int i = _len[mt] - 1; i >= 0; i--) yield return _buf[mt * _cap + i];
    }
}

/// <summary>All of one thread's per-CPU lists for one page allocator, plus the drain handshake words.</summary>
internal sealed class PcpThreadCache
{
    public PcpThreadCache(PageAllocator owner, Thread thread, int cpu)
    {
        Owner = owner;
        Thread = thread;
        Cpu = cpu;
        Zones = new PerCpuPages?[owner.Zones.Length];
        for (int i = 0; i < Zones.Length; i++)
            if (owner.Zones[i].Populated) Zones[i] = new PerCpuPages(owner.Zones[i]);
    }

    public readonly PageAllocator Owner;
    public readonly Thread Thread;
    /// <summary>The CPU (of the machine's profile) this thread's lists are reported under.</summary>
    public readonly int Cpu;
    public readonly PerCpuPages?[] Zones;

    /// <summary>Set by the owner thread for the duration of each fast-path operation.</summary>
    public int Busy;
    /// <summary>Set by a drainer that wants exclusive access.</summary>
    public int DrainRequested;
    /// <summary>Serialises drainers, and an owner that found DrainRequested set.</summary>
    public readonly Lock DrainLock = new();
    /// <summary>Next cache of the same thread (for other allocators).</summary>
    public PcpThreadCache? NextInThread;
    /// <summary>Set when the owning allocator is disposed; the cache is then unlinked lazily.</summary>
    public bool Dead;
}
