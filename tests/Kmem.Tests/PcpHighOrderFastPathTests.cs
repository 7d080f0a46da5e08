// The high-order fast path (orders 1..PAGE_ALLOC_COSTLY_ORDER from 5.14) and the lean order-0 paths: the
// fast path must decide exactly what the general path decides, keep the zone's free-area order mask true,
// and serve a freed block back from the thread's list.
using Kmem.Paging;

namespace Kmem.Tests;

public class PcpHighOrderFastPathTests
{
    private static Machine At(string version, string profile = "x86_64")
    {
        var m = Machine.Boot(TestSupport.AtRelease(profile, version));
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    private static readonly Gfp[] Flags =
    [
        Gfp.Kernel, Gfp.Kernel | Gfp.Dma32, Gfp.HighUserMovable, Gfp.Kernel | Gfp.Reclaimable, Gfp.Kernel | Gfp.Zero,
        Gfp.Atomic | Gfp.NoWarn, Gfp.Kernel | Gfp.Dma | Gfp.NoWarn, Gfp.Kernel | Gfp.Comp, Gfp.HighUserMovable | Gfp.Comp | Gfp.Zero,
    ];

    /// <summary>
    /// One seeded sequence of allocations and frees of orders 0..4 on two machines of the same release, one with the
    /// high-order fast path turned off: every allocation must return the same page, and the machines must end with the
    /// same views. Half-way, both machines hoard order-0 pages until their Normal zone sits just above its low
    /// watermark, so that the fast path must refuse requests (falling back to DMA32) while its lists still hold blocks.
    /// </summary>
    [Theory]
    [InlineData("6.6", 11, "x86_64")]
    [InlineData("5.15", 12, "x86_64")]
    [InlineData("5.10", 13, "x86_64")]
    [InlineData("6.6", 14, "x86_64-numa2")]   // two nodes: the NUMA counts of the fast paths (local hits) against the general path's
    [InlineData("6.6", 15, "rk3588")]
    public void The_fast_path_decides_what_the_general_path_decides(string version, int seed, string profile)
    {
        using var fast = At(version, profile);
        using var general = At(version, profile);
        general.Pages.DisableHighOrderFastPath();
        // A thread's per-CPU lists start on the host processor it first allocates from: pin it to the same profile CPU
        // on both machines, or a busy host that moves it between the two boots lists the same pages under other CPUs.
        fast.MigrateToCpu(0);
        general.MigrateToCpu(0);
        var rnd = new Random(seed);
        var held = new List<(Page Fast, Page General, int Order)>();
        var hoard = new List<(Page Fast, Page General, int Order)>();
        for (int step = 0; step < 12_000; step++)
        {
            if (step == 6_000)
            {
                // Bring the first zone of GFP_KERNEL (Normal) down to a few order-3 blocks above its low watermark, so
                // that from now on its watermark check sometimes fails while the thread's lists still hold blocks.
                var normal = fast.Pages.Zones.First(z => z.Type == ZoneType.Normal);
                while (normal.FreePages > normal.WmarkLow + 96)
                {
                    Page a = fast.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0), b = general.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0);
                    Assert.Equal(general.PageToPfn(b), fast.PageToPfn(a));
                    hoard.Add((a, b, 0));
                }
            }
            if (held.Count > 0 && (rnd.Next(100) < 45 || held.Count > 4000))
            {
                int i = rnd.Next(held.Count);
                var (a, b, o) = held[i];
                held[i] = held[^1];
                held.RemoveAt(held.Count - 1);
                fast.FreePages(a, o);
                general.FreePages(b, o);
                continue;
            }
            int order = rnd.Next(100) switch { < 40 => 0, < 60 => 1, < 75 => 2, < 90 => 3, _ => 4 };
            Gfp gfp = Flags[rnd.Next(Flags.Length)];
            if (step >= 6_000) gfp = (gfp & ~Gfp.DirectReclaim) | Gfp.NoWarn; // near the marks: fail rather than reclaim
            Page pf = fast.AllocPages(gfp, order);
            Page pg = general.AllocPages(gfp, order);
            Assert.Equal(pg.IsNull ? 0 : general.PageToPfn(pg), pf.IsNull ? 0 : fast.PageToPfn(pf));
            if (!pf.IsNull) held.Add((pf, pg, order));
        }
        Assert.Equal(general.ProcFs.Read("/proc/zoneinfo"), fast.ProcFs.Read("/proc/zoneinfo"));
        Assert.Equal(general.ProcFs.Read("/proc/pagetypeinfo"), fast.ProcFs.Read("/proc/pagetypeinfo"));
        Assert.Equal(general.ProcFs.Read("/proc/buddyinfo"), fast.ProcFs.Read("/proc/buddyinfo"));
        TestSupport.AssertConsistent(fast);
        foreach (var (a, b, o) in held.Concat(hoard))
        {
            fast.FreePages(a, o);
            general.FreePages(b, o);
        }
        TestSupport.AssertConsistent(fast);
        TestSupport.AssertConsistent(general);
    }

    [Fact]
    public void From_5_14_a_freed_order_2_block_waits_on_the_thread_list_and_comes_back_first()
    {
        using var m = At("6.6");
        Page a = m.AllocPages(Gfp.Kernel, 2);
        long buddyBefore = m.Zones.Sum(z => z.FreePages);
        m.FreePages(a, 2);
        Assert.Equal(buddyBefore, m.Zones.Sum(z => z.FreePages)); // not merged back: on the per-CPU list
        Page b = m.AllocPages(Gfp.Kernel, 2);
        Assert.Equal(m.PageToPfn(a), m.PageToPfn(b));
        Assert.Equal(buddyBefore, m.Zones.Sum(z => z.FreePages));
        m.FreePages(b, 2);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Before_5_14_an_order_2_block_goes_back_to_the_buddy_lists()
    {
        using var m = At("5.10");
        Page a = m.AllocPages(Gfp.Kernel, 2);
        long buddyBefore = m.Zones.Sum(z => z.FreePages);
        m.FreePages(a, 2);
        Assert.Equal(buddyBefore + 4, m.Zones.Sum(z => z.FreePages));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_zone_whose_free_area_has_no_block_of_the_order_refuses_the_fast_path()
    {
        // Take every free block of order 3 and above from the first zone GFP_KERNEL uses (the buddy lists only then hold
        // orders 0..2): an order-3 request must now fail its watermark check even though the thread list could have
        // kept a block, as __zone_watermark_ok() requires a free-area block of the order.
        using var m = At("6.6");
        var z = m.Pages.Zones.First(zone => zone.Type == ZoneType.Dma);
        var taken = new List<(Page, int)>();
        for (int o = z.MaxOrder - 1; o >= 3; o--)
            while (true)
            {
                Page p = m.AllocPages(Gfp.Kernel | Gfp.Dma | Gfp.NoWarn, o);
                if (p.IsNull) break;
                taken.Add((p, o));
                if (z.PcpTypeOrders >> 3 == 0) break;
            }
        Assert.Equal(0u, z.PcpTypeOrders >> 3);
        TestSupport.AssertConsistent(m);
        Page refused = m.AllocPages(Gfp.Kernel | Gfp.Dma | Gfp.NoWarn | Gfp.Atomic, 3);
        Assert.True(refused.IsNull); // GFP_DMA has no other zone to fall back to
        foreach (var (p, o) in taken) m.FreePages(p, o);
        TestSupport.AssertConsistent(m);
    }
}
