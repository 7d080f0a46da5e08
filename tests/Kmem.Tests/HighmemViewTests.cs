// What a user can read about high memory: arm's "Virtual kernel memory layout:" block (up to 5.0) with its pkmap line,
// Kmem's /sys/kernel/debug/kmem/pkmap (only on machines with HighMem), and the kmem.kmap.* metrics.
using System.Diagnostics.Metrics;

namespace Kmem.Tests;

public class HighmemViewTests
{
    private static string[] LayoutBlock(Machine m)
    {
        var lines = TestSupport.LogText(m).Split('\n');
        int at = Array.IndexOf(lines, "Virtual kernel memory layout:");
        return at < 0 ? [] : lines[at..(at + 11)];
    }

    private static Dictionary<string, long> Pkmap(Machine m) =>
        m.ProcFs.Read("/sys/kernel/debug/kmem/pkmap").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .ToDictionary(f => f[0], f => long.Parse(f[1]));

    [Fact]
    public void Rv1126_prints_the_layout_of_a_published_rv1126_boot_after_the_memory_line()
    {
        using var m = Machine.Boot("rv1126");
        // The lines of a published RV1126 4.19 boot (1 GiB: the same split, so the same layout).
        Assert.Equal([
            "Virtual kernel memory layout:",
            "    vector  : 0xffff0000 - 0xffff1000   (   4 kB)",
            "    fixmap  : 0xffc00000 - 0xfff00000   (3072 kB)",
            "    vmalloc : 0xf0800000 - 0xff800000   ( 240 MB)",
            "    lowmem  : 0xb0000000 - 0xf0000000   (1024 MB)",
            "    pkmap   : 0xafe00000 - 0xb0000000   (   2 MB)",
            "    modules : 0xaf000000 - 0xafe00000   (  14 MB)",
            "      .text : 0x(ptrval) - 0x(ptrval)   (9184 kB)",
            "      .init : 0x(ptrval) - 0x(ptrval)   (1024 kB)",
            "      .data : 0x(ptrval) - 0x(ptrval)   ( 332 kB)",
            "       .bss : 0x(ptrval) - 0x(ptrval)   ( 896 kB)",
        ], LayoutBlock(m));
        var lines = TestSupport.LogText(m).Split('\n');
        int memory = Array.FindIndex(lines, l => l.StartsWith("Memory: ", StringComparison.Ordinal));
        Assert.Equal("Virtual kernel memory layout:", lines[memory + 1]);   // mem_init() prints it after mem_init_print_info()
        Assert.Equal(LogLevel.Notice, m.Log.Snapshot().Single(r => r.Text == "Virtual kernel memory layout:").Level);
    }

    [Fact]
    public void The_layout_follows_the_release_and_the_config()
    {
        // 5.1 stopped printing it ("ARM: 8820/1: mm: Stop printing the virtual memory layout").
        using (var m = Machine.Boot(TestSupport.AtRelease("rv1126", "5.1")))
            Assert.Empty(LayoutBlock(m));
        using (var m = Machine.Boot(TestSupport.AtRelease("rv1126", "5.0")))
            Assert.NotEmpty(LayoutBlock(m));
        // Without HIGHMEM: no pkmap line, the modules area reaches PAGE_OFFSET, and the default 3G/1G split.
        using (var m = Machine.Boot(TestSupport.AtRelease("arm", "4.19", ("HIGHMEM", false))))
        {
            var b = LayoutBlock(m);
            Assert.DoesNotContain(b, l => l.Contains("pkmap"));
            Assert.Contains("    modules : 0xbf000000 - 0xc0000000   (  16 MB)", b);
            Assert.Contains("    lowmem  : 0xc0000000 - 0xd0000000   ( 256 MB)", b);
            Assert.Contains("    vmalloc : 0xd0800000 - 0xff800000   ( 752 MB)", b);
        }
        // Before 4.15 %p printed the pointer itself; before 3.19 the fixmap was 0xfff00000-0xfffe0000.
        using (var m = Machine.Boot(TestSupport.AtRelease("rv1126", "4.14")))
            Assert.Contains("      .text : 0xb0008000 - 0xb0900000   (9184 kB)", LayoutBlock(m));
        using (var m = Machine.Boot(TestSupport.AtRelease("rv1126", "3.18")))
            Assert.Contains("    fixmap  : 0xfff00000 - 0xfffe0000   ( 896 kB)", LayoutBlock(m));
        // The Rockchip 5.10 board prints none.
        using (var m = Machine.Boot("rv1106"))
            Assert.Empty(LayoutBlock(m));
    }

