// Rebuilding what the used memory of a counted state was: after every free page of every zone is taken and before the
// counted free blocks are placed, the pages that will not be free (outside CMA pageblocks) are the only free memory,
// so the allocations a rebuild makes (slab caches, vmalloc areas) draw from exactly those pages in their own zones and
// nodes. What the rebuild leaves is taken back and held; then the counted blocks are placed and the pageblock types set
// again (a fallback steal during the rebuild must not change the counted block table). A rebuild that fails is undone
// and the zones get their old free lists and pageblock types back.
using Kmem.Core;
using Kmem.Physical;

namespace Kmem.Paging;

/// <summary>A zone's pages that an import leaves allocated: in all, and inside CMA pageblocks.</summary>
internal sealed record HeldZone(Zone Zone, long Pages, long CmaPages);

/// <summary>What the allocated part of an imported state is rebuilt as (the caller's allocations).</summary>
internal interface IFreeStateRebuild
{
    /// <summary>Before anything changes: whether the rebuild fits the pages each zone leaves allocated; throws to refuse.</summary>
    void Check(IReadOnlyList<HeldZone> held);

    /// <summary>Allocates what it rebuilds while the held pages outside CMA pageblocks are the only free memory; throws to fail (then <see cref="Undo"/> runs).</summary>
    void Build();

    /// <summary>Frees everything <see cref="Build"/> allocated (also after a partial build).</summary>
    void Undo();
}

internal sealed unsafe partial class PageAllocator
{
    private FreeStateResult ImportWithRebuild(List<ZonePlan> plans, IFreeStateRebuild rebuild, List<string> notes)
    {
        var held = plans.Select(p =>
        {
            long all = 0, cma = 0;
            for (int i = 0; i < p.St.Length; i++)
            {
                if (p.St[i] != StAvail) continue;
                all++;
                if (IsCmaBlock(p, p.Zone.StartIdx + i)) cma++;
            }
            return new HeldZone(p.Zone, all, cma);
        }).ToList();
        rebuild.Check(held);
        var saved = plans.Select(TakeAndOffer).ToList();
        try
        {
            rebuild.Build();
            DrainAllPages();
        }
        catch
        {
            try
            {
                rebuild.Undo();
            }
            finally
            {
                DrainAllPages();
                for (int i = 0; i < plans.Count; i++) Restore(plans[i], saved[i]);
                SignalFree();
            }
            throw;
        }
        var runs = new List<(int, int)>();
        var cmaRuns = new List<(int, int)>();
        foreach (var p in plans) Finish(p, runs, cmaRuns);
        SignalFree();
        return new FreeStateResult(runs, notes) { HeldCma = cmaRuns };
    }

    /// <summary>Registers an allocated order-0 page as a movable block (the owner made <paramref name="h"/> for it).</summary>
    public void AdoptMovable(int idx, MovablePage h)
    {
        if ((_f[idx].Flags & PageFlags.Allocated) == 0 || _f[idx].Order != 0) throw new ArgumentException($"frame {idx} is not an allocated order-0 page", nameof(idx));
        LockOrder.Enter(LockRank.Movable, _movableLock);
        lock (_movableLock) _movable.Add(idx, h);
    }

    private bool IsCmaBlock(ZonePlan p, long idx)
    {
        var z = p.Zone;
        long first = ((long)BasePfn + z.PageblockStartIdx(0)) >> PageblockOrder;
        long b = (((long)BasePfn + idx) >> PageblockOrder) - first;
        return b >= 0 && b < p.BlockType.Length && p.BlockType[b] == (int)MigrateType.Cma;
    }

    private sealed record SavedZone(byte[] Types, int NrIsolate, long NrHighatomic);

