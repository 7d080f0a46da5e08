// The hardening campaign: one randomized run that drives every allocator of a machine together (pages, slab,
// kmalloc, vmalloc, CMA, the system heap, a mempool, rtskb pools) from two threads, with cross-thread frees and
// bad calls mixed in, against a reference model that knows every live allocation and the tag written into every
// byte of it (checked over the whole block when it is freed, so a small block inside a large one is seen too).
// Checkpoints stop both threads and check every invariant; at the end everything is freed and nothing is left.
// Set KMEM_CAMPAIGN_OPS (operations per thread) for the long mode, e.g. 5000000 for 10⁷ in all.
using System.Collections.Concurrent;

namespace Kmem.Tests;

public class CampaignTests
{
    private enum Kind { Pages, Kmalloc, CacheA, CacheB, Vmalloc, Cma, DmaBuf, Mempool, Rtskb }

    private sealed record Item(Kind Kind, nint Address, int Size, int Order, byte Tag, Page Page = default, DmaBuf? Buf = null, Rtskb Skb = default);

    private sealed class World(Machine m)
    {
        public readonly Machine M = m;
        public readonly SlabCache A = m.KmemCacheCreate("campaign-a", 96);
        public readonly SlabCache B = m.KmemCacheCreate("campaign-b", 200, 0, SlabFlags.NoMerge);
        public readonly CmaArea Cma = m.Cma["rk-dma-heap-cma"];
        public readonly Mempool Pool = m.MempoolCreateSlabPool(8, m.KmemCacheCreate("campaign-pool", 300))!;
        public readonly RtskbPool[] Rtskb = [m.Rtnet.CreatePool("campaign-0", 32), m.Rtnet.CreatePool("campaign-1", 32)];
        public readonly ConcurrentQueue<Item>[] Handoff = [new(), new()];
        // What the bad calls use is each thread's own, so that no other thread can take a freed object in between.
        public readonly SlabCache[] BadCache = [m.KmemCacheCreate("campaign-bad-0", 64, 0, SlabFlags.NoMerge), m.KmemCacheCreate("campaign-bad-1", 64, 0, SlabFlags.NoMerge)];
        public readonly RtskbPool[] BadPool = [m.Rtnet.CreatePool("campaign-bad-0", 2), m.Rtnet.CreatePool("campaign-bad-1", 2)];
        public readonly ConcurrentQueue<string> Violations = new();
        public long BadCalls;
    }

    private static long OpsPerThread =>
        long.TryParse(Environment.GetEnvironmentVariable("KMEM_CAMPAIGN_OPS"), out long n) && n > 0 ? n : 60_000;

    [Theory]
    [InlineData(20261202)]
    [InlineData(7)]
    public void Every_allocator_together_from_two_threads_against_the_model(int seed)
    {
        using var m = Machine.Boot("rv1106");
        var w = new World(m);
        long ops = OpsPerThread;
        const int checkpoints = 4;
        using var barrier = new Barrier(2, _ =>
        {
            var errors = m.VerifyIntegrity();
            foreach (var e in errors) w.Violations.Enqueue($"seed {seed}: invariant: {e}");
        });
        var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            try { Run(w, t, seed * 31 + t, ops, checkpoints, barrier); }
            catch (Exception e) { w.Violations.Enqueue($"seed {seed}, thread {t}: {e}"); barrier.RemoveParticipant(); }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        foreach (var q in w.Handoff)
            while (q.TryDequeue(out var it)) Free(w, it, "handoff at the end");
        Assert.True(w.Violations.IsEmpty, $"seed {seed} (replay with this seed): " + string.Join("\n", w.Violations.Take(10)));
        Assert.True(w.BadCalls > 0);
        // Nothing left: every kind back to empty, every invariant holds.
        Assert.Equal(0UL, w.Cma.Used);
        Assert.Empty(m.DmaBufs);
        Assert.All(w.Rtskb.Concat(w.BadPool), p => Assert.Equal(p.Size, p.FreeCount));
        Assert.Equal(w.Pool.MinNr, w.Pool.CurrNr);
        w.A.Shrink(); w.B.Shrink();
        Assert.Equal(0, w.A.ActiveObjects);
        Assert.Equal(0, w.B.ActiveObjects);
        m.VmUnmapAliases();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        TestSupport.AssertConsistent(m);
    }

