// The lock order's debug check: it accepts the documented nesting, catches an inversion before it blocks, lets a
// lock be re-entered, and exempts try-acquisitions; the stress and campaign tests run under it (Debug builds).
using Kmem.Core;
using Kmem.Paging;

namespace Kmem.Tests;

public class LockOrderTests
{
    [SkippableFact]
    public void Taking_an_outer_lock_while_holding_an_inner_one_is_caught()
    {
        Skip.IfNot(LockOrder.IsChecked, "the lock order is checked in Debug builds only");
        using var m = Machine.Boot("rv1106");
        var zone = m.Pages.Zones.First(z => z.Populated);
        int before = LockOrder.Violations;
        // zone->lock held, then cma_alloc, which takes the area's bitmap lock (cma->lock) and later cma_mutex, both
        // outside zone->lock: the wrong way round, caught at the first of them.
        LockOrder.Enter(LockRank.Zone, zone.Lock);
        lock (zone.Lock)
        {
            var e = Assert.Throws<LockOrderException>(() => m.CmaAlloc(m.Cma["rk-dma-heap-cma"], 1, 0));
            Assert.Contains("taking CmaArea while holding Zone", e.Message);
        }
        Assert.Equal(before + 1, LockOrder.Violations);
        // Nothing was taken: once the zone lock is dropped the same call works.
        var p = m.CmaAlloc(m.Cma["rk-dma-heap-cma"], 1, 0);
        Assert.False(p.IsNull);
        Assert.True(m.CmaRelease(m.Cma["rk-dma-heap-cma"], p, 1));
        TestSupport.AssertConsistent(m);
    }

    [SkippableFact]
    public void The_documented_order_re_entry_and_try_acquisitions_pass()
    {
        Skip.IfNot(LockOrder.IsChecked, "the lock order is checked in Debug builds only");
        object outer = new(), inner = new(), tried = new();
        int before = LockOrder.Violations;
        LockOrder.Enter(LockRank.Contig, outer);
        lock (outer)
        {
            LockOrder.Enter(LockRank.Zone, inner);
            lock (inner)
            {
                LockOrder.Enter(LockRank.Zone, inner);                       // re-entered: allowed
                lock (inner) { }
                Assert.True(Monitor.TryEnter(tried));                        // a try against the order cannot deadlock
                LockOrder.Entered(LockRank.MovablePin, tried);
                Monitor.Exit(tried);
                LockOrder.Enter(LockRank.KernelLog, new object());           // deeper: allowed
            }
            // The inner lock is released: an equal rank may be taken again.
            LockOrder.Enter(LockRank.Zone, new object());
        }
        Assert.Equal(before, LockOrder.Violations);
        // Two locks of one rank at once are an inversion too (two threads could take them in opposite orders).
        object a = new(), b = new();
        LockOrder.Enter(LockRank.Zone, a);
        lock (a) Assert.Throws<LockOrderException>(() => LockOrder.Enter(LockRank.Zone, b));
    }
}
