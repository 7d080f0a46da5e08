// kmap, kmap_atomic and kmap_local on a 32-bit board with high memory: HighMem pages have no address
// until mapped, keep their bytes across mappings, and the pool and the threads' stacks follow the
// kernel's rules (reference counts, lazy unmap and flush on wrap, sleep when full, reverse-order unmap,
// stack limits, atomic context, the release's calls), each misuse reported and refused.
using System.Runtime.InteropServices;

namespace Kmem.Tests;

public class KmapTests
{
    /// <summary>A 1 GiB arm board: 768 MiB of lowmem (the 3G/1G split), 256 MiB of HighMem from pfn 0xb0000.</summary>
    internal static Machine HighBoard(string version = "5.15", string arch = "arm", string config = "")
    {
        string json = $$"""
        { "name": "high-{{arch}}", "arch": "{{arch}}", "cpus": 2, "version": "{{version}}",
          {{(config.Length > 0 ? config + "," : "")}}
          "dram": [ { "base": "{{(arch == "i386" ? "0x00000000" : "0x80000000")}}", "size": "1G" } ] }
        """;
        var m = Machine.Boot(MachineProfile.Parse(json));
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    private static unsafe ulong Read(nint a) => *(ulong*)a;
    private static unsafe void Write(nint a, ulong v) => *(ulong*)a = v;

    [Fact]
    public void HighUser_pages_come_from_HighMem_first_and_have_no_address_until_mapped()
    {
        using var m = HighBoard();
        var high = m.AllocPage(Gfp.HighUser);
        var low = m.AllocPage(Gfp.Kernel);
        Assert.True(m.PageHighMem(high));
        Assert.False(m.PageHighMem(low));
        Assert.Equal(0, m.PageAddress(high));
        Assert.NotEqual(0, m.PageAddress(low));
        Assert.Equal(m.PageAddress(low), m.PhysToVirt(m.PageToPhys(low)));
        var ex = Assert.Throws<HighMemException>(() => m.PageSpan(high));
        Assert.Equal(HighMemError.NoLinearAddress, ex.Error);
        Assert.Throws<InvalidAddressException>(() => m.PhysToVirt(m.PageToPhys(high)));
        m.FreePage(high);
        m.FreePage(low);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("i386")]
    [InlineData("arm")]
    public void A_HighMem_page_keeps_its_bytes_across_kmap_kmap_local_kmap_atomic_and_vmap(string arch)
    {
        using var m = HighBoard("5.15", arch);
        var page = m.AllocPage(Gfp.HighUser);
        Assert.True(m.PageHighMem(page));
        nint k = m.Kmap(page);
        Assert.NotEqual(0, k);
        Assert.Equal(k, m.PageAddress(page));   // page_address() sees the pool's mapping
        Write(k + 8, 0x1122334455667788);
        nint local = m.KmapLocalPage(page);
        // i386: a second, real mapping of the same frame; ARM (5.11+): the page's pkmap slot, one more reference.
        if (arch == "arm") Assert.Equal(k, local); else Assert.NotEqual(k, local);
        Assert.Equal(0x1122334455667788UL, Read(local + 8));
        Write(local + 16, 0xabcdef);
        nint atomic = m.KmapAtomic(page);         // the thread's window may serve both entries from one mapping
        Assert.Equal(0xabcdefUL, Read(atomic + 16));
        m.KunmapAtomic(atomic);
        m.KunmapLocal(local + 100);              // any address inside the page undoes it
        m.Kunmap(page);
        nint v = m.Vmap([page]);
        Assert.Equal(0x1122334455667788UL, Read(v + 8));
        Assert.Equal(0xabcdefUL, Read(v + 16));
        Write(v + 24, 42);
        m.Vunmap(v);
        nint again = m.KmapLocalPage(page);
        Assert.Equal(42UL, Read(again + 24));
        m.KunmapLocal(again);
        m.FreePage(page);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("5.15")]
    [InlineData("4.19")]
    public void On_arm_a_kmapped_page_is_served_from_its_pkmap_slot_not_a_stack_entry(string version)
    {
        using var m = HighBoard(version);
        bool local = version == "5.15";
        var page = m.AllocPage(Gfp.HighUser);
        int idx = page.PfnIndex(m);
        nint k = m.Kmap(page);
        nint a = local ? m.KmapLocalPage(page) : m.KmapAtomic(page);   // kmap_high_get()
        nint b = m.KmapAtomic(page);
        Assert.Equal((k, k), (a, b));
        Assert.Equal(3, m.Kmaps.Pool.Users(idx));
        Assert.Equal((0, local ? 1 : 2), (m.Kmaps.Local.Depth, m.Kmaps.Local.AtomicDepth));
        // Each undone by its own call, in any order.
        string State() => $"{m.Kmaps.Pool.State()} {m.Kmaps.Local.Depth}/{m.Kmaps.Local.AtomicDepth}";
        m.Kunmap(page);
        if (local) m.KunmapLocal(a); else m.KunmapAtomic(a);
        m.KunmapAtomic(b);
        Assert.Equal((0, 0), (m.Kmaps.Pool.Users(idx), m.Kmaps.Local.AtomicDepth));
        // The slot is kept (count 1): a new kmap_atomic still finds it; undoing it twice is refused the second time.
        nint again = m.KmapAtomic(page);
        Assert.Equal(k, again);
        m.KunmapAtomic(again);
        TestSupport.Rejected<HighMemException>(m, () => m.KunmapAtomic(again), "no kmap_atomic() outstanding", State);
        if (local)
        {
            // The call must match: kunmap_local() of a kmap_atomic() mapping is refused.
            nint x = m.KmapAtomic(page);
            var ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapLocal(x), "of a kmap_atomic() mapping", State);
            Assert.Equal(HighMemError.Unbalanced, ex.Error);
            m.KunmapAtomic(x);
        }
        // A kmap_high_get() mapping whose reference a stray kunmap() dropped: its own unmap is kunmap_high()'s BUG, refused.
        nint c = m.KmapAtomic(page);
        m.Kunmap(page);                           // no kmap() is outstanding: this takes c's reference
        TestSupport.Rejected<HighMemException>(m, () => m.KunmapAtomic(c), "kernel BUG at mm/highmem.c!", State);
    }

