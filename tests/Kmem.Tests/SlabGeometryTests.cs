// SLUB geometry against the kernel: the worked tables of calculate_order() for 1, 2, 4 and 8 CPUs,
// the debug layout example, a real 1-CPU RHEL 7 slabinfo, and the kmalloc caches each architecture has.
using System.Text.RegularExpressions;
using Kmem.Slab;

namespace Kmem.Tests;

public class SlabGeometryTests
{
    private static SlabArch X86(int cpus) => new(8, 64, 8, 152, cpus, 11);

    // objsize, then (objperslab, pagesperslab) for 1, 2, 4 and 8 CPUs (kernel-facts §2.3).
    public static TheoryData<int, int, int, int, int, int, int, int, int> KmallocTable => new()
    {
        { 8, 512, 1, 512, 1, 512, 1, 512, 1 },
        { 16, 256, 1, 256, 1, 256, 1, 256, 1 },
        { 32, 128, 1, 128, 1, 128, 1, 128, 1 },
        { 64, 64, 1, 64, 1, 64, 1, 64, 1 },
        { 96, 42, 1, 42, 1, 42, 1, 42, 1 },
        { 128, 32, 1, 32, 1, 32, 1, 32, 1 },
        { 192, 21, 1, 21, 1, 21, 1, 21, 1 },
        { 256, 16, 1, 16, 1, 16, 1, 32, 2 },
        { 512, 8, 1, 16, 2, 16, 2, 32, 4 },
        { 1024, 8, 2, 16, 4, 16, 4, 32, 8 },
        { 2048, 8, 4, 16, 8, 16, 8, 16, 8 },
        { 4096, 8, 8, 8, 8, 8, 8, 8, 8 },
        { 8192, 4, 8, 4, 8, 4, 8, 4, 8 },
    };

    [Theory]
    [MemberData(nameof(KmallocTable))]
    public void Kmalloc_geometry_matches_the_kernel_for_1_2_4_and_8_cpus(int size, int o1, int p1, int o2, int p2, int o4, int p4, int o8, int p8)
    {
        (int Cpus, int Objs, int Pages)[] expected = [(1, o1, p1), (2, o2, p2), (4, o4, p4), (8, o8, p8)];
        foreach (var (cpus, objs, pages) in expected)
        {
            int align = (size & (size - 1)) == 0 ? size : 8;
            var g = SlabGeometry.Compute(size, SlabGeometry.CalculateAlignment(0, align, size, X86(cpus)), 0, false, X86(cpus))!.Value;
            Assert.Equal(size, g.Size);
            Assert.Equal((objs, pages), (g.Objects, 1 << g.Order));
        }
    }

    [Fact]
    public void Sixteen_cpus_put_kmalloc_192_in_order_1()
    {
        var g = SlabGeometry.Compute(192, 8, 0, false, X86(16))!.Value;
        Assert.Equal((42, 1), (g.Objects, g.Order));
    }

    [Theory]
    [InlineData(64, 64, 72, 72, 64, 512, 16, 1)]
    [InlineData(96, 8, 104, 104, 8, 432, 18, 1)]
    [InlineData(8, 8, 16, 16, 8, 344, 23, 1)]
    public void Debug_layout_follows_calculate_sizes(int objsize, int align, int inuse, int offset, int redLeft, int size, int objects, int order)
    {
        var flags = SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser;
        var g = SlabGeometry.Compute(objsize, align, flags, false, X86(4))!.Value;
        Assert.Equal((inuse, offset, redLeft, size, objects, order), (g.Inuse, g.Offset, g.RedLeftPad, g.Size, g.Objects, g.Order));
        Assert.True(g.ObjectPoison);
        Assert.Equal(offset + 8, g.TrackOffset);
    }

    [Fact]
    public void Free_pointer_sits_mid_object_without_debug_and_after_it_with_a_ctor()
    {
        Assert.Equal(48, SlabGeometry.Compute(100, 8, 0, false, X86(2))!.Value.Offset);
        var withCtor = SlabGeometry.Compute(100, 8, 0, true, X86(2))!.Value;
        Assert.Equal((104, 112), (withCtor.Offset, withCtor.Size));
    }

