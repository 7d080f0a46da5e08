// Rebuilding a counted free state: given, per zone, how many free blocks of each order and migratetype there are and
// how many pageblocks of each migratetype, take every free page of the zone, set the pageblock types and put back
// free blocks at places where no two are buddies (so none would have merged), on pageblocks of their own type. What is
// not put back stays allocated (order-0 pages the caller records). The whole plan is made before anything changes, so
// a state that cannot be built leaves the machine as it was.
using Kmem.Core;

namespace Kmem.Paging;

/// <summary>One zone's counted free state: free blocks [migratetype, order] and pageblocks per migratetype.</summary>
/// <remarks>Blocks null: the machine's pageblock types stay (a snapshot without a block table, such as buddyinfo alone).</remarks>
internal sealed record FreeStateZone(int Node, string Zone, long[,] Free, long[]? Blocks);

/// <summary>
/// What an import did: the runs of pages it holds (frame index, count), notes on how it placed blocks and, when a
/// rebuild ran, the held runs of CMA pageblocks (kept apart from <paramref name="Held"/>, allocated order-0 pages).
/// </summary>
internal sealed record FreeStateResult(IReadOnlyList<(int Idx, int Count)> Held, IReadOnlyList<string> Notes)
{
    /// <summary>The held runs inside CMA pageblocks (only with a rebuild; without one they are part of <see cref="Held"/>).</summary>
    public IReadOnlyList<(int Idx, int Count)> HeldCma { get; init; } = [];
}

internal sealed unsafe partial class PageAllocator
{
    private const byte StAvail = 1, StPlaced = 2;   // 0: allocated before the import

    /// <summary>
    /// Replaces the free lists and pageblock types of every populated zone by a counted state. Needs a quiescent machine
    /// (no allocation or free on another thread during the call).
    /// </summary>
    /// <exception cref="ArgumentException">A zone not on the machine, a populated zone missing, or counts of the wrong shape.</exception>
    /// <exception cref="KmemException">The state cannot be built on this machine (the message says which zone and why).</exception>
    public FreeStateResult ImportFreeState(IReadOnlyList<FreeStateZone> state, IFreeStateRebuild? rebuild = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var _ = Life.Enter();
        var byZone = new Dictionary<Zone, FreeStateZone>();
        foreach (var s in state)
        {
            ArgumentNullException.ThrowIfNull(s);
            var z = Zones.FirstOrDefault(x => x.Node == s.Node && x.Name == s.Zone && x.Populated)
                ?? throw new ArgumentException($"node {s.Node} has no populated zone {s.Zone}", nameof(state));
            if (s.Free.GetLength(0) != PageTypes.MigrateTypes || s.Free.GetLength(1) != MaxOrder || s.Blocks is { Length: not PageTypes.MigrateTypes })
                throw new ArgumentException($"node {s.Node} zone {s.Zone}: counts for {s.Free.GetLength(1)} orders, the machine has {MaxOrder}", nameof(state));
            foreach (var v in s.Free) if (v < 0) throw new ArgumentException("negative count", nameof(state));
            foreach (var v in s.Blocks ?? []) if (v < 0) throw new ArgumentException("negative count", nameof(state));
            if (!byZone.TryAdd(z, s)) throw new ArgumentException($"node {s.Node} zone {s.Zone} twice", nameof(state));
        }
        foreach (var z in Zones)
            if (z.Populated && !byZone.ContainsKey(z)) throw new ArgumentException($"node {z.Node} zone {z.Name} has no counts", nameof(state));

        DrainAllPages();
        var notes = new List<string>();
        var plans = new List<ZonePlan>();
        foreach (var (z, s) in byZone) plans.Add(PlanZone(z, s, notes));
        var held = new List<(int, int)>();
        if (rebuild is not null) return ImportWithRebuild(plans, rebuild, notes);
        foreach (var p in plans) ApplyPlan(p, held);
        return new FreeStateResult(held, notes);
    }

    private sealed class ZonePlan
    {
        public required Zone Zone;
        public required long FreeBefore;
        public required List<(int Idx, int Order, int Mt)> Taken;
        public required byte[] St;
        public required int[] BlockType;               // per pageblock of the zone; -2: not counted
        public readonly List<(int Idx, int Order, int Mt)> Placed = [];
        public required long[] Blocks;
        public required bool Keep;                     // the machine's pageblock types stay
    }

