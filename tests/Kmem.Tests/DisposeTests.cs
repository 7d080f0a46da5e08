// After Machine.Dispose(), every object of the layers above the slab (CMA, DMA, DMA-BUF, RK heaps, DRM, VB2,
// mempools, RTnet, movable pages) throws ObjectDisposedException from every public member, except a small
// allow-list of fixed identity and the owners' Dispose (which does nothing): proved by reflection over one object
// of each type, by targeted tests of the calls that used to crash or hang, and by disposing under load.
using System.Reflection;

namespace Kmem.Tests;

public class DisposeTests
{
    /// <summary>
    /// Members that stay readable after dispose: names, ids and sizes fixed at creation (they cannot be stale), and the
    /// owners' Dispose, which does nothing once the machine is dead. Keyed by the declaring type of the member's base
    /// definition. ToString, Equals and GetHashCode (System.Object's) never throw and are not listed.
    /// </summary>
    private static readonly HashSet<string> AllowList =
    [
        "CmaArea.Name", "CmaArea.Inactive", "CmaArea.Node", "CmaArea.BasePfn", "CmaArea.Count", "CmaArea.OrderPerBit", "CmaArea.Base", "CmaArea.Size", "CmaArea.BitmapBits",
        "MovablePage.Order", "MovablePage.Length", "MovablePage.Dispose",
        "Device.Name", "Device.Driver", "Device.HasIommu", "Device.Coherent", "Device.CmaArea", "Device.Node",
        "DmaBuf.Size", "DmaBuf.ExpName", "DmaBuf.Ino", "DmaBuf.FFlags", "DmaBuf.FMode",
        "DmaBufAttachment.Buffer", "DmaBufAttachment.Device",
        "DmaHeap.Name", "SystemHeap.Uncached", "CmaHeap.Area",
        "RkDmaHeap.Name", "RkDmaHeap.Area",
        "DrmDevice.Display", "DrmDevice.DriverName", "DrmDevice.UsesIommu",
        "DrmFile.Device",
        "GemObject.Size", "GemObject.Backing",
        "Vb2Queue.Name", "Vb2Queue.Device", "Vb2Queue.Ops", "Vb2Queue.IoModes", "Vb2Queue.IsOutput", "Vb2Queue.MinBuffersNeeded",
        "Vb2DmaContig.Name", "Vb2DmaSg.Name", "Vb2Vmalloc.Name",
        "Vb2MemBuffer.Ops", "Vb2MemBuffer.Device", "Vb2MemBuffer.Size", "Vb2MemBuffer.Direction",
        "Vb2Buffer.Index", "Vb2Buffer.Memory",
        "Vb2FrameLoop.Dispose",
        "Mempool.Name",
        "RtnetStack.Params", "RtnetStack.HeaderBytes", "RtnetStack.DataBytes", "RtnetStack.RtskbBytes",
        "RtskbPool.Name",
        "RtSocket.Port",
        "RtNic.Name", "RtNic.AddedToGlobal",
        "Rtskb.Address", "Rtskb.IsNull", "Rtskb.Equals",
    ];

    /// <summary>The machine's own members of the subsystems above the slab (its partial files for them).</summary>
    private static readonly string[] MachineMembers =
    [
        "CmaAlloc", "CmaRelease", "AllocMovable", "PagesMigrated",
        "DmaDebug", "DmaDebugErrorCount", "DmaAllocCoherent", "DmaFreeCoherent", "DmaMapSingle", "DmaMapPage", "DmaUnmapSingle",
        "DmaUnmapPage", "DmaMappingError", "DmaMapSg", "DmaUnmapSg", "DmaSyncSingleForCpu", "DmaSyncSingleForDevice",
        "DmaSyncSgForCpu", "DmaSyncSgForDevice", "RemoveDevice",
        "DmaHeaps", "RkDmaHeaps", "RkDmaHeapFind", "DmaBufFds", "DmaBufs", "DmaBufDeferredPages",
        "DmaBufWaitDeferredFree",
        "Drm", "Vb2DmaContig", "Vb2DmaSg", "Vb2Vmalloc", "Vb2QueueInit",
        "FailPageAlloc", "Failslab", "RenderMemoryMap",
        "MempoolCreate", "MempoolCreateSlabPool", "MempoolCreateKmallocPool", "MempoolCreatePagePool",
        "Rtnet", "RtnetLoaded",
    ];