    [Theory]
    [InlineData(20, 32)]   // halved from 64 while size <= ralign/2
    [InlineData(33, 64)]
    [InlineData(8, 8)]
    [InlineData(200, 64)]
    public void Hwcache_align_halves_the_line_for_small_objects(int size, int expected)
    {
        Assert.Equal(expected, SlabGeometry.CalculateAlignment(SlabFlags.HwcacheAlign, 0, size, X86(2)));
    }

    [Fact]
    public void Min_partial_and_cpu_partial_follow_the_kernel()
    {
        var g = SlabGeometry.Compute(64, 64, 0, false, X86(2))!.Value;
        Assert.Equal((5, 30), (g.MinPartial, g.CpuPartial));
        var big = SlabGeometry.Compute(4096, 4096, 0, false, X86(2))!.Value;
        Assert.Equal((6, 2), (big.MinPartial, big.CpuPartial));
        var debug = SlabGeometry.Compute(64, 64, SlabFlags.RedZone, false, X86(2))!.Value;
        Assert.Equal(0, debug.CpuPartial);
    }

    [Fact]
    public void Every_kmalloc_row_of_a_real_one_cpu_slabinfo_is_reproduced()
    {
        // RHEL 7 (3.10), 1 CPU: kmalloc-8 … kmalloc-8192 and dma-kmalloc-*: objsize / objperslab / pagesperslab.
        var rows = Regex.Matches(TestSupport.Fixture("slabinfo_rhel7_x86_64_1cpu_insights.txt"),
            @"^((?:dma-)?kmalloc-(\d+))\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+(\d+) :", RegexOptions.Multiline);
        Assert.Equal(26, rows.Count);
        var profile = MachineProfile.Embedded("x86_64") with { Cpus = 1 };
        using var m = Machine.Boot(profile);
        foreach (Match r in rows)
        {
            int size = int.Parse(r.Groups[2].Value);
            string ours = r.Groups[1].Value.Replace("-8192", "-8k").Replace("-4096", "-4k").Replace("-2048", "-2k").Replace("-1024", "-1k");
            var c = m.FindSlabCache(ours);
            Assert.True(c is not null, $"no cache {ours}");
            Assert.Equal((int.Parse(r.Groups[3].Value), int.Parse(r.Groups[4].Value), int.Parse(r.Groups[5].Value)),
                (c!.Size, c.ObjectsPerSlab, 1 << c.Order));
            Assert.Equal(size, c.ObjectSize);
        }
    }

    [Theory]
    [InlineData("x86_64", "kmalloc-8 kmalloc-16 kmalloc-32 kmalloc-64 kmalloc-96 kmalloc-128 kmalloc-192 kmalloc-256 kmalloc-512 kmalloc-1k kmalloc-2k kmalloc-4k kmalloc-8k", true)]
    [InlineData("rv1106", "kmalloc-64 kmalloc-128 kmalloc-192 kmalloc-256 kmalloc-512 kmalloc-1k kmalloc-2k kmalloc-4k kmalloc-8k", false)]
    [InlineData("rk3588", "kmalloc-128 kmalloc-256 kmalloc-512 kmalloc-1k kmalloc-2k kmalloc-4k kmalloc-8k", true)]
    public void Each_architecture_has_its_kmalloc_caches(string profile, string normal, bool dma)
    {
        using var m = Machine.Boot(profile);
        var names = m.SlabCaches.Select(c => c.Name).ToList();
        var expected = normal.Split(' ');
        Assert.Equal(expected.OrderBy(n => n), names.Where(n => n.StartsWith("kmalloc-") && !n.StartsWith("kmalloc-rcl-")).OrderBy(n => n));
        Assert.Equal(expected.Select(n => n.Replace("kmalloc-", "kmalloc-rcl-")).OrderBy(n => n), names.Where(n => n.StartsWith("kmalloc-rcl-")).OrderBy(n => n));
        Assert.Equal(dma ? expected.Length : 0, names.Count(n => n.StartsWith("dma-kmalloc-")));
        Assert.Equal(["kmem_cache_node", "kmem_cache"], names.TakeLast(2)); // bootstrap() adds kmem_cache_node after kmem_cache
    }