    private ZonePlan PlanZone(Zone z, FreeStateZone s, List<string> notes)
    {
        int pb = PageblockOrder, span = z.EndIdx - z.StartIdx;
        string where = $"node {z.Node} zone {z.Name}";
        var st = new byte[span];
        var placedOrder = new sbyte[span];
        Array.Fill(placedOrder, (sbyte)-1);
        var taken = new List<(int, int, int)>();
        long freeBefore;
        int nb = z.PageblockCount;
        var type = new int[nb];
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            freeBefore = z.FreePages;
            for (int o = 0; o < MaxOrder; o++)
                for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
                    for (int idx = z.FirstOnList(o, mt); idx >= 0; idx = _f[idx].Next)
                    {
                        taken.Add((idx, o, mt));
                        Array.Fill(st, StAvail, idx - z.StartIdx, 1 << o);
                    }
            for (int b = 0; b < nb; b++)
            {
                long probe = Math.Max(z.PageblockStartIdx(b), z.StartIdx);
                type[b] = !PfnValid(BasePfn + (ulong)probe) ? -2 : z.PageblockTypeAt(b) == MigrateType.Cma || s.Blocks is null ? (int)z.PageblockTypeAt(b) : -1;
            }
        }
        long counted = type.Count(t => t != -2), cma = type.Count(t => t == (int)MigrateType.Cma);
        var blocks = s.Blocks ?? CountTypes(type);
        if (counted != blocks.Sum())
            throw new KmemException($"{where}: the machine has {counted} pageblocks, the counts {blocks.Sum()}");
        if (cma != blocks[(int)MigrateType.Cma])
            throw new KmemException($"{where}: the machine has {cma} CMA pageblocks, the counts {blocks[(int)MigrateType.Cma]}");

        var plan = new ZonePlan { Zone = z, FreeBefore = freeBefore, Taken = taken, St = st, BlockType = type, Blocks = blocks, Keep = s.Blocks is null };
        long firstBlock = (long)(z.StartPfn >> pb);
        long BlockStartIdx(int b) => z.PageblockStartIdx(b);
        bool AllAvail(long idx, long n)
        {
            if (idx < z.StartIdx || idx + n > z.EndIdx) return false;
            for (long i = idx - z.StartIdx, e = i + n; i < e; i++) if (st[i] != StAvail) return false;
            return true;
        }
        // page_is_buddy(): a block merges only with a free block of its own order at its buddy's address in the same zone,
        // so it is enough that no placed block has a placed buddy of its order (each placement checks its own buddy).
        bool BuddyFree(long idx, int o)
        {
            if (o >= MaxOrder - 1) return false;
            long buddy = (long)(((ulong)idx + BasePfn) ^ (1UL << o)) - (long)BasePfn;
            return buddy >= z.StartIdx && buddy < z.EndIdx && placedOrder[buddy - z.StartIdx] == o;
        }
        void Place(long idx, int o, int mt)
        {
            Array.Fill(st, StPlaced, (int)(idx - z.StartIdx), 1 << o);
            placedOrder[idx - z.StartIdx] = (sbyte)o;
            plan.Placed.Add(((int)idx, o, mt));
        }

        // 1. Blocks of pageblock order and above take whole, aligned runs of pageblocks of their type, the largest order
        //    of every type first (a smaller block of one type must not split the room a larger one of another needs).
        var big = new long[PageTypes.MigrateTypes];
        for (int o = MaxOrder - 1; o >= pb; o--)
            for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
            {
                int step = 1 << (o - pb);
                long need = s.Free[mt, o];
                int b = (int)((step - firstBlock % step) % step);
                for (; need > 0 && b + step <= nb; b += step)
                {
                    bool fits = true;
                    for (int k = 0; k < step && fits; k++)
                        fits = plan.Keep || mt == (int)MigrateType.Cma ? type[b + k] == mt && !BlockHasPlaced(b + k) : type[b + k] == -1;
                    long idx = BlockStartIdx(b);
                    if (!fits || !AllAvail(idx, (long)step << pb) || BuddyFree(idx, o)) continue;
                    if (!plan.Keep) for (int k = 0; k < step; k++) type[b + k] = mt;
                    Place(idx, o, mt);
                    big[mt] += step;
                    need--;
                }
                if (need > 0)
                    throw new KmemException($"{where}: no room for {need} of the {s.Free[mt, o]} free {PageTypes.MigrateTypeNames[mt]} blocks of order {o} (they need whole free pageblocks)");
            }
        bool BlockHasPlaced(int b)
        {
            long i0 = Math.Max(BlockStartIdx(b), z.StartIdx), i1 = Math.Min(BlockStartIdx(b) + (1L << pb), z.EndIdx);
            for (long i = i0; i < i1; i++) if (st[i - z.StartIdx] == StPlaced) return true;
            return false;
        }
        for (int mt = 0; mt < PageTypes.MigrateTypes && !plan.Keep; mt++)
            if (big[mt] > blocks[mt])
                throw new KmemException($"{where}: the free {PageTypes.MigrateTypeNames[mt]} blocks of order {pb} and above cover {big[mt]} pageblocks, the block table has {blocks[mt]}");

