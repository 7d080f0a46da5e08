// DMA-BUF and the heaps: references and descriptors, attachments and device mappings, vmap and CPU access,
// bufinfo; the system heap's orders, pools and deferred free (with pressure), the CMA heap; RK-DMA-HEAP's
// lists and its rk-dma-heap-info reproduced from the RV1106 dump; misuse and a multi-thread stress.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public class DmaBufTests
{

    [Fact]
    public void The_system_heap_takes_blocks_of_order_8_4_and_0_without_going_back_up()
    {
        using var m = Machine.Boot("rk3588");
        var heap = (SystemHeap)m.DmaHeaps["system"];
        var b = heap.AllocateBuffer((3 << 20) + 80 * 1024)!;
        Assert.Equal(new[] { 8, 8, 8, 4, 0, 0, 0, 0 }, b.PageBlocks.Select(x => x.Order));
        Assert.Equal("system", b.ExpName);
        Assert.Equal((3L << 20) + 80 * 1024, b.Size);
        Assert.Equal(-1, b.Span.IndexOfAnyExcept((byte)0));
        var a = b.Attach(m.Devices["fdb50000.vepu"]);
        var t = b.MapAttachment(a, DmaDirection.Bidirectional);
        Assert.Equal(8, t.OrigNents);                                   // one entry per block
        Assert.Equal(1, t.Nents);                                       // behind the IOMMU: one segment
        b.UnmapAttachment(a, t, DmaDirection.Bidirectional);
        b.Detach(a);
        b.Put();
        Assert.True(b.Released);
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        Assert.Equal(new[] { (8, 3, 0), (4, 1, 0), (0, 4, 0) }, heap.PoolCounts);
        Assert.Equal($"{3 * 1024 + 64 + 16}\n", m.ProcFs.Read("/sys/kernel/dma_heap/total_pools_kb"));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Freed_buffers_refill_the_pools_the_next_allocation_reuses_and_pressure_drains()
    {
        using var m = Machine.Boot("rv1106");
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var heap = (SystemHeap)m.DmaHeaps["system"];
        var b = heap.AllocateBuffer(2 << 20)!;
        var frames = b.PageBlocks.Select(x => x.Page).ToList();
        b.Span.Fill(0xee);
        long kreclaimBefore = Kb(m, "KReclaimable");
        b.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        Assert.Equal((8, 2, 0), heap.PoolCounts[0]);
        Assert.Equal(kreclaimBefore + 2048, Kb(m, "KReclaimable"));       // pooled pages count as reclaimable
        var again = heap.AllocateBuffer(1 << 20)!;
        Assert.Contains(again.PageBlocks[0].Page, frames);                // from the pool
        Assert.Equal(-1, again.Span.IndexOfAnyExcept((byte)0));           // zeroed by the deferred free
        Assert.Equal((8, 1, 0), heap.PoolCounts[0]);
        // Pressure: the shrinker gives the pool back to the page allocator.
        m.Reclaim();
        Assert.Equal((8, 0, 0), heap.PoolCounts[0]);
        again.Put();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Pressure_from_an_ordinary_page_allocation_drains_the_pools_and_the_deferred_list()
    {
        using var m = Machine.Boot("rv1106");
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        var heap = (SystemHeap)m.DmaHeaps["system"];
        var bufs = Enumerable.Range(0, 40).Select(_ => heap.AllocateBuffer(1 << 20)!).ToList();
        foreach (var b in bufs.Take(30)) b.Put();
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        m.Sysctl.Kmem.DmaBufDeferredFreeWorker = false;
        foreach (var b in bufs.Skip(30)) b.Put();                        // 10 MiB wait on the deferred list
        Assert.Equal(30 * 256, heap.PoolCounts[0].Low * 256);
        Assert.Equal(2560, m.DmaBufDeferredPages);
        m.DrainAllPages();
        long freeBefore = m.Zones.Sum(z => z.FreePages);
        // Plain GFP_KERNEL pages until they run out: the slow path's reclaim must reach the heaps' shrinkers.
        var pages = new List<Page>();
        while (m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is { IsNull: false } p) pages.Add(p);
        Assert.True(pages.Count > freeBefore, $"{pages.Count} pages, {freeBefore} free before");
        Assert.Equal(0, m.DmaBufDeferredPages);
        Assert.True(heap.PoolCounts[0].Low < 30);
        foreach (var p in pages) m.FreePage(p);
        m.Sysctl.Kmem.DmaBufDeferredFreeWorker = true;
        TestSupport.AssertConsistent(m);
    }

    private static long Kb(Machine m, string key) =>
        long.Parse(m.ProcFs.Read("/proc/meminfo").Split('\n').First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);

    [Fact]
    public void The_deferred_list_is_lifo_and_under_pressure_goes_straight_back()
    {
        using var m = Machine.Boot("rv1106");
        m.Sysctl.Kmem.DmaBufDeferredFreeWorker = false;
        var heap = (SystemHeap)m.DmaHeaps["system"];
        var bufs = Enumerable.Range(0, 3).Select(_ => heap.AllocateBuffer(64 * 1024)!).ToList();
        foreach (var b in bufs) b.Put();
        Assert.Equal(48, m.DmaBufDeferredPages);
        m.DrainAllPages();
        long free = m.Zones.Sum(z => z.FreePages);
        m.Reclaim();                                                      // the deferred list's shrinker
        Assert.Equal(0, m.DmaBufDeferredPages);
        m.DrainAllPages();
        Assert.True(m.Zones.Sum(z => z.FreePages) >= free + 48);
        Assert.Equal((4, 0, 0), heap.PoolCounts[1]);                      // not pooled: freed
        // LIFO: the worker frees the buffer released last first, so its block is first in the (FIFO) pool.
        var again = Enumerable.Range(0, 3).Select(_ => heap.AllocateBuffer(64 * 1024)!).ToList();
        var blocks = again.Select(b => b.PageBlocks[0].Page).ToList();
        foreach (var b in again) b.Put();                                 // released a, b, c
        m.Sysctl.Kmem.DmaBufDeferredFreeWorker = true;
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        Assert.Equal((4, 3, 0), heap.PoolCounts[1]);
        Assert.Equal(blocks[2], heap.AllocateBuffer(64 * 1024)!.PageBlocks[0].Page);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_cma_heap_gives_one_aligned_run_from_the_default_area()
    {
        using var m = Machine.Boot("rk3588");
        var heap = (CmaHeap)m.DmaHeaps["reserved"];
        var b = heap.AllocateBuffer(5 * 4096)!;
        var p = b.PageBlocks[0].Page;
        Assert.InRange(p.Pfn, heap.Area.BasePfn, heap.Area.BasePfn + heap.Area.Count);
        Assert.Equal(0UL, p.Pfn % 8);                                     // min(get_order(20 KiB), 8) = 3
        Assert.Equal(5UL, heap.Area.Used);
        var a = b.Attach(m.Devices["fdab0000.npu"]);
        var t = b.MapAttachment(a, DmaDirection.ToDevice);
        Assert.Equal(1, t.OrigNents);                                     // the contiguous run: one entry
        b.UnmapAttachment(a, t, DmaDirection.ToDevice);
        b.Detach(a);
        b.Put();
        Assert.Equal(0UL, heap.Area.Used);
    }

    [Fact]
    public void Descriptors_and_references_keep_a_buffer_until_the_last_one_goes()
    {
        using var m = Machine.Boot("rv1106");
        var heap = m.DmaHeaps["system"];
        int fd = heap.Allocate(8192);
        Assert.True(fd >= 3);
        var b = m.DmaBufFds.Get(fd);                                      // dma_buf_get: 2 references
        int fd2 = m.DmaBufFds.Dup(fd);                                    // 3
        Assert.Equal(3, b.RefCount);
        Assert.Contains($"\t00000003\tsystem\t{b.Ino:D8}\t\n", m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo"));
        m.DmaBufFds.Close(fd);
        b.Put();
        Assert.False(b.Released);
        m.DmaBufFds.Close(fd2);
        Assert.True(b.Released);
        Assert.DoesNotContain(m.DmaBufs, x => x == b);
        Assert.EndsWith("\nTotal 0 objects, 0 bytes\n", m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo"));
        Assert.Equal(-9, Assert.Throws<DmaBufException>(() => m.DmaBufFds.Close(fd)).Errno);
        Assert.Equal(-9, Assert.Throws<DmaBufException>(() => m.DmaBufFds.Get(99)).Errno);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.Put()).Errno);   // put after release
        Assert.Throws<DmaBufException>(() => b.Get());
        Assert.Throws<DmaBufException>(() => b.Attach(m.Devices["ffa50000.rkvenc"]));
        Assert.Contains("dma_buf_put: the dma-buf", m.Dmesg());
    }

    [Fact]
    public void Bad_heap_arguments_are_the_kernels_einval()
    {
        using var m = Machine.Boot("rv1106");
        var heap = m.DmaHeaps["system"];
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => heap.Allocate(0)).Errno);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => heap.Allocate(4096, fdFlags: 0x800)).Errno);   // O_NONBLOCK
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => heap.Allocate(4096, heapFlags: 1)).Errno);
        Assert.Equal(-12, heap.Allocate(1L << 40));                       // more than the board has: -ENOMEM
        Assert.Empty(m.DmaBufs);
        Assert.Contains("dma_heap: system: length 0: -EINVAL", m.Dmesg());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Attachments_vmap_and_cpu_access_are_checked()
    {
        using var m = Machine.Boot("rv1106", "dma_debug=on");
        var b = m.DmaHeaps["system"].AllocateBuffer(192 * 1024)!;      // 64 KiB blocks: not contiguous
        var venc = m.Devices["ffa50000.rkvenc"];
        var a = b.Attach(venc);
        Assert.Equal(-16, Assert.Throws<DmaBufException>(() => b.SetName("later")).Errno);   // 5.10: not while attached
        var t = b.MapAttachment(a, DmaDirection.FromDevice);
        Assert.Equal(3, t.Nents);                                        // direct device: one segment per block
        Assert.Equal(-16, Assert.Throws<DmaBufException>(() => b.MapAttachment(a, DmaDirection.FromDevice)).Errno);
        Assert.Equal(-16, Assert.Throws<DmaBufException>(() => b.Detach(a)).Errno);
        b.BeginCpuAccess(DmaDirection.FromDevice);                       // syncs the mapped attachment for the CPU
        b.Span[100] = 1;
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.EndCpuAccess(DmaDirection.ToDevice)).Errno);
        b.EndCpuAccess(DmaDirection.FromDevice);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.EndCpuAccess(DmaDirection.FromDevice)).Errno);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.UnmapAttachment(a, t, DmaDirection.ToDevice)).Errno);
        b.UnmapAttachment(a, t, DmaDirection.FromDevice);
        b.Detach(a);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.Detach(a)).Errno);
        nint v1 = b.Vmap(), v2 = b.Vmap();
        Assert.Equal(v1, v2);
        Assert.True(m.IsVmallocAddr(v1));
        Assert.Equal(1, System.Runtime.InteropServices.Marshal.ReadByte(v1 + 100));
        b.Vunmap(v1);
        b.Vunmap(v2);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.Vunmap(v1)).Errno);
        b.SetName("frame-0");
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => b.SetName(new string('x', 33))).Errno);
        Assert.Contains("\tframe-0\n", m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo"));
        b.Put();
        Assert.Equal(0, m.DmaDebugErrorCount);
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        TestSupport.AssertConsistent(m);
    }

    // ------------------------------------------------------------------ RK-DMA-HEAP

    private static readonly Regex s_alloc = new(@"Alloc by \((.*?)\s*\)\s*\[0x([0-9a-f]+)-0x([0-9a-f]+)\]\s*0x([0-9a-f]+)");

    /// <summary>The dump's buffers: (ino or -1 for a page run, name, start, size, attached devices), lowest address first.</summary>
    internal static List<(long Ino, string Name, ulong Start, ulong Size, List<string> Devices)> DumpEntries()
    {
        var lines = TestSupport.Fixture("rk_dma_heap_info_rv1106.txt").Split('\n');
        var list = new List<(long, string, ulong, ulong, List<string>)>();
        for (int i = 0; i < lines.Length; i++)
        {
            var mm = s_alloc.Match(lines[i]);
            if (!mm.Success) continue;
            long ino = -1;
            var devs = new List<string>();
            if (i > 0 && lines[i - 1].Contains("i_ino = "))
            {
                ino = long.Parse(lines[i - 1].Split("i_ino = ")[1], CultureInfo.InvariantCulture);
                for (int k = i + 2; k < lines.Length && !lines[k].StartsWith("Total"); k++) devs.Add(lines[k].Trim());
            }
            list.Add((ino, mm.Groups[1].Value, ulong.Parse(mm.Groups[2].Value, NumberStyles.HexNumber), ulong.Parse(mm.Groups[4].Value, NumberStyles.HexNumber), devs));
        }
        return [.. list.OrderBy(e => e.Item3)];
    }

    [Fact]
    public void The_rv1106_dump_is_printed_byte_for_byte_after_replaying_its_allocations()
    {
        using var m = Machine.Boot("rv1106");
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"];
        var entries = DumpEntries();
        Assert.Equal(44, entries.Count);
        var keep = new List<DmaBuf>();
        foreach (var (ino, name, start, size, devs) in entries)
        {
            if (ino < 0)
            {
                Assert.Equal(start, m.PageToPhys(rk.AllocContigPages((long)size, name)));
                continue;
            }
            m.Sysctl.Kmem.DmaBufNextIno = (ulong)ino;
            var b = rk.BufferAlloc((long)size, name)!;
            Assert.Equal(start, m.PageToPhys(b.PageBlocks[0].Page));
            foreach (var d in devs) b.Attach(m.Devices[d]);
            keep.Add(b);
        }
        string info = m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info");
        Assert.Equal(info, m.ProcFs.Read("/proc/rk_dma_heap/dma_heap_info"));
        // PART A of the dump (dma-bufs, newest first) is our dma-buf section, byte for byte.
        string ours = info[..info.IndexOf("dma-heap:<rk-dma-heap-cma> -non dmabuf", StringComparison.Ordinal)];
        Assert.Equal(RkDumpFixture.PartA(), ours);
        // PART B (the page runs) in allocation order, each line byte for byte, then the total over everything
        // (0x02800000-0x03e33fff).
        var partB = RkDumpFixture.PartBLines().OrderBy(l => l[l.IndexOf('[')..], StringComparer.Ordinal);
        var oursB = info[ours.Length..].Split('\n').Where(l => l.Contains("Alloc by", StringComparison.Ordinal));
        Assert.Equal(partB, oursB);
        Assert.EndsWith($"\nTotal : 0x{0x03e34000 - 0x02800000:x} ({(0x03e34000 - 0x02800000) >> 10} KiB)\n", info);
        // Exact bytes of one record (tabs and padding as rk_dma_heap_proc_show prints them).
        Assert.Contains("dma-heap:<rk-dma-heap-cma> -dmabuf\ti_ino = 5655\n\tAlloc by (vmpi                )\t[0x03e02000-0x03e1afff]\t0x00019000 (100 KiB)\n\t\tAttached Devices:\n\t\tffa50000.rkvenc\nTotal 1 devices attached\n\n", info);
        Assert.StartsWith("Total: 32768 KiB\n Used: 22736 KiB\n\n", m.ProcFs.Read("/proc/rk_dma_heap/alloc_bitmap"));
        foreach (var b in keep) rk.BufferFree(b);
        foreach (var (ino, name, start, size, _) in entries.Where(e => e.Ino < 0))
            rk.FreeContigPages(m.PfnToPage(start >> 12), (long)size, name);
        Assert.Equal(0, rk.TotalSize);
        Assert.Equal(0UL, m.Cma["rk-dma-heap-cma"].Used);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Rk_heap_names_come_from_the_caller_or_the_thread_and_misuse_is_refused()
    {
        using var m = Machine.Boot("rv1106");
        var rk = m.RkDmaHeapFind("rk-dma-heap-cma")!;
        Assert.Null(m.RkDmaHeapFind("nope"));
        DmaBuf? b = null;
        var t = new Thread(() => b = rk.BufferAlloc(4096)) { Name = "rockit-venc-worker-7" };
        t.Start();
        t.Join();
        Assert.Equal("rockit-venc-wor", b!.Name);                        // current->comm: 15 characters
        var named = rk.BufferAlloc(4096, "a-very-long-device-name.rkisp")!;
        Assert.Equal("a-very-long-devi", named.Name);                    // cut to 16
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => rk.BufferAlloc(0)).Errno);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => rk.BufferAlloc(4096, heapFlags: 2)).Errno);
        var p = rk.AllocContigPages(10_000, "isp");
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => rk.FreeContigPages(p, 10_000)).Errno);   // the aligned length is 12288
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => rk.FreeContigPages(m.PfnToPage(p.Pfn + 1), 12288)).Errno);
        rk.FreeContigPages(p, 12288);
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => rk.FreeContigPages(p, 12288)).Errno);    // twice
        var sys = m.DmaHeaps["system"].AllocateBuffer(4096)!;
        Assert.Equal(-22, Assert.Throws<DmaBufException>(() => rk.BufferFree(sys)).Errno);
        Assert.True(rk.BufferAlloc(64L << 20) is null);                  // beyond the 32 MiB area
        int fd = rk.BufferFdAlloc(8192, "fd-user");
        Assert.Equal("fd-user", m.DmaBufFds.Peek(fd).Name);
        m.DmaBufFds.Close(fd);
        rk.BufferFree(b);
        rk.BufferFree(named);
        sys.Put();
        Assert.Equal(0, rk.TotalSize);
        var dev = m.Devices["ff660000.npu"];
        rk.SetDev(dev);
        Assert.Equal(64, dev.DmaMaskBits);
        Assert.Throws<DmaBufException>(() => rk.SetDev(null!));
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(10)));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Several_threads_hand_buffers_round_a_ring_while_the_worker_runs()
    {
        using var m = Machine.Boot("rk3588");
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        const int n = 3;
        // Each thread allocates, fills, attaches and maps a buffer, then hands it to the next thread of the ring, which
        // checks its bytes, unmaps, detaches and drops it (by Put or by closing a descriptor): every buffer ends on
        // another thread than the one that made it, while the deferred-free worker frees the pages behind them.
        var inbox = Enumerable.Range(0, n).Select(_ => new System.Collections.Concurrent.ConcurrentQueue<(DmaBuf Buf, DmaBufAttachment A, SgTable T, byte Tag)>()).ToArray();
        long handed = 0;
        int running = n;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var threads = Enumerable.Range(0, n).Select(me => new Thread(() =>
        {
            var rnd = new Random(me);
            var heap = m.DmaHeaps[me == 2 ? "system-uncached" : "system"];
            var dev = m.Devices["fdb50000.vepu"];
            try
            {
                void Take((DmaBuf Buf, DmaBufAttachment A, SgTable T, byte Tag) got)
                {
                    if (got.Buf.Span.IndexOfAnyExcept(got.Tag) >= 0) errors.Enqueue("bytes changed while the buffer changed hands");
                    got.Buf.UnmapAttachment(got.A, got.T, DmaDirection.Bidirectional);
                    got.Buf.Detach(got.A);
                    if (rnd.Next(2) == 0) { int fd = m.DmaBufFds.Install(got.Buf); m.DmaBufFds.Close(fd); }
                    else got.Buf.Put();
                    Interlocked.Increment(ref handed);
                }
                for (int made = 0; made < 10_000 && clock.ElapsedMilliseconds < 2_000;)
                {
                    for (int k = 0; k < 2 && inbox[me].TryDequeue(out var got); k++) Take(got);
                    var next = inbox[(me + 1) % n];
                    if (next.Count > 16)                                          // the next thread is behind
                    {
                        if (Volatile.Read(ref running) < n) break;
                        Thread.Yield();
                        continue;
                    }
                    made++;
                    var b = heap.AllocateBuffer(rnd.Next(1, 1 << 20));
                    if (b is null) { errors.Enqueue("allocation failed"); continue; }
                    if (b.Span.IndexOfAnyExcept((byte)0) >= 0) errors.Enqueue("a new buffer was not zero");
                    byte tag = (byte)rnd.Next(1, 256);
                    b.Span.Fill(tag);
                    var a = b.Attach(dev);
                    next.Enqueue((b, a, b.MapAttachment(a, DmaDirection.Bidirectional), tag));
                }
                Interlocked.Decrement(ref running);
                // Keep taking what the previous thread hands over until every thread has stopped.
                while (Volatile.Read(ref running) > 0 || !inbox[me].IsEmpty)
                {
                    if (inbox[me].TryDequeue(out var got)) Take(got);
                    else Thread.Yield();
                }
            }
            catch (Exception e) { errors.Enqueue(e.Message); Interlocked.Exchange(ref running, 0); }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        foreach (var q in inbox)
            while (q.TryDequeue(out var x)) { x.Buf.UnmapAttachment(x.A, x.T, DmaDirection.Bidirectional); x.Buf.Detach(x.A); x.Buf.Put(); }
        Assert.Empty(errors);
        Assert.True(handed >= 300, $"only {handed} buffers changed hands");
        Assert.True(m.DmaBufWaitDeferredFree(TimeSpan.FromSeconds(30)));
        Assert.Empty(m.DmaBufs);
        TestSupport.AssertConsistent(m);
    }
}

public class RkDmaHeapImportTests
{
    [Fact]
    public void A_dump_imported_on_a_fresh_board_prints_the_same_bytes()
    {
        string dump;
        using (var m = Machine.Boot("rv1106"))
        {
            var r = new WorkloadRunner(m).Run(Kmem.Cli.Commands.LoadWorkload("camera-pipeline"));
            Assert.True(r.Ok);
            dump = m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info");
        }
        var entries = RkDmaHeapImport.Parse(dump);
        Assert.Equal(44, entries.Count);
        Assert.Equal(32, entries.Count(e => e.IsDmaBuf));
        using var fresh = Machine.Boot("rv1106");
        var res = RkDmaHeapImport.Replay(fresh, entries);
        Assert.Equal((32, 12, 0x1634000UL), (res.DmaBufs, res.PageRuns, res.Bytes));
        Assert.Equal(dump, fresh.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
        TestSupport.AssertConsistent(fresh);
    }

    [Fact]
    public void The_documents_condensed_dump_parses_and_replays()
    {
        var fixture = TestSupport.Fixture("rk_dma_heap_info_rv1106.txt").Split('\n');
        string partA = string.Join("\n", fixture.TakeWhile(l => !l.StartsWith("## PART B")));
        var entries = RkDmaHeapImport.Parse(partA);
        Assert.Equal(32, entries.Count);
        var big = entries.Single(e => e.Ino == 5610);
        Assert.Equal(new[] { "ffa00000.rkisp", "ffa50000.rkvenc", "ffa00000.rkisp", "ffa00000.rkisp", "ffa00000.rkisp" }, big.Devices);
        Assert.Equal(0x95000UL, big.Size);
        using var m = Machine.Boot("rv1106");
        RkDmaHeapImport.Replay(m, entries);                               // the ISP's page runs are not in PART A: holes stay free
        var rk = m.RkDmaHeaps["rk-dma-heap-cma"];
        Assert.Equal(32, rk.DmaBufEntries.Count);
        Assert.Equal(entries.Select(e => e.Start).Order(), rk.DmaBufEntries.Select(e => e.Start).Order());
        Assert.Contains("dma-heap:<rk-dma-heap-cma> -dmabuf\ti_ino = 5610\n", m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
    }

    [Theory]
    [InlineData("dma-heap:<rk-dma-heap-cma> -dmabuf i_ino = 1\nAlloc by (x ) [0x02800000-0x02800fff] 0x00002000 (8 KiB)\n", 2, "does not match the range")]
    [InlineData("dma-heap:<rk-dma-heap-cma> -non dmabuf\nAlloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\nAlloc by (x ) [0x02801000-0x02801fff] 0x00001000 (4 KiB)\n", 3, "without its dma-heap")]
    [InlineData("dma-heap:<rk-dma-heap-cma> -dmabuf i_ino = 1\nAlloc by (x ) [0x02800000-0x02800fff] 0x00001000 (4 KiB)\nAttached Devices:\nffa50000.rkvenc\nTotal 2 devices attached\n", 5, "2 devices announced, 1 listed")]
    [InlineData("hello\n", 1, "unexpected line 'hello'")]
    [InlineData("dma-heap:<rk-dma-heap-cma> -non dmabuf\nAlloc by (x ) [0x02800100-0x02800fff] 0x00000f00 (3 KiB)\n", 2, "not page aligned")]
    public void Malformed_dumps_name_the_line(string text, int line, string problem)
    {
        var ex = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(text));
        Assert.Equal(line, ex.Line);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void A_replay_that_cannot_be_done_leaves_nothing_behind()
    {
        using var m = Machine.Boot("rv1106");
        string State() => m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info") + m.Cma["rk-dma-heap-cma"].Used;
        string before = State();
        var overlap = RkDmaHeapImport.Parse("""
            dma-heap:<rk-dma-heap-cma> -non dmabuf
            Alloc by (a ) [0x02800000-0x02801fff] 0x00002000 (8 KiB)
            dma-heap:<rk-dma-heap-cma> -non dmabuf
            Alloc by (b ) [0x02801000-0x02801fff] 0x00001000 (4 KiB)
            """);
        Assert.Contains("overlaps", Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Replay(m, overlap)).Message);
        var device = RkDmaHeapImport.Parse("dma-heap:<rk-dma-heap-cma> -dmabuf\ti_ino = 9\nAlloc by (x ) [0x02804000-0x02804fff] 0x00001000 (4 KiB)\nAttached Devices:\nnope.dev\nTotal 1 devices attached\n");
        Assert.Contains("no device 'nope.dev'", Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Replay(m, device)).Message);
        var outside = RkDmaHeapImport.Parse("dma-heap:<rk-dma-heap-cma> -non dmabuf\nAlloc by (x ) [0x05000000-0x05000fff] 0x00001000 (4 KiB)\n");
        Assert.Contains("outside rk-dma-heap-cma", Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Replay(m, outside)).Message);
        Assert.Equal(before, State());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_command_imports_a_dump_and_answers_a_what_if()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"kmem-import-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string dump = Path.Combine(dir, "info.txt"), more = Path.Combine(dir, "more.json");
            var o = new StringWriter();
            Assert.Equal(0, Kmem.Cli.KmemCli.Run(["cat", "/proc/rk_dma_heap/rk-dma-heap-info", "--workload", "camera-pipeline"], o, new StringWriter()));
            File.WriteAllText(dump, o.ToString());
            File.WriteAllText(more, """{ "steps": [ { "op": "rk_dma_heap_alloc", "label": "nv12", "size": 3110400, "name": "whatif", "expect": "success" } ] }""");
            var o2 = new StringWriter();
            var e2 = new StringWriter();
            Assert.Equal(0, Kmem.Cli.KmemCli.Run(["import", "rk-dma-heap-info", dump], o2, e2));
            Assert.Equal(o.ToString(), o2.ToString().Split("rk-dma-heap-cma: 22736 KiB used")[0]);
            Assert.Contains("imported 32 dma-bufs and 12 page runs (22736 KiB)", e2.ToString());
            var o3 = new StringWriter();
            Assert.Equal(0, Kmem.Cli.KmemCli.Run(["run", more, "--after", dump], o3, new StringWriter()));
            Assert.Contains("new in rk-dma-heap-cma: whatif [0x03e34000-0x0412bfff] 3040 KiB", o3.ToString());
            Assert.Contains("largest free run 6992 KiB", o3.ToString());
            File.WriteAllText(dump, "garbage\n");
            var e4 = new StringWriter();
            Assert.Equal(2, Kmem.Cli.KmemCli.Run(["import", "rk-dma-heap-info", dump], new StringWriter(), e4));
            Assert.Contains($"{dump}:1: unexpected line 'garbage'", e4.ToString());
            Assert.Equal(2, Kmem.Cli.KmemCli.Run(["import", "bufinfo", dump], new StringWriter(), new StringWriter()));
        }
        finally { Directory.Delete(dir, true); }
    }
}
