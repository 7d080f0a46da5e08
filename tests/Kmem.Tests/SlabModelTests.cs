// Model-based and concurrent tests of the slab layer: random operations over caches and kmalloc
// checked against a simple model (no overlap, every live object in a slab of its cache, exact counts),
// and threads that allocate, hand objects to each other and free them while another thread shrinks.
using System.Collections.Concurrent;
using FsCheck;
using FsCheck.Fluent;

namespace Kmem.Tests;

public unsafe class SlabModelTests
{
    private sealed record Live(nint Ptr, int Size, byte Stamp, SlabCache? Cache, bool Kmalloc);

    /// <summary>Runs random operations; returns the first violation, or null.</summary>
    private static string? RunModel(int seed, int ops, string profile, string cmdline = "")
    {
        using var m = Machine.Boot(profile, cmdline);
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var rnd = new Random(seed);
        var caches = new[]
        {
            m.KmemCacheCreate("model_a", 24, 0, SlabFlags.NoMerge),
            m.KmemCacheCreate("model_b", 200, 0, SlabFlags.HwcacheAlign | SlabFlags.NoMerge),
            m.KmemCacheCreate("model_c", 1500, 0, SlabFlags.NoMerge, p => *(int*)p = 7),
            m.KmemCacheCreate("model_d", 3000, 0, SlabFlags.ReclaimAccount | SlabFlags.NoMerge),
            m.KmemCacheCreate("model_s", 40, 0, SlabFlags.None, sheafCapacity: 5),
        };
        var live = new List<Live>();
        var perCache = new Dictionary<SlabCache, int>();
        for (int op = 0; op < ops; op++)
        {
            int r = rnd.Next(100);
            if (live.Count == 0 || r < 52)
            {
                Live l;
                byte stamp = (byte)rnd.Next(1, 256);
                if (rnd.Next(3) == 0)
                {
                    int size = rnd.Next(10) == 0 ? rnd.Next(8193, 40000) : rnd.Next(1, 8193);
                    nint p = m.Kmalloc(size, Gfp.Kernel);
                    if (p == 0) return $"op {op}: kmalloc({size}) failed";
                    if ((int)m.Ksize(p) < size) return $"op {op}: ksize {m.Ksize(p)} < {size}";
                    l = new Live(p, size, stamp, null, true);
                }
                else
                {
                    var c = caches[rnd.Next(caches.Length)];
                    nint p = c.Alloc(Gfp.Kernel);
                    if (p == 0) return $"op {op}: {c.Name} alloc failed";
                    if (m.Slab.SlabCacheOf(p) != c) return $"op {op}: object 0x{p:x} is not in a slab of {c.Name}";
                    if (c.HasCtor && *(int*)p != 7) return $"op {op}: constructed state lost";
                    l = new Live(p, c.ObjectSize, stamp, c, false);
                    perCache[c] = perCache.GetValueOrDefault(c) + 1;
                }
                new Span<byte>((void*)l.Ptr, l.Size).Fill(stamp);
                if (l.Cache?.HasCtor == true) *(int*)l.Ptr = 7;
                live.Add(l);
            }
            else if (r < 99)
            {
                int i = rnd.Next(live.Count);
                var l = live[i];
                live[i] = live[^1];
                live.RemoveAt(live.Count - 1);
                var span = new Span<byte>((void*)l.Ptr, l.Size);
                int from = l.Cache?.HasCtor == true ? 4 : 0;
                int bad = span[from..].IndexOfAnyExcept(l.Stamp);
                if (bad >= 0) return $"op {op}: object 0x{l.Ptr:x} ({l.Cache?.Name ?? "kmalloc"}) overwritten at byte {bad + from}: overlap";
                if (l.Kmalloc) m.Kfree(l.Ptr);
                else
                {
                    l.Cache!.Free(l.Ptr);
                    perCache[l.Cache]--;
                }
            }
            else
            {
                caches[rnd.Next(caches.Length)].Shrink();
            }
            if (op % 25000 == 0 || op == ops - 1)
            {
                var errors = m.VerifyIntegrity();
                if (errors.Count > 0) return $"op {op}: {errors[0]}";
                foreach (var c in caches)
                    if (c.ObjectsInUse != perCache.GetValueOrDefault(c)) return $"op {op}: {c.Name} has {c.ObjectsInUse} in use, model {perCache.GetValueOrDefault(c)}";
                var sorted = live.OrderBy(x => x.Ptr).ToList();
                for (int k = 1; k < sorted.Count; k++)
                    if (sorted[k - 1].Ptr + sorted[k - 1].Size > sorted[k].Ptr) return $"op {op}: 0x{sorted[k - 1].Ptr:x} overlaps 0x{sorted[k].Ptr:x}";
            }
        }
        foreach (var l in live)
        {
            if (l.Kmalloc) m.Kfree(l.Ptr); else l.Cache!.Free(l.Ptr);
        }
        foreach (var c in caches) c.Destroy();
        var end = m.VerifyIntegrity();
        return end.Count > 0 ? $"end: {end[0]}" : null;
    }