    /// <summary>The public types whose objects belong to a machine in these subsystems: each must be checked.</summary>
    private static readonly Type[] Covered =
    [
        typeof(CmaArea), typeof(MovablePage), typeof(Device), typeof(DmaBuf), typeof(DmaBufAttachment), typeof(DmaBufFdTable),
        typeof(SystemHeap), typeof(CmaHeap), typeof(RkDmaHeap), typeof(DrmDevice), typeof(DrmFile), typeof(GemObject),
        typeof(Vb2Queue), typeof(Vb2DmaContig), typeof(Vb2DmaSg), typeof(Vb2Vmalloc), typeof(Vb2MemBuffer), typeof(Vb2Buffer),
        typeof(Vb2Plane), typeof(Vb2FrameLoop), typeof(Mempool), typeof(RtnetStack), typeof(RtskbPool), typeof(RtSocket),
        typeof(RtNic), typeof(Rtskb),
    ];

    /// <summary>One object of each type on rv1106 (the RK heap, DRM without IOMMU, VB2 dma-contig, RTnet, a mempool …).</summary>
    private static List<object> ObjectsOf(Machine m)
    {
        var objs = new List<object>();
        var cma = m.Cma["rk-dma-heap-cma"];
        var enc = m.Devices["ffa50000.rkvenc"];
        objs.Add(cma);
        objs.Add(enc);
        objs.Add(m.AllocMovable()!);
        var sys = (SystemHeap)m.DmaHeaps["system"];
        var buf = sys.AllocateBuffer(3 << 20)!;
        var att = buf.Attach(enc);
        buf.MapAttachment(att, DmaDirection.Bidirectional);
        objs.AddRange([sys, buf, att, m.DmaBufFds]);
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"];
        objs.AddRange([rk, rk.BufferAlloc(1 << 20, "dispose-test")!]);
        var drm = m.Drm;
        var file = drm.Open();
        var dumb = file.CreateDumb(64, 64, 32);
        objs.AddRange([drm, file, file.Lookup(dumb.Handle)]);
        var q = m.Vb2QueueInit("rkisp_mainpath", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig, Vb2IoModes.Mmap | Vb2IoModes.Dmabuf, false, [64 << 10]);
        int n = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        var vb = q[0]!;
        objs.AddRange([q, m.Vb2DmaContig, m.Vb2Vmalloc, vb, vb.Planes[0], vb.Planes[0].Mem!]);
        objs.Add(new Vb2FrameLoop(m, 2, frameBytes: 64 << 10));
        objs.Add(m.MempoolCreateKmallocPool(4, 128)!);
        var rt = m.Rtnet;
        var pool = rt.CreatePool("dispose-test", 4);
        var sock = rt.Socket(5000)!;
        objs.AddRange([rt, pool, sock, rt.Loopback, pool.Alloc(100)]);
        return objs;
    }

    /// <summary>The objects that need another board: the CMA heap ("reserved") and the dma-sg allocator (rk3588).</summary>
    private static List<object> ObjectsOfRk3588(Machine m)
    {
        var cmaHeap = (CmaHeap)m.DmaHeaps["reserved"];
        return [cmaHeap, cmaHeap.AllocateBuffer(1 << 20)!, m.Vb2DmaSg];
    }

    [Fact]
    public void Every_public_member_of_every_machine_object_throws_after_dispose_but_the_allow_list()
    {
        var failures = new List<string>();
        var seen = new HashSet<Type>();
        int invoked = 0;
        foreach (var (profile, collect) in new (string, Func<Machine, List<object>>)[] { ("rv1106", ObjectsOf), ("rk3588", ObjectsOfRk3588) })
        {
            var m = Machine.Boot(profile);
            var objs = collect(m);
            TestSupport.AssertConsistent(m);
            m.Dispose();
            foreach (var o in objs)
            {
                foreach (var t in Covered) if (t.IsInstanceOfType(o)) seen.Add(t);
                invoked += CheckMembers(o, o.GetType(), objs, failures);
            }
            invoked += CheckMembers(m, typeof(Machine), objs, failures, MachineMembers);
        }
        Assert.Empty(Covered.Except(seen));
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(invoked > 250, $"only {invoked} members invoked");
    }

