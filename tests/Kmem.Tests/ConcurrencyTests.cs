// Multi-threaded stress: allocations on one thread freed on another (the network-buffer pattern),
// per-thread lists drained from a third thread while the others run, then a full invariant check.
using System.Collections.Concurrent;

namespace Kmem.Tests;

public class ConcurrencyTests
{
    [Theory]
    [InlineData("5.10")]   // orders 1..3 merge back into the buddy lists
    [InlineData("6.6")]    // orders 1..3 wait on the freeing thread's per-CPU lists
    public void Cross_thread_frees_with_concurrent_drains_keep_every_invariant(string version)
    {
        using var m = Machine.Boot(MachineProfile.Embedded("rv1106") with { Version = KernelVersion.Parse(version) });
        string boot = TestSupport.Buddy(m);
        var handoff = new BlockingCollection<(Page Page, int Order, byte Stamp)>(boundedCapacity: 4096);
        var errors = new ConcurrentQueue<string>();
        const int perProducer = 60_000;
        using var stop = new CancellationTokenSource();

        void Produce(int seed)
        {
            var rnd = new Random(seed);
            var local = new List<(Page, int)>();
            for (int i = 0; i < perProducer; i++)
            {
                int order = rnd.Next(10) < 7 ? 0 : rnd.Next(1, 4);
                var p = m.AllocPages(Gfp.Kernel | Gfp.NoWarn, order);
                if (p.IsNull) { errors.Enqueue($"allocation of order {order} failed"); continue; }
                byte stamp = (byte)(seed + i);
                m.PageSpan(p, order).Fill(stamp);
                if (rnd.Next(3) == 0) local.Add((p, order));              // some are freed here,
                else handoff.Add((p, order, stamp));                     // most on the other thread
                if (local.Count > 64) { foreach (var (lp, lo) in local) m.FreePages(lp, lo); local.Clear(); }
            }
            foreach (var (lp, lo) in local) m.FreePages(lp, lo);
        }

        void Consume()
        {
            foreach (var (p, order, stamp) in handoff.GetConsumingEnumerable())
            {
                if (m.PageSpan(p, order).IndexOfAnyExcept(stamp) >= 0) errors.Enqueue($"{p} was overwritten while in flight");
                m.FreePages(p, order);
            }
        }

        var producers = new[] { new Thread(() => Produce(1)), new Thread(() => Produce(2)) };
        var consumer = new Thread(Consume);
        var drainer = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) { m.DrainAllPages(); Thread.Sleep(1); }
        });
        consumer.Start(); drainer.Start();
        foreach (var t in producers) t.Start();
        foreach (var t in producers) t.Join();
        handoff.CompleteAdding();
        consumer.Join();
        stop.Cancel();
        drainer.Join();

        Assert.True(errors.IsEmpty, string.Join("\n", errors.Take(10)));
        TestSupport.AssertConsistent(m);
        // Every page comes back and merges into the boot-time blocks. A background reclaim pass (kswapd, woken
        // when the in-flight pages pushed a zone under its low watermark) may still be running: give it a bound.
        string now;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((now = TestSupport.Buddy(m)) != boot && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.Equal(boot, now);
    }

    [Fact]
    public void Threads_that_exit_leave_no_pages_behind_after_a_drain()
    {
        using var m = Machine.Boot("rv1106");
        string boot = TestSupport.Buddy(m);
        var threads = Enumerable.Range(0, 8).Select(i => new Thread(() =>
        {
            var pages = Enumerable.Range(0, 50).Select(_ => m.AllocPage(Gfp.Kernel)).ToList();
            foreach (var p in pages) m.FreePage(p);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.True(m.Zones[0].PcpPages > 0);
        Assert.Equal(boot, TestSupport.Buddy(m));
        Assert.Equal(0, m.Zones[0].PcpPages);
    }

    [Fact]
    public void Refcounts_survive_concurrent_get_and_put()
    {
        using var m = Machine.Boot("rv1106");
        var p = m.AllocPages(Gfp.Kernel | Gfp.Comp, 2);
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (int i = 0; i < 20000; i++) { m.GetPage(p); m.PutPage(p); }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(1, m.PageCount(p));
        m.FreePages(p, 2);
        TestSupport.AssertConsistent(m);
    }
}
