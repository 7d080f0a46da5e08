// After Machine.Dispose: the memory core (pages, slab caches, kmalloc, vmalloc, /proc, zones, the
// MemoryPool) throws ObjectDisposedException and never reaches another machine's memory; a dispose
// racing with allocator calls on other threads crashes nothing; machines nobody disposes are
// released by their finalizer; spans left over freed or disposed memory never take the process down.
using System.Buffers;
using System.Reflection;

namespace Kmem.Tests;

public sealed unsafe class MachineDisposeTests
{
    [Fact]
    public void A_disposed_machine_never_hands_out_another_machines_memory()
    {
        var m1 = Machine.Boot("x86_64");
        nint old = m1.Kmalloc(64, Gfp.Kernel);
        var c1 = m1.KmemCacheCreate("dead_cache", 64, 0, SlabFlags.NoMerge);
        nint o1 = c1.Alloc(Gfp.Kernel);
        m1.Dispose();
        using var m2 = Machine.Boot("x86_64");
        var c2 = m2.KmemCacheCreate("live_cache", 64, 0, SlabFlags.NoMerge);   // may take a recycled slot
        nint live = m2.Kmalloc(64, Gfp.Kernel), o2 = c2.Alloc(Gfp.Kernel);
        // A kfree on this thread leaves its hint on the live machine's kmalloc-64, whose CPU slab holds `live`:
        // the dead machine's kfree must not take that fast path into the live machine.
        m2.Kfree(m2.Kmalloc(64, Gfp.Kernel));
        string slabinfo = m2.ProcFs.Read("/proc/slabinfo");

        Assert.Throws<ObjectDisposedException>(() => m1.Kmalloc(64, Gfp.Kernel));
        Assert.Throws<ObjectDisposedException>(() => m1.Kmalloc(300, Gfp.Kernel));
        Assert.Throws<ObjectDisposedException>(() => m1.Kfree(old));
        Assert.Throws<ObjectDisposedException>(() => m1.Kfree(live));   // another machine's object through the dead one
        Assert.Throws<ObjectDisposedException>(() => m1.Ksize(old));
        Assert.Throws<ObjectDisposedException>(() => c1.Alloc(Gfp.Kernel));
        Assert.Throws<ObjectDisposedException>(() => c1.Free(o1));
        Assert.Throws<ObjectDisposedException>(() => c1.Destroy());
        Assert.Throws<ObjectDisposedException>(() => c1.ObjectsInUse);
        Assert.Throws<ObjectDisposedException>(() => m1.ShrinkSlabs());
        Assert.Throws<ObjectDisposedException>(() => m1.ProcFs.Read("/proc/slabinfo"));
        Assert.Throws<ObjectDisposedException>(() => m1.ProcFs.Read("/proc/meminfo"));
        Assert.Throws<ObjectDisposedException>(() => m1.Zones);
        Assert.Throws<ObjectDisposedException>(() => m1.Reclaim());
        Assert.Throws<ObjectDisposedException>(() => m1.AllocPages(Gfp.Kernel, 0));
        Assert.Throws<ObjectDisposedException>(() => m1.AllocPages(Gfp.Kernel, 3));
        Assert.Throws<ObjectDisposedException>(() => m1.Vmalloc(8192));

        // The live machine saw nothing of it.
        Assert.Equal(slabinfo, m2.ProcFs.Read("/proc/slabinfo"));
        m2.Kfree(live);
        c2.Free(o2);
        TestSupport.AssertConsistent(m2);
    }