    /// <summary>Invokes every public instance method and getter of <paramref name="o"/>; returns how many were invoked.</summary>
    private static int CheckMembers(object o, Type type, List<object> pool, List<string> failures, string[]? only = null)
    {
        int count = 0;
        const BindingFlags Flags = BindingFlags.Public | BindingFlags.Instance;
        var members = type.GetMethods(Flags).Where(mi => !mi.IsSpecialName && mi.DeclaringType != typeof(object) && mi.GetBaseDefinition().DeclaringType != typeof(object) && !mi.IsGenericMethodDefinition)
            .Select(mi => (Name: mi.Name, Method: mi))
            .Concat(type.GetProperties(Flags).Where(p => p.GetMethod is { IsPublic: true }).Select(p => (Name: p.Name, Method: p.GetMethod!)));
        foreach (var (name, method) in members)
        {
            if (only is not null && !only.Contains(name)) continue;
            string key = $"{method.GetBaseDefinition().DeclaringType!.Name}.{name}";
            if (IsByRefLike(method))
            {
                // Reflection cannot call members that take or return spans; DirectSpanCalls covers each of them.
                if (!SpanMembers.Contains(key)) failures.Add($"{key}: a span member without a direct test");
                continue;
            }
            Exception? thrown = null;
            try { method.Invoke(o, Arguments(method, pool)); }
            catch (TargetInvocationException e) { thrown = e.InnerException; }
            count++;
            bool allowed = AllowList.Contains(key) || AllowList.Contains($"{type.Name}.{name}");
            if (allowed && thrown is not null) failures.Add($"{key}: allowed after dispose but threw {thrown.GetType().Name}: {thrown.Message}");
            if (!allowed && thrown is not ObjectDisposedException)
                failures.Add($"{key}: {(thrown is null ? "returned normally" : $"threw {thrown.GetType().Name}: {thrown.Message}")}");
        }
        return count;
    }

    private static bool IsByRefLike(MethodInfo mi) =>
        mi.ReturnType.IsByRefLike || mi.GetParameters().Any(p => p.ParameterType.IsByRefLike || (p.ParameterType.IsByRef && p.ParameterType.GetElementType()!.IsByRefLike));

    /// <summary>Simple arguments: the parameter's default, a value type's zero, a string, or an object of the right type from the test's own.</summary>
    private static object?[] Arguments(MethodInfo mi, List<object> pool) => mi.GetParameters().Select(p =>
    {
        if (p.HasDefaultValue) return p.DefaultValue is DBNull ? null : p.DefaultValue;
        var t = p.ParameterType.IsByRef ? p.ParameterType.GetElementType()! : p.ParameterType;
        if (t.IsValueType) return Activator.CreateInstance(t);
        if (t == typeof(string)) return "x";
        if (t.IsArray) return Array.CreateInstance(t.GetElementType()!, 1);
        return pool.FirstOrDefault(t.IsInstanceOfType);
    }).ToArray();

    /// <summary>The members that take or return spans, called directly after dispose.</summary>
    private static readonly HashSet<string> SpanMembers =
    [
        "DmaBuf.Span", "GemObject.Span", "DrmFile.Mmap", "Vb2Queue.PlaneSpan", "Vb2Queue.QBuf", "MovablePage.Read",
        "MovablePage.Write", "MovablePage.Pin", "RtSocket.Receive", "RtNic.Receive", "Rtskb.Bytes", "Rtskb.Put",
    ];

    [Fact]
    public void Members_that_take_or_return_spans_throw_after_dispose()
    {
        var m = Machine.Boot("rv1106");
        var objs = ObjectsOf(m);
        T Of<T>() => objs.OfType<T>().First();
        var q = Of<Vb2Queue>();
        var vb = q[0]!;
        var file = Of<DrmFile>();
        ulong offset = file.MapDumbOffset(file.Handles[0].Handle);
        var skb = Of<Rtskb>();
        m.Dispose();
        var calls = new Dictionary<string, Action>
        {
            ["DmaBuf.Span"] = () => _ = Of<DmaBuf>().Span.Length,
            ["GemObject.Span"] = () => _ = Of<GemObject>().Span.Length,
            ["DrmFile.Mmap"] = () => _ = file.Mmap(offset, 4096).Length,
            ["Vb2Queue.PlaneSpan"] = () => _ = q.PlaneSpan(vb, 0).Length,
            ["Vb2Queue.QBuf"] = () => q.QBuf(0, Vb2Memory.Mmap, []),
            ["MovablePage.Read"] = () => Of<MovablePage>().Read(new byte[8]),
            ["MovablePage.Write"] = () => Of<MovablePage>().Write(new byte[8]),
            ["MovablePage.Pin"] = () => Of<MovablePage>().Pin().Dispose(),
            ["RtSocket.Receive"] = () => Of<RtSocket>().Receive(new byte[8]),
            ["RtNic.Receive"] = () => Of<RtNic>().Receive(new byte[8], 5000),
            ["Rtskb.Bytes"] = () => _ = skb.Bytes.Length,
            ["Rtskb.Put"] = () => _ = skb.Put(1).Length,
        };
        Assert.Equal(SpanMembers.Order(), calls.Keys.Order());
        foreach (var (name, call) in calls)
        {
            var e = Record.Exception(call);
            Assert.True(e is ObjectDisposedException, $"{name}: {e?.GetType().Name ?? "no exception"}");
        }
    }