    private static void Run(World w, int me, int seed, long ops, int checkpoints, Barrier barrier)
    {
        var m = w.M;
        var rnd = new Random(seed);
        var live = new List<Item>();
        long every = Math.Max(1, ops / checkpoints);
        for (long i = 0; i < ops; i++)
        {
            if (i > 0 && i % every == 0) barrier.SignalAndWait();
            int r = rnd.Next(1000);
            if (r < 8) { BadCall(w, rnd, me); continue; }
            if (r < 40)
            {
                // Hand an allocation to the other thread, and free what it handed over.
                if (live.Count > 0) { int k = rnd.Next(live.Count); w.Handoff[1 - me].Enqueue(live[k]); live[k] = live[^1]; live.RemoveAt(live.Count - 1); }
                if (w.Handoff[me].TryDequeue(out var got)) Free(w, got, "cross-thread free");
                continue;
            }
            if (live.Count > 400 || (live.Count > 0 && r < 480))
            {
                int k = rnd.Next(live.Count);
                Free(w, live[k], "free");
                live[k] = live[^1];
                live.RemoveAt(live.Count - 1);
                continue;
            }
            var item = Alloc(w, rnd, me);
            if (item is not null) live.Add(item);
        }
        barrier.RemoveParticipant();
        foreach (var it in live) Free(w, it, "free at the end");
    }

    private static Gfp RandomGfp(Random rnd) => rnd.Next(4) switch { 0 => Gfp.Atomic, 1 => Gfp.Kernel | Gfp.Zero, 2 => Gfp.NoWait, _ => Gfp.Kernel };

    private static unsafe Item? Alloc(World w, Random rnd, int me)
    {
        var m = w.M;
        byte tag = (byte)rnd.Next(1, 255);
        Gfp gfp = RandomGfp(rnd) | Gfp.NoWarn;
        Item? it = null;
        int pick = rnd.Next(100);
        if (pick < 20) { int o = rnd.Next(4); var p = m.AllocPages(gfp, o); if (!p.IsNull) it = new Item(Kind.Pages, m.PageAddress(p), 4096 << o, o, tag, p); }
        else if (pick < 45) { int n = rnd.Next(1, 20_000); nint a = m.Kmalloc(n, gfp); if (a != 0) it = new Item(Kind.Kmalloc, a, n, 0, tag); }
        else if (pick < 60) { nint a = w.A.Alloc(gfp); if (a != 0) it = new Item(Kind.CacheA, a, w.A.ObjectSize, 0, tag); }
        else if (pick < 72) { nint a = w.B.Alloc(gfp); if (a != 0) it = new Item(Kind.CacheB, a, w.B.ObjectSize, 0, tag); }
        else if (pick < 75) { int n = rnd.Next(1, 64) * 4096; nint a = m.Vmalloc((nuint)n, Gfp.Kernel | Gfp.NoWarn); if (a != 0) it = new Item(Kind.Vmalloc, a, n, 0, tag); }
        else if (pick < 77) { int n = rnd.Next(1, 16); var p = m.CmaAlloc(w.Cma, n, 0, Gfp.Kernel | Gfp.NoWarn); if (!p.IsNull) it = new Item(Kind.Cma, m.PageAddress(p), n * 4096, n, tag, p); }
        else if (pick < 80) { var b = m.DmaHeaps["system"].AllocateBuffer(rnd.Next(1, 64) * 4096); if (b is not null) it = new Item(Kind.DmaBuf, 0, (int)b.Size, 0, tag, Buf: b); }
        else if (pick < 88) { nint a = w.Pool.Alloc(gfp); if (a != 0) it = new Item(Kind.Mempool, a, 300, 0, tag); }
        else { var s = w.Rtskb[me].Alloc(rnd.Next(0, 1545)); if (!s.IsNull) it = new Item(Kind.Rtskb, s.Data, s.Capacity, 0, tag, Skb: s); }
        if (it is null) return null;
        var span = Bytes(it);
        span.Fill(tag);                                   // every byte: a small block inside a large one overwrites some
        return it;
    }

