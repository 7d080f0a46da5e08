// Model-based randomized test: 10^5 random allocations and frees of random orders, GFP masks and
// migratetypes, checked against a simple reference model of which pages are live.
using FsCheck;
using FsCheck.Fluent;

namespace Kmem.Tests;

public class ModelTests
{
    private static readonly Gfp[] s_masks =
    [
        Gfp.Kernel, Gfp.Kernel | Gfp.Zero, Gfp.Atomic, Gfp.HighUserMovable, Gfp.Kernel | Gfp.Reclaimable,
        Gfp.Kernel | Gfp.Comp, Gfp.NoWait, Gfp.User, Gfp.Kernel | Gfp.NoRetry,
    ];

    private sealed record Live(Page Page, int Order, byte Stamp, Gfp Gfp);

    /// <summary>Runs <paramref name="ops"/> random operations; returns a description of the first violation, or null.</summary>
    private static string? RunModel(int seed, int ops, string profile)
    {
        using var m = profile == "small" ? TestSupport.Small() : Machine.Boot(profile);
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var rnd = new Random(seed);
        string bootBuddy = TestSupport.Buddy(m);
        long present = m.Zones.Sum(z => z.Present), managed = m.Zones.Sum(z => z.Managed);
        var live = new Dictionary<ulong, Live>();        // head pfn -> allocation
        var owner = new Dictionary<ulong, ulong>();      // every live pfn -> head pfn (the reference model)
        var cma = m.Cma.Values.ToArray();
        long livePages = 0;
        for (int op = 0; op < ops; op++)
        {
            bool alloc = live.Count == 0 || rnd.Next(100) < (livePages < managed / 2 ? 60 : 45);
            if (alloc)
            {
                int order = rnd.Next(100) switch { < 55 => 0, < 75 => 1, < 85 => 2, < 92 => 3, < 97 => rnd.Next(4, 7), _ => rnd.Next(7, m.MaxOrder) };
                var gfp = s_masks[rnd.Next(s_masks.Length)] | Gfp.NoWarn;
                if (rnd.Next(4) == 0) gfp |= Gfp.NoRetry;
                var p = m.AllocPages(gfp, order);
                if (p.IsNull) continue;
                ulong head = p.Pfn;
                if ((head & ((1UL << order) - 1)) != 0) return $"op {op}: order-{order} block at {p} is misaligned";
                for (ulong i = 0; i < 1UL << order; i++)
                    if (!owner.TryAdd(head + i, head)) return $"op {op}: {p} order {order} overlaps live block at pfn 0x{owner[head + i]:x}";
                bool movable = (gfp & Gfp.Movable) != 0;
                foreach (var c in cma)
                    if (!movable && head < c.BasePfn + c.Count && c.BasePfn < head + (1UL << order))
                        return $"op {op}: unmovable {gfp} block {p} landed in CMA area {c.Name}";
                var span = m.PageSpan(p, order);
                if ((gfp & Gfp.Zero) != 0 && span.IndexOfAnyExcept((byte)0) >= 0) return $"op {op}: __GFP_ZERO block {p} is not zeroed";
                byte stamp = (byte)rnd.Next(1, 256);
                span.Fill(stamp);
                live[head] = new Live(p, order, stamp, gfp);
                livePages += 1L << order;
            }
            else
            {
                var victim = live.Values.ElementAt(rnd.Next(live.Count));
                var span = m.PageSpan(victim.Page, victim.Order);
                int bad = span.IndexOfAnyExcept(victim.Stamp);
                if (bad >= 0) return $"op {op}: block {victim.Page} was overwritten at byte {bad}";
                m.FreePages(victim.Page, victim.Order);
                live.Remove(victim.Page.Pfn);
                for (ulong i = 0; i < 1UL << victim.Order; i++) owner.Remove(victim.Page.Pfn + i);
                livePages -= 1L << victim.Order;
            }
            if (op % 20000 == 0 || op == ops - 1)
            {
                var check = m.Pages.CheckInvariants();
                if (check.Errors.Count > 0) return $"op {op}: {check.Errors[0]}";
                long slab = m.Pages.Stat.SlabReclaimablePages + m.Pages.Stat.SlabUnreclaimablePages  // the boot's slab caches
                    + m.Dma.Pools.Sum(p => (long)p.Pages)                                            // and DMA atomic pools
                    + m.BootHashPages;                                                                // and the mount hash tables
                if (check.BuddyPages + check.PcpPages + livePages + slab != managed)
                    return $"op {op}: {check.BuddyPages} buddy + {check.PcpPages} pcp + {livePages} live + {slab} slab != {managed} managed";
                foreach (int idx in check.FreeFrames)
                    if (owner.ContainsKey(m.Pages.BasePfn + (ulong)idx)) return $"op {op}: live page 0x{m.Pages.BasePfn + (ulong)idx:x} is also free";
            }
        }
        foreach (var l in live.Values) m.FreePages(l.Page, l.Order);
        string after = TestSupport.Buddy(m);
        if (after != bootBuddy) return $"after freeing everything the free lists differ from boot:\n{bootBuddy}\n{after}";
        var errors = m.VerifyIntegrity();
        return errors.Count > 0 ? errors[0] : null;
    }

    [Fact]
    public void Hundred_thousand_random_operations_on_a_small_board()
    {
        string? violation = RunModel(seed: 1106, ops: 100_000, profile: "small");
        Assert.True(violation is null, violation);
    }

    [Fact]
    public void Random_operations_on_x86_64_zones()
    {
        string? violation = RunModel(seed: 64, ops: 30_000, profile: "x86_64");
        Assert.True(violation is null, violation);
    }

    [Fact]
    public void Property_any_seed_keeps_the_invariants()
    {
        Prop.ForAll(Arb.From(Gen.Choose(1, int.MaxValue)), seed => RunModel(seed, 3000, "small") is null)
            .Check(Config.QuickThrowOnFailure.WithMaxTest(12).WithQuietOnSuccess(true));
    }
}