    [Fact]
    public void Rtskb_alloc_and_free_throw_after_dispose_from_the_biased_thread_and_from_another()
    {
        var m = Machine.Boot("rv1106");
        var rt = m.Rtnet;
        var pool = rt.CreatePool("biased", 8);
        // Real-time use on this thread biases the pool's lock to it; another pool is used from a second thread.
        for (int i = 0; i < 100; i++) rt.Free(pool.Alloc(64));
        var skb = pool.Alloc(64);
        var other = rt.CreatePool("other", 8);
        Rtskb fromOther = default;
        var t = new Thread(() => { for (int i = 0; i < 100; i++) rt.Free(other.Alloc(64)); fromOther = other.Alloc(64); });
        t.Start();
        t.Join();
        Assert.False(fromOther.IsNull);
        int biasedTo = pool.LockBias;
        m.Dispose();
        // The shutdown revoked the bias and sealed both locks: every later real-time call takes the spin lock.
        Assert.Equal(-1, pool.LockBias);
        Assert.Equal(-1, other.LockBias);
        Assert.Throws<ObjectDisposedException>(() => pool.Alloc(64));
        Assert.Throws<ObjectDisposedException>(() => pool.Alloc(100_000));           // the size check does not come first
        Assert.Throws<ObjectDisposedException>(() => rt.Free(skb));
        Assert.Throws<ObjectDisposedException>(() => rt.Free(fromOther));
        Assert.Throws<ObjectDisposedException>(() => rt.Free(default));
        Assert.Throws<ObjectDisposedException>(() => other.Acquire(skb));
        Assert.Throws<ObjectDisposedException>(() => _ = skb.Len);
        Exception? seen = null;
        var t2 = new Thread(() => seen = Record.Exception(() => other.Alloc(64)));
        t2.Start();
        t2.Join();
        Assert.IsType<ObjectDisposedException>(seen);
        Assert.Contains("disposed", skb.ToString());
        Assert.Equal(Environment.CurrentManagedThreadId, biasedTo);                  // it was biased to this thread before
    }

    [Fact]
    public void Rtskbs_of_a_live_machine_stay_usable_when_another_machine_is_disposed()
    {
        using var live = Machine.Boot("rv1106");
        var dead = Machine.Boot("rv1106");
        var skbDead = dead.Rtnet.GlobalPool.Alloc(0);
        var pool = live.Rtnet.CreatePool("live", 2);
        dead.Dispose();
        var skb = pool.Alloc(32);
        skb.Put(4).Fill(7);
        Assert.Equal(4, skb.Len);
        Assert.Equal(7, skb.Bytes[3]);
        live.Rtnet.Free(skb);
        Assert.Throws<ObjectDisposedException>(() => _ = skbDead.Data);
        Assert.Equal(2, pool.FreeCount);
        TestSupport.AssertConsistent(live);
    }

    [Fact]
    public void Owners_dispose_does_nothing_after_the_machine_is_disposed()
    {
        var m = Machine.Boot("rv1106");
        var page = m.AllocMovable()!;
        var loop = new Vb2FrameLoop(m, 2, frameBytes: 64 << 10);
        loop.Frame();
        m.Dispose();
        page.Dispose();
        loop.Dispose();
        m.Dispose();                                                                  // a second Dispose does nothing either
        Assert.Throws<ObjectDisposedException>(() => page.IsFreed);
        Assert.Throws<ObjectDisposedException>(() => loop.Frames);
    }

