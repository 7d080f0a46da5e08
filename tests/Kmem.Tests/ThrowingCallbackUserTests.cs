// Callbacks that throw (issue 19, section 3), the rest: mempool alloc and free functions, DMA-BUF exporter
// callbacks (with a VB2 queue importing the buffer), workload steps and the progress callback, and log
// listeners. Each makes the callback throw and checks where the exception goes, the counters, every
// invariant, and that the object can still be used and destroyed.
using Kmem.Core;
using Kmem.DmaHeaps;

namespace Kmem.Tests;

public class ThrowingCallbackUserTests
{
    private sealed class CallbackFailure(string message) : Exception(message);

    // ================================================================== mempool functions

    /// <summary>kmalloc-backed functions that throw on request (after the given number of calls).</summary>
    private sealed class Functions(Machine m)
    {
        public int AllocCalls, FreeCalls;
        public int AllocThrowsAfter = int.MaxValue, FreeThrowsAfter = int.MaxValue;
        public bool FreeBeforeThrowing;

        public nint Alloc(Gfp gfp)
        {
            if (AllocCalls++ >= AllocThrowsAfter) throw new CallbackFailure("alloc function failed");
            return m.Kmalloc(128, gfp);
        }

        public void Free(nint p)
        {
            if (FreeCalls++ >= FreeThrowsAfter)
            {
                if (FreeBeforeThrowing) m.Kfree(p);
                throw new CallbackFailure("free function failed");
            }
            m.Kfree(p);
        }
    }

    private static long Kmalloc128(Machine m) => m.FindSlabCache("kmalloc-128")!.ObjectsInUse;