    [Fact]
    public void Slabinfo_lists_newest_first_with_the_kernel_columns()
    {
        using var m = Machine.Boot("x86_64");
        var c = m.KmemCacheCreate("kmem_test_obj", 200, 0, SlabFlags.HwcacheAlign | SlabFlags.NoMerge);
        string t = m.ProcFs.Read("/proc/slabinfo");
        var lines = t.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("slabinfo - version: 2.1", lines[0]);
        Assert.Equal("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>", lines[1]);
        Assert.Equal("kmem_test_obj          0      0    256   16    1 : tunables    0    0    0 : slabdata      0      0      0", lines[2]);
        // 5.10 creation order, newest first: the DMA caches, then kmalloc-rcl-*, then kmalloc-*, then the bootstrap caches.
        Assert.Equal("dma-kmalloc-8k", lines[3].Split(' ')[0]);
        Assert.Equal(["dma-kmalloc-96", "kmalloc-rcl-8k"], lines.Select(l => l.Split(' ')[0]).SkipWhile(n => n != "dma-kmalloc-96").Take(2));
        Assert.Equal("kmem_cache_node", lines[^2].Split(' ')[0]);
        Assert.Matches(@"^kmem_cache +\d+ +\d+ +256 +16 +1 : tunables +0 +0 +0 : slabdata +\d+ +\d+ +0$", lines[^1]);
        nint o = c.Alloc(Gfp.Kernel);
        Assert.Contains("kmem_test_obj         16     16    256   16    1 : tunables    0    0    0 : slabdata      1      1      0\n", m.ProcFs.Read("/proc/slabinfo"));
        c.Free(o);
        Assert.Equal("256\n", m.ProcFs.Read("/sys/kernel/slab/kmem_test_obj/slab_size"));
        Assert.Equal("16\n", m.ProcFs.Read("/sys/kernel/slab/kmem_test_obj/objs_per_slab"));
        Assert.Equal("200\n", m.ProcFs.Read("/sys/kernel/slab/kmem_test_obj/object_size"));
        c.Destroy();
        Assert.False(m.ProcFs.Exists("/sys/kernel/slab/kmem_test_obj/slab_size"));
        Assert.DoesNotContain("kmem_test_obj", m.ProcFs.Read("/proc/slabinfo"));
        Assert.Contains("SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=2, Nodes=1", m.Dmesg());
    }
}

public class SlabFixtureGeometryTests
{
    /// <summary>Every row of a real slabinfo: objsize, objperslab, pagesperslab.</summary>
    private static IEnumerable<(string Name, int Size, int Objs, int Pages)> Rows(string fixture) =>
        System.Text.RegularExpressions.Regex.Matches(TestSupport.Fixture(fixture),
            @"^(\S+)\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+(\d+) :", System.Text.RegularExpressions.RegexOptions.Multiline)
        .Select(m => (m.Groups[1].Value, int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value), int.Parse(m.Groups[4].Value)));

    [Theory]
    [InlineData("slabinfo_rhel7_x86_64_1cpu_insights.txt", 1)]
    [InlineData("slabinfo_telegraf_testdata.txt", 8)]
    [InlineData("slabinfo_meminfo_buddyinfo_x86_64_numa2_2.6.3x_linuxmm2010.txt", 8)]
    public void Every_cache_of_a_real_slabinfo_gets_the_kernels_order(string fixture, int cpus)
    {
        // A cache of that stride on a machine with that many CPUs must get the same objects per slab and order.
        var arch = new Kmem.Slab.SlabArch(8, 64, 8, 152, cpus, 11);
        var rows = Rows(fixture).ToList();
        Assert.True(rows.Count > 20);
        var wrong = rows.Where(r =>
        {
            var g = Kmem.Slab.SlabGeometry.Compute(r.Size, 8, 0, false, arch)!.Value;
            return (g.Objects, 1 << g.Order) != (r.Objs, r.Pages);
        }).Select(r => $"{r.Name} {r.Size}: kernel {r.Objs}/{r.Pages}").ToList();
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void An_eight_cpu_machine_reproduces_the_kmalloc_and_bootstrap_rows()
    {
        using var m = Machine.Boot(MachineProfile.Embedded("x86_64") with { Cpus = 8 });
        foreach (var r in Rows("slabinfo_telegraf_testdata.txt").Where(r => r.Name.StartsWith("kmalloc-") || r.Name.StartsWith("kmem_cache")))
        {
            string name = r.Name.Replace("-8192", "-8k").Replace("-4096", "-4k").Replace("-2048", "-2k").Replace("-1024", "-1k");
            var c = m.FindSlabCache(name)!;
            Assert.Equal((r.Size, r.Objs, r.Pages), (c.Size, c.ObjectsPerSlab, 1 << c.Order));
        }
    }
}