    [Fact]
    public void The_pkmap_file_exists_only_with_highmem()
    {
        using (var m = Machine.Boot("rv1106"))
            Assert.False(m.ProcFs.Exists("/sys/kernel/debug/kmem/pkmap"));
        using (var m = Machine.Boot("rv1126"))
        {
            var s = Pkmap(m);
            Assert.Equal(512, s["slots"]);
            Assert.Equal(512, s["free"]);
            Assert.Equal(0, s["kmap_local"]);          // 4.19: kmap_atomic only
            Assert.Equal(16, s["stack_depth_max"]);    // arm's KM_TYPE_NR
        }
        using (var m = Machine.Boot(TestSupport.AtRelease("rv1126", "5.15")))
            Assert.Equal(1, Pkmap(m)["kmap_local"]);
    }

    [Fact]
    public void The_pkmap_file_follows_kmap_kunmap_and_the_flush()
    {
        using var m = Machine.Boot("rv1126");
        var pages = Enumerable.Range(0, 520).Select(_ => m.AllocPages(Gfp.HighUser, 0)).ToArray();
        Assert.All(pages, p => Assert.True(m.PageHighMem(p)));
        m.Kmap(pages[0]);
        m.Kmap(pages[0]);
        m.Kmap(pages[1]);
        var s = Pkmap(m);
        Assert.Equal((2L, 3L, 510L, 3L, 2L, 1L), (s["in_use"], s["users"], s["free"], s["maps"], s["new_mappings"], s["hits"]));
        m.Kunmap(pages[0]);
        m.Kunmap(pages[0]);
        m.Kunmap(pages[1]);
        s = Pkmap(m);
        Assert.Equal((0L, 0L, 2L, 510L), (s["in_use"], s["users"], s["mapped_unused"], s["free"]));
        Assert.Equal(2, s["last_pkmap_nr"]);
        // Going round the pool flushes the unused slots once.
        for (int i = 2; i < 520; i++)
        {
            m.Kmap(pages[i]);
            m.Kunmap(pages[i]);
        }
        s = Pkmap(m);
        Assert.Equal(1, s["flushes"]);
        Assert.True(s["flushed_slots"] >= 2);
        Assert.Equal(0, s["sleeps"]);
        foreach (var p in pages) m.FreePage(p);
    }

    [Fact]
    public void The_pkmap_file_shows_the_atomic_stack_and_its_window()
    {
        using var m = Machine.Boot("rv1126");
        var page = m.AllocPages(Gfp.HighUser, 0);
        nint a = m.KmapAtomic(page);
        var inside = Pkmap(m);
        m.KunmapAtomic(a);
        a = m.KmapAtomic(page);                        // the window still shows the frame: a hit
        m.KunmapAtomic(a);
        var after = Pkmap(m);
        Assert.Equal((1L, 1L), (inside["stack_entries"], inside["atomic_depth"]));
        Assert.Equal((0L, 0L), (after["stack_entries"], after["atomic_depth"]));
        Assert.Equal((1L, 1L), (after["local_cold_maps"], after["local_hits"]));
        Assert.True(after["stack_threads"] >= 1);
        m.FreePage(page);
    }

    [Fact]
    public void The_kmap_figures_are_published_as_metrics_on_highmem_machines()
    {
        using var m = Machine.Boot("rv1126");
        using var plain = Machine.Boot("rv1106");
        var seen = new Dictionary<(int, string), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == "Kmem" && inst.Name.StartsWith("kmem.kmap.", StringComparison.Ordinal)) l.EnableMeasurementEvents(inst); };
        listener.SetMeasurementEventCallback<long>((inst, value, tags, _) =>
        {
            foreach (var t in tags)
                if (t.Key == "kmem.machine.id" && t.Value is int id) lock (seen) seen[(id, inst.Name)] = value;
        });
        listener.Start();
        var page = m.AllocPages(Gfp.HighUser, 0);
        var other = m.AllocPages(Gfp.HighUser, 0);
        m.Kmap(page);
        nint a = m.KmapAtomic(other);
        m.KunmapAtomic(a);
        listener.RecordObservableInstruments();
        Assert.Equal(1, seen[(m.Id, "kmem.kmap.pkmap_in_use")]);
        Assert.Equal(1, seen[(m.Id, "kmem.kmap.pkmap_maps")]);
        Assert.Equal(0, seen[(m.Id, "kmem.kmap.pkmap_flushes")]);
        Assert.Equal(0, seen[(m.Id, "kmem.kmap.pkmap_sleeps")]);
        Assert.Equal((0L, 1L), (seen[(m.Id, "kmem.kmap.local_hits")], seen[(m.Id, "kmem.kmap.local_cold")]));
        m.Kunmap(page);
        listener.RecordObservableInstruments();
        Assert.Equal((0L, 1L), (seen[(m.Id, "kmem.kmap.pkmap_in_use")], seen[(m.Id, "kmem.kmap.pkmap_unused")]));
        // A machine without HighMem publishes none of them.
        Assert.DoesNotContain(seen.Keys, k => k.Item1 == plain.Id);
        m.FreePage(page);
        m.FreePage(other);
    }
}
