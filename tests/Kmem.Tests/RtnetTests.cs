// RTnet's rtskb pools: geometry and /proc/rtnet/rtskb, every return value of init/extend/shrink/release and
// of the socket calls, FIFO order, the compensation exchange, isolation of a consumer that stops returning
// buffers, frees from other threads, and misuse with the pool state unchanged.
using Kmem.Rtnet;

namespace Kmem.Tests;

public class RtnetTests
{
    private static string State(RtnetStack rt) => string.Join(";", rt.Pools.Select(p => $"{p.Name}:{p.FreeCount}/{p.Size}")) + rt.RtskbCount;

    [Fact]
    public void Geometry_pool_set_and_proc_follow_rtnet()
    {
        using var m = Machine.Boot("x86_64");
        var rt = m.Rtnet;
        Assert.Equal(192, rt.HeaderBytes);                                 // ALIGN(sizeof(struct rtskb) = 160, 64)
        Assert.Equal(1600, rt.DataBytes);                                  // SKB_DATA_ALIGN(1544)
        Assert.Equal(1792, rt.RtskbBytes);
        Assert.Equal(1792, rt.Cache.ObjectSize);
        Assert.Equal(16, rt.GlobalPool.Size);                              // global_rtskbs 0 + device_rtskbs 16 for rtlo
        Assert.Equal(8, rt.IcmpPool.Size);
        Assert.Equal(32, rt.VnicPool.Size);
        Assert.Equal(32, rt.ProxyPool.Size);
        var eth = rt.RegisterNic("rteth0");
        Assert.Equal(16, eth.RxPool.Size);
        Assert.Equal(32, rt.GlobalPool.Size);
        var s = rt.Socket(7)!;
        Assert.Equal(16, s.Pool.Size);
        int n = 16 + 8 + 32 + 32 + 1 + 16 + 16 + 16;
        Assert.Equal($"Statistics\t\tCurrent\tMaximum\nrtskb pools\t\t7\t7\nrtskbs\t\t\t{n}\t{n}\nrtskb memory need\t{n * 1792}\t{n * 1792}\n",
            m.ProcFs.Read("/proc/rtnet/rtskb"));
        using var arm = Machine.Boot("rv1106", "rtnet.socket_rtskbs=4 rtnet.global_rtskbs=10 rt_8139too.rx_pool_size=3 rtnet.rtskb_size=2048");
        Assert.Equal(1728 + 448, arm.Rtnet.RtskbBytes);                   // 128 + ALIGN(2048, 64)
        Assert.Equal(26, arm.Rtnet.GlobalPool.Size);
        Assert.Equal(4, arm.Rtnet.Socket(1)!.Pool.Size);
        Assert.Equal(3, arm.Rtnet.RegisterNic("rteth0").RxPool.Size);
        Assert.Throws<ProfileException>(() => Machine.Boot("rv1106", "rtnet.socket_rtskbs=-1"));
    }