    [Fact]
    public void On_i386_a_kmapped_page_still_gets_a_stack_entry_of_its_own()
    {
        using var m = HighBoard("5.15", "i386");
        var p = m.AllocPage(Gfp.HighUser);
        nint k = m.Kmap(p);
        nint at = m.KmapAtomic(p);
        Assert.NotEqual(k, at);
        Assert.Equal(1, m.Kmaps.Local.Depth);
        m.KunmapAtomic(at);
        m.Kunmap(p);
    }

    [Fact]
    public void Lowmem_pages_map_to_their_linear_address_at_no_cost()
    {
        using var m = HighBoard();
        var low = m.AllocPage(Gfp.Kernel);
        nint linear = m.PageAddress(low);
        Assert.Equal(linear, m.Kmap(low));
        Assert.Equal(linear, m.KmapLocalPage(low));
        Assert.Equal(linear, m.KmapAtomic(low));
        m.KunmapAtomic(linear);
        m.KunmapLocal(linear);
        m.Kunmap(low);
        m.Kunmap(low);                            // nothing to drop for lowmem, as in the kernel
        Assert.Equal(0, m.Kmaps.Pool.State().InUse);
        Assert.Equal(0, m.Kmaps.Local.Depth);
        m.FreePage(low);
    }

    [Fact]
    public void The_pool_counts_users_keeps_unused_slots_mapped_and_flushes_them_when_it_wraps()
    {
        using var m = HighBoard();
        int slots = m.Kmaps.Pool.Slots;
        Assert.Equal(512, slots);
        var pages = Enumerable.Range(0, slots + 1).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        nint a = m.Kmap(pages[0]);
        Assert.Equal(a, m.Kmap(pages[0]));       // a second user shares the slot
        Assert.Equal(2, m.Kmaps.Pool.Users(pages[0].PfnIndex(m)));
        m.Kunmap(pages[0]);
        m.Kunmap(pages[0]);
        var s = m.Kmaps.Pool.State();
        Assert.Equal((0, 1, 1), (s.InUse, s.Unused, s.NewMappings > 0 ? 1 : 0));
        Assert.Equal(a, m.PageAddress(pages[0])); // lazily kept: still mapped, no user
        // Map the rest: the search wraps past the last slot and flushes every unused one.
        for (int i = 1; i <= slots; i++) { m.Kmap(pages[i]); m.Kunmap(pages[i]); }
        s = m.Kmaps.Pool.State();
        Assert.True(s.Flushes >= 1, "the pool must flush when it wraps");
        Assert.Equal(0, m.PageAddress(pages[0]));  // flushed: no address any more
        Assert.NotEqual(0, m.PageAddress(pages[slots]));
        foreach (var p in pages) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Kmap_sleeps_while_every_slot_is_in_use_and_wakes_on_kunmap()
    {
        using var m = HighBoard();
        int slots = m.Kmaps.Pool.Slots;
        var held = Enumerable.Range(0, slots).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        foreach (var p in held) Write(m.Kmap(p), 7);
        var extra = m.AllocPage(Gfp.HighUser);
        nint got = 0;
        var sleeper = new Thread(() => got = m.Kmap(extra));
        sleeper.Start();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (m.Kmaps.Pool.State().SleepingNow == 0 && DateTime.UtcNow < deadline) Thread.Sleep(5);
        Assert.Equal(1, m.Kmaps.Pool.State().SleepingNow);
        Assert.True(sleeper.IsAlive);
        m.Kunmap(held[123]);                      // one slot falls to "mapped, unused": the sleeper may take it
        Assert.True(sleeper.Join(TimeSpan.FromSeconds(20)));
        Assert.NotEqual(0, got);
        Write(got, 99);
        nint check = m.KmapLocalPage(extra);
        Assert.Equal(99UL, Read(check));
        m.KunmapLocal(check);
        Assert.Equal(0, m.PageAddress(held[123]));  // its slot was flushed and reused
        Assert.True(m.Kmaps.Pool.State().Sleeps >= 1);
        m.Kunmap(extra);
        foreach (var p in held) if (p != held[123]) m.Kunmap(p);
        Assert.Equal(0, m.Kmaps.Pool.State().InUse);
    }

    [Fact]
    public void A_long_sleep_in_kmap_gets_the_hung_task_report_and_keeps_waiting()
    {
        using var m = HighBoard();
        Assert.Equal(TimeSpan.FromSeconds(120), m.Sysctl.Kmem.HungTaskTimeout);
        m.Sysctl.Kmem.HungTaskTimeout = TimeSpan.FromSeconds(1);
        var held = Enumerable.Range(0, m.Kmaps.Pool.Slots).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        foreach (var p in held) m.Kmap(p);
        var extra = m.AllocPage(Gfp.HighUser);
        var sleeper = new Thread(() => m.Kunmap(WithKmap(m, extra))) { Name = "isp-worker" };
        sleeper.Start();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!m.Dmesg().Contains("blocked for more than 1 seconds.") && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.Contains("INFO: task isp-worker:", m.Dmesg());
        Assert.Contains("waiting in kmap_high: all 512 pkmap slots are in use", m.Dmesg());
        Assert.True(sleeper.IsAlive);             // the report does not end the wait
        m.Kunmap(held[0]);
        Assert.True(sleeper.Join(TimeSpan.FromSeconds(20)));
        Assert.Throws<SysctlException>(() => m.Sysctl.Kmem.HungTaskTimeout = TimeSpan.FromSeconds(-1));
        Assert.Throws<SysctlException>(() => m.Sysctl.Kmem.HungTaskTimeout = TimeSpan.FromMilliseconds(1500));
        foreach (var p in held.Skip(1)) m.Kunmap(p);
        Assert.Equal(0, m.Kmaps.Pool.State().InUse);
    }

    private static Page WithKmap(Machine m, Page p) { m.Kmap(p); return p; }

    [Fact]
    public void A_sleeper_in_kmap_fails_when_the_machine_shuts_down()
    {
        var m = HighBoard();
        var held = Enumerable.Range(0, m.Kmaps.Pool.Slots).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        foreach (var p in held) m.Kmap(p);
        var extra = m.AllocPage(Gfp.HighUser);
        Exception? caught = null;
        var sleeper = new Thread(() => { try { m.Kmap(extra); } catch (Exception e) { caught = e; } });
        sleeper.Start();
        while (m.Kmaps.Pool.State().SleepingNow == 0) Thread.Sleep(5);
        m.Dispose();
        Assert.True(sleeper.Join(TimeSpan.FromSeconds(20)));
        Assert.IsType<ObjectDisposedException>(caught);
    }

    [Fact]
    public void Kmap_in_atomic_context_is_reported_and_refused()
    {
        using var m = HighBoard();
        var page = m.AllocPage(Gfp.HighUser);
        var other = m.AllocPage(Gfp.HighUser);
        nint a = m.KmapAtomic(page);
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.Kmap(other), "BUG: sleeping function called from invalid context",
            () => $"{m.Kmaps.Pool.State()}");
        Assert.Equal(HighMemError.AtomicContext, ex.Error);
        Assert.Contains("in_atomic(): 1", m.Dmesg());
        m.KunmapAtomic(a);
        nint ok = m.Kmap(other);                  // out of atomic context again: allowed
        Assert.NotEqual(0, ok);
        m.Kunmap(other);
    }