    [Fact]
    public void Every_public_member_of_the_machine_and_its_core_objects_throws_after_dispose()
    {
        var m = Machine.Boot("x86_64");
        var cache = m.KmemCacheCreate("reflect_cache", 128);
        var zone = m.Zones[0];
        var pool = new KmemMemoryPool(m);
        var procFs = m.ProcFs;
        var sysctl = m.Sysctl;
        var vm = sysctl.Vm;
        var knobs = sysctl.Kmem;
        m.Dispose();

        // What stays readable on purpose: identity fixed at boot, the log (a record, not state), and Dispose.
        var allowed = new HashSet<string>
        {
            "Machine.Profile", "Machine.Id", "Machine.Log", "Machine.Dmesg", "Machine.Dispose", "Machine.ToString",
            "SlabCache.Name", "SlabCache.ObjectSize", "SlabCache.Size", "SlabCache.Align", "SlabCache.Flags",
            "SlabCache.ObjectsPerSlab", "SlabCache.Order", "SlabCache.IsAlias", "SlabCache.Root", "SlabCache.SheafCapacity",
            "SlabCache.ToString", "KmemMemoryPool.Dispose", "KmemMemoryPool.Strict",
        };
        var failures = new List<string>();
        foreach (object target in new object[] { m, cache, zone, pool, procFs, sysctl, vm, knobs })
        {
            var type = target.GetType();
            foreach (var member in type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            {
                MethodInfo? method = member switch
                {
                    PropertyInfo p when p.GetIndexParameters().Length == 0 => p.GetMethod,
                    MethodInfo mi when !mi.IsSpecialName && !mi.IsGenericMethodDefinition => mi,
                    _ => null,
                };
                if (method is null || allowed.Contains($"{type.Name}.{member.Name}")) continue;
                if (method.ReturnType.IsByRefLike || method.GetParameters().Any(p => p.ParameterType.IsByRefLike || p.ParameterType.GetElementType()?.IsByRefLike == true)) continue;
                var args = method.GetParameters().Select(Dummy).ToArray();
                try
                {
                    method.Invoke(target, args);
                    failures.Add($"{type.Name}.{member.Name}({string.Join(", ", method.GetParameters().Select(p => p.ParameterType.Name))}) returned");
                }
                catch (TargetInvocationException e) when (e.InnerException is ObjectDisposedException) { }
                catch (TargetInvocationException e)
                {
                    failures.Add($"{type.Name}.{member.Name}: {e.InnerException?.GetType().Name}: {e.InnerException?.Message}");
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        pool.Dispose();
    }

    /// <summary>A plausible argument for a member called after dispose (the call must throw before it looks at it).</summary>
    private static object? Dummy(ParameterInfo p)
    {
        var t = p.ParameterType;
        if (p.HasDefaultValue) return p.DefaultValue;
        if (t == typeof(string)) return "x";
        if (t == typeof(Gfp)) return Gfp.Kernel;
        if (t == typeof(int) || t == typeof(long) || t == typeof(nuint) || t == typeof(nint) || t == typeof(ulong) || t == typeof(uint))
            return Convert.ChangeType(64, t == typeof(nint) ? typeof(long) : t == typeof(nuint) ? typeof(ulong) : t) is var v && t == typeof(nint) ? (nint)64 : t == typeof(nuint) ? (nuint)64 : v;
        if (t == typeof(Shrinker)) return new TestShrinker();
        if (t.IsByRef) t = t.GetElementType()!;
        if (t.IsValueType) return Activator.CreateInstance(t);
        return null;
    }

    private sealed class TestShrinker() : Shrinker("test")
    {
        public override long CountObjects(ShrinkControl sc) => 0;
        public override long ScanObjects(ShrinkControl sc) => 0;
    }

    [Fact]
    public void The_memory_pools_owners_do_nothing_on_dispose_and_refuse_their_memory_after_the_machine_went()
    {
        var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var owner = pool.Rent(100);
        var memory = owner.Memory;
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => memory.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => owner.Memory.Span[0]);
        Assert.Throws<ObjectDisposedException>(() => pool.Rent(10));
        owner.Dispose();                                   // .NET convention: nothing, no exception
        owner.Dispose();
    }

    [Fact]
    public void Dispose_while_other_threads_allocate_crashes_nothing()
    {
        for (int round = 0; round < 40; round++)
        {
            var m = Machine.Boot("x86_64");
            var cache = m.KmemCacheCreate("race", 96, 0, SlabFlags.NoMerge);
            var sheafy = m.KmemCacheCreate("race_sheaf", 192, 0, SlabFlags.NoMerge, sheafCapacity: 8);
            var unexpected = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
            using var started = new CountdownEvent(2);
            var handoff = new System.Collections.Concurrent.ConcurrentQueue<nint>();
            var workers = Enumerable.Range(0, 2).Select(id => new Thread(() =>
            {
                var rnd = new Random(round * 10 + id);
                var mine = new List<(int Kind, nint P)>();
                bool first = true;
                try
                {
                    while (true)
                    {
                        int kind = rnd.Next(6);
                        nint p = kind switch
                        {
                            0 => m.Kmalloc((nuint)rnd.Next(1, 2000), Gfp.Kernel),
                            1 => cache.Alloc(Gfp.Kernel),
                            2 => sheafy.Alloc(Gfp.Kernel),
                            3 => m.GetFreePages(Gfp.Kernel, rnd.Next(3)),
                            4 => m.Vmalloc(rnd.Next(1, 5) * 4096),
                            _ => m.Kmalloc(64, Gfp.Atomic),
                        };
                        if (p != 0)
                        {
                            *(byte*)p = 1;
                            if (kind == 0 && rnd.Next(2) == 0) handoff.Enqueue(p); else mine.Add((kind, p));
                        }
                        if (first) { started.Signal(); first = false; }
                        if (handoff.TryDequeue(out nint h)) m.Kfree(h);
                        if (mine.Count > 64)
                        {
                            int i = rnd.Next(mine.Count);
                            var (k, q) = mine[i];
                            mine.RemoveAt(i);
                            switch (k)
                            {
                                case 0 or 5: m.Kfree(q); break;
                                case 1: cache.Free(q); break;
                                case 2: sheafy.Free(q); break;
                                case 3: m.FreePages(q, 0); break;
                                case 4: m.Vfree(q); break;
                            }
                        }
                    }
                }
                catch (ObjectDisposedException) { }
                catch (KmemException e) when (e is BadPageStateException) { }   // an order guessed wrong above: the model is loose
                catch (Exception e) { unexpected.Enqueue(e); }
                finally { if (first) started.Signal(); }
            })).ToArray();
            foreach (var w in workers) w.Start();
            started.Wait();
            Thread.Sleep(round % 5);
            m.Dispose();
            foreach (var w in workers) Assert.True(w.Join(TimeSpan.FromSeconds(30)), "a worker hung after dispose");
            Assert.True(unexpected.IsEmpty, string.Join("\n", unexpected.Take(3)));
        }
    }

    private static readonly MachineProfile LeakProfile = MachineProfile.Embedded("rv1106") with { Name = "rv1106-never-disposed" };

    [Fact]
    public void Machines_nobody_disposes_are_released_by_the_finalizer()
    {
        // Only this test's machines are counted (their memfds carry the profile's name): other tests boot and dispose
        // machines at the same time.
        static int KmemMemfds() => Directory.EnumerateFiles("/proc/self/fd").Count(f =>
        {
            try { return new FileInfo(f).LinkTarget?.Contains("memfd:kmem:" + LeakProfile.Name + " ") == true; } catch (IOException) { return false; }
        });
        Skip.IfNot(OperatingSystem.IsLinux(), "memfd is Linux only");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        int before = KmemMemfds();
        using (Machine.Boot(LeakProfile)) Assert.Equal(before + 1, KmemMemfds());   // the count sees a live one
        for (int i = 0; i < 30; i++) Leak(i);
        for (int i = 0; i < 5 && KmemMemfds() > before; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.True(KmemMemfds() <= before, $"{KmemMemfds() - before} machines' memory is still open");

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        static void Leak(int i)
        {
            var m = Machine.Boot(LeakProfile);
            nint p = m.Kmalloc(100, Gfp.Kernel);
            m.Kfree(p);
            var buf = m.DmaHeaps["system"].AllocateBuffer(1 << 20)!;   // starts the deferred-free worker's work
            buf.Put();
            _ = m.ProcFs.Read("/proc/meminfo");
            var rtskb = m.Rtnet.CreatePool("leak", 4)!.Alloc(100);        // the RTnet stack and its registry of live stacks
            m.Rtnet.Free(rtskb!);
            _ = i;
        }
    }
}