    [Fact]
    public void A_throwing_alloc_function_at_create_gives_back_what_was_filled()
    {
        using var m = TestSupport.Small();
        long before = Kmalloc128(m);
        var f = new Functions(m) { AllocThrowsAfter = 3 };
        var ex = Assert.Throws<CallbackFailure>(() => m.MempoolCreate(6, f.Alloc, f.Free, "fill"));
        Assert.Equal("alloc function failed", ex.Message);
        Assert.Equal(3, f.FreeCalls);                               // the three filled elements went back
        Assert.Equal(before, Kmalloc128(m));
        Assert.Contains("mempool_create fill: the alloc function threw CallbackFailure: alloc function failed; the pool was not created", m.Dmesg());
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_throwing_alloc_function_reaches_the_caller_of_alloc_with_the_reserve_untouched()
    {
        using var m = TestSupport.Small();
        long before = Kmalloc128(m);
        var f = new Functions(m);
        var pool = m.MempoolCreate(4, f.Alloc, f.Free, "alloc")!;
        nint first = pool.Alloc(Gfp.Kernel);
        f.AllocThrowsAfter = f.AllocCalls;
        Assert.Throws<CallbackFailure>(() => pool.Alloc(Gfp.Kernel));
        Assert.Throws<CallbackFailure>(() => pool.Alloc(Gfp.Atomic));
        Assert.Equal(4, pool.CurrNr);
        Assert.Equal(1, pool.Outstanding);
        f.AllocThrowsAfter = int.MaxValue;                          // usable again
        nint second = pool.Alloc(Gfp.Kernel);
        Assert.NotEqual(0, second);
        pool.Free(first);
        pool.Free(second);
        pool.Destroy();
        Assert.Equal(before, Kmalloc128(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_throwing_free_function_reaches_the_caller_of_free_and_the_element_counts_as_given_back()
    {
        using var m = TestSupport.Small();
        long before = Kmalloc128(m);
        var f = new Functions(m);
        var pool = m.MempoolCreate(2, f.Alloc, f.Free, "free")!;
        nint a = pool.Alloc(Gfp.Kernel), b = pool.Alloc(Gfp.Kernel);
        f.FreeThrowsAfter = 0;
        f.FreeBeforeThrowing = true;
        Assert.Throws<CallbackFailure>(() => pool.Free(a));       // the reserve is full: the element goes to the function
        Assert.Equal(1, pool.Outstanding);
        Assert.Equal(2, pool.CurrNr);
        f.FreeThrowsAfter = int.MaxValue;
        pool.Free(b);
        Assert.Equal(0, pool.Outstanding);
        pool.Destroy();
        Assert.Equal(before, Kmalloc128(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Resize_with_throwing_functions_takes_the_new_size_and_the_exception_reaches_the_caller()
    {
        using var m = TestSupport.Small();
        long before = Kmalloc128(m);
        var f = new Functions(m);
        var pool = m.MempoolCreate(6, f.Alloc, f.Free, "resize")!;

        f.FreeThrowsAfter = f.FreeCalls;                            // every free throws (after freeing)
        f.FreeBeforeThrowing = true;
        int frees = f.FreeCalls;
        Assert.Throws<CallbackFailure>(() => pool.Resize(2));
        Assert.Equal(4, f.FreeCalls - frees);                       // every surplus element was offered
        Assert.Equal(2, pool.MinNr);
        Assert.Equal(2, pool.CurrNr);
        Assert.Equal(4, System.Text.RegularExpressions.Regex.Matches(m.Dmesg(), "WARNING: mempool_resize resize: the free function threw CallbackFailure").Count);
        f.FreeThrowsAfter = int.MaxValue;

        f.AllocThrowsAfter = f.AllocCalls + 3;                      // the refill gets three, then the function throws
        Assert.Throws<CallbackFailure>(() => pool.Resize(8));
        Assert.Equal(8, pool.MinNr);
        Assert.Equal(5, pool.CurrNr);
        f.AllocThrowsAfter = int.MaxValue;
        nint e = pool.Alloc(Gfp.Kernel);                            // from the allocator: the reserve stays short
        Assert.Equal(5, pool.CurrNr);
        pool.Free(e);                                               // a free tops the short reserve up, as after a failed refill
        Assert.Equal(6, pool.CurrNr);
        pool.Destroy();
        Assert.Equal(before, Kmalloc128(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Destroy_with_a_throwing_free_function_reports_each_element_and_goes_on()
    {
        using var m = TestSupport.Small();
        long before = Kmalloc128(m);
        var f = new Functions(m);
        var pool = m.MempoolCreate(3, f.Alloc, f.Free, "destroy")!;
        f.FreeThrowsAfter = f.FreeCalls;
        f.FreeBeforeThrowing = true;
        pool.Destroy();                                             // mempool_destroy cannot fail
        Assert.Equal(3, f.FreeCalls);
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(m.Dmesg(), "WARNING: mempool_destroy destroy: the free function threw CallbackFailure").Count);
        Assert.Equal(0, pool.CurrNr);
        Assert.Throws<ObjectDisposedException>(() => pool.Alloc(Gfp.Kernel));
        pool.Destroy();                                             // a second destroy does nothing
        Assert.Equal(before, Kmalloc128(m));
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== DMA-BUF exporters

    /// <summary>An exporter of one order-2 block whose callbacks throw on request.</summary>
    private sealed class TestExporter(Machine m, Page block) : DmaBufExporter
    {
        public const int Order = 2;
        public string? ThrowIn;
        public int Releases;
        private void Maybe(string what)
        {
            if (ThrowIn == what) throw new CallbackFailure($"exporter {what} failed");
        }

        private int Frame => (int)(block.Pfn - m.Pages.BasePfn);
        public override string Name => "test-exporter";
        public override IReadOnlyList<(int Frame, int Order)> Blocks { get { Maybe("blocks"); return [(Frame, Order)]; } }
        public override nint ContiguousAddress() { Maybe("contiguous"); return 0; }   // always through a vmap
        public override SgTable TableForAttachment() { Maybe("attach"); return m.Kernel.DmaBufs.TableOfBlocks([(Frame, Order)]); }
        public override void Release(DmaBuf buf)
        {
            Releases++;
            Maybe("release");
            m.FreePages(block, Order);
        }
    }

    private static (DmaBuf Buf, TestExporter Exp, Page Block) Export(Machine m)
    {
        var block = m.AllocPages(Gfp.Kernel, TestExporter.Order);
        var exp = new TestExporter(m, block);
        return (m.Kernel.DmaBufs.Export(exp, 4096 << TestExporter.Order, DmaBufCore.ORdWr), exp, block);
    }

    private static string DmaBufState(Machine m, DmaBuf b) =>
        m.Kernel.DmaBufs.Bufinfo() + m.ProcFs.Read("/proc/vmallocinfo") +
        $"refs={b.RefCount} atts={b.Attachments.Count} cpu={b.InCpuAccess}";

    [Theory]
    [InlineData("attach")]
    [InlineData("blocks")]
    [InlineData("contiguous")]
    public void A_throwing_exporter_callback_leaves_the_dma_buf_as_it_was(string where)
    {
        using var m = Machine.Boot("rv1106");
        string buddy = TestSupport.Buddy(m);
        var dev = m.Devices["ffa50000.rkvenc"];
        var (b, exp, _) = Export(m);
        string before = DmaBufState(m, b);
        exp.ThrowIn = where;
        Action call = where switch
        {
            "attach" => () => b.Attach(dev),
            "blocks" => () => b.Vmap(),
            _ => () => _ = b.Span.Length,
        };
        Assert.Equal($"exporter {where} failed", Assert.Throws<CallbackFailure>(call).Message);
        Assert.Equal(before, DmaBufState(m, b));
        TestSupport.AssertConsistent(m);

        exp.ThrowIn = null;                                         // the same calls work afterwards
        var a = b.Attach(dev);
        var t = b.MapAttachment(a, DmaDirection.ToDevice);
        nint v = b.Vmap();
        b.Vunmap(v);
        b.UnmapAttachment(a, t, DmaDirection.ToDevice);
        b.Detach(a);
        b.Put();
        Assert.Equal(1, exp.Releases);
        Assert.Equal(buddy, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void An_exporter_whose_release_throws_is_warned_about_and_the_buffer_leaves_every_list()
    {
        using var m = Machine.Boot("rv1106");
        string buddy = TestSupport.Buddy(m);
        var (b, exp, block) = Export(m);
        var a = b.Attach(m.Devices["ffa50000.rkvenc"]);
        b.MapAttachment(a, DmaDirection.Bidirectional);            // left mapped: the release cleans it up
        int fd = m.DmaBufFds.Install(b);
        exp.ThrowIn = "release";
        m.DmaBufFds.Close(fd);                                      // no exception: a release cannot fail
        Assert.True(b.Released);
        Assert.Equal(1, exp.Releases);
        Assert.Empty(b.Attachments);
        Assert.DoesNotContain(b, m.Kernel.DmaBufs.Buffers());
        string log = TestSupport.LogText(m);
        Assert.Contains($"------------[ cut here ]------------\nWARNING: dma_buf_release: exporter test-exporter: release of ino {b.Ino} threw CallbackFailure: exporter release failed", log);
        Assert.Throws<DmaBufException>(() => b.Put());              // the buffer is gone for good
        m.FreePages(block, TestExporter.Order);                     // what the exporter failed to give back
        Assert.Equal(buddy, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_deferred_free_worker_survives_a_free_that_throws_and_frees_the_next()
    {
        var log = new KernelLog();
        using var df = new Kmem.DmaHeaps.DeferredFree("test", new KernelLife(), log);
        int freed = 0;
        df.Add(_ => Interlocked.Increment(ref freed), 2);           // freed last (the list is LIFO)
        df.Add(_ => throw new CallbackFailure("buffer release failed"), 4);
        Assert.True(df.WaitIdle(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, freed);
        Assert.Equal(0, df.Pages);
        Assert.Contains("WARNING: dmabuf-deferred-free-worker: freeing a buffer of 4 pages threw CallbackFailure: buffer release failed", log.Dmesg());
        df.Add(_ => Interlocked.Increment(ref freed), 1);           // the worker is still there
        Assert.True(df.WaitIdle(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, freed);
    }

    [Fact]
    public void A_vb2_queue_importing_from_a_throwing_exporter_gives_the_buffer_back_to_the_user()
    {
        using var m = Machine.Boot("rv1106");
        string buddy = TestSupport.Buddy(m);
        var q = m.Vb2QueueInit("cap", m.Devices["ffa00000.rkisp"], m.Vb2DmaContig, Vb2IoModes.Dmabuf, false, [4096 << TestExporter.Order]);
        int count = 2;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Dmabuf, ref count));
        var (b, exp, _) = Export(m);
        int fd = m.DmaBufFds.Install(b);
        exp.ThrowIn = "attach";
        Assert.Throws<CallbackFailure>(() => q.QBufDmabuf(0, fd));
        Assert.Equal(Vb2BufferState.Dequeued, q[0]!.State);        // not left "preparing"
        Assert.Null(q[0]!.Planes[0].Mem);
        Assert.Null(q[0]!.Planes[0].DmaBuf);
        Assert.Equal(0, q.QueuedCount);
        Assert.Equal(1, b.RefCount);                                // the reference the queue took went back
        Assert.Empty(b.Attachments);
        Assert.Contains("__prepare_dmabuf: failed to attach dmabuf: CallbackFailure", m.Dmesg());

        exp.ThrowIn = null;
        Assert.Equal(0, q.QBufDmabuf(0, fd));
        Assert.Equal(Vb2BufferState.Queued, q[0]!.State);
        Assert.Equal(2, b.RefCount);
        Assert.Equal(0, q.StreamOn());
        Assert.Equal(0, q.StreamOff());
        count = 0;
        Assert.Equal(0, q.ReqBufs(Vb2Memory.Dmabuf, ref count));
        m.DmaBufFds.Close(fd);
        Assert.True(b.Released);
        Assert.Equal(buddy, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== workload steps

    [Fact]
    public void A_step_that_throws_is_reported_naming_it_and_what_the_runner_holds_can_be_released()
    {
        using var m = TestSupport.Small();
        string buddy = TestSupport.Buddy(m);
        var wl = Workload.Parse("""
        { "name": "fails", "steps": [
          { "op": "kmem_cache_create", "name": "thing", "size": 300 },
          { "op": "alloc_pages", "label": "pages", "order": 1, "count": 3 },
          { "op": "repeat", "times": 2, "steps": [
            { "op": "kmem_cache_alloc", "label": "things", "cache": "thing", "count": 5 },
            { "op": "kmem_cache_destroy", "cache": "thing" } ] },
          { "op": "kmalloc", "label": "never", "size": 64 } ] }
        """);
        var runner = new WorkloadRunner(m);
        var ex = Assert.Throws<WorkloadStepException>(() => runner.Run(wl));
        Assert.Equal("steps[2].steps[1]", ex.Location);
        Assert.Equal("kmem_cache_destroy", ex.Op);
        Assert.IsType<SlabException>(ex.InnerException);
        Assert.StartsWith("workload: steps[2].steps[1] (kmem_cache_destroy) failed: ", ex.Message);
        Assert.Contains("workload: steps[2].steps[1] (kmem_cache_destroy) failed: SlabException", m.Dmesg());
        Assert.Equal(6, runner.PagesHeld["pages"]);                 // three order-1 blocks
        TestSupport.AssertConsistent(m);

        runner.ReleaseAll();                                        // everything the run took is still tracked
        var cache = m.FindSlabCache("thing")!;
        Assert.Equal(0, cache.ObjectsInUse);
        cache.Destroy();
        Assert.Equal(buddy, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Kmem_run_names_the_step_that_failed_and_exits_1()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-wl-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """
        { "steps": [
          { "op": "kmem_cache_create", "name": "thing", "size": 300 },
          { "op": "kmem_cache_alloc", "label": "things", "cache": "thing", "count": 2 },
          { "op": "kmem_cache_destroy", "cache": "thing" } ] }
        """);
        try
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            Assert.Equal(1, Kmem.Cli.KmemCli.Run(["run", path], stdout, stderr));
            Assert.StartsWith("kmem: workload: steps[2] (kmem_cache_destroy) failed: ", stderr.ToString());
            Assert.DoesNotContain("internal error", stderr.ToString());
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void An_argument_the_library_refuses_while_a_step_runs_is_a_workload_error_naming_the_step()
    {
        using var m = TestSupport.Small();
        long before = m.Sysctl.Vm.MinFreeKbytes;
        var runner = new WorkloadRunner(m);
        var ex = Assert.Throws<WorkloadException>(() => runner.Run(Workload.Parse("""
        { "name": "bad", "steps": [ { "op": "min_free_kbytes", "value": 999999999 } ] }
        """)));                                                     // refused at validation or at run time: either names the step
        Assert.Contains("steps[0]", ex.Message);
        Assert.Equal(before, m.Sysctl.Vm.MinFreeKbytes);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_progress_callback_that_throws_reaches_the_caller_and_the_runner_can_clean_up()
    {
        using var m = TestSupport.Small();
        string buddy = TestSupport.Buddy(m);
        var wl = Workload.Parse("""
        { "name": "progress", "steps": [
          { "op": "alloc_pages", "label": "a", "order": 0, "count": 4, "fill": "0x5a" },
          { "op": "kmalloc", "label": "b", "size": 100, "count": 4 } ] }
        """);
        var runner = new WorkloadRunner(m) { Progress = (_, step, _) => { if (step == 1) throw new CallbackFailure("display gone"); } };
        Assert.Equal("display gone", Assert.Throws<CallbackFailure>(() => runner.Run(wl)).Message);
        Assert.Equal(4, runner.PagesHeld["a"]);
        Assert.False(runner.PagesHeld.ContainsKey("b"));           // the run stopped after the first step
        runner.ReleaseAll();
        Assert.Equal(buddy, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
        runner.Progress = null;
        Assert.True(runner.Run(wl).Ok);                             // the runner is usable again
        runner.ReleaseAll();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_trace_replay_whose_progress_callback_throws_keeps_what_it_replayed_for_release_all()
    {
        using var m = TestSupport.Small();
        m.ShrinkSlabs();
        string buddy = TestSupport.Buddy(m);
        long kmalloc128 = Kmalloc128(m);
        var trace = string.Join("\n", Enumerable.Range(0, 8).Select(i =>
            $"  cat-1234  [001] d..1  100.{i:D6}: kmalloc: call_site=foo+0x10/0x20 ptr=0xffff8881000{i:x2}000 bytes_req=100 bytes_alloc=128 gfp_flags=GFP_KERNEL node=-1 accounted=false"));
        var replayer = new TraceReplayer(m);
        var options = new TraceReplayOptions { Progress = _ => throw new CallbackFailure("progress bar gone") };
        Assert.Throws<CallbackFailure>(() => replayer.Replay(new StringReader(trace), options));
        Assert.Equal(kmalloc128 + 8, Kmalloc128(m));                // the replayed objects are live and tracked
        replayer.ReleaseAll();
        Assert.Equal(kmalloc128, Kmalloc128(m));
        m.ShrinkSlabs();                                            // the empty slabs the cache kept
        Assert.Equal(buddy, TestSupport.Buddy(m));
        TestSupport.AssertConsistent(m);
    }

    // ================================================================== log listeners

    [Fact]
    public void A_log_listener_that_throws_is_removed_and_the_call_that_logged_goes_on()
    {
        using var m = TestSupport.Small();
        var seen = new List<string>();
        void Throwing(LogRecord r) => throw new CallbackFailure("console went away");
        void Keeping(LogRecord r) { lock (seen) seen.Add(r.Text); }
        m.Log.Logged += Throwing;
        m.Log.Logged += Keeping;
        var held = new List<Page>();
        while (m.AllocPages(Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn, 0) is { IsNull: false } p) held.Add(p);
        Assert.True(m.AllocPages(Gfp.Kernel | Gfp.NoRetry, 4).IsNull); // warn_alloc's report: the allocation still just fails
        string log = TestSupport.LogText(m);
        Assert.Contains("page allocation failure: order:4", log);
        Assert.Contains("printk: a Logged handler (ThrowingCallbackUserTests.", log);
        Assert.Contains("threw CallbackFailure: console went away; it was removed", log);
        lock (seen) Assert.Contains(seen, t => t.Contains("page allocation failure: order:4"));  // the other listener got every line
        int count;
        lock (seen) count = seen.Count;
        m.Log.Info("still listening");
        lock (seen) Assert.Equal(count + 1, seen.Count);
        foreach (var p in held) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }
}