    [Theory]
    [InlineData("5.15", 16, "kernel BUG at mm/highmem.c!")]
    [InlineData("6.6", 16, "kernel BUG at mm/highmem.c!")]
    public void The_local_stack_holds_KM_MAX_IDX_mappings_and_refuses_one_more(string version, int depth, string report)
    {
        using var m = HighBoard(version);
        var pages = Enumerable.Range(0, depth + 1).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        var addrs = new List<nint>();
        for (int i = 0; i < depth; i++) { addrs.Add(m.KmapLocalPage(pages[i])); Write(addrs[i], (ulong)i); }
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.KmapLocalPage(pages[depth]), report, () => $"{m.Kmaps.Local.Depth}");
        Assert.Equal(HighMemError.StackOverflow, ex.Error);
        Assert.Equal(depth, m.Kmaps.Local.Depth);
        for (int i = depth - 1; i >= 0; i--) { Assert.Equal((ulong)i, Read(addrs[i])); m.KunmapLocal(addrs[i]); }
        Assert.Equal(0, m.Kmaps.Local.Depth);
    }

    [Theory]
    [InlineData("5.10", "arm", 16, "kernel BUG at include/linux/highmem.h!")]
    [InlineData("5.10", "i386", 20, "kernel BUG at include/linux/highmem.h!")]
    [InlineData("5.15", "i386", 16, "kernel BUG at mm/highmem.c!")]
    public void Kmap_atomic_stack_depth_follows_the_release_and_arch(string version, string arch, int depth, string report)
    {
        using var m = HighBoard(version, arch);
        Assert.Equal(depth, m.Kmaps.Local.MaxDepth);
        var pages = Enumerable.Range(0, depth + 1).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        Assert.All(pages, p => Assert.True(m.PageHighMem(p)));
        var addrs = pages.Take(depth).Select(p => m.KmapAtomic(p)).ToList();
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.KmapAtomic(pages[depth]), report, () => $"{m.Kmaps.Local.AtomicDepth}");
        Assert.Equal(HighMemError.StackOverflow, ex.Error);
        for (int i = depth - 1; i >= 0; i--) m.KunmapAtomic(addrs[i]);
        Assert.Equal(0, m.Kmaps.Local.AtomicDepth);
    }

    [Fact]
    public void Out_of_order_and_foreign_unmaps_are_reported_and_change_nothing()
    {
        using var m = HighBoard();
        var p1 = m.AllocPage(Gfp.HighUser);
        var p2 = m.AllocPage(Gfp.HighUser);
        nint a1 = m.KmapLocalPage(p1);
        nint a2 = m.KmapLocalPage(p2);
        string Stack() => $"{m.Kmaps.Local.Depth}/{m.Kmaps.Local.AtomicDepth}";
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapLocal(a1), "at mm/highmem.c kunmap_local_indexed", Stack);
        Assert.Equal(HighMemError.OutOfOrder, ex.Error);
        ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapLocal(0x1000), "kunmap_local(0x1000)", Stack);
        Assert.Equal(HighMemError.NotMapped, ex.Error);
        ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapAtomic(a2), "no kmap_atomic() outstanding", Stack);
        Assert.Equal(HighMemError.Unbalanced, ex.Error);
        m.KunmapLocal(a2);
        m.KunmapLocal(a1);
        nint at = m.KmapAtomic(p1);
        ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapLocal(at), "of a kmap_atomic() mapping", Stack);
        Assert.Equal(HighMemError.Unbalanced, ex.Error);
        m.KunmapAtomic(at);
        Assert.Equal("0/0", Stack());
    }

    [Fact]
    public void A_lowmem_kunmap_atomic_cannot_undo_a_HighMem_one()
    {
        using var m = HighBoard();
        var high = m.AllocPage(Gfp.HighUser);
        var low = m.AllocPage(Gfp.Kernel);
        nint a = m.KmapAtomic(high);
        string Stack() => $"{m.Kmaps.Local.Depth}/{m.Kmaps.Local.AtomicDepth}";
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapAtomic(m.PageAddress(low)), "of a lowmem address", Stack);
        Assert.Equal(HighMemError.Unbalanced, ex.Error);
        nint b = m.KmapAtomic(low);               // a lowmem one outstanding: now a lowmem address undoes it
        m.KunmapAtomic(b);
        m.KunmapAtomic(a);
        Assert.Equal("0/0", Stack());
    }

    [Theory]
    [InlineData("4.19", "kernel BUG at arch/arm/mm/highmem.c!", "__kunmap_atomic")]
    [InlineData("5.10", "kernel BUG at arch/arm/mm/highmem.c!", "kunmap_atomic_high")]
    public void Before_5_11_an_out_of_order_kunmap_atomic_is_the_arch_BUG(string version, string report, string function)
    {
        using var m = HighBoard(version);
        var p1 = m.AllocPage(Gfp.HighUser);
        var p2 = m.AllocPage(Gfp.HighUser);
        nint a1 = m.KmapAtomic(p1);
        nint a2 = m.KmapAtomic(p2);
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapAtomic(a1), report, () => $"{m.Kmaps.Local.Depth}");
        Assert.Equal(HighMemError.OutOfOrder, ex.Error);
        Assert.Contains(function + ": kunmap_atomic(", m.Dmesg());
        ex = TestSupport.Rejected<HighMemException>(m, () => m.KunmapLocal(a2), "kunmap_local() does not exist");
        Assert.Equal(HighMemError.NotInRelease, ex.Error);
        m.KunmapAtomic(a2);
        m.KunmapAtomic(a1);
    }

    [Theory]
    [InlineData("arm", "", 512)]
    [InlineData("i386", "", 1024)]
    [InlineData("i386", "\"config\": { \"X86_PAE\": true }", 512)]
    public void The_pool_has_LAST_PKMAP_slots_of_the_arch(string arch, string config, int slots)
    {
        using var m = HighBoard("5.15", arch, config);
        Assert.Equal(slots, m.Kmaps.Pool.Slots);
        Assert.Equal(slots, m.Kmaps.Pool.State().Free);
        Assert.Contains($"slots               {slots}\n", m.ProcFs.Read("/sys/kernel/debug/kmem/pkmap"));
    }

    [Fact]
    public void Exited_threads_hand_their_windows_on_and_windows_share_reservations()
    {
        using var m = HighBoard();
        var page = m.AllocPage(Gfp.HighUser);
        void UseOnce() { nint a = m.KmapLocalPage(page); Write(a, 1); m.KunmapLocal(a); }
        for (int i = 0; i < 40; i++)
        {
            var t = new Thread(UseOnce);
            t.Start();
            t.Join();
        }
        Assert.True(m.Kmaps.Local.Totals.Threads <= 2, $"{m.Kmaps.Local.Totals.Threads} windows for one live thread at a time");
        using var barrier = new Barrier(20);
        var live = Enumerable.Range(0, 20).Select(_ => new Thread(() => { UseOnce(); barrier.SignalAndWait(); })).ToList();
        live.ForEach(t => t.Start());
        live.ForEach(t => t.Join());
        int windows = m.Kmaps.Local.Totals.Threads;
        Assert.InRange(windows, 20, 22);
        Assert.Equal((windows + 15) / 16, m.Kmaps.Local.Reservations);
        m.FreePage(page);
    }

    [Fact]
    public void Kmap_racing_dispose_fails_only_with_ObjectDisposedException()
    {
        for (int round = 0; round < 20; round++)
        {
            var m = HighBoard();
            var pages = Enumerable.Range(0, 600).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
            Exception? unexpected = null;
            var mapper = new Thread(() =>
            {
                try
                {
                    for (int i = 0; ; i = (i + 1) % pages.Length) { m.Kmap(pages[i]); m.Kunmap(pages[i]); }
                }
                catch (ObjectDisposedException) { }
                catch (Exception e) { unexpected = e; }
            });
            mapper.Start();
            Thread.Sleep(round % 5);
            m.Dispose();
            Assert.True(mapper.Join(TimeSpan.FromSeconds(20)));
            Assert.Null(unexpected);
        }
    }

    [Fact]
    public void Kunmap_without_kmap_is_the_kernels_BUG_and_changes_nothing()
    {
        using var m = HighBoard();
        var p = m.AllocPage(Gfp.HighUser);
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.Kunmap(p), "kernel BUG at mm/highmem.c!", () => $"{m.Kmaps.Pool.State()}");
        Assert.Equal(HighMemError.NotMapped, ex.Error);
        m.Kmap(p);
        m.Kunmap(p);
        ex = TestSupport.Rejected<HighMemException>(m, () => m.Kunmap(p), "no user left", () => $"{m.Kmaps.Pool.State()}");
        Assert.Equal(HighMemError.NotMapped, ex.Error);
    }

    [Fact]
    public void Kmap_local_does_not_exist_before_5_11()
    {
        using var m = HighBoard("5.10");
        var p = m.AllocPage(Gfp.HighUser);
        var ex = TestSupport.Rejected<HighMemException>(m, () => m.KmapLocalPage(p), "came with 5.11");
        Assert.Equal(HighMemError.NotInRelease, ex.Error);
        nint a = m.KmapAtomic(p);                 // kmap_atomic is the 5.10 way
        Write(a, 5);
        m.KunmapAtomic(a);
        nint k = m.Kmap(p);
        Assert.Equal(5UL, Read(k));
        m.Kunmap(p);
    }

    [Theory]
    [InlineData("5.10", true)]
    [InlineData("4.19", true)]
    [InlineData("4.18", false)]
    [InlineData("4.14", false)]
    public void Get_free_pages_with_GFP_HIGHMEM_follows_the_release(string version, bool masked)
    {
        using var m = HighBoard(version);
        if (masked)
        {
            nint a = m.GetFreePages(Gfp.HighUser, 0);
            Assert.NotEqual(0, a);
            Assert.False(m.PageHighMem(m.VirtToPage(a)));   // a lowmem page: its address is real
            m.FreePages(a, 0);
        }
        else
        {
            var ex = TestSupport.Rejected<HighMemException>(m, () => m.GetFreePages(Gfp.HighUser, 0), "kernel BUG at mm/page_alloc.c!");
            Assert.Equal(HighMemError.NoLinearAddress, ex.Error);
        }
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Linear_address_checks_stop_at_high_memory()
    {
        using var m = HighBoard();
        var high = m.AllocPage(Gfp.HighUser);
        nint k = m.Kmap(high);
        Assert.False(m.VirtAddrValid(k));
        Assert.Throws<InvalidAddressException>(() => m.VirtToPage(k));
        Assert.Throws<InvalidAddressException>(() => m.FreePages(k, 0));
        m.Kunmap(high);
        m.FreePage(high);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_machine_without_HighMem_maps_every_page_linearly()
    {
        using var m = Machine.Boot("x86_64");
        var p = m.AllocPage(Gfp.HighUser);
        Assert.False(m.PageHighMem(p));
        nint a = m.PageAddress(p);
        Assert.Equal(a, m.Kmap(p));
        Assert.Equal(a, m.KmapAtomic(p));
        m.KunmapAtomic(a);
        m.Kunmap(p);
        m.FreePage(p);
    }

    [Fact]
    public void Threads_map_and_unmap_concurrently_with_cross_thread_kunmap()
    {
        using var m = HighBoard();
        var pages = Enumerable.Range(0, 64).Select(_ => m.AllocPage(Gfp.HighUser)).ToArray();
        for (int i = 0; i < pages.Length; i++) { nint a = m.KmapLocalPage(pages[i]); Write(a, (ulong)i); m.KunmapLocal(a); }
        var handed = new System.Collections.Concurrent.BlockingCollection<int>();
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var workers = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var rnd = new Random(t);
            for (int n = 0; n < 3000; n++)
            {
                int i = rnd.Next(pages.Length), j = rnd.Next(pages.Length);
                nint a = m.KmapLocalPage(pages[i]);
                nint b = m.KmapAtomic(pages[j]);
                if (Read(a) != (ulong)i || Read(b) != (ulong)j) errors.Enqueue($"thread {t}: pages {i}/{j} read {Read(a)}/{Read(b)}");
                m.KunmapAtomic(b);
                m.KunmapLocal(a);
                if (n % 10 == 0)
                {
                    nint k = m.Kmap(pages[i]);
                    if (Read(k) != (ulong)i) errors.Enqueue($"thread {t}: kmap of page {i} read {Read(k)}");
                    handed.Add(i);                 // another thread drops this reference
                }
            }
        })).ToList();
        var releaser = new Thread(() => { foreach (int i in handed.GetConsumingEnumerable()) m.Kunmap(pages[i]); });
        releaser.Start();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        handed.CompleteAdding();
        releaser.Join();
        Assert.Empty(errors);
        var s = m.Kmaps.Pool.State();
        Assert.Equal((0, 0L), (s.InUse, s.Users));
        Assert.True(m.Kmaps.Local.Hits > 0);
        foreach (var p in pages) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }
}

internal static class PageTestExtensions
{
    /// <summary>The frame index of a page on its machine (for the internal kmap structures).</summary>
    public static int PfnIndex(this Page p, Machine m) => (int)(p.Pfn - m.Pages.BasePfn);
}
