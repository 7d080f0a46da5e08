// Issue 19, errors at the edges: bad output paths, dump numbers that overflow or repeat, cache and sysctl steps
// caught before anything runs, DMA mappings that wrap or leave their page, another machine's device, and user
// text printed through the console's markup.
using Kmem.Cli;

namespace Kmem.Tests;

public class EdgeErrorTests
{

    // ------------------------------------------------------------------ kmem map --out

    [Fact]
    public void Map_to_a_missing_directory_or_onto_a_directory_exits_2_naming_the_option()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"kmem-no-such-dir-{Guid.NewGuid():N}", "map.svg");
        var (code, _, err) = TestSupport.Cli("map", "--out", missing);
        Assert.Equal(2, code);
        Assert.Contains("map --out", err);
        Assert.Contains("does not exist", err);
        Assert.DoesNotContain("internal error", err);

        string dir = Directory.CreateTempSubdirectory("kmem-map-").FullName;
        try
        {
            (code, _, err) = TestSupport.Cli("map", "--out", dir);
            Assert.Equal(2, code);
            Assert.Contains("is a directory", err);
            string ok = Path.Combine(dir, "map.svg");
            (code, var o, err) = TestSupport.Cli("map", "--out", ok);
            Assert.True(code == 0, err);
            Assert.Contains("kmem: wrote", o);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ------------------------------------------------------------------ rk-dma-heap-info dumps

    private const string Dump = """
        dma-heap:<rk-dma-heap-cma> -dmabuf	i_ino = 5656
        	Alloc by (rkisp_mainpath)	[0x02800000-0x02b3ffff]	0x00340000 (3328 KiB)
        	Attached Devices:
        	ffa00000.rkisp
        Total 1 devices attached
        dma-heap:<rk-dma-heap-cma> -dmabuf	i_ino = 5657
        	Alloc by (rkisp_selfpath)	[0x02b40000-0x02b4ffff]	0x00010000 (64 KiB)
        Total 0 devices attached
        """;

    [Fact]
    public void Dump_inode_numbers_that_overflow_or_repeat_are_refused_naming_the_line()
    {
        Assert.Equal(2, RkDmaHeapImport.Parse(Dump).Count);
        var e = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(Dump.Replace("5657", "99999999999999999999999")));
        Assert.Equal(6, e.Line);
        Assert.Contains("inode number 99999999999999999999999 is too large", e.Message);
        e = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(Dump.Replace("5657", "5656")));
        Assert.Equal(6, e.Line);
        Assert.Contains("inode number 5656 is already the dma-buf of line 1", e.Message);
        e = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(Dump.Replace("0x02b4ffff", "0x1002b4ffff0000000")));
        Assert.Equal(7, e.Line);
        Assert.Contains("does not fit in 64 bits", e.Message);
        e = Assert.Throws<DumpFormatException>(() => RkDmaHeapImport.Parse(Dump.Replace("Total 1 devices", "Total 99999999999 devices")));
        Assert.Equal(5, e.Line);

        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, Dump.Replace("5657", "5656"));
            var (code, _, err) = TestSupport.Cli("import", "rk-dma-heap-info", file);
            Assert.Equal(2, code);
            Assert.Contains($"{file}:6: inode number 5656 is already the dma-buf of line 1", err);   // file:line
        }
        finally
        {
            File.Delete(file);
        }
    }

    // ------------------------------------------------------------------ workload steps caught before anything runs

    [Theory]
    [InlineData("""{ "op": "kmem_cache_create", "name": "c", "size": 64, "align": 24 }""", "steps[1].align", "24 is not a power of two")]
    [InlineData("""{ "op": "kmem_cache_create", "name": "c", "size": 64, "align": 8192 }""", "steps[1].align", "outside 0..4096")]
    [InlineData("""{ "op": "kmem_cache_create", "name": "c", "size": "64M" }""", "steps[1].size", "is not a slab object size")]
    [InlineData("""{ "op": "kmem_cache_create", "name": "c", "size": 0 }""", "steps[1].size", "is not a slab object size")]
    [InlineData("""{ "op": "kmem_cache_create", "name": "a b", "size": 64 }""", "steps[1].name", "may not contain")]
    [InlineData("""{ "op": "min_free_kbytes", "value": -1 }""", "steps[1].value", "outside 0..")]
    [InlineData("""{ "op": "min_free_kbytes", "value": 3000000000 }""", "steps[1].value", "outside 0..2147483647")]
    [InlineData("""{ "op": "repeat", "times": 2, "steps": [ { "op": "kmem_cache_create", "name": "c", "size": 64 } ] }""", "steps[1].steps[0].name", "made by steps[1].steps[0], not destroyed")]
    public void Bad_cache_and_sysctl_steps_are_refused_when_the_workload_is_read(string step, string location, string problem)
    {
        string json = $$"""{ "steps": [ { "op": "drain" }, {{step}} ] }""";
        var e = Assert.Throws<WorkloadException>(() => Workload.Parse(json));
        Assert.Equal(location, e.Location);
        Assert.Contains(problem, e.Problem);
    }

    [Fact]
    public void A_duplicate_cache_name_is_refused_unless_destroyed_in_between()
    {
        var e = Assert.Throws<WorkloadException>(() => Workload.Parse("""
            { "steps": [ { "op": "kmem_cache_create", "name": "frames", "size": 64 },
                         { "op": "kmem_cache_create", "name": "frames", "size": 128 } ] }
            """));
        Assert.Equal("steps[1].name", e.Location);
        Assert.Contains("'frames' already exists (made by steps[0]", e.Problem);
        var ok = Workload.Parse("""
            { "steps": [ { "op": "repeat", "times": 3, "steps": [
                           { "op": "kmem_cache_create", "name": "frames", "size": 64 },
                           { "op": "kmem_cache_destroy", "cache": "frames" } ] } ] }
            """);
        using var m = Machine.Boot("rv1106");
        var r = new WorkloadRunner(m).Run(ok);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(7, r.StepsRun);
    }

    [Fact]
    public void Steps_the_machine_cannot_take_are_refused_before_anything_runs()
    {
        using var m = Machine.Boot("rv1106");
        var runner = new WorkloadRunner(m);
        void Refused(string badStep, string location, string problem)
        {
            var wl = Workload.Parse($$"""{ "steps": [ { "op": "alloc_pages", "label": "x", "order": 3, "count": 5 }, {{badStep}} ] }""");
            long free = m.Zones.Sum(z => z.FreePages + z.PcpPages);
            int caches = m.SlabCaches.Count;
            long minFree = m.Sysctl.Vm.MinFreeKbytes;
            var e = Assert.Throws<WorkloadException>(() => runner.Run(wl));
            Assert.Equal(location, e.Location);
            Assert.Contains(problem, e.Problem);
            Assert.Equal(free, m.Zones.Sum(z => z.FreePages + z.PcpPages)); // the first step never ran
            Assert.Equal(caches, m.SlabCaches.Count);
            Assert.Equal(minFree, m.Sysctl.Vm.MinFreeKbytes);
            Assert.DoesNotContain(runner.PagesHeld, kv => kv.Value != 0);
        }
        // rv1106: MAX_ORDER 11, so KMALLOC_MAX_SIZE is 4 MiB; a quarter of its 256 MiB is 65536 KiB.
        Refused("""{ "op": "kmem_cache_create", "name": "big", "size": "8M" }""", "steps[1].size", "above KMALLOC_MAX_SIZE (1048576) of rv1106");
        Refused("""{ "op": "kmem_cache_create", "name": "kmalloc-64", "size": 64 }""", "steps[1].name", "made by the machine");
        Refused("""{ "op": "min_free_kbytes", "value": 100000 }""", "steps[1].value", "0..65536");
        TestSupport.AssertConsistent(m);

        // The CLI says which step, with exit code 2.
        string file = Path.Combine(Path.GetTempPath(), $"kmem-edge-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, """{ "steps": [ { "op": "min_free_kbytes", "value": 100000 } ] }""");
            var (code, _, err) = TestSupport.Cli("run", file);
            Assert.Equal(2, code);
            Assert.Contains("steps[0].value", err);
        }
        finally
        {
            File.Delete(file);
        }
    }

    // ------------------------------------------------------------------ markup

    [Fact]
    public void Labels_and_names_with_brackets_are_printed_as_text()
    {
        string file = Path.Combine(Path.GetTempPath(), $"kmem-edge-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, """
                { "name": "odd [name] [/]", "steps": [
                  { "op": "alloc_pages", "label": "buf[0] [bold]x[/]", "count": 2 },
                  { "op": "kmalloc", "label": "[red]", "size": 100 } ] }
                """);
            var (code, o, err) = TestSupport.Cli("run", file);
            Assert.True(code == 0, err);
            Assert.Contains("buf[0] [bold]x[/]", o);
            Assert.Contains("[red]", o);
            Assert.Contains("odd [name] [/]", o);
        }
        finally
        {
            File.Delete(file);
        }
    }

    // ------------------------------------------------------------------ DMA

    [Fact]
    public void A_streaming_mapping_that_wraps_or_leaves_its_page_is_refused_and_maps_nothing()
    {
        using var m = Machine.Boot("rv1106");
        var dev = m.Devices["ffa00000.rkisp"];
        nint buf = m.Kmalloc(256, Gfp.Kernel);
        string Mappings() => $"mappings {dev.MappingCount}";
        TestSupport.Rejected<DmaApiException>(m, () => m.DmaMapSingle(dev, buf, nuint.MaxValue - 16, DmaDirection.ToDevice),
            "device driver maps memory that wraps around the address space", Mappings);
        TestSupport.Rejected<DmaApiException>(m, () => m.DmaMapSingle(dev, buf, (nuint)(ulong.MaxValue - (ulong)buf + 2), DmaDirection.ToDevice),
            "wraps around the address space", Mappings);

        var one = m.AllocPages(Gfp.Kernel, 0);
        TestSupport.Rejected<DmaApiException>(m, () => m.DmaMapPage(dev, one, 4096, 16, DmaDirection.FromDevice),
            "device driver maps memory at offset 4096 outside the page it passes", Mappings);
        TestSupport.Rejected<DmaApiException>(m, () => m.DmaMapPage(dev, one, 100, nuint.MaxValue - 50, DmaDirection.FromDevice),
            "wraps around the address space", Mappings);
        // Inside an order-2 block the offset may pass the first page, and the size may span the block's pages.
        var four = m.AllocPages(Gfp.Kernel, 2);
        ulong d = m.DmaMapPage(dev, four, 6000, 8000, DmaDirection.FromDevice);
        Assert.Equal(m.PageToPhys(four) + 6000, d);
        TestSupport.Rejected<DmaApiException>(m, () => m.DmaMapPage(dev, four, 4 * 4096, 16, DmaDirection.FromDevice),
            "offset 16384 outside the page", Mappings);
        m.DmaUnmapPage(dev, d, 8000, DmaDirection.FromDevice);
        Assert.Equal(0, dev.MappingCount);
        m.FreePages(four, 2);
        m.FreePage(one);
        m.Kfree(buf);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_dma_buf_refuses_a_device_of_another_machine()
    {
        using var m1 = Machine.Boot("rv1106");
        using var m2 = Machine.Boot("rv1106");
        var heap = m1.RkDmaHeapFind("rk-dma-heap-cma")!;
        var b = heap.BufferAlloc(64 * 1024, "edge-test")!;
        var foreign = m2.Devices["ffa00000.rkisp"];
        int len = m1.Dmesg().Length;
        var e = Assert.Throws<DmaBufException>(() => b.Attach(foreign));
        Assert.Equal(-22, e.Errno);
        Assert.Contains("ffa00000.rkisp is a device of another machine", m1.Dmesg()[len..]);
        Assert.Empty(b.Attachments);
        Assert.Equal(0, foreign.MappingCount);
        var mine = b.Attach(m1.Devices["ffa00000.rkisp"]);           // its own machine's device of the same name is fine
        b.Detach(mine);
        heap.BufferFree(b);
        TestSupport.AssertConsistent(m1);
        TestSupport.AssertConsistent(m2);
    }
}
