// Per-CPU page lists for order-0 pages, made correct for .NET threads. Each thread that allocates
// gets its own set of lists per zone (a "magazine", the kernel's per_cpu_pages), used with plain
// loads and stores. Another thread may drain it (drain_all_pages) with an asymmetric handshake:
// the owner publishes Busy around each operation; the drainer raises DrainRequested, issues a
// process-wide memory barrier and waits for Busy to clear, after which it owns the lists until it
// lowers DrainRequested. An owner that sees DrainRequested takes the slow path under DrainLock.
using System.Runtime.CompilerServices;
using Kmem.Physical;

namespace Kmem.Paging;

/// <summary>One zone's order-0 lists for one thread: one deque per per-CPU migratetype.</summary>
internal sealed class PerCpuPages
{
    private readonly int[] _buf;   // PcpTypes rings of _cap entries each
    private readonly int _cap;
    private readonly int _mask;
    private readonly int[] _first = new int[PageTypes.PcpTypes];
    private readonly int[] _len = new int[PageTypes.PcpTypes];

    public PerCpuPages(Zone zone)
    {
        Zone = zone;
        int need = zone.PcpHigh + zone.PcpBatch + 2;
        int cap = 16;
        while (cap < need) cap <<= 1;
        _cap = cap;
        _mask = cap - 1;
        _buf = new int[cap * PageTypes.PcpTypes];
    }

    public Zone Zone { get; }

    /// <summary>pcp->count: pages on all lists.</summary>
    public int Count;

    public int Length(int mt) => _len[mt];

    /// <summary>Takes the page at the head of list <paramref name="mt"/> (most recently freed), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PopFront(int mt)
    {
        int n = _len[mt];
        if (n == 0) return -1;
        int f = _first[mt];
        int idx = _buf[mt * _cap + f];
        _first[mt] = (f + 1) & _mask;
        _len[mt] = n - 1;
        Count--;
        return idx;
    }

    /// <summary>Puts a page at the head of list <paramref name="mt"/> (hot end).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PushFront(int mt, int idx)
    {
        int f = (_first[mt] - 1) & _mask;
        _buf[mt * _cap + f] = idx;
        _first[mt] = f;
        _len[mt]++;
        Count++;
    }

    /// <summary>Appends a page at the tail of list <paramref name="mt"/> (refill order).</summary>
    public void PushBack(int mt, int idx)
    {
        int pos = (_first[mt] + _len[mt]) & _mask;
        _buf[mt * _cap + pos] = idx;
        _len[mt]++;
        Count++;
    }

    /// <summary>Takes the page at the tail (coldest) of list <paramref name="mt"/>, or -1.</summary>
    public int PopBack(int mt)
    {
        int n = _len[mt];
        if (n == 0) return -1;
        int pos = (_first[mt] + n - 1) & _mask;
        _len[mt] = n - 1;
        Count--;
        return _buf[mt * _cap + pos];
    }

    /// <summary>The pages on list <paramref name="mt"/>, head first (for checks; not for concurrent use).</summary>
    public IEnumerable<int> Pages(int mt)
    {
        for (int i = 0; i < _len[mt]; i++) yield return _buf[mt * _cap + ((_first[mt] + i) & _mask)];
    }

    /// <summary>Room left before the lists overflow their ring (never reached when high is honoured).</summary>
    public bool HasRoom(int mt) => _len[mt] < _cap;
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

    public int TotalCount()
    {
        int n = 0;
        foreach (var z in Zones) if (z is not null) n += Volatile.Read(ref z.Count);
        return n;
    }
}