    /// <summary>
    /// Takes every free block of the zone, sets the planned pageblock types and puts the pages that will stay allocated
    /// (outside CMA pageblocks) on the free lists of their pageblock's type, in blocks of at most pageblock order.
    /// </summary>
    private SavedZone TakeAndOffer(ZonePlan p)
    {
        var z = p.Zone;
        int pb = PageblockOrder;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            if (z.FreePages != p.FreeBefore) throw new KmemException($"node {z.Node} zone {z.Name}: the free lists changed during the import");
            var types = new byte[p.BlockType.Length];
            for (int b = 0; b < types.Length; b++) types[b] = (byte)z.PageblockTypeAt(b);
            var saved = new SavedZone(types, z.NrIsolatePageblock, z.NrReservedHighatomic);
            foreach (var (idx, order, mt) in p.Taken) TakeBlock(z, idx, order, mt);
            SetPlannedTypes(p);
            for (int b = 0; b < p.BlockType.Length; b++)
            {
                if (p.BlockType[b] == (int)MigrateType.Cma) continue;
                long s = Math.Max(z.PageblockStartIdx(b), z.StartIdx), e = Math.Min(z.PageblockStartIdx(b) + (1L << pb), z.EndIdx);
                int mt = p.BlockType[b] >= 0 ? p.BlockType[b] : (int)z.PageblockTypeAt(b);
                for (long i = s; i < e;)
                {
                    if (p.St[i - z.StartIdx] != StAvail) { i++; continue; }
                    long r = i;
                    while (r < e && p.St[r - z.StartIdx] == StAvail) r++;
                    for (int at = (int)i; at < r;)
                    {
                        int order = AlignedBlockOrder(BasePfn, at, (int)r, pb);
                        AddBlock(z, at, order, mt);
                        at += 1 << order;
                    }
                    i = r;
                }
            }
            return saved;
        }
    }

    /// <summary>Takes what is left on the free lists (the held pages the rebuild did not use), places the planned blocks and records the held runs.</summary>
    private void Finish(ZonePlan p, List<(int, int)> runs, List<(int, int)> cmaRuns)
    {
        var z = p.Zone;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            foreach (var (idx, order, mt) in FreeBlocks(z))
            {
                TakeBlock(z, idx, order, mt);
                runs.Add((idx, 1 << order));
            }
            // A fallback steal during the rebuild may have changed a pageblock's type: the counted table is set again.
            SetPlannedTypes(p);
            PlaceCounted(p);
            int run = -1;
            for (int i = 0; i <= p.St.Length; i++)
            {
                bool h = i < p.St.Length && p.St[i] == StAvail && IsCmaBlock(p, z.StartIdx + i);
                if (h && run < 0) run = i;
                if (!h && run >= 0) { cmaRuns.Add((z.StartIdx + run, i - run)); run = -1; }
            }
        }
    }

    private List<(int Idx, int Order, int Mt)> FreeBlocks(Zone z)
    {
        var list = new List<(int, int, int)>();
        for (int o = 0; o < MaxOrder; o++)
            for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
                for (int idx = z.FirstOnList(o, mt); idx >= 0; idx = _f[idx].Next) list.Add((idx, o, mt));
        return list;
    }

    /// <summary>After a failed rebuild: every page taken is allocated again; the old free blocks and pageblock types come back.</summary>
    private void Restore(ZonePlan p, SavedZone saved)
    {
        var z = p.Zone;
        LockOrder.Enter(LockRank.Zone, z.Lock);
        lock (z.Lock)
        {
            // The undone rebuild gave back the pages it was offered, and perhaps pages that were allocated before the
            // import (empty slabs a shrink freed): those stay free.
            long back = 0;
            var extra = new List<(int Idx, int Mt)>();
            foreach (var (idx, order, mt) in FreeBlocks(z))
            {
                z.DelFromFreeList(idx, order, mt);
                for (int i = idx, e = idx + (1 << order); i < e; i++)
                {
                    PrepOrder0(i, mt, z);
                    if (p.St[i - z.StartIdx] == StAvail) back++;
                    else extra.Add((i, mt));
                }
            }
            long offered = 0;
            for (int i = 0; i < p.St.Length; i++)
                if (p.St[i] == StAvail && !IsCmaBlock(p, z.StartIdx + i)) offered++;
            if (back != offered)
                throw new KmemException($"node {z.Node} zone {z.Name}: the failed rebuild gave back {back} of the {offered} pages it was offered");
            for (int b = 0; b < saved.Types.Length; b++)
                z.SetPageblockType((int)Math.Max(z.PageblockStartIdx(b), z.StartIdx), (MigrateType)saved.Types[b]);
            z.NrIsolatePageblock = saved.NrIsolate;
            z.NrReservedHighatomic = saved.NrHighatomic;
            foreach (var (idx, order, mt) in p.Taken) AddBlock(z, idx, order, mt);
            foreach (var (idx, _) in extra)
            {
                _f[idx].Flags = 0;
                z.FreeOnePage(idx, 0, (int)z.PageblockType(idx));
            }
        }
    }
}
