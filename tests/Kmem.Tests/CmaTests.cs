// CMA: cma_alloc's aligned first fit and its reports, cma_release, the debugfs files, the sharing rule
// (free CMA pages serve movable allocations, which move when the area needs them back), the RV1106
// dump's back-to-back placement, a model test of the bitmap and a two-thread stress.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public class CmaTests
{
    /// <summary>The rv1106 board with CONFIG_CMA_DEBUGFS (off in rv1106_defconfig), whose files these tests read.</summary>
    private static Machine Rv1106()
    {
        var p = MachineProfile.Embedded("rv1106");
        var m = Machine.Boot(p with { ConfigOptions = new Dictionary<string, object>(p.ConfigOptions) { ["CMA_DEBUGFS"] = true } });
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        m.Sysctl.Kmem.CmaBusyRetryWait = TimeSpan.Zero;
        return m;
    }

    /// <summary>The rv1106 board with kernel.org's CMA (no Rockchip CONFIG_CMA_INACTIVE): its area lends its free pages to
    /// the buddy allocator as MIGRATE_CMA, which is what the sharing and migration tests are about.</summary>
    private static Machine Rv1106Active()
    {
        var p = MachineProfile.Embedded("rv1106");
        var m = Machine.Boot(p with { ConfigOptions = new Dictionary<string, object>(p.ConfigOptions) { ["CMA_INACTIVE"] = false, ["CMA_DEBUGFS"] = true } });
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        m.Sysctl.Kmem.CmaBusyRetryWait = TimeSpan.Zero;
        return m;
    }

    private static bool InArea(CmaArea c, Page p) => p.Pfn >= c.BasePfn && p.Pfn < c.BasePfn + c.Count;

    [Fact]
    public void The_rv1106_dump_is_reproduced_by_back_to_back_first_fit()
    {
        // Every buffer of the dump, by address: allocated in that order with alignment 0 they must land exactly there.
        var re = new Regex(@"\[0x([0-9a-f]+)-0x([0-9a-f]+)\] 0x([0-9a-f]+)");
        var bufs = TestSupport.Fixture("rk_dma_heap_info_rv1106.txt").Split('\n')
            .Where(l => l.StartsWith("Alloc by")).Select(l => re.Match(l))
            .Select(mm => (Start: ulong.Parse(mm.Groups[1].Value, NumberStyles.HexNumber), Size: ulong.Parse(mm.Groups[3].Value, NumberStyles.HexNumber)))
            .OrderBy(b => b.Start).ToList();
        Assert.Equal(44, bufs.Count);
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        Assert.Equal(0x02800000UL, cma.Base);
        foreach (var (start, size) in bufs)
        {
            var p = m.CmaAlloc(cma, (int)(size / 4096), align: 0);
            Assert.Equal(start, m.PageToPhys(p));
        }
        var last = bufs[^1];
        Assert.Equal((last.Start + last.Size - cma.Base) / 4096, cma.Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Alignment_follows_the_mask_and_the_cma_heap_rule()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var one = m.CmaAlloc(cma, 1, 0);
        Assert.Equal(cma.BasePfn, one.Pfn);
        var aligned = m.CmaAlloc(cma, 3, 4);                     // 16-page boundary
        Assert.Equal(cma.BasePfn + 16, aligned.Pfn);
        Assert.Equal(0UL, aligned.Pfn % 16);
        var next = m.CmaAlloc(cma, 2, 0);                        // first fit goes back into the hole
        Assert.Equal(cma.BasePfn + 1, next.Pfn);
        Assert.Equal(0, CmaArea.HeapAlignment(4096));
        Assert.Equal(3, CmaArea.HeapAlignment(5 * 4096));
        Assert.Equal(8, CmaArea.HeapAlignment(8 << 20));
        var heap = m.CmaAlloc(cma, 5, CmaArea.HeapAlignment(5 * 4096));
        Assert.Equal(cma.BasePfn + 8, heap.Pfn);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Debugfs_files_show_the_bitmap_and_its_figures()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        string Read(string f) => m.ProcFs.Read($"/sys/kernel/debug/cma/rk-dma-heap-cma/{f}");
        Assert.Equal($"{0x2800}\n", Read("base_pfn"));
        Assert.Equal("8192\n", Read("count"));
        Assert.Equal("0\n", Read("order_per_bit"));
        Assert.Equal("0\n", Read("used"));
        Assert.Equal("8192\n", Read("maxchunk"));
        var a = m.CmaAlloc(cma, 3, 0);
        var b = m.CmaAlloc(cma, 40, 0);
        m.CmaRelease(cma, a, 3);
        Assert.Equal("40\n", Read("used"));
        Assert.Equal($"{8192 - 43}\n", Read("maxchunk"));
        var words = Read("bitmap").TrimEnd('\n').Split(' ').Select(uint.Parse).ToArray();
        Assert.Equal(256, words.Length);
        Assert.Equal(0xfffffff8u, words[0]);                     // bits 3..31
        Assert.Equal(0x7ffu, words[1]);                          // bits 32..42
        Assert.All(words.Skip(2), w => Assert.Equal(0u, w));
        m.CmaRelease(cma, b, 40);
        Assert.Equal("0\n", Read("used"));
    }

    [Fact]
    public void Order_per_bit_groups_pages_in_the_bitmap()
    {
        using var m = Machine.Boot(MachineProfile.Parse("""
        { "name": "opb", "arch": "arm64", "cpus": 2, "config": { "CMA_DEBUGFS": true },
          "dram": [ { "base": "0x40000000", "size": "256M" } ],
          "cma": [ { "name": "big", "base": "0x48000000", "size": "16M", "order_per_bit": 2 } ] }
        """));
        var cma = m.Cma["big"];
        Assert.Equal("2\n", m.ProcFs.Read("/sys/kernel/debug/cma/big/order_per_bit"));
        var p = m.CmaAlloc(cma, 5, 0);                           // 5 pages take 2 bits (8 pages)
        Assert.Equal("8\n", m.ProcFs.Read("/sys/kernel/debug/cma/big/used"));
        var q = m.CmaAlloc(cma, 1, 0);
        Assert.Equal(p.Pfn + 8, q.Pfn);
        Assert.True(m.CmaRelease(cma, p, 5));
        Assert.True(m.CmaRelease(cma, q, 1));
        Assert.Equal("0\n", m.ProcFs.Read("/sys/kernel/debug/cma/big/used"));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Meminfo_counts_cma_pages_taken_out_of_the_buddy_allocator()
    {
        using var m = Rv1106Active();
        var cma = m.Cma["rk-dma-heap-cma"];
        long Kb(string key) => long.Parse(m.ProcFs.Read("/proc/meminfo").Split('\n').First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim().Split(' ')[0]);
        Assert.Equal(32768, Kb("CmaTotal"));
        m.DrainAllPages();
        long free = Kb("CmaFree");
        var p = m.CmaAlloc(cma, 256, 0);
        m.DrainAllPages();
        Assert.Equal(free - 1024, Kb("CmaFree"));
        m.CmaRelease(cma, p, 256);
        m.DrainAllPages();
        Assert.Equal(free, Kb("CmaFree"));
    }

    [Fact]
    public void A_full_area_fails_with_the_kernels_report_and_nowarn_is_quiet()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var a = m.CmaAlloc(cma, 16, 0);
        var b = m.CmaAlloc(cma, 8000, 0);
        m.CmaRelease(cma, a, 16);
        int logLen = m.Dmesg().Length;
        Assert.True(m.CmaAlloc(cma, 200, 0).IsNull);
        string log = m.Dmesg()[logLen..];
        Assert.Contains("cma_alloc: rk-dma-heap-cma: alloc failed, req-size: 200 pages, ret: -12", log);
        Assert.Contains("number of available pages: 16@0+176@8016=> 192 free of 8192 total pages", log);
        logLen = m.Dmesg().Length;
        Assert.True(m.CmaAlloc(cma, 200, 0, Gfp.Kernel | Gfp.NoWarn).IsNull);
        Assert.Equal(logLen, m.Dmesg().Length);
        Assert.True(m.CmaAlloc(cma, 0, 0).IsNull);
        Assert.True(m.CmaAlloc(cma, 9000, 0).IsNull);            // more than the area
        m.CmaRelease(cma, b, 8000);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Release_checks_the_range_and_leaves_everything_as_it_was_on_misuse()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var p = m.CmaAlloc(cma, 8, 0);
        var outside = m.AllocPage(Gfp.Kernel);
        Assert.False(m.CmaRelease(cma, outside, 1));             // not in the area: false, as the kernel
        Assert.False(m.CmaRelease(cma, Page.Null, 1));
        Assert.True(m.CmaRelease(cma, p, 4));                    // a part may go back
        string before = TestSupport.State(m) + m.ProcFs.Read("/sys/kernel/debug/cma/rk-dma-heap-cma/bitmap");
        int logLen = m.Dmesg().Length;
        Assert.Throws<InvalidAddressException>(() => m.CmaRelease(cma, p, 8)); // its first half is free already
        Assert.Contains($"cma_release: rk-dma-heap-cma: pfn 0x{p.Pfn:x} was not allocated from this area", m.Dmesg()[logLen..]);
        Assert.Equal(before, TestSupport.State(m) + m.ProcFs.Read("/sys/kernel/debug/cma/rk-dma-heap-cma/bitmap"));
        var last = m.PfnToPage(cma.BasePfn + cma.Count - 1);
        Assert.Throws<InvalidAddressException>(() => m.CmaRelease(cma, last, 2));  // runs past the end
        Assert.True(m.CmaRelease(cma, m.PfnToPage(p.Pfn + 4), 4));
        Assert.Equal(0UL, cma.Used);
        using var other = Rv1106();
        Assert.Throws<InvalidAddressException>(() => m.CmaAlloc(other.Cma["rk-dma-heap-cma"], 1, 0));
        Assert.Contains("the area belongs to another machine", m.Dmesg());
        Assert.Throws<ArgumentOutOfRangeException>(() => m.CmaAlloc(cma, -1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.CmaAlloc(cma, 1, 31));
        m.FreePage(outside);
        TestSupport.AssertConsistent(m);
    }

    // ------------------------------------------------------------------ sharing and migration

    [Fact]
    public void Movable_data_fills_the_area_and_a_large_cma_alloc_moves_it_out_intact()
    {
        using var m = Rv1106Active();
        var cma = m.Cma["rk-dma-heap-cma"];
        var handles = new List<MovablePage>();
        while (m.AllocMovable(Gfp.HighUserMovable | Gfp.NoWarn) is { } h)
        {
            h.Write(BitConverter.GetBytes(handles.Count));
            h.Write(BitConverter.GetBytes(~handles.Count), 4092);
            handles.Add(h);
        }
        Assert.True(handles.Count(h => InArea(cma, h.Page)) > 7000, "movable allocations use the free CMA pageblocks");
        // Give back a third of the memory, scattered, so that migration has somewhere to go.
        var rnd = new Random(7);
        var kept = new List<(MovablePage H, int Id)>();
        for (int i = 0; i < handles.Count; i++)
        {
            if (rnd.Next(3) == 0) handles[i].Dispose();
            else kept.Add((handles[i], i));
        }
        int inArea = kept.Count(k => InArea(cma, k.H.Page));
        Assert.True(inArea > 4000);
        var run = m.CmaAlloc(cma, (int)cma.Count, 0);            // the whole area
        Assert.Equal(cma.BasePfn, run.Pfn);
        Assert.True(m.PagesMigrated >= inArea);
        var buf = new byte[4];
        foreach (var (h, id) in kept)
        {
            Assert.False(InArea(cma, h.Page));
            h.Read(buf);
            Assert.Equal(id, BitConverter.ToInt32(buf));
            h.Read(buf, 4092);
            Assert.Equal(~id, BitConverter.ToInt32(buf));
        }
        Assert.Equal(inArea, kept.Count(k => k.H.Migrations > 0));
        TestSupport.AssertConsistent(m);
        m.CmaRelease(cma, run, (int)cma.Count);
        foreach (var (h, _) in kept) h.Dispose();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Unmovable_memory_never_lands_in_cma()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var pages = new List<Page>();
        while (m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is { IsNull: false } p) pages.Add(p);
        var objs = new List<nint>();
        for (int i = 0; i < 2000; i++) objs.Add(m.Kmalloc(256, Gfp.Kernel | Gfp.NoWarn));
        Assert.DoesNotContain(pages, p => InArea(cma, p));
        Assert.DoesNotContain(objs, o => o != 0 && InArea(cma, m.VirtToPage(o)));
        Assert.Equal(cma.BasePfn, m.CmaAlloc(cma, (int)cma.Count, 0).Pfn);  // the whole area is still there for CMA
    }

    [Fact]
    public void A_pinned_or_unmovable_page_makes_its_range_busy_and_the_search_goes_on()
    {
        using var m = Rv1106Active();
        var cma = m.Cma["rk-dma-heap-cma"];
        // Use the area with movable pages, then pin one near its start.
        var handles = new List<MovablePage>();
        int inArea = 0;
        while (inArea < 64 && m.AllocMovable(Gfp.HighUserMovable | Gfp.NoWarn) is { } h)
        {
            handles.Add(h);
            if (InArea(cma, h.Page)) inArea++;
        }
        var pinned = handles.Where(h => InArea(cma, h.Page)).MinBy(h => h.Page.Pfn)!;
        ulong pinnedPfn = pinned.Page.Pfn;
        int upToPinned = (int)(pinnedPfn - cma.BasePfn) + 1;   // a run from the base must hold the pinned page
        // Take the area below the pinned page, so that the first fit of the next allocation starts on it.
        var below = upToPinned > 1 ? m.CmaAlloc(cma, upToPinned - 1, 0) : Page.Null;
        using (pinned.Pin())
        {
            var run = m.CmaAlloc(cma, 16, 0);
            Assert.Equal(pinnedPfn + 1, run.Pfn);               // the range holding the pinned page was skipped
            Assert.Equal(pinnedPfn, cma.LastBusyPfn);
            Assert.Equal(pinnedPfn, pinned.Page.Pfn);
            m.CmaRelease(cma, run, 16);
        }
        if (!below.IsNull) m.CmaRelease(cma, below, upToPinned - 1);
        // Unpinned, it moves.
        var again = m.CmaAlloc(cma, upToPinned, 0);
        Assert.Equal(cma.BasePfn, again.Pfn);
        Assert.NotEqual(pinnedPfn, pinned.Page.Pfn);
        m.CmaRelease(cma, again, upToPinned);
        // A raw movable page (AllocPages) has no owner Kmem could tell: it counts as pinned.
        foreach (var h in handles) h.Dispose();
        var raw = new List<Page>();
        while (!raw.Any(p => InArea(cma, p)) && m.AllocPages(Gfp.HighUserMovable | Gfp.NoWarn, 0) is { IsNull: false } p) raw.Add(p);
        var rawInArea = raw.First(p => InArea(cma, p));
        var whole = m.CmaAlloc(cma, (int)cma.Count, 0, Gfp.Kernel | Gfp.NoWarn);
        Assert.True(whole.IsNull);
        Assert.Equal(rawInArea.Pfn, cma.LastBusyPfn);
        foreach (var p in raw) m.FreePage(p);
        Assert.False(m.CmaAlloc(cma, (int)cma.Count, 0).IsNull);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Movable_pages_reject_use_after_free_and_bad_ranges()
    {
        using var m = Rv1106();
        var h = m.AllocMovable(order: 1)!;
        Assert.Equal(8192, h.Length);
        h.Write(new byte[] { 1, 2, 3 }, 8189);
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Write(new byte[4], 8189));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Read(new byte[1], -1));
        Assert.Throws<ArgumentException>(() => m.AllocMovable(Gfp.Kernel));
        h.Dispose();
        h.Dispose();
        Assert.Throws<ObjectDisposedException>(() => h.Read(new byte[1]));
        Assert.Throws<ObjectDisposedException>(() => h.Page);
        TestSupport.AssertConsistent(m);
    }

    // ------------------------------------------------------------------ model and concurrency

    [Fact]
    public void Random_allocations_keep_the_bitmap_equal_to_the_live_ranges()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var rnd = new Random(99);
        var live = new List<(ulong Pfn, int Count)>();
        for (int op = 0; op < 3000; op++)
        {
            if (rnd.Next(100) < 55 || live.Count == 0)
            {
                int count = rnd.Next(4) == 0 ? rnd.Next(1, 600) : rnd.Next(1, 40);
                int align = rnd.Next(3) == 0 ? rnd.Next(0, 6) : 0;
                var p = m.CmaAlloc(cma, count, align, Gfp.Kernel | Gfp.NoWarn);
                if (p.IsNull)
                {
                    Assert.True(cma.MaxChunk < (ulong)count + (1UL << align), $"{count} pages (align {align}) failed with {cma.MaxChunk} free in a row");
                    continue;
                }
                Assert.Equal(0UL, p.Pfn % (1UL << align));
                Assert.DoesNotContain(live, l => p.Pfn < l.Pfn + (ulong)l.Count && l.Pfn < p.Pfn + (ulong)count);
                live.Add((p.Pfn, count));
            }
            else
            {
                int i = rnd.Next(live.Count);
                Assert.True(m.CmaRelease(cma, m.PfnToPage(live[i].Pfn), live[i].Count));
                live.RemoveAt(i);
            }
            if (op % 250 == 0)
            {
                var expect = new uint[(cma.BitmapBits + 31) / 32];
                foreach (var (pfn, count) in live)
                    for (ulong b = pfn - cma.BasePfn; b < pfn - cma.BasePfn + (ulong)count; b++) expect[b >> 5] |= 1u << (int)(b & 31);
                Assert.Equal(expect, cma.Bitmap());
                TestSupport.AssertConsistent(m);
            }
        }
        foreach (var (pfn, count) in live) m.CmaRelease(cma, m.PfnToPage(pfn), count);
        Assert.Equal(0UL, cma.Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Cma_allocations_and_movable_users_run_side_by_side()
    {
        using var m = Rv1106();
        var cma = m.Cma["rk-dma-heap-cma"];
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var user = new Thread(() =>
        {
            var rnd = new Random(3);
            var mine = new List<(MovablePage H, int Tag)>();
            var buf = new byte[4];
            int tag = 0;
            while (!stop.IsCancellationRequested)
            {
                if (mine.Count < 3000 && m.AllocMovable(Gfp.HighUserMovable | Gfp.NoWarn) is { } h)
                {
                    h.Write(BitConverter.GetBytes(++tag));
                    mine.Add((h, tag));
                }
                if (mine.Count > 0)
                {
                    int i = rnd.Next(mine.Count);
                    var (x, t) = mine[i];
                    using (var pin = x.Pin())
                        if (BitConverter.ToInt32(pin.Span[..4]) != t) errors.Enqueue($"tag {t} lost");
                    if (rnd.Next(4) == 0) { x.Dispose(); mine.RemoveAt(i); }
                }
            }
            foreach (var (x, t) in mine)
            {
                x.Read(buf);
                if (BitConverter.ToInt32(buf) != t) errors.Enqueue($"tag {t} lost at the end");
                x.Dispose();
            }
        });
        user.Start();
        var rnd2 = new Random(5);
        int ok = 0;
        for (int i = 0; i < 300; i++)
        {
            int count = rnd2.Next(1, 2048);
            var p = m.CmaAlloc(cma, count, 0, Gfp.Kernel | Gfp.NoWarn);
            if (p.IsNull) continue;
            ok++;
            m.CmaRelease(cma, p, count);
        }
        stop.Cancel();
        user.Join();
        Assert.Empty(errors);
        Assert.True(ok > 200, $"{ok} of 300 allocations succeeded");
        TestSupport.AssertConsistent(m);
    }
}