    private static unsafe Span<byte> Bytes(Item it) => it.Kind == Kind.DmaBuf ? it.Buf!.Span : new Span<byte>((void*)it.Address, it.Size);

    private static void Free(World w, Item it, string what)
    {
        var m = w.M;
        var span = Bytes(it);
        int bad = span.IndexOfAnyExcept(it.Tag);      // the whole block, not only its ends
        if (bad >= 0)
            w.Violations.Enqueue($"{what}: {it.Kind} at 0x{it.Address:x} ({it.Size} bytes) lost its tag at +{bad}: another allocation overlapped it");
        switch (it.Kind)
        {
            case Kind.Pages: m.FreePages(it.Page, it.Order); break;
            case Kind.Kmalloc: m.Kfree(it.Address); break;
            case Kind.CacheA: w.A.Free(it.Address); break;
            case Kind.CacheB: w.B.Free(it.Address); break;
            case Kind.Vmalloc: m.Vfree(it.Address); break;
            case Kind.Cma: if (!m.CmaRelease(w.Cma, it.Page, it.Order)) w.Violations.Enqueue($"{what}: cma_release refused a live run"); break;
            case Kind.DmaBuf: it.Buf!.Put(); break;
            case Kind.Mempool: w.Pool.Free(it.Address); break;
            case Kind.Rtskb: m.Rtnet.Free(it.Skb); break;
        }
    }

    /// <summary>
    /// A misuse the engine must refuse with an exception (or a failure result) and survive. Each uses resources of the
    /// calling thread only: a double free of an object another thread took in between would be a legal free.
    /// </summary>
    private static void BadCall(World w, Random rnd, int me)
    {
        var m = w.M;
        Interlocked.Increment(ref w.BadCalls);
        void Expect<T>(Action a, string what) where T : Exception
        {
            try { a(); w.Violations.Enqueue($"bad call not refused: {what}"); }
            catch (T) { }
        }
        var cache = w.BadCache[me];
        switch (rnd.Next(7))
        {
            case 0: { nint a = cache.Alloc(Gfp.Kernel); cache.Free(a); Expect<KmemException>(() => cache.Free(a), "double kmem_cache_free"); break; }
            case 1: { nint a = cache.Alloc(Gfp.Kernel); Expect<KmemException>(() => w.BadCache[1 - me].Free(a), "kmem_cache_free to the wrong cache"); cache.Free(a); break; }
            case 2:
            {
                var p = m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 2);
                if (p.IsNull) break;
                Expect<KmemException>(() => m.FreePages(p, 3), "free_pages with the wrong order");
                m.FreePages(p, 2);
                break;
            }
            case 3: Expect<KmemException>(() => m.Kfree(m.VmallocStart + 0x123), "kfree of a vmalloc address"); break;
            case 4: if (!m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 40).IsNull) w.Violations.Enqueue("an impossible order was served"); break;
            case 5:
            {
                var s = w.BadPool[me].Alloc(64);
                if (s.IsNull) { w.Violations.Enqueue("a private rtskb pool was empty"); break; }
                m.Rtnet.Free(s);
                Expect<RtnetException>(() => m.Rtnet.Free(s), "double kfree_rtskb");
                break;
            }
            default: Expect<KmemException>(() => m.Vfree(m.VmallocStart + 4096 * 7), "vfree of an address that is no area"); break;
        }
    }
}