    [Fact]
    public void Pools_are_fifo_and_alloc_sets_the_buffer_up()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("test", 4);
        var order = new List<nint>();
        for (int i = 0; i < 4; i++) order.Add(pool.Alloc(100).Address);
        Assert.True(pool.Alloc(100).IsNull);
        Assert.Equal(1, pool.AllocFailures);
        foreach (var a in order.AsEnumerable().Reverse()) rt.Free(new Rtskb(a));
        // Freed last-to-first: they come back in that order (tail in, head out).
        Assert.Equal(order.AsEnumerable().Reverse(), Enumerable.Range(0, 4).Select(_ => pool.Alloc(0).Address));
        var skb = rt.CreatePool("one", 1).Alloc(1500);
        Assert.Equal(0, skb.Len);
        Assert.Equal(1500, skb.Capacity);
        skb.Put(1500).Fill(0x42);
        Assert.Equal(1500, skb.Len);
        Assert.Throws<ArgumentOutOfRangeException>(() => skb.Put(1));
        Assert.True(skb.Data >= skb.Address + rt.HeaderBytes);
        rt.Free(skb);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Extend_keeps_a_partial_result_and_shrink_takes_only_free_buffers()
    {
        using var m = TestSupport.Small();
        var rt = m.Rtnet;
        var pool = rt.CreatePool("big", 0);
        Assert.Equal((6, 6), rt.PoolCount);                              // counted even with 0 buffers (5 at load)
        int added = pool.Extend(100_000);                                // more than 32 MiB holds
        Assert.InRange(added, 1000, 99_999);
        Assert.Equal(added, pool.Size);
        Assert.Contains("RTnet: rtskb allocation from slab pool failed", m.Dmesg());
        var out1 = pool.Alloc(10);
        var out2 = pool.Alloc(10);
        Assert.Equal(added - 2, pool.Shrink(int.MaxValue));              // the two out stay
        Assert.Equal(2, pool.Size);
        Assert.Equal(0, pool.Shrink(5));
        Assert.Equal(-11, pool.Release());                               // -EAGAIN while out
        Assert.False(pool.Released);
        rt.Free(out1);
        rt.Free(out2);
        Assert.Equal(0, pool.Release());
        Assert.True(pool.Released);
        Assert.Equal(-9, pool.Extend(1));                                // a released pool: -EBADF
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Shrink(-1));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_exchange_moves_ownership_and_keeps_every_total()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var producer = rt.CreatePool("nic", 2);
        var consumer = rt.CreatePool("sock", 1);
        var skb = producer.Alloc(64);
        Assert.Equal(0, consumer.Acquire(skb));
        Assert.Equal((2, 2), (producer.Size, producer.FreeCount));       // got the consumer's buffer in exchange
        Assert.Equal((1, 0), (consumer.Size, consumer.FreeCount));
        Assert.Same(consumer, rt.OwnerOf(skb));
        var skb2 = producer.Alloc(64);
        string before = State(rt);
        Assert.Equal(-12, consumer.Acquire(skb2));                       // the consumer has nothing to give: -ENOMEM
        Assert.Equal(before, State(rt));
        Assert.Same(producer, rt.OwnerOf(skb2));
        Assert.Equal(1, consumer.AcquireFailures);
        rt.Free(skb2);                                                   // dropped: back to the producer
        rt.Free(skb);                                                    // to its new owner
        Assert.Equal((2, 2, 1, 1), (producer.Size, producer.FreeCount, consumer.Size, consumer.FreeCount));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Misuse_is_reported_and_changes_nothing()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("p", 3);
        var skb = pool.Alloc(10);
        rt.Free(skb);
        string before = State(rt);
        Assert.Throws<RtnetException>(() => rt.Free(skb));               // double free
        Assert.Contains("(double free)", m.Dmesg());
        nint k = m.Kmalloc(2048, Gfp.Kernel);
        var foreign = new Rtskb(k);
        Assert.Throws<RtnetException>(() => rt.Free(foreign));
        Assert.Throws<RtnetException>(() => pool.Acquire(foreign));
        Assert.Throws<RtnetException>(() => rt.Free(default));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Alloc(rt.DataBytes + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Alloc(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Extend(-1));
        Assert.Equal(before, State(rt));
        using var other = Machine.Boot("rv1106");
        var theirs = other.Rtnet.CreatePool("x", 1).Alloc(1);
        Assert.Throws<RtnetException>(() => rt.Free(theirs));
        Assert.Equal(before, State(rt));
        m.Kfree(k);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Socket_calls_return_rtnets_values()
    {
        using var m = TestSupport.Small();
        var rt = m.Rtnet;
        var s = rt.Socket(5000)!;
        Assert.Equal(4, s.SetSockOpt(RtSocket.RtSoExtPool, 4));
        Assert.Equal(20, s.Pool.Size);
        Assert.Equal(0, s.SetSockOpt(RtSocket.RtSoExtPool, 0));
        Assert.Equal(3, s.Ioctl(RtSocket.RtiocShrPool, 3));
        Assert.Equal(2, s.Ioctl(RtSocket.RtiocExtPool, 2));
        Assert.Equal(-92, s.SetSockOpt(0xFF03, 1));                        // -ENOPROTOOPT
        Assert.Equal(-25, s.Ioctl(0x40040416, 1));                         // -ENOTTY
        Assert.Equal(-22, s.SetSockOpt(RtSocket.RtSoExtPool, -1));
        Assert.Throws<RtnetException>(() => rt.Socket(5000));              // port in use
        // Every buffer out: shrinking removes none, -EBUSY.
        var held = new List<Rtskb>();
        while (s.Pool.Alloc(0) is { IsNull: false } b) held.Add(b);
        Assert.Equal(-16, s.SetSockOpt(RtSocket.RtSoShrPool, 5));
        // No memory left for the slab: extending adds none, -ENOMEM; a new socket cannot get a pool.
        var hog = new List<Page>();
        while (m.AllocPages(Gfp.Kernel | Gfp.NoWarn | Gfp.Memalloc, 0) is { IsNull: false } p) hog.Add(p);
        int r;
        while ((r = s.SetSockOpt(RtSocket.RtSoExtPool, 1000)) > 0) { }   // the slab's last free objects first
        Assert.Equal(-12, r);
        var (pools, _) = rt.PoolCount;
        Assert.Null(rt.Socket(5001));
        Assert.Equal(pools, rt.PoolCount.Current);                         // the failed socket's pool is not counted
        foreach (var p in hog) m.FreePage(p);
        // close() while buffers are out: -EAGAIN, the socket stays; once they are back, 0.
        Assert.Equal(-11, s.Close());
        Assert.True(s.Closing);
        Assert.Equal(-9, s.SetSockOpt(RtSocket.RtSoExtPool, 1));           // closing: -EBADF
        foreach (var b in held) rt.Free(b);
        Assert.Equal(0, s.Close());
        Assert.True(s.Closed);
        Assert.Equal(-9, s.Close());
        Assert.DoesNotContain(5000, rt.Sockets.Keys);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_consumer_that_stops_reading_exhausts_only_its_own_pool()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var nic = rt.RegisterNic("rteth0");
        var stuck = rt.Socket(100)!;                                       // never reads
        var good = rt.Socket(200)!;
        var buf = new byte[2048];
        var frame = new byte[1200];
        int goodGot = 0;
        for (int i = 0; i < 10_000; i++)
        {
            frame[0] = (byte)i;
            nic.Receive(frame, 100);
            Assert.True(nic.Receive(frame, 200));
            Assert.Equal(1200, good.Receive(buf));
            Assert.Equal((byte)i, buf[0]);
            goodGot++;
            Assert.Equal(16, nic.RxPool.FreeCount);                       // the NIC's pool is whole after every frame
        }
        Assert.Equal(10_000, goodGot);
        Assert.Equal(16, stuck.Received);
        Assert.Equal(10_000 - 16, stuck.Dropped);
        Assert.Equal(0, stuck.Pool.FreeCount);
        Assert.Equal(16, good.Pool.FreeCount);
        Assert.Equal(32, rt.GlobalPool.FreeCount);                        // untouched
        Assert.Equal(8, rt.IcmpPool.FreeCount);
        // The stuck consumer catches up: its pool refills from what it reads.
        while (stuck.Receive(buf) > 0) { }
        Assert.Equal(16, stuck.Pool.FreeCount);
        Assert.Equal(0, stuck.Close());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Unregistering_a_nic_gives_its_buffers_back()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var nic = rt.RegisterNic("rteth1");
        Assert.Equal(32, rt.GlobalPool.Size);
        var held = nic.RxPool.Alloc(100);
        Assert.Equal(-11, rt.UnregisterNic(nic));                      // a receive buffer is out
        Assert.Contains("rteth1", rt.Nics.Keys);
        rt.Free(held);
        Assert.Equal(0, rt.UnregisterNic(nic));
        Assert.Equal(16, rt.GlobalPool.Size);
        Assert.DoesNotContain("rteth1", rt.Nics.Keys);
        Assert.Throws<RtnetException>(() => rt.UnregisterNic(nic));
        Assert.Equal(16 + 8 + 32 + 32 + 1, rt.RtskbCount.Current);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Buffers_are_freed_from_another_thread_to_their_owner()
    {
        using var m = Machine.Boot("rk3588");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("xthread", 256);
        var handoff = new System.Collections.Concurrent.BlockingCollection<nint>(64);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var producer = new Thread(() =>
        {
            for (int i = 0; i < 200_000; i++)
            {
                var skb = pool.Alloc(8);
                while (skb.IsNull) { Thread.Yield(); skb = pool.Alloc(8); }
                skb.Put(8);
                System.Runtime.InteropServices.Marshal.WriteInt32(skb.Data, i);
                handoff.Add(skb.Address);
            }
            handoff.CompleteAdding();
        });
        var consumer = new Thread(() =>
        {
            int expect = 0;
            foreach (var a in handoff.GetConsumingEnumerable())
            {
                var skb = new Rtskb(a);
                if (System.Runtime.InteropServices.Marshal.ReadInt32(skb.Data) != expect++) errors.Enqueue("out of order or overwritten");
                rt.Free(skb);
            }
        });
        producer.Start(); consumer.Start(); producer.Join(); consumer.Join();
        Assert.Empty(errors);
        Assert.Equal((256, 256), (pool.Size, pool.FreeCount));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_pools_lock_is_biased_to_its_one_user_and_shared_once_a_second_thread_uses_it()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("biased", 4);
        Assert.Equal(0, pool.LockBias);                                  // set-up does not bias
        var skb = pool.Alloc(64);
        Assert.Equal(Environment.CurrentManagedThreadId, pool.LockBias);
        rt.Free(skb);
        Assert.Equal(Environment.CurrentManagedThreadId, pool.LockBias);
        skb = pool.Alloc(64);
        var other = new Thread(() => rt.Free(skb));
        other.Start(); other.Join();
        Assert.Equal(-1, pool.LockBias);                                 // revoked for good
        Assert.Equal((4, 4), (pool.Size, pool.FreeCount));
        Assert.False(pool.Alloc(64).IsNull);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Revoking_a_bias_while_its_owner_runs_loses_no_buffer()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var rnd = new Random(6);
        for (int round = 0; round < 20; round++)
        {
            var pool = rt.CreatePool($"revoke{round}", 8);
            var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var stop = new ManualResetEventSlim();
            void Work(int marker, int ops)
            {
                for (int i = 0; i < ops; i++)
                {
                    var skb = pool.Alloc(16);
                    if (skb.IsNull) continue;                            // the other thread holds them all
                    unsafe
                    {
                        *(int*)skb.Data = marker;
                        Thread.SpinWait(1);
                        if (*(int*)skb.Data != marker) errors.Enqueue("a buffer was handed out twice");
                    }
                    rt.Free(skb);
                }
            }
            int delay = rnd.Next(0, 20_000);
            var owner = new Thread(() => Work(1, 60_000));
            var second = new Thread(() => { Thread.SpinWait(delay); Work(2, 30_000); });
            owner.Start(); second.Start(); owner.Join(); second.Join();
            Assert.Empty(errors);
            Assert.Equal((8, 8), (pool.Size, pool.FreeCount));
            Assert.Equal(0, pool.Release());
        }
        TestSupport.AssertConsistent(m);
    }

    [SkippableFact]
    public void A_pool_whose_owner_thread_has_exited_stays_exclusive_for_new_threads()
    {
        // A C library may hand an exited thread's stack to the next thread it creates, which then passes the owner's
        // stack test: that must still give each buffer to one thread at a time. Whether glibc reuses a stack is its
        // business, so the test makes the case itself: a new thread takes over the exited owner's stack range exactly
        // as the lock would see it after such a reuse (the range is all the lock knows of its owner), then races a
        // second thread that has to revoke the bias.
        Skip.IfNot(OperatingSystem.IsLinux(), "the bias needs the thread's stack range, known on Linux only");
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        for (int round = 0; round < 10; round++)
        {
            var pool = rt.CreatePool($"orphan{round}", 4);
            var first = new Thread(() => rt.Free(pool.Alloc(8)));
            first.Start(); first.Join();
            Assert.True(pool.LockBias > 0);                               // biased to the thread that has exited
            void Work(int marker)
            {
                for (int i = 0; i < 20_000; i++)
                {
                    var skb = pool.Alloc(16);
                    if (skb.IsNull) continue;
                    unsafe
                    {
                        *(int*)skb.Data = marker;
                        Thread.SpinWait(1);
                        if (*(int*)skb.Data != marker) errors.Enqueue("a buffer was handed out twice");
                    }
                    rt.Free(skb);
                }
            }
            using var inherited = new ManualResetEventSlim();
            var a = new Thread(() =>
            {
                InheritOwnerStack(pool);
                inherited.Set();
                Work(1);
            });
            var b = new Thread(() => { inherited.Wait(); Work(2); });
            a.Start(); b.Start(); a.Join(); b.Join();
            Assert.Equal((4, 4), (pool.Size, pool.FreeCount));
        }
        Assert.Empty(errors);
        TestSupport.AssertConsistent(m);
    }

    /// <summary>What a reused stack does to a biased lock: the calling thread's stack becomes the owner's stack range.</summary>
    private static unsafe void InheritOwnerStack(RtskbPool pool)
    {
        Assert.True(ThreadStack.TryGetCurrent(out nint low, out nint size));
        ref RtBiasedLock l = ref ((RtskbPoolControl*)pool.Control)->Lock;
        Assert.NotEqual(0, OwnerStackSize(ref l));                        // the exited owner's range is set
        Volatile.Write(ref OwnerStackSize(ref l), 0);                     // size 0: the address is being changed
        Volatile.Write(ref OwnerStack(ref l), low);
        Volatile.Write(ref OwnerStackSize(ref l), size);
        Assert.True(l.TryEnterBiased(), "the thread on the owner's stack takes the biased path");
        l.ExitBiased();
    }

    [System.Runtime.CompilerServices.UnsafeAccessor(System.Runtime.CompilerServices.UnsafeAccessorKind.Field, Name = "_ownerStack")]
    private static extern ref nint OwnerStack(ref RtBiasedLock l);

    [System.Runtime.CompilerServices.UnsafeAccessor(System.Runtime.CompilerServices.UnsafeAccessorKind.Field, Name = "_ownerStackSize")]
    private static extern ref nint OwnerStackSize(ref RtBiasedLock l);

    [Fact]
    public void Random_allocs_frees_extends_and_shrinks_match_a_fifo_model()
    {
        using var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var rnd = new Random(42);
        var pool = rt.CreatePool("model", 3);
        var queue = new Queue<nint>();                                   // the model: the free buffers, head first
        var out_ = new List<nint>();
        for (int i = 0; i < 3; i++) out_.Add(pool.Alloc(0).Address);    // learn the addresses
        foreach (var a in out_) { rt.Free(new Rtskb(a)); queue.Enqueue(a); }
        out_.Clear();
        for (int step = 0; step < 20_000; step++)
        {
            int op = rnd.Next(10);
            if (op < 5)
            {
                var skb = pool.Alloc(rnd.Next(0, 1545));
                if (queue.Count == 0) Assert.True(skb.IsNull);
                else { Assert.Equal(queue.Dequeue(), skb.Address); out_.Add(skb.Address); }
            }
            else if (op < 9 && out_.Count > 0)
            {
                int i = rnd.Next(out_.Count);
                rt.Free(new Rtskb(out_[i]));
                queue.Enqueue(out_[i]);
                out_.RemoveAt(i);
            }
            else if (rnd.Next(2) == 0 && pool.Size < 70)
            {
                int before = pool.Size;                                  // grows the ring past a power of two now and then
                Assert.Equal(3, pool.Extend(3));
                Assert.Equal(before + 3, pool.Size);
                // The new buffers join the tail: learn their addresses without disturbing the model's order.
                var all = new List<nint>();
                for (var s = pool.Alloc(0); !s.IsNull; s = pool.Alloc(0)) all.Add(s.Address);
                Assert.Equal(queue, all.Take(queue.Count));
                foreach (var a in all) rt.Free(new Rtskb(a));
                queue = new Queue<nint>(all);
            }
            else
            {
                int want = rnd.Next(0, 4), free = queue.Count;
                Assert.Equal(Math.Min(want, free), pool.Shrink(want));  // from the head, never one that is out
                for (int i = 0; i < Math.Min(want, free); i++) queue.Dequeue();
            }
            Assert.Equal((queue.Count + out_.Count, queue.Count), (pool.Size, pool.FreeCount));
            if (step % 1000 == 0) Assert.Empty(rt.CheckInvariants());
        }
        foreach (var a in out_) rt.Free(new Rtskb(a));
        Assert.Equal(0, pool.Release());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public unsafe void The_real_time_state_is_one_cache_line()
    {
        Assert.True(sizeof(RtskbPoolControl) <= 64, $"{sizeof(RtskbPoolControl)} bytes");
        using var m = Machine.Boot("rv1106");
        var pool = m.Rtnet.CreatePool("line", 2);
        Assert.Equal(0, pool.Control % 64);
    }

    [SkippableFact]
    public unsafe void The_owner_is_told_by_its_stack()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the thread's stack range is known on Linux only");
        int local = 0;
        Assert.True(ThreadStack.TryGetCurrent(out nint low, out nint size));
        Assert.InRange((nint)(&local) - low, 1, size - 1);
        nint otherLow = 0, otherSize = 0;
        var t = new Thread(() => ThreadStack.TryGetCurrent(out otherLow, out otherSize));
        t.Start(); t.Join();
        Assert.True(otherSize > 0);
        Assert.True(otherLow + otherSize <= low || low + size <= otherLow, "two live threads' stacks overlap");
    }
}

public class RtnetWorkloadTests
{
    [Fact]
    public void The_packet_storm_drops_only_the_stuck_consumers_packets()
    {
        using var m = Machine.Boot("rv1106");
        var r = new WorkloadRunner(m).Run(Kmem.Cli.Commands.LoadWorkload("packet-storm"));
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        var rt = m.Rtnet;
        var nic = rt.Nics["rteth0"];
        Assert.Equal(70_000, nic.RxPackets);
        Assert.Equal(9_984, nic.RxDropped);
        Assert.Equal(16, nic.RxPool.FreeCount);
        Assert.Equal(9_984, rt.Sockets[5001].Dropped);
        Assert.Equal(0, rt.Sockets[5002].Dropped);
        Assert.DoesNotContain(5000, rt.Sockets.Keys);                      // closed
        var o = new StringWriter();
        Assert.Equal(0, Kmem.Cli.KmemCli.Run(["run", "packet-storm"], o, new StringWriter()));
        Assert.Contains("rteth0: rx 70000 packets, 9984 dropped; rx pool 16/16 free", o.ToString());
        Assert.Contains("Statistics\t\tCurrent\tMaximum\n", o.ToString());
        var c = new StringWriter();
        Assert.Equal(0, Kmem.Cli.KmemCli.Run(["cat", "/proc/rtnet/rtskb"], c, new StringWriter()));
        Assert.Equal("Statistics\t\tCurrent\tMaximum\nrtskb pools\t\t5\t5\nrtskbs\t\t\t89\t89\nrtskb memory need\t153792\t153792\n", c.ToString());
    }

    [Fact]
    public void Bad_rtnet_steps_are_refused_before_anything_runs()
    {
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "rtnet_socket", "socket": "s" } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "rtnet_socket", "socket": "s", "port": 70000 } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "rtnet_setsockopt", "socket": "s", "option": "RT_SO_PRIORITY" } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "rtnet_send", "port": 1 } ] }"""));
        using var m = Machine.Boot("rv1106");
        var w = Workload.Parse("""{ "steps": [ { "op": "rtnet_recv", "socket": "nope" } ] }""");
        Assert.Contains("no socket 'nope'", Assert.Throws<WorkloadException>(() => new WorkloadRunner(m).Run(w)).Message);
    }
}
