// A zone as a user reads it: its counters, watermarks and free areas, taken from the live zone.
using System.Runtime.CompilerServices;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem;

/// <summary>A read-only view of one zone (the numbers of <c>/proc/zoneinfo</c>).</summary>
public sealed class ZoneInfo
{
    private readonly Zone _z;
    private readonly Machine _m;

    internal ZoneInfo(Machine m, Zone z) { _m = m; _z = z; }

    /// <summary>The zone, while its machine is up (a dead machine's figures would be stale).</summary>
    private Zone Z
    {
        get
        {
            _m.ThrowIfDisposed();
            return _z;
        }
    }


    /// <summary>The zone name (<c>DMA</c>, <c>DMA32</c>, <c>Normal</c>, <c>HighMem</c>, <c>Movable</c>).</summary>
    public string Name => Z.Name;
    /// <summary>The zone type.</summary>
    public ZoneType Type => Z.Type;
    /// <summary>The NUMA node the zone belongs to (<c>zone_to_nid()</c>); 0 on a one-node machine.</summary>
    public int Node => Z.Node;
    /// <summary>First PFN (0 for an empty zone).</summary>
    public ulong StartPfn => Z.StartPfn;
    /// <summary>Pages spanned, holes included.</summary>
    public long Spanned => Z.Spanned;
    /// <summary>Pages of RAM in the zone.</summary>
    public long Present => Z.Present;
    /// <summary>Pages the buddy allocator manages (present minus reserved).</summary>
    public long Managed => Z.Managed;
    /// <summary>Free pages on the buddy lists (NR_FREE_PAGES).</summary>
    public long FreePages => Volatile.Read(ref Z.FreePages);
    /// <summary>Free CMA pages (NR_FREE_CMA_PAGES).</summary>
    public long FreeCmaPages => Volatile.Read(ref Z.FreeCmaPages);
    /// <summary>Pages on the per-CPU lists.</summary>
    public long PcpPages => _m.Pages.PcpTotal(Z.Index);
    /// <summary>The min watermark.</summary>
    public long WatermarkMin => Z.WmarkMin;
    /// <summary>The low watermark.</summary>
    public long WatermarkLow => Z.WmarkLow;
    /// <summary>The high watermark.</summary>
    public long WatermarkHigh => Z.WmarkHigh;
    /// <summary>lowmem_reserve[]: pages kept back from requests whose highest zone is each index.</summary>
    public IReadOnlyList<long> LowmemReserve => Z.LowmemReserve;
    /// <summary>The per-CPU list batch.</summary>
    public int PcpBatch => Z.PcpBatch;
    /// <summary>The per-CPU list high mark.</summary>
    public int PcpHigh => Z.PcpHigh;
    /// <summary>True if the zone has memory.</summary>
    public bool Populated => Z.Populated;

    /// <summary>Free blocks of an order on one migratetype's list.</summary>
    public long FreeBlocks(int order, MigrateType type)
    {
        LockOrder.Enter(LockRank.Zone, Z.Lock);
        lock (Z.Lock) return Z.NrFree(order, (int)type);
    }

    /// <summary>Free blocks of an order on all lists (a /proc/buddyinfo column).</summary>
    public long FreeBlocks(int order)
    {
        LockOrder.Enter(LockRank.Zone, Z.Lock);
        lock (Z.Lock) return Z.AreaFree(order);
    }

    /// <summary>The migratetype of each pageblock of the zone, in order.</summary>
    public IReadOnlyList<MigrateType> PageblockTypes
    {
        get
        {
            LockOrder.Enter(LockRank.Zone, Z.Lock);
            lock (Z.Lock) return Enumerable.Range(0, Z.PageblockCount).Select(Z.PageblockTypeAt).ToArray();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {FreePages}/{Managed} pages free";
}