    [Fact]
    public void Hundred_thousand_random_operations_keep_the_model()
    {
        string? violation = RunModel(20261122, 100_000, "x86_64");
        Assert.True(violation is null, violation);
    }

    [Fact]
    public void Random_operations_on_the_arm_board_with_debug_caches()
    {
        string? violation = RunModel(7, 30_000, "rv1106", "slub_debug=FZPU,model_b,model_d,kmalloc-1k");
        Assert.True(violation is null, violation);
    }

    [Fact]
    public void Property_any_seed_keeps_the_model()
    {
        Prop.ForAll(ArbMap.Default.ArbFor<int>(), seed => RunModel(seed, 3000, "x86_64") is null)
            .Check(Config.QuickThrowOnFailure.WithMaxTest(15));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    public void Producer_and_consumer_threads_free_each_others_objects(int sheafCapacity)
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("xthread", 64, 0, SlabFlags.NoMerge, sheafCapacity: sheafCapacity);
        const int N = 200_000;
        var q = new BlockingCollection<nint>(4096);
        long badStamps = 0;
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                nint p = i % 3 == 0 ? m.Kmalloc(64, Gfp.Kernel) : c.Alloc(Gfp.Kernel);
                *(long*)p = i;
                *(long*)(p + 56) = i;
                q.Add(p);
            }
            q.CompleteAdding();
        });
        int received = 0;
        var consumer = new Thread(() =>
        {
            foreach (nint p in q.GetConsumingEnumerable())
            {
                long i = *(long*)p;
                if (*(long*)(p + 56) != i) Interlocked.Increment(ref badStamps);
                if (i % 3 == 0) m.Kfree(p); else c.Free(p);
                received++;
            }
        });
        producer.Start();
        consumer.Start();
        producer.Join();
        consumer.Join();
        Assert.Equal(N, received);
        Assert.Equal(0, badStamps);
        Assert.Equal(0, c.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
        c.Shrink();
        Assert.Equal(0, c.Slabs);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void Four_threads_exchange_objects_while_another_shrinks(int sheafCapacity)
    {
        using var m = Machine.Boot("x86_64");
        var caches = new[]
        {
            m.KmemCacheCreate("mt_a", 48, 0, SlabFlags.NoMerge, sheafCapacity: sheafCapacity),
            m.KmemCacheCreate("mt_b", 700, 0, SlabFlags.NoMerge, sheafCapacity: sheafCapacity),
        };
        var mailboxes = Enumerable.Range(0, 4).Select(_ => new ConcurrentQueue<(nint, int, byte)>()).ToArray();
        long errors = 0;
        using var stop = new CancellationTokenSource();
        var shrinker = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                m.ShrinkSlabs();
                Thread.Sleep(1);
            }
        });
        var workers = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var rnd = new Random(t);
            var mine = new List<(nint P, int C, byte S)>();
            for (int i = 0; i < 60_000; i++)
            {
                int r = rnd.Next(10);
                if (r < 5)
                {
                    int ci = rnd.Next(2);
                    nint p = caches[ci].Alloc(Gfp.Kernel);
                    byte s = (byte)rnd.Next(256);
                    new Span<byte>((void*)p, caches[ci].ObjectSize).Fill(s);
                    if (rnd.Next(2) == 0) mailboxes[rnd.Next(4)].Enqueue((p, ci, s)); else mine.Add((p, ci, s));
                }
                else
                {
                    (nint P, int C, byte S) o;
                    if (mailboxes[t].TryDequeue(out var got)) o = got;
                    else if (mine.Count > 0) { o = mine[^1]; mine.RemoveAt(mine.Count - 1); }
                    else continue;
                    if (new Span<byte>((void*)o.P, caches[o.C].ObjectSize).IndexOfAnyExcept(o.S) >= 0) Interlocked.Increment(ref errors);
                    caches[o.C].Free(o.P);
                }
            }
            foreach (var o in mine) caches[o.C].Free(o.P);
        })).ToArray();
        shrinker.Start();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        stop.Cancel();
        shrinker.Join();
        foreach (var box in mailboxes)
            while (box.TryDequeue(out var o)) caches[o.Item2].Free(o.Item1);
        Assert.Equal(0, errors);
        Assert.All(caches, c => Assert.Equal(0, c.ObjectsInUse));
        Assert.Empty(m.VerifyIntegrity());
        m.ShrinkSlabs();
        Assert.All(caches, c => Assert.Equal(0, c.Slabs));
    }
}
