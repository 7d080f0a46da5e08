// vmalloc, vmap and kvmalloc: real remapping (the same bytes through the vmalloc and the linear address),
// one host mapping per run of consecutive frames, guard pages, lowest-first-fit placement with lazy purge,
// /proc/vmallocinfo and meminfo, and every misuse reported with nothing unmapped.
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public unsafe class VmallocTests
{
    private const string SmallWindowProfile = """
    {
      "name": "tiny-vmalloc", "arch": "arm", "cpus": 1,
      "dram": [ { "base": "0x60000000", "size": "64M" } ],
      "vmalloc_size": "4M"
    }
    """;

    private static Span<byte> Bytes(nint p, int n) => new((void*)p, n);

    /// <summary>The areas tests make: everything but what boot places first, the DMA atomic pools' remaps and the
    /// ioremaps of the devices' register windows.</summary>
    private static List<VmArea> Own(Machine m) => m.VmallocAreas.Where(a => (a.Flags & (VmFlags.DmaCoherent | VmFlags.Ioremap)) == 0).ToList();

    /// <summary>The runs of consecutive PFNs under an area: what one host mapping call each covers.</summary>
    private static int Runs(Machine m, nint v, int pages)
    {
        int runs = 0;
        ulong prev = ulong.MaxValue;
        for (int i = 0; i < pages; i++)
        {
            ulong pfn = m.VmallocToPfn(v + i * 4096);
            if (pfn != prev + 1) runs++;
            prev = pfn;
        }
        return runs;
    }

    [Fact]
    public void Bytes_written_through_vmalloc_are_the_bytes_of_each_page_through_the_linear_map()
    {
        using var m = Machine.Boot("rv1106");
        // Scatter the free memory: hold every other page of a large block, so that vmalloc's pages are apart.
        var held = new List<Page>();
        for (int i = 0; i < 512; i++) held.Add(m.AllocPage(Gfp.Kernel));
        for (int i = 0; i < held.Count; i += 2) m.FreePage(held[i]);
        const int pages = 64;
        long callsBefore = m.VmallocMapCalls;
        nint v = m.Vmalloc(pages * 4096);
        Assert.NotEqual(0, v);
        Assert.True(m.IsVmallocAddr(v) && m.IsVmallocAddr(v + pages * 4096 - 1));
        var pfns = new HashSet<ulong>();
        for (int i = 0; i < pages; i++)
        {
            Bytes(v + i * 4096, 4096).Fill((byte)(i + 1));
            pfns.Add(m.VmallocToPfn(v + i * 4096));
        }
        Assert.Equal(pages, pfns.Count);
        for (int i = 0; i < pages; i++)
        {
            nint lin = m.PageAddress(m.VmallocToPage(v + i * 4096));
            Assert.False(m.IsVmallocAddr(lin));
            Assert.Equal(-1, Bytes(lin, 4096).IndexOfAnyExcept((byte)(i + 1)));
            // And the other way round: a write through the linear map is seen through the vmalloc address.
            *(byte*)(lin + 100) = 0xee;
            Assert.Equal(0xee, *(byte*)(v + i * 4096 + 100));
        }
        int runs = Runs(m, v, pages);
        Assert.True(runs > 1, "the pages should be scattered");
        Assert.Equal(runs, m.VmallocMapCalls - callsBefore);
        m.Vfree(v);
        foreach (var p in held.Where((_, i) => i % 2 == 1)) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_run_of_consecutive_frames_is_mapped_with_one_call()
    {
        using var m = Machine.Boot("x86_64");
        long before = m.VmallocMapCalls;
        nint v = m.Vmalloc(1 << 20);
        int runs = Runs(m, v, 256);
        Assert.Equal(runs, m.VmallocMapCalls - before);
        Assert.True(runs < 256 / 4, $"{runs} runs for 256 pages taken from a fresh machine");
        m.Vfree(v);
    }

    [Fact]
    public void Each_area_is_followed_by_an_inaccessible_guard_page()
    {
        using var m = Machine.Boot("rv1106");
        nint a = m.Vmalloc(3 * 4096);
        nint b = m.Vmalloc(4096);
        Assert.Equal(a + 4 * 4096, b);
        var area = m.VmallocAreas.Single(x => x.Address == a);
        Assert.Equal(4UL * 4096, area.Size);
        Assert.Equal(3, area.MappedPages);
        Assert.True(m.VmallocToPage(a + 3 * 4096).IsNull);
        Assert.Throws<InvalidAddressException>(() => m.VmallocToPfn(a + 3 * 4096));
        Assert.Equal("---p", HostProtection(a + 3 * 4096));
        Assert.Equal("rw-s", HostProtection(a));
        m.Vfree(a);
        Assert.Equal("rw-p", HostProtection(a));       // unmapped at once: private harmless pages until the purge
        Assert.Equal("---p", HostProtection(a + 3 * 4096));
        m.VmUnmapAliases();
        Assert.Equal("---p", HostProtection(a));       // the purge gives the range back as reserved space
        m.Vfree(b);
    }

    /// <summary>The protection of the host mapping holding <paramref name="addr"/>, from /proc/self/maps.</summary>
    private static string HostProtection(nint addr)
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var parts = line.Split(' ', 3);
            var range = parts[0].Split('-');
            ulong s = Convert.ToUInt64(range[0], 16), e = Convert.ToUInt64(range[1], 16);
            if ((ulong)addr >= s && (ulong)addr < e) return parts[1];
        }
        return "(unmapped)";
    }

    [Fact]
    public void Freed_areas_are_reused_lowest_first_after_the_lazy_purge()
    {
        using var m = Machine.Boot("rv1106");
        nint a = m.Vmalloc(16 * 4096);
        nint b = m.Vmalloc(32 * 4096);
        nint c = m.Vmalloc(16 * 4096);
        m.Vfree(b);
        // Not purged yet: the hole is not reused and /proc/vmallocinfo shows it.
        // A 32-bit board prints the kernel's addresses: VMALLOC_START (0xc0800000 with 256 MiB of lowmem) plus the offset.
        ulong kb = 0xc0800000UL + (ulong)(b - m.VmallocStart);
        Assert.Contains($"0x{kb:x8}-0x{kb + 33 * 4096:x8}  135168 unpurged vm_area", m.ProcFs.Read("/proc/vmallocinfo"));
        nint d = m.Vmalloc(8 * 4096);
        Assert.Equal(c + 17 * 4096, d);
        m.VmUnmapAliases();
        Assert.DoesNotContain("unpurged", m.ProcFs.Read("/proc/vmallocinfo"));
        // Lowest first fit: the hole left by b takes the next areas, one after another with their guard pages.
        nint e = m.Vmalloc(8 * 4096);
        nint f = m.Vmalloc(20 * 4096);
        nint g = m.Vmalloc(100 * 4096);
        Assert.Equal(b, e);
        Assert.Equal(b + 9 * 4096, f);
        Assert.Equal(d + 9 * 4096, g);                  // 21 + 9 pages do not fit in the 33-page hole
        foreach (var x in new[] { a, c, d, e, f, g }) m.Vfree(x);
        m.VmUnmapAliases();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_lazy_purge_runs_by_itself_past_lazy_max_pages()
    {
        using var m = Machine.Boot("rv1106");          // 1 CPU: fls(1) * 32 MiB = 8192 pages
        nint first = m.Vmalloc(4096);
        m.Vfree(first);
        for (int i = 0; i < 8; i++) m.Vfree(m.Vmalloc(4 << 20));
        // 2 + 8 * 1025 pages went lazy: more than 8192, so everything was purged and the lowest address is free again.
        Assert.DoesNotContain("unpurged", m.ProcFs.Read("/proc/vmallocinfo"));
        Assert.Equal(first, m.Vmalloc(4096));
    }

    [Fact]
    public void Vmallocinfo_lines_follow_the_kernel_format()
    {
        using var m = Machine.Boot("x86_64");
        nint v = m.Vmalloc(5 * 4096);
        nint u = m.VmallocUser(4096);
        var pages = new[] { m.AllocPage(Gfp.Kernel), m.AllocPage(Gfp.Kernel) };
        nint map = m.Vmap(pages);
        nint big = m.Vmalloc(2 << 20);                 // 512 pages: an 4 KiB page array, still kmalloc'ed
        nint huge = m.Vmalloc(8 << 20);                // 2048 pages: a 16 KiB page array, itself vmalloc'ed
        string info = m.ProcFs.Read("/proc/vmallocinfo");
        var lines = info.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var re = new Regex(@"^0x[0-9a-f]{16}-0x[0-9a-f]{16} [ \d]{7,} \S+( pages=\d+)?( vmalloc)?( vmap)?( user)?( vpages)?( N0=\d+)?$");
        foreach (var l in lines) Assert.Matches(re, l);
        string Line(nint a) => lines.Single(l => l.StartsWith($"0x{a:x16}-"));
        Assert.Matches(@$"^0x{v:x16}-0x{v + 6 * 4096:x16}   24576 Vmallocinfo_lines_follow_the_kernel_format\+VmallocTests\.cs:\d+ pages=5 vmalloc N0=5$", Line(v));
        Assert.EndsWith(" pages=1 vmalloc user N0=1", Line(u));
        Assert.Matches(@"^0x[0-9a-f]{16}-0x[0-9a-f]{16}   12288 Vmallocinfo_lines_follow_the_kernel_format\+VmallocTests\.cs:\d+ vmap$", Line(map));
        Assert.EndsWith(" pages=512 vmalloc N0=512", Line(big));
        Assert.EndsWith(" pages=2048 vmalloc vpages N0=2048", Line(huge));
        // The nested page array is an area of its own, right after the one it describes.
        Assert.Contains(lines, l => l.StartsWith($"0x{huge + (2049 << 12):x16}-") && l.EndsWith(" pages=4 vmalloc N0=4"));
        Assert.Equal(lines.Select(l => Convert.ToUInt64(l[2..18], 16)).Order(), lines.Select(l => Convert.ToUInt64(l[2..18], 16)));
        long used = (5 + 1 + 512 + 2048 + 4) * 4;
        Assert.Contains($"VmallocUsed:    {used,8} kB", m.ProcFs.Read("/proc/meminfo"));
        m.Vunmap(map);
        foreach (var p in pages) m.FreePage(p);
        foreach (var x in new[] { v, u, big, huge }) m.Vfree(x);
        Assert.Contains("VmallocUsed:           0 kB", m.ProcFs.Read("/proc/meminfo"));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_32_bit_board_without_numa_prints_no_node_counts_and_its_window_is_the_profiles()
    {
        using var m = Machine.Boot(MachineProfile.Parse(SmallWindowProfile));
        nint v = m.Vmalloc(4096);
        Assert.EndsWith(" pages=1 vmalloc\n", m.ProcFs.Read("/proc/vmallocinfo"));
        Assert.Contains("VmallocTotal:       4096 kB", m.ProcFs.Read("/proc/meminfo"));
        Assert.Equal(4 << 20, (long)(m.VmallocEnd - m.VmallocStart));
        m.Vfree(v);
    }

    [Fact]
    public void Vzalloc_and_vmalloc_user_give_zeroed_memory()
    {
        using var m = Machine.Boot("rv1106");
        // Dirty some pages and give them back, so that the next allocations reuse them.
        nint dirty = m.Vmalloc(64 * 4096);
        Bytes(dirty, 64 * 4096).Fill(0x5a);
        m.Vfree(dirty);
        nint z = m.Vzalloc(64 * 4096);
        nint u = m.VmallocUser(64 * 4096);
        Assert.Equal(-1, Bytes(z, 64 * 4096).IndexOfAnyExcept((byte)0));
        Assert.Equal(-1, Bytes(u, 64 * 4096).IndexOfAnyExcept((byte)0));
        m.Vfree(z);
        m.Vfree(u);
    }

    [Fact]
    public void Vmap_maps_the_callers_pages_and_vunmap_leaves_them_allocated()
    {
        using var m = Machine.Boot("rv1106");
        var pages = Enumerable.Range(0, 6).Select(_ => m.AllocPage(Gfp.Kernel)).Reverse().ToArray();
        long free = m.Zones.Sum(z => z.FreePages);
        nint v = m.Vmap(pages);
        for (int i = 0; i < pages.Length; i++)
        {
            Assert.Equal(pages[i], m.VmallocToPage(v + i * 4096));
            *(int*)(v + i * 4096) = 1000 + i;
            Assert.Equal(1000 + i, *(int*)m.PageAddress(pages[i]));
        }
        m.Vunmap(v);
        Assert.Equal(free, m.Zones.Sum(z => z.FreePages));
        foreach (var p in pages) Assert.Equal(1, m.PageCount(p));
        // With VM_MAP_PUT_PAGES the area owns the pages and vfree frees them.
        nint w = m.Vmap(pages, VmFlags.Map | VmFlags.MapPutPages);
        Assert.Throws<InvalidAddressException>(() => m.Vunmap(w));
        m.Vfree(w);
        m.DrainAllPages();
        Assert.True(m.Zones.Sum(z => z.FreePages) >= free + pages.Length);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Vmap_rejects_free_and_foreign_pages_without_mapping_anything()
    {
        using var m = Machine.Boot("rv1106");
        using var other = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        var freed = m.AllocPage(Gfp.Kernel);
        m.FreePage(freed);
        m.DrainAllPages();
        Assert.Throws<InvalidAddressException>(() => m.Vmap([p, freed]));
        Assert.Throws<InvalidAddressException>(() => m.Vmap([p, other.AllocPage(Gfp.Kernel)]));
        Assert.Throws<InvalidAddressException>(() => m.Vmap([p, Page.Null]));
        Assert.Empty(Own(m));
        Assert.Equal(0, m.Vmap(ReadOnlySpan<Page>.Empty));
        m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Kvmalloc_follows_the_kernels_kmalloc_then_vmalloc_rules()
    {
        using var m = Machine.Boot("rv1106");          // KMALLOC_MAX_SIZE 4 MiB
        nint small = m.Kvmalloc(100, Gfp.Kernel);
        Assert.False(m.IsVmallocAddr(small));
        Assert.Equal(128u, (uint)m.Ksize(small));
        nint mid = m.Kvmalloc(64 << 10, Gfp.Kernel);   // order 4 from the buddy allocator
        Assert.False(m.IsVmallocAddr(mid));
        int logLen = m.Dmesg().Length;
        nint large = m.Kvzalloc(6 << 20, Gfp.Kernel);  // above KMALLOC_MAX_SIZE: the quiet kmalloc fails, vmalloc serves
        Assert.True(m.IsVmallocAddr(large));
        Assert.Equal(-1, Bytes(large, 6 << 20).IndexOfAnyExcept((byte)0));
        Assert.DoesNotContain("WARNING", m.Dmesg()[logLen..]);
        // Not GFP_KERNEL: kmalloc only.
        Assert.Equal(0, m.Kvmalloc(6 << 20, Gfp.Atomic | Gfp.NoWarn));
        m.Kvfree(small);
        m.Kvfree(mid);
        m.Kvfree(large);
        m.Kvfree(0);
        Assert.Empty(Own(m));
        TestSupport.AssertConsistent(m);
    }

    // ------------------------------------------------------------------ bad input

    private static void Rejected(Machine m, Action misuse, string logText) =>
        TestSupport.Rejected<InvalidAddressException>(m, misuse, logText,
            () => m.ProcFs.Read("/proc/vmallocinfo") + m.ProcFs.Read("/proc/meminfo"));

    [Fact]
    public void Vfree_of_anything_but_an_areas_start_is_reported_and_unmaps_nothing()
    {
        using var m = Machine.Boot("rv1106");
        nint v = m.Vmalloc(4 * 4096);
        Bytes(v, 4 * 4096).Fill(0x77);
        nint lin = m.GetFreePages(Gfp.Kernel, 0);
        nint gone = m.Vmalloc(4096);
        m.Vfree(gone);
        Rejected(m, () => m.Vfree(v + 4096), $"Trying to vfree() nonexistent vm area (0x{v + 4096:x16})");
        Rejected(m, () => m.Vfree(v + 10), $"Trying to vfree() bad address (0x{v + 10:x16})");
        Rejected(m, () => m.Vfree(lin), "Trying to vfree() nonexistent vm area");
        Rejected(m, () => m.Vfree(gone), $"Trying to vfree() nonexistent vm area (0x{gone:x16})");
        Rejected(m, () => m.Vunmap(v), "vfree() frees it");
        var ex = Assert.Throws<InvalidAddressException>(() => m.Vfree(v + 8192));
        Assert.Contains($"inside the area 0x{v:x}-0x{v + 5 * 4096:x}", ex.Message);
        // The area is intact and frees normally afterwards.
        Assert.Equal(-1, Bytes(v, 4 * 4096).IndexOfAnyExcept((byte)0x77));
        m.Vfree(v);
        m.Vfree(0);
        m.FreePages(lin, 0);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData(0L, "vmalloc: allocation failure: 0 bytes, mode:0xcc0(GFP_KERNEL)")]
    [InlineData(128L << 20, "vmalloc: allocation failure: 134217728 bytes")]               // more than the RAM
    [InlineData(4L << 20, "vmap allocation for size 4198400 failed: use vmalloc=<size> to increase size")] // not the window with its guard
    public void Impossible_sizes_fail_with_the_kernels_warnings(long size, string warning)
    {
        using var m = Machine.Boot(MachineProfile.Parse(SmallWindowProfile));
        string before = TestSupport.State(m);
        Assert.Equal(0, m.Vmalloc((nuint)size));
        Assert.Contains(warning, m.Dmesg());
        if (size > 0) Assert.Contains($"vmalloc: allocation failure: {size} bytes", m.Dmesg());
        Assert.Equal(before, TestSupport.State(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Failures_under_nowarn_are_quiet_and_the_whole_window_can_be_used()
    {
        using var m = Machine.Boot(MachineProfile.Parse(SmallWindowProfile));
        int logLen = m.Dmesg().Length;
        Assert.Equal(0, m.Vmalloc(4 << 20, Gfp.Kernel | Gfp.NoWarn));
        Assert.Equal(logLen, m.Dmesg().Length);
        ulong taken = m.VmallocAreas.Aggregate(0UL, (t, a) => t + a.Size);   // the atomic pool's remap
        nint ok = m.Vmalloc((nuint)((4UL << 20) - taken - 4096));           // exactly the rest of the window, guard page included
        Assert.NotEqual(0, ok);
        Assert.Equal(0, m.Vmalloc(4096, Gfp.Kernel | Gfp.NoWarn));
        m.Vfree(ok);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_vmalloc_that_runs_out_of_pages_gives_back_everything_it_took()
    {
        using var m = TestSupport.Small();
        // A first failure makes the slab pages that the page arrays come from; the second must change nothing.
        // 29 MiB: under totalram (so vmalloc tries), above what the 32 MiB board has free.
        Assert.Equal(0, m.Vmalloc((nuint)(29 << 20)));
        m.DrainAllPages();
        string before = TestSupport.State(m);
        long slabBefore = m.SlabCaches.Sum(c => c.ActiveObjects);
        Assert.Equal(0, m.Vmalloc((nuint)(29 << 20)));
        Assert.Matches(@"vmalloc: allocation failure, allocated \d+ of 30412800 bytes", m.Dmesg());
        m.DrainAllPages();
        Assert.Equal(before, TestSupport.State(m));
        Assert.Equal(slabBefore, m.SlabCaches.Sum(c => c.ActiveObjects));
        Assert.Empty(Own(m));
        Assert.Contains("VmallocUsed:           0 kB", m.ProcFs.Read("/proc/meminfo"));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Address_conversions_reject_what_is_not_vmalloc_memory()
    {
        using var m = Machine.Boot("rv1106");
        nint lin = m.GetFreePages(Gfp.Kernel, 0);
        Assert.False(m.IsVmallocAddr(lin));
        Assert.False(m.IsVmallocAddr(0));
        Assert.False(m.IsVmallocAddr(m.VmallocEnd));
        Assert.True(m.IsVmallocAddr(m.VmallocStart));
        Assert.Throws<InvalidAddressException>(() => m.VmallocToPage(lin));
        Assert.Throws<InvalidAddressException>(() => m.VmallocToPfn(m.VmallocEnd - 4096));  // nothing mapped there
        m.FreePages(lin, 0);
    }

    // ------------------------------------------------------------------ model and concurrency

    [Fact]
    public void Random_vmalloc_and_vfree_keep_areas_apart_and_every_byte_in_place()
    {
        using var m = Machine.Boot("rv1106");
        var rnd = new Random(4242);
        var live = new List<(nint Addr, int Size, byte Tag)>();
        long pages = 0;
        for (int op = 0; op < 4000; op++)
        {
            int r = rnd.Next(100);
            if (r < 55 || live.Count == 0)
            {
                int size = rnd.Next(4) == 0 ? rnd.Next(1, 600_000) : rnd.Next(1, 40_000);
                nint v = rnd.Next(3) == 0 ? m.Vzalloc((nuint)size) : m.Vmalloc((nuint)size);
                Assert.NotEqual(0, v);
                byte tag = (byte)rnd.Next(1, 256);
                Bytes(v, size).Fill(tag);
                live.Add((v, size, tag));
                pages += (size + 4095) / 4096;
            }
            else if (r < 98)
            {
                int i = rnd.Next(live.Count);
                var (v, size, tag) = live[i];
                Assert.Equal(-1, Bytes(v, size).IndexOfAnyExcept(tag));
                m.Vfree(v);
                live.RemoveAt(i);
                pages -= (size + 4095) / 4096;
            }
            else m.VmUnmapAliases();
            if (op % 500 == 0)
            {
                TestSupport.AssertConsistent(m);
                var areas = m.VmallocAreas.Where(a => a.Caller.StartsWith(nameof(Random_vmalloc_and_vfree_keep_areas_apart_and_every_byte_in_place))).ToList();
                Assert.Equal(live.Count, areas.Count);
                for (int k = 1; k < areas.Count; k++) Assert.True(areas[k].Address >= areas[k - 1].Address + (nint)areas[k - 1].Size);
                Assert.Equal(pages, areas.Sum(a => (long)a.NrPages));
            }
        }
        foreach (var (v, size, tag) in live)
        {
            Assert.Equal(-1, Bytes(v, size).IndexOfAnyExcept(tag));
            m.Vfree(v);
        }
        TestSupport.AssertConsistent(m);
        Assert.Contains("VmallocUsed:           0 kB", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void Two_threads_vmalloc_and_free_each_others_areas()
    {
        using var m = Machine.Boot("rk3588");
        var handoff = new System.Collections.Concurrent.BlockingCollection<(nint, int, byte)>(64);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var producer = new Thread(() =>
        {
            var rnd = new Random(1);
            for (int i = 0; i < 1500; i++)
            {
                int size = rnd.Next(1, 100_000);
                nint v = m.Vmalloc((nuint)size);
                if (v == 0) { errors.Enqueue("vmalloc failed"); continue; }
                byte tag = (byte)(i | 1);
                Bytes(v, size).Fill(tag);
                handoff.Add((v, size, tag));
                // Some areas this thread frees itself, while the other thread frees the rest.
                nint own = m.Vmalloc((nuint)rnd.Next(1, 20_000));
                m.Vfree(own);
            }
            handoff.CompleteAdding();
        });
        var consumer = new Thread(() =>
        {
            foreach (var (v, size, tag) in handoff.GetConsumingEnumerable())
            {
                if (Bytes(v, size).IndexOfAnyExcept(tag) >= 0) errors.Enqueue($"area 0x{v:x} lost its bytes");
                m.Vfree(v);
            }
        });
        producer.Start();
        consumer.Start();
        producer.Join();
        consumer.Join();
        Assert.Empty(errors);
        Assert.Empty(Own(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Workload_steps_vmalloc_and_vfree()
    {
        using var m = Machine.Boot("rv1106");
        var w = Workload.Parse("""
        { "steps": [
          { "op": "vmalloc", "label": "buf", "size": "300K", "count": 4, "fill": "0x3c", "expect": "success" },
          { "op": "vmalloc", "label": "ubuf", "size": "8K", "user": true },
          { "op": "verify", "label": "buf", "pattern": "0x3c" },
          { "op": "vfree", "label": "buf", "count": 2, "which": "oldest" },
          { "op": "vm_unmap_aliases" },
          { "op": "check" }
        ] }
        """);
        var runner = new WorkloadRunner(m);
        var r = runner.Run(w);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(2 * 75, r.Labels["buf"].PagesHeld);
        Assert.Equal(3, Own(m).Count);
        Assert.Contains(" user", m.ProcFs.Read("/proc/vmallocinfo"));
        runner.ReleaseAll();
        Assert.Empty(Own(m));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "vmalloc", "label": "x" } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "vmalloc", "label": "x", "size": 10, "user": 1 } ] }"""));
    }
}
