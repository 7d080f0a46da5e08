// Booting: the boot log in the kernel's words, reservations, CMA pageblocks, disposal, and
// several machines side by side.
namespace Kmem.Tests;

public class BootTests
{
    [Fact]
    public void Rv1106_boot_log_has_the_memory_layout()
    {
        using var m = Machine.Boot("rv1106");
        string log = m.Dmesg();
        Assert.Matches(@"^\[\s+\d+\.\d{6}\] Booting Linux on physical CPU 0x0\n", log);
        Assert.Contains("] cma: Reserved 32768 KiB at 0x02800000\n", log);   // rk_dma_heap_cma=32M@0x2800000, CONFIG_CMA_INACTIVE
        Assert.Contains("] Zone ranges:\n", log);
        Assert.Contains("]   Normal   [mem 0x0000000000000000-0x000000000fffffff]\n", log);
        Assert.DoesNotContain("HighMem", log);                                  // rv1106_defconfig: no HIGHMEM
        Assert.Contains("]   node   0: [mem 0x0000000000000000-0x000000000fffffff]\n", log);
        Assert.Contains("]   Normal zone: 512 pages used for memmap\n", log);
        Assert.Contains("]   Normal zone: 65536 pages, LIFO batch:15\n", log);
        Assert.Contains("] Built 1 zonelists, mobility grouping on.  Total pages: 65024\n", log);
        Assert.Matches(@"\] Memory: \d+K/262144K available \(4000K kernel code, 301K rwdata, 1836K rodata, 164K init, 133K bss, \d+K reserved, 32768K cma-reserved\)\n", log);
    }

    [Fact]
    public void Memory_line_adds_up()
    {
        using var m = Machine.Boot("rv1106");
        var match = System.Text.RegularExpressions.Regex.Match(m.Dmesg(), @"Memory: (\d+)K/(\d+)K available .* (\d+)K reserved, (\d+)K cma-reserved");
        long avail = long.Parse(match.Groups[1].Value), phys = long.Parse(match.Groups[2].Value);
        long reserved = long.Parse(match.Groups[3].Value), cma = long.Parse(match.Groups[4].Value);
        Assert.Equal(phys, avail + reserved + cma);
    }

    [Fact]
    public void X86_64_prints_e820_and_three_zones()
    {
        using var m = Machine.Boot("x86_64");
        string log = m.Dmesg();
        Assert.Contains("BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable", log);
        Assert.Contains("  DMA      [mem 0x0000000000001000-0x0000000000ffffff]", log);
        Assert.Contains("  DMA32    [mem 0x0000000001000000-0x00000000ffffffff]", log);
        Assert.Contains("  Normal   [mem 0x0000000100000000-0x000000013fffffff]", log);
        Assert.DoesNotContain("cma: Reserved", log);
    }

    [Fact]
    public void Cma_pageblocks_are_marked_and_free()
    {
        using var m = Machine.Boot(TestSupport.GenericArm());   // CMA areas in the buddy allocator, 4 MiB pageblocks
        var normal = m.Zones.Single(z => z.Name == "Normal");
        var types = normal.PageblockTypes; // 1024-page blocks (MAX_ORDER 11): the CMA area at 0x02800000 is blocks 10..17
        for (int b = 0; b < types.Count; b++)
            if (b is >= 10 and < 18) Assert.Equal(MigrateType.Cma, types[b]);
            else Assert.Contains(types[b], new[] { MigrateType.Movable, MigrateType.Unmovable });
        // Only the boot's slab caches needed unmovable pages: one stolen block.
        Assert.Equal(1, types.Count(t => t == MigrateType.Unmovable));
        Assert.Equal(8192, normal.FreeCmaPages);
        Assert.Contains("CmaTotal:          32768 kB\n", m.ProcFs.Read("/proc/meminfo"));
        Assert.Contains("CmaFree:           32768 kB\n", m.ProcFs.Read("/proc/meminfo"));
    }

    [Fact]
    public void Reserved_pages_are_never_handed_out()
    {
        using var m = TestSupport.Small();
        // The image but for its init sections, which free_initmem() gave back at the end of boot.
        var (initStart, initEnd) = m.Layout.Early.Init;
        var kernelPfns = Enumerable.Range(0x60008, 0x180).Select(x => (ulong)x).Where(p => p < initStart >> 12 || p >= initEnd >> 12).ToHashSet();
        var got = new List<Page>();
        while (true)
        {
            var p = m.AllocPages(Gfp.Atomic | Gfp.NoWarn | Gfp.Memalloc, 0);
            if (p.IsNull) break;
            Assert.DoesNotContain(p.Pfn, kernelPfns);
            got.Add(p);
        }
        Assert.True(got.Count > 5000);
        foreach (var p in got) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Two_machines_are_independent()
    {
        using var a = Machine.Boot("rv1106");
        using var b = Machine.Boot("rv1106");
        var pa = a.AllocPages(Gfp.Kernel, 3);
        Assert.Equal(a.Zones[0].FreePages + 8, b.Zones[0].FreePages);
        var e = Assert.Throws<InvalidAddressException>(() => b.FreePages(pa, 3));
        Assert.Contains("another machine", e.Message);
        a.FreePages(pa, 3);
    }

    [Fact]
    public void Disposed_machine_refuses_calls()
    {
        var m = Machine.Boot("rv1106");
        var p = m.AllocPage(Gfp.Kernel);
        nint a = m.GetFreePages(Gfp.Kernel, 0);
        m.Dispose();
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.AllocPage(Gfp.Kernel));
        Assert.Throws<ObjectDisposedException>(() => m.FreePage(p));
        Assert.Throws<ObjectDisposedException>(() => m.FreePages(a, 0));
        Assert.Throws<ObjectDisposedException>(() => m.PageAddress(p));
        Assert.Throws<ObjectDisposedException>(() => m.GetFreePages(Gfp.Kernel, 0));
    }
}

/// <summary>Tests that read process-wide figures (the working set) and so must not run beside others.</summary>
[CollectionDefinition(nameof(ProcessWide), DisableParallelization = true)]
public sealed class ProcessWide;

[Collection(nameof(ProcessWide))]
public class LazyCommitTests
{
    [Fact]
    public void An_8_GiB_profile_costs_only_what_is_touched()
    {
        long before = Environment.WorkingSet;
        using var m = Machine.Boot("rk3588");
        long grown = Environment.WorkingSet - before;
        Assert.True(grown < 512L << 20, $"working set grew by {grown >> 20} MiB");
        Assert.True(m.IsFileBacked);
    }
}
