// The kmalloc caches of each release and config: names (kmalloc-1024 before 4.20, kmalloc-1k from 4.20),
// kinds (kmalloc-rcl-* from 4.20, kmalloc-cg-* from 5.14 with MEMCG_KMEM, dma-kmalloc-* with ZONE_DMA),
// creation order as /proc/slabinfo shows it, GFP routing as kmalloc_type() does it, and real dumps of
// 3.10, 5.4 and 6.1 machines reproduced row by row (objsize, objperslab, pagesperslab) and in order.
using System.Text.RegularExpressions;
using Kmem.Boot;
using Kmem.Core;
using Kmem.Slab;

namespace Kmem.Tests;

public sealed unsafe class KmallocVersionTests
{
    /// <summary>The embedded x86_64 board (a distribution-like config: MEMCG on) at another release, with config changes.</summary>
    private static MachineProfile X86(string version, int cpus = 2, params (string Name, object Value)[] config) =>
        TestSupport.AtRelease("x86_64", version, config) with { Cpus = cpus };

    /// <summary>The rows of a slabinfo dump: name, objsize, objperslab, pagesperslab, in the dump's order.</summary>
    private static List<(string Name, int Size, int Objs, int Pages)> Rows(string slabinfo) =>
        Regex.Matches(slabinfo, @"^(\S+)\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+(\d+) :", RegexOptions.Multiline)
            .Select(m => (m.Groups[1].Value, int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value), int.Parse(m.Groups[4].Value)))
            .ToList();

    private static bool IsKmalloc(string name) => name.StartsWith("kmalloc-", StringComparison.Ordinal) || name.StartsWith("dma-kmalloc-", StringComparison.Ordinal);

    /// <summary>
    /// Every kmalloc-family row of a real dump has a cache of the same objsize, objperslab and pagesperslab on the
    /// machine, the machine has no kmalloc cache the dump lacks, both list them in the same order, and the list ends
    /// with kmem_cache_node, kmem_cache.
    /// </summary>
    private static void Reproduces(string fixture, MachineProfile profile, int expectedRows)
    {
        var theirs = Rows(TestSupport.Fixture(fixture)).Where(r => IsKmalloc(r.Name)).ToList();
        Assert.Equal(expectedRows, theirs.Count);
        using var m = Machine.Boot(profile);
        var ours = Rows(m.ProcFs.Read("/proc/slabinfo"));
        var wrong = new List<string>();
        foreach (var r in theirs)
        {
            var c = m.FindSlabCache(r.Name);
            if (c is null) wrong.Add($"{r.Name}: missing");
            else if ((c.Size, c.ObjectsPerSlab, 1 << c.Order) != (r.Size, r.Objs, r.Pages))
                wrong.Add($"{r.Name}: kernel {r.Size} {r.Objs}/{r.Pages}, Kmem {c.Size} {c.ObjectsPerSlab}/{1 << c.Order}");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        Assert.Equal(theirs.Select(r => r.Name), ours.Where(r => IsKmalloc(r.Name)).Select(r => r.Name));
        Assert.Equal(["kmem_cache_node", "kmem_cache"], ours.TakeLast(2).Select(r => r.Name));
    }

    [Fact]
    public void A_rhel7_one_cpu_machine_is_reproduced_with_3_10_names_and_order()
    {
        // RHEL 7 (3.10), 1 CPU: kmalloc-8 … kmalloc-8192 (96 after 64, 192 after 128), then dma-kmalloc-96, -192, -8 … -8192.
        Reproduces("slabinfo_rhel7_x86_64_1cpu_insights.txt", X86("3.10", cpus: 1), 26);
        using var m = Machine.Boot(X86("3.10", cpus: 1));
        Assert.DoesNotContain(m.SlabCaches, c => IsKmalloc(c.Name) && (c.Name.StartsWith("kmalloc-rcl-") || c.Name.StartsWith("kmalloc-cg-") || c.Name.EndsWith('k')));
    }

    [Fact]
    public void An_ubuntu_5_4_machine_with_32_to_63_cpus_is_reproduced()
    {
        // Ubuntu 18.04, 5.4: kmalloc-*, kmalloc-rcl-*, then the DMA caches last in kmalloc_info[] order (96, 192, 8 … 8k).
        Reproduces("slabinfo_ubuntu1804_5.4_x86_64_32to63cpu_linuxxfs.txt", X86("5.4", cpus: 32), 39);
        Reproduces("slabinfo_ubuntu1804_5.4_x86_64_32to63cpu_linuxxfs.txt", X86("5.4", cpus: 63), 39);
    }

    [Fact]
    public void An_amazon_linux_6_1_machine_with_memcg_is_reproduced()
    {
        // 6.1 with MEMCG_KMEM (the embedded x86_64 board's distribution-like config): kmalloc-*, kmalloc-cg-*, kmalloc-rcl-*, dma-kmalloc-*, each in size order.
        Reproduces("slabinfo_al2023_6.1_x86_64_2cpu_memcg.txt", X86("6.1", cpus: 2), 52);
    }

    [Theory]
    // The CPU counts the dumps' non-kmalloc rows allow (SLUB's min_objects = 4 * (fls(nr_cpus) + 1)).
    [InlineData("slabinfo_ubuntu1804_5.4_x86_64_32to63cpu_linuxxfs.txt", 32, 63)]
    [InlineData("slabinfo_al2023_6.1_x86_64_2cpu_memcg.txt", 2, 3)]
    [InlineData("slabinfo_rhel7_x86_64_1cpu_insights.txt", 1, 1)]
    public void The_cpu_count_of_a_dump_is_the_one_its_rows_allow(string fixture, int low, int high)
    {
        var rows = Rows(TestSupport.Fixture(fixture)).Where(r => !r.Name.StartsWith("kmem_cache")).ToList();
        bool Fits(int cpus)
        {
            var arch = new SlabArch(8, 64, 8, 152, cpus, 11);
            return rows.All(r => SlabGeometry.Compute(r.Size, 8, 0, false, arch) is { } g && (g.Objects, 1 << g.Order) == (r.Objs, r.Pages));
        }
        var fitting = new[] { 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128 }.Where(Fits).ToList();
        Assert.Equal(new[] { 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128 }.Where(n => n >= low && n <= high), fitting);
    }

    [Theory]
    [InlineData("3.10", false, false, "kmalloc-1024", false, false)]
    [InlineData("4.14", false, false, "kmalloc-1024", false, false)]
    [InlineData("4.19", true, true, "kmalloc-1024", false, false)]
    [InlineData("4.20", false, false, "kmalloc-1k", true, false)]
    [InlineData("5.4", true, true, "kmalloc-1k", true, false)]
    [InlineData("5.13", true, true, "kmalloc-1k", true, false)]
    [InlineData("5.14", false, true, "kmalloc-1k", true, false)]
    [InlineData("5.14", true, true, "kmalloc-1k", true, true)]
    [InlineData("5.15", true, false, "kmalloc-1k", true, true)]
    [InlineData("6.6", true, true, "kmalloc-1k", true, true)]
    [InlineData("6.6", false, false, "kmalloc-1k", true, false)]
    public void Each_release_and_config_has_its_kmalloc_kinds(string version, bool memcgKmem, bool zoneDma, string oneK, bool rcl, bool cg)
    {
        using var m = Machine.Boot(X86(version, 2, ("MEMCG_KMEM", memcgKmem), ("ZONE_DMA", zoneDma)));
        var names = m.SlabCaches.Select(c => c.Name).ToHashSet();
        string[] sizes = ["8", "16", "32", "64", "96", "128", "192", "256", "512", oneK[8..], oneK.EndsWith('k') ? "2k" : "2048",
            oneK.EndsWith('k') ? "4k" : "4096", oneK.EndsWith('k') ? "8k" : "8192"];
        Assert.All(sizes, s => Assert.Contains("kmalloc-" + s, names));
        Assert.Equal(rcl ? 13 : 0, sizes.Count(s => names.Contains("kmalloc-rcl-" + s)));
        Assert.Equal(cg ? 13 : 0, sizes.Count(s => names.Contains("kmalloc-cg-" + s)));
        Assert.Equal(zoneDma ? 13 : 0, sizes.Count(s => names.Contains("dma-kmalloc-" + s)));
        Assert.Equal(13 * (1 + (rcl ? 1 : 0) + (cg ? 1 : 0) + (zoneDma ? 1 : 0)), names.Count(IsKmalloc));
        if (cg)
        {
            var c = m.FindSlabCache("kmalloc-cg-64")!;
            Assert.Equal(SlabFlags.Account, c.Flags & (SlabFlags.Account | SlabFlags.ReclaimAccount | SlabFlags.CacheDma));
        }
        if (rcl) Assert.Equal(SlabFlags.ReclaimAccount, m.FindSlabCache("kmalloc-rcl-64")!.Flags & (SlabFlags.Account | SlabFlags.ReclaimAccount));
    }

    /// <summary>The kmalloc names of a machine's /proc/slabinfo in creation order (oldest first).</summary>
    private static List<string> CreationOrder(Machine m) =>
        Rows(m.ProcFs.Read("/proc/slabinfo")).Select(r => r.Name).Where(IsKmalloc).Reverse().ToList();

    [Fact]
    public void Creation_order_follows_each_releases_create_kmalloc_caches()
    {
        string[] sizeOrder = ["8", "16", "32", "64", "96", "128", "192", "256", "512", "1k", "2k", "4k", "8k"];
        string[] indexOrder = ["96", "192", "8", "16", "32", "64", "128", "256", "512", "1k", "2k", "4k", "8k"];
        IEnumerable<string> Kind(string prefix, string[] order) => order.Select(s => prefix + s);

        // 5.15 (before 5.19): normal, cg, rcl by size; the DMA caches last, in index order.
        using (var m = Machine.Boot(X86("5.15")))
            Assert.Equal(Kind("kmalloc-", sizeOrder).Concat(Kind("kmalloc-cg-", sizeOrder)).Concat(Kind("kmalloc-rcl-", sizeOrder))
                .Concat(Kind("dma-kmalloc-", indexOrder)), CreationOrder(m));
        // 5.19 to 6.1: DMA in the same loop, in size order.
        using (var m = Machine.Boot(X86("6.1")))
            Assert.Equal(Kind("kmalloc-", sizeOrder).Concat(Kind("kmalloc-cg-", sizeOrder)).Concat(Kind("kmalloc-rcl-", sizeOrder))
                .Concat(Kind("dma-kmalloc-", sizeOrder)), CreationOrder(m));
        // 6.2 on: kmalloc_cache_type puts KMALLOC_CGROUP last.
        using (var m = Machine.Boot(X86("6.6")))
            Assert.Equal(Kind("kmalloc-", sizeOrder).Concat(Kind("kmalloc-rcl-", sizeOrder)).Concat(Kind("dma-kmalloc-", sizeOrder))
                .Concat(Kind("kmalloc-cg-", sizeOrder)), CreationOrder(m));
        // 6.10 on: kmalloc-96 and kmalloc-192 before the powers of two, for every kind.
        string[] oddFirst = ["96", "192", "8", "16", "32", "64", "128", "256", "512", "1k", "2k", "4k", "8k"];
        using (var m = Machine.Boot(X86("6.12")))
            Assert.Equal(Kind("kmalloc-", oddFirst).Concat(Kind("kmalloc-rcl-", oddFirst)).Concat(Kind("dma-kmalloc-", oddFirst))
                .Concat(Kind("kmalloc-cg-", oddFirst)), CreationOrder(m));
        // 4.14: normal by size with the long names, then DMA in index order.
        string[] longSize = ["8", "16", "32", "64", "96", "128", "192", "256", "512", "1024", "2048", "4096", "8192"];
        string[] longIndex = ["96", "192", "8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096", "8192"];
        using (var m = Machine.Boot(X86("4.14")))
            Assert.Equal(Kind("kmalloc-", longSize).Concat(Kind("dma-kmalloc-", longIndex)), CreationOrder(m));
    }

    [Fact]
    public void Slabinfo_ends_with_kmem_cache_node_then_kmem_cache_at_the_default_release()
    {
        using var m = Machine.Boot("x86_64");
        var names = Rows(m.ProcFs.Read("/proc/slabinfo")).Select(r => r.Name).ToList();
        Assert.Equal(["kmalloc-8", "kmem_cache_node", "kmem_cache"], names.TakeLast(3));
    }

    [Theory]
    // version, MEMCG_KMEM, ZONE_DMA, GFP, size, the cache kmalloc_type() picks
    [InlineData("5.15", true, true, Gfp.KernelAccount, 60, "kmalloc-cg-64")]
    [InlineData("5.15", true, true, Gfp.KernelAccount, 1000, "kmalloc-cg-1k")]
    [InlineData("5.15", true, true, Gfp.KernelAccount | Gfp.Reclaimable, 60, "kmalloc-rcl-64")]
    [InlineData("5.15", true, true, Gfp.KernelAccount | Gfp.Dma, 60, "dma-kmalloc-64")]
    [InlineData("5.15", true, true, Gfp.Kernel | Gfp.Reclaimable, 300, "kmalloc-rcl-512")]
    [InlineData("5.15", true, false, Gfp.KernelAccount | Gfp.Dma, 60, "kmalloc-cg-64")]
    [InlineData("5.15", true, false, Gfp.Kernel | Gfp.Dma, 60, "kmalloc-64")]
    [InlineData("5.15", false, true, Gfp.KernelAccount, 60, "kmalloc-64")]
    [InlineData("5.13", true, true, Gfp.KernelAccount, 60, "kmalloc-64")]
    [InlineData("5.10", true, true, Gfp.KernelAccount, 5000, "kmalloc-8k")]
    [InlineData("4.19", true, true, Gfp.Kernel | Gfp.Reclaimable, 60, "kmalloc-64")]
    [InlineData("4.19", true, true, Gfp.Kernel | Gfp.Dma | Gfp.Reclaimable, 2000, "dma-kmalloc-2048")]
    [InlineData("3.10", false, true, Gfp.Kernel | Gfp.Dma, 100, "dma-kmalloc-128")]
    [InlineData("6.6", true, true, Gfp.KernelAccount, 150, "kmalloc-cg-192")]
    public void Gfp_picks_the_kind_kmalloc_type_picks_in_that_release(string version, bool memcgKmem, bool zoneDma, Gfp gfp, int size, string cache)
    {
        using var m = Machine.Boot(X86(version, 2, ("MEMCG_KMEM", memcgKmem), ("ZONE_DMA", zoneDma)));
        int Active() => int.Parse(Regex.Match(m.ProcFs.Read("/proc/slabinfo"), $@"^{Regex.Escape(cache)} +(\d+) ", RegexOptions.Multiline).Groups[1].Value);
        var c = m.FindSlabCache(cache)!;
        long before = c.ObjectsInUse;
        int activeBefore = Active();
        if (!Regex.IsMatch(cache, @"^kmalloc-\d")) Assert.Equal(0, activeBefore); // the other kinds are empty after boot
        var ps = Enumerable.Range(0, 3).Select(_ => m.Kmalloc(size, gfp)).ToArray();
        Assert.All(ps, p => Assert.Equal(cache, m.Slab.SlabCacheOf(p)!.Name));
        Assert.Equal(before + 3, c.ObjectsInUse);
        Assert.True(Active() >= Math.Max(3, activeBefore), $"/proc/slabinfo shows {Active()} active in {cache}");
        Assert.All(ps, p => Assert.Equal((nuint)c.ObjectSize, m.Ksize(p)));
        foreach (nint p in ps) m.Kfree(p);
        Assert.Equal(before, c.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Misuse_of_a_kmalloc_cg_object_is_still_reported()
    {
        using var m = Machine.Boot(X86("5.15"));
        nint p = m.Kmalloc(100, Gfp.KernelAccount), q = m.Kmalloc(100, Gfp.KernelAccount);
        Assert.Equal("kmalloc-cg-128", m.Slab.SlabCacheOf(p)!.Name);
        m.Kfree(p);
        m.Kfree(q);
        var e = Assert.Throws<SlabException>(() => m.Kfree(p));
        Assert.Equal(SlabError.DoubleFree, e.Error);
        Assert.Equal("kmalloc-cg-128", e.Cache);
        Assert.Contains("BUG kmalloc-cg-128 (Not tainted): Object already free", m.Dmesg());
        nint r = m.Kmalloc(100, Gfp.KernelAccount);
        var ks = Assert.Throws<SlabException>(() => m.Ksize(r + 8));
        Assert.Equal(SlabError.InvalidPointer, ks.Error);
        Assert.Contains("is not the start of an object of kmalloc-cg-128", m.Dmesg());
        m.Kfree(r);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    // arm64 from 6.5 ("mm/slab: Decouple ARCH_KMALLOC_MINALIGN from ARCH_DMA_MINALIGN"): kmalloc-8 is the smallest.
    [InlineData("6.4", "kmalloc-128", false)]
    [InlineData("6.5", "kmalloc-8", true)]
    [InlineData("6.12", "kmalloc-8", true)]
    public void An_arm64_profile_without_kmalloc_min_align_follows_the_release(string version, string smallest, bool oddSizes)
    {
        string json = MachineProfile.EmbeddedJson("rk3588").Replace("\"kmalloc_min_align\": 128,", "").Replace("\"version\": \"5.10\"", $"\"version\": \"{version}\"");
        var p = MachineProfile.Parse(json);
        Assert.Equal(smallest == "kmalloc-8" ? 8 : 128, p.KmallocMinAlign);
        using var m = Machine.Boot(p);
        var normal = m.SlabCaches.Select(c => c.Name).Where(n => Regex.IsMatch(n, @"^kmalloc-\d+k?$")).ToList();
        Assert.Equal(smallest, normal.OrderBy(n => m.FindSlabCache(n)!.ObjectSize).First());
        Assert.Equal(oddSizes, normal.Contains("kmalloc-96") && normal.Contains("kmalloc-192"));
        nint x = m.Kmalloc(5, Gfp.Kernel);
        Assert.Equal(smallest, m.Slab.SlabCacheOf(x)!.Name);
        m.Kfree(x);
    }

    [Fact]
    public void Random_kmalloc_caches_are_refused_rather_than_ignored()
    {
        var p = X86("6.6", 2, ("RANDOM_KMALLOC_CACHES", true));
        var e = Assert.Throws<ProfileException>(() => Machine.Boot(p).Dispose());
        Assert.Contains("kmalloc-rnd-NN-*", e.Message);
        Assert.Throws<ProfileException>(() => X86("6.5", 2, ("RANDOM_KMALLOC_CACHES", true)).Config); // not in 6.5 at all
        using var m = Machine.Boot(X86("6.6", 2, ("RANDOM_KMALLOC_CACHES", false)));
        Assert.DoesNotContain(m.SlabCaches, c => c.Name.StartsWith("kmalloc-rnd-"));
    }

    [Fact]
    public void Cgroup_memory_nokmem_leaves_no_kmalloc_cg_caches_and_accounted_kmalloc_goes_to_kmalloc()
    {
        var p = X86("5.15") with { Cmdline = "cgroup.memory=nosocket,nokmem" };
        using var m = Machine.Boot(p);
        Assert.DoesNotContain(m.SlabCaches, c => c.Name.StartsWith("kmalloc-cg-"));
        nint a = m.Kmalloc(60, Gfp.KernelAccount);
        Assert.Equal("kmalloc-64", m.Slab.SlabCacheOf(a)!.Name);
        m.Kfree(a);
        using var plain = Machine.Boot(X86("5.15") with { Cmdline = "cgroup.memory=nosocket" });
        Assert.Equal(13, plain.SlabCaches.Count(c => c.Name.StartsWith("kmalloc-cg-")));
    }

    [Theory]
    [InlineData("5.10", "order 11 >= MAX_ORDER 11", "__alloc_pages_nodemask")]
    [InlineData("6.4", "order 11 > MAX_ORDER 10", "__alloc_pages")]
    [InlineData("6.8", "order 11 > MAX_PAGE_ORDER 10", "__alloc_pages")]
    public void A_kmalloc_above_kmalloc_max_size_is_warned_in_the_release_words(string version, string check, string function)
    {
        using var m = Machine.Boot(X86(version));
        Assert.Equal(0, m.Kmalloc(8 << 20, Gfp.Kernel));
        string log = m.Dmesg();
        Assert.Contains($"above KMALLOC_MAX_SIZE (4194304): {check}", log);
        Assert.Contains($"at mm/page_alloc.c {function}\n", log);
        Assert.Equal(0, m.Kmalloc(8 << 20, Gfp.Kernel | Gfp.NoWarn));
        TestSupport.AssertConsistent(m);
    }
}