    [Fact]
    public void A_mempool_alloc_waiting_for_an_element_wakes_with_ObjectDisposedException()
    {
        var m = Machine.Boot("rv1106");
        int given = 0;
        var pool = m.MempoolCreate(1, _ => Interlocked.Increment(ref given) == 1 ? m.Kmalloc(64, Gfp.Kernel) : 0, _ => { }, "starved")!;
        nint first = pool.Alloc(Gfp.Kernel);                                          // the reserve's one element
        Assert.NotEqual(0, first);
        Exception? seen = null;
        var waiter = new Thread(() => seen = Record.Exception(() => pool.Alloc(Gfp.Kernel)));
        waiter.Start();
        SpinWait.SpinUntil(() => pool.Waits > 0, TimeSpan.FromSeconds(10));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        m.Dispose();
        Assert.True(waiter.Join(TimeSpan.FromSeconds(2)), "the waiter did not wake");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2));
        Assert.IsType<ObjectDisposedException>(seen);
    }

    [Fact]
    public void A_vb2_dqbuf_waiting_for_a_buffer_wakes_with_ObjectDisposedException()
    {
        var m = Machine.Boot("rv1106");
        var q = m.Vb2QueueInit("wait", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig, Vb2IoModes.Mmap, false, [64 << 10]);
        int n = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Mmap, ref n));
        Assert.Equal(0, q.QBuf(0));
        Assert.Equal(0, q.StreamOn());
        Exception? seen = null;
        var waiter = new Thread(() => seen = Record.Exception(() => q.DQBuf(out _, nonblocking: false)));
        waiter.Start();
        Thread.Sleep(50);
        m.Dispose();
        Assert.True(waiter.Join(TimeSpan.FromSeconds(2)), "the waiter did not wake");
        Assert.IsType<ObjectDisposedException>(seen);
    }

    [Fact]
    public void A_dma_buf_reference_and_descriptor_are_refused_after_dispose_and_nothing_is_freed_twice()
    {
        var m = Machine.Boot("rv1106");
        var heap = m.DmaHeaps["system"];
        int fd = heap.Allocate(1 << 20);
        var buf = heap.AllocateBuffer(1 << 20)!;
        var fds = m.DmaBufFds;
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => fds.Close(fd));
        Assert.Throws<ObjectDisposedException>(() => buf.Put());
        Assert.Throws<ObjectDisposedException>(() => heap.Allocate(4096));
        Assert.Throws<ObjectDisposedException>(() => m.DmaBufs);
        Assert.Equal(1 << 20, buf.Size);                                              // fixed identity stays readable
    }

    [Fact]
    public void A_metrics_collection_racing_with_dispose_reads_nothing_of_the_dead_machine()
    {
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("KMEM_DISPOSE_ROUNDS"), out int r) ? r : 20;
        for (int round = 0; round < rounds; round++)
        {
            var m = Machine.Boot("rv1106");
            _ = m.Rtnet;
            _ = m.Drm;
            using var listener = new System.Diagnostics.Metrics.MeterListener();
            // The instruments of the layers above the slab (the memory core's own are the core's to guard).
            string[] mine = ["kmem.vmalloc.", "kmem.cma.", "kmem.dma.", "kmem.dmabuf.", "kmem.drm.", "kmem.rtnet."];
            listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == "Kmem" && mine.Any(inst.Name.StartsWith)) l.EnableMeasurementEvents(inst); };
            listener.SetMeasurementEventCallback<long>((_, _, _, _) => { });
            listener.Start();
            Exception? seen = null;
            using var stop = new ManualResetEventSlim();
            var collector = new Thread(() =>
            {
                try { while (!stop.IsSet) listener.RecordObservableInstruments(); }
                catch (Exception e) { seen = e; }
            });
            collector.Start();
            Thread.Sleep(round % 5);
            m.Dispose();
            stop.Set();
            collector.Join();
            Assert.Null(seen);
        }
    }

    /// <summary>
    /// Two threads use CMA, the heaps, DMA, DRM, VB2, a mempool, movable pages and RTnet while a third disposes the
    /// machine, many times: the workers see only success or ObjectDisposedException, and the process never crashes.
    /// </summary>
    [Fact]
    public void Disposing_while_two_threads_use_every_subsystem_gives_them_only_ObjectDisposedException()
    {
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("KMEM_DISPOSE_ROUNDS"), out int r) ? r : 24;
        var unexpected = new System.Collections.Concurrent.ConcurrentQueue<string>();
        long ops = 0, disposed = 0;
        var rng = new Random(19);
        for (int round = 0; round < rounds; round++)
        {
            var m = Machine.Boot("rv1106");
            m.Sysctl.Kmem.CmaBusyRetryWait = TimeSpan.Zero;
            var rt = m.Rtnet;
            var pools = new[] { rt.CreatePool("w0", 16), rt.CreatePool("w1", 16) };
            var mempool = m.MempoolCreateKmallocPool(4, 256)!;
            var drmFile = m.Drm.Open();
            var isp = m.Devices["ffa00000.rkisp"];
            var queues = Enumerable.Range(0, 2).Select(k => m.Vb2QueueInit($"w{k}", isp, m.Vb2DmaContig, Vb2IoModes.Mmap, false, [64 << 10])).ToArray();
            using var start = new Barrier(3);
            int delayMs = rng.Next(0, 15);
            var workers = Enumerable.Range(0, 2).Select(w => new Thread(() =>
            {
                start.SignalAndWait();
                var local = new Random(w * 1000 + round);
                try
                {
                    for (int i = 0; ; i++)
                    {
                        Step(m, w, i, local, pools[w], mempool, drmFile, isp, queues[w]);
                        Interlocked.Increment(ref ops);
                    }
                }
                catch (ObjectDisposedException) { Interlocked.Increment(ref disposed); }
                catch (Exception e) { unexpected.Enqueue($"round {round} worker {w}: {e}"); }
            })).ToArray();
            foreach (var t in workers) t.Start();
            start.SignalAndWait();
            Thread.Sleep(delayMs);
            m.Dispose();
            foreach (var t in workers) Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a worker did not stop");
        }
        Assert.True(unexpected.IsEmpty, string.Join("\n", unexpected.Take(5)));
        Assert.Equal(2 * rounds, disposed);
        Assert.True(ops > rounds * 10, $"only {ops} operations");
    }

    /// <summary>One operation of a worker, chosen by its index: each allocates and gives back, so a machine can run on.</summary>
    private static void Step(Machine m, int w, int i, Random rng, RtskbPool pool, Mempool mempool, DrmFile drm, Device isp, Vb2Queue q)
    {
        switch ((i + w) % 9)
        {
            case 0:
                var cma = m.Cma["rk-dma-heap-cma"];
                int count = 1 + rng.Next(32);
                var p = m.CmaAlloc(cma, count, 0, Gfp.Kernel | Gfp.NoWarn);
                if (!p.IsNull) m.CmaRelease(cma, p, count);
                break;
            case 1:
                var b = m.DmaHeaps["system"].AllocateBuffer(64 << 10 << rng.Next(4));
                if (b is null) break;
                b.Vmap();
                b.BeginCpuAccess(DmaDirection.Bidirectional);
                b.EndCpuAccess(DmaDirection.Bidirectional);
                b.Put();
                break;
            case 2:
                var rk = m.RkDmaHeaps["rk-dma-heap-cma"].BufferAlloc(4096 << rng.Next(6));
                rk?.Put();
                break;
            case 3:
                int size = 4096 << rng.Next(4);
                nint cpu = m.DmaAllocCoherent(isp, size, Gfp.Kernel, out ulong h);
                if (cpu != 0) m.DmaFreeCoherent(isp, size, cpu, h);
                break;
            case 4:
                var dumb = drm.CreateDumb(64, (uint)(16 + rng.Next(64)), 32);
                drm.GemClose(dumb.Handle);
                break;
            case 5:
                nint e = mempool.Alloc(Gfp.Kernel);
                mempool.Free(e);
                break;
            case 6:
                using (var page = m.AllocMovable(Gfp.HighUserMovable | Gfp.NoWarn)) page?.Write([1, 2, 3]);
                break;
            case 7:
                int n = 2;
                if (q.ReqBufs(Vb2Memory.Mmap, ref n) == 0 && n > 0) Assert.Equal(0, q.QBuf(0));
                n = 0;
                q.ReqBufs(Vb2Memory.Mmap, ref n);
                break;
            default:
                for (int k = 0; k < 64; k++)
                {
                    var skb = pool.Alloc(64);
                    if (!skb.IsNull) m.Rtnet.Free(skb);
                }
                break;
        }
    }
}