        // 2. The other pageblocks get the remaining types: the type with the most small free pages per block the emptiest.
        var rest = Enumerable.Range(0, nb).Where(b => type[b] == -1)
            .OrderByDescending(b => AvailIn(b)).ToList();
        long AvailIn(int b)
        {
            long i0 = Math.Max(BlockStartIdx(b), z.StartIdx), i1 = Math.Min(BlockStartIdx(b) + (1L << pb), z.EndIdx), n = 0;
            for (long i = i0; i < i1; i++) if (st[i - z.StartIdx] == StAvail) n++;
            return n;
        }
        long SmallPages(int mt) { long n = 0; for (int o = 0; o < pb; o++) n += s.Free[mt, o] << o; return n; }
        int next = 0;
        if (!plan.Keep)
            foreach (int mt in Enumerable.Range(0, PageTypes.MigrateTypes).Where(t => t != (int)MigrateType.Cma)
                     .OrderByDescending(t => blocks[t] - big[t] == 0 ? 0.0 : (double)SmallPages(t) / (blocks[t] - big[t])))
                for (long k = blocks[mt] - big[mt]; k > 0; k--) type[rest[next++]] = mt;

        // 3. Smaller blocks, largest first, inside pageblocks of their type (else, for the per-CPU types, another such type's).
        for (int o = pb - 1; o >= 0; o--)
            for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
            {
                long need = s.Free[mt, o];
                if (need == 0) continue;
                need = PlaceSmall(mt, o, need, own: true);
                if (need > 0 && mt < PageTypes.PcpTypes)
                {
                    long before = need;
                    need = PlaceSmall(mt, o, need, own: false);
                    if (before > need) notes.Add($"{where}: {before - need} free {PageTypes.MigrateTypeNames[mt]} blocks of order {o} lie on pageblocks of another type (its own have no room)");
                }
                if (need > 0)
                    throw new KmemException($"{where}: no room for {need} of the {s.Free[mt, o]} free {PageTypes.MigrateTypeNames[mt]} blocks of order {o} without two of them being buddies");
            }
        long PlaceSmall(int mt, int o, long need, bool own)
        {
            for (int b = 0; b < nb && need > 0; b++)
            {
                bool ok = own ? type[b] == mt : type[b] != mt && type[b] >= 0 && type[b] < PageTypes.PcpTypes;
                if (!ok) continue;
                long start = BlockStartIdx(b);
                for (long idx = start; idx < start + (1L << pb) && need > 0; idx += 1L << o)
                {
                    if (!AllAvail(idx, 1L << o) || BuddyFree(idx, o)) continue;
                    Place(idx, o, mt);
                    need--;
                }
            }
            return need;
        }
        return plan;
    }

    private static long[] CountTypes(int[] type)
    {
        var n = new long[PageTypes.MigrateTypes];
        foreach (int t in type) if (t >= 0) n[t]++;
        return n;
    }

    private void ApplyPlan(ZonePlan p, List<(int, int)> held)
    {
        var z = p.Zone;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            if (z.FreePages != p.FreeBefore) throw new KmemException($"node {z.Node} zone {z.Name}: the free lists changed during the import");
            foreach (var (idx, order, mt) in p.Taken) TakeBlock(z, idx, order, mt);
            SetPlannedTypes(p);
            PlaceCounted(p);
            int run = -1;
            for (int i = 0; i <= p.St.Length; i++)
            {
                bool h = i < p.St.Length && p.St[i] == StAvail;
                if (h && run < 0) run = i;
                if (!h && run >= 0) { held.Add((z.StartIdx + run, i - run)); run = -1; }
            }
        }
        SignalFree();
    }

    // ---------------------------------------------------------------- shared by the plain import and the rebuild

    /// <summary>Puts a free block on its zone's list at the tail, its tail pages cleared as the buddy allocator keeps them.</summary>
    private void AddBlock(Zone z, int idx, int order, int mt)
    {
        for (int i = idx + 1, e = idx + (1 << order); i < e; i++)
        {
            ref var f = ref _f[i];
            f.Flags = 0;
            f.RefCount = 0;
            f.Order = 0;
        }
        z.AddToFreeList(idx, order, mt, toTail: true);
    }

    /// <summary>Takes a free block off its list, each of its pages allocated as an order-0 page of its migratetype (zone lock held).</summary>
    private void TakeBlock(Zone z, int idx, int order, int mt)
    {
        z.DelFromFreeList(idx, order, mt);
        for (int i = idx, e = idx + (1 << order); i < e; i++) PrepOrder0(i, mt, z);
    }

    /// <summary>The counted reserves (unless the snapshot had no pageblock counts) and the counted free blocks put in place (zone lock held).</summary>
    private void PlaceCounted(ZonePlan p)
    {
        var z = p.Zone;
        if (!p.Keep)
        {
            z.NrIsolatePageblock = (int)p.Blocks[(int)MigrateType.Isolate];
            z.NrReservedHighatomic = p.Blocks[(int)MigrateType.HighAtomic] << PageblockOrder;
        }
        foreach (var (idx, order, mt) in p.Placed) AddBlock(z, idx, order, mt);
    }

    /// <summary>Sets each pageblock the plan counted to its planned type (zone lock held).</summary>
    private void SetPlannedTypes(ZonePlan p)
    {
        var z = p.Zone;
        for (int b = 0; b < p.BlockType.Length; b++)
            if (p.BlockType[b] >= 0) z.SetPageblockType((int)Math.Max(z.PageblockStartIdx(b), z.StartIdx), (MigrateType)p.BlockType[b]);
    }
}
