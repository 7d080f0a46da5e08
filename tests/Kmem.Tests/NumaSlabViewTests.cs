// The slab views of a NUMA machine: the /sys/kernel/slab counting attributes with " N0=… N1=…" under
// CONFIG_NUMA only (show_slab_objects()), /proc/slabinfo unchanged in layout with totals summed over the
// nodes, the SLUB boot line's Nodes=, and the slabinfo half of a published two-node 2.6.3x dump
// (linux-mm, 2010) reproduced in layout by a two-node profile of the oldest release Kmem models (3.10).
using System.Text.RegularExpressions;
using Kmem.Boot;
using Kmem.Core;

namespace Kmem.Tests;

public sealed class NumaSlabViewTests
{
    private static readonly string[] s_counting = ["slabs", "objects", "total_objects", "partial", "objects_partial", "cpu_slabs"];

    [Fact]
    public void Counting_attributes_show_each_node_with_a_non_zero_count()
    {
        using var m = NumaSlabMachines.Boot();
        var cache = m.KmemCacheCreate("numa_view", 300, flags: SlabFlags.NoMerge);
        var on0 = NumaSlabMachines.OnCpu(m, 0, () => Enumerable.Range(0, 40).Select(_ => cache.Alloc(Gfp.Kernel)).ToArray());
        var on1 = NumaSlabMachines.OnCpu(m, 2, () => Enumerable.Range(0, 90).Select(_ => cache.Alloc(Gfp.Kernel)).ToArray());
        // A few frees from the other node leave partial slabs on both nodes once the threads are flushed.
        NumaSlabMachines.OnCpu(m, 3, () => { foreach (nint p in on0.Take(5)) cache.Free(p); });
        NumaSlabMachines.OnCpu(m, 1, () => { foreach (nint p in on1.Where((_, i) => i % 13 == 0)) cache.Free(p); });
        cache.Shrink();
        var root = cache.Root;
        string dir = "/sys/kernel/slab/numa_view/";
        string Line(long n0, long n1) => $"{n0 + n1}{(n0 != 0 ? $" N0={n0}" : "")}{(n1 != 0 ? $" N1={n1}" : "")}\n";
        Assert.Equal(Line(root.NodeSlabs(0), root.NodeSlabs(1)), m.ProcFs.Read(dir + "slabs"));
        Assert.Equal(Line(root.NodeTotalObjects(0), root.NodeTotalObjects(1)), m.ProcFs.Read(dir + "total_objects"));
        Assert.Equal(Line(root.NodePartial(0), root.NodePartial(1)), m.ProcFs.Read(dir + "partial"));
        Assert.Matches(@"^\d+ N0=\d+ N1=\d+\n$", m.ProcFs.Read(dir + "slabs"));
        Assert.Matches(@"^\d+ N0=\d+ N1=\d+\n$", m.ProcFs.Read(dir + "partial"));
        // objects = total - free on the partial lists: every object is in use or free on a partial slab after the flush.
        long inUse = cache.ObjectsInUse;
        Assert.Equal(inUse, long.Parse(m.ProcFs.Read(dir + "objects").Split(' ')[0]));
        long objectsPartial = long.Parse(m.ProcFs.Read(dir + "objects_partial").Split(' ')[0]);
        Assert.InRange(objectsPartial, 1, inUse);
        Assert.Equal("0\n", m.ProcFs.Read(dir + "cpu_slabs"));         // flushed: no thread holds a slab
        // A thread of node 1 takes a CPU slab: cpu_slabs counts it on node 1.
        nint held = 0;
        var gate = new ManualResetEventSlim();
        var release = new ManualResetEventSlim();
        var t = new Thread(() => { m.MigrateToCpu(2); held = cache.AllocNode(Gfp.Kernel, 1); gate.Set(); release.Wait(); });
        t.Start();
        gate.Wait();
        Assert.Matches(@"^(\d+) N1=\1\n$", m.ProcFs.Read(dir + "cpu_slabs"));
        release.Set();
        t.Join();
        // /proc/slabinfo: the same layout, figures summed over the nodes.
        var row = Regex.Match(m.ProcFs.Read("/proc/slabinfo"), @"^numa_view +(\d+) +(\d+) +\d+ .* : slabdata +(\d+) +(\d+) +0\n", RegexOptions.Multiline);
        Assert.True(row.Success);
        Assert.Equal(cache.TotalObjects, long.Parse(row.Groups[2].Value));
        Assert.Equal(root.NodeTotalObjects(0) + root.NodeTotalObjects(1), cache.TotalObjects);
        Assert.Equal(root.NodeSlabs(0) + root.NodeSlabs(1), long.Parse(row.Groups[4].Value));
        Assert.Equal("100\n", m.ProcFs.Read(dir + "remote_node_defrag_ratio"));
        cache.Free(held);
        foreach (nint p in on0.Skip(5)) cache.Free(p);
        foreach (nint p in on1.Where((_, i) => i % 13 != 0)) cache.Free(p);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Without_config_numa_no_node_is_printed_and_with_it_one_node_prints_N0()
    {
        // CONFIG_NUMA off: plain totals and no remote_node_defrag_ratio.
        using (var m = Machine.Boot(TestSupport.AtRelease("x86_64", "6.6", ("NUMA", false))))
        {
            nint p = m.Kmalloc(64, Gfp.Kernel);
            Assert.Matches(@"^\d+\n$", m.ProcFs.Read("/sys/kernel/slab/kmalloc-64/slabs"));
            Assert.Matches(@"^\d+\n$", m.ProcFs.Read("/sys/kernel/slab/kmalloc-64/total_objects"));
            Assert.False(m.ProcFs.Exists("/sys/kernel/slab/kmalloc-64/remote_node_defrag_ratio"));
            Assert.Contains("CPUs=2, Nodes=1", m.Dmesg());
            m.Kfree(p);
        }
        // A NUMA kernel on one node prints N0= (every count is node 0's).
        using (var m = Machine.Boot(MachineProfile.Parse(NumaSlabMachines.Json.Replace("[0, 0, 1, 1]", "[0, 0, 0, 0]").Replace("\"node\": 1 }", "\"node\": 0 }"))))
        {
            Assert.Equal(1, m.NodeCount);
            nint p = m.Kmalloc(64, Gfp.Kernel);
            string slabs = m.ProcFs.Read("/sys/kernel/slab/kmalloc-64/slabs");
            Assert.Matches(@"^(\d+) N0=\1\n$", slabs);
            Assert.Equal("100\n", m.ProcFs.Read("/sys/kernel/slab/kmalloc-64/remote_node_defrag_ratio"));
            Assert.Contains("CPUs=4, Nodes=1", m.Dmesg());
            m.Kfree(p);
        }
        using (var m = NumaSlabMachines.Boot())
            Assert.Contains("SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=4, Nodes=2", m.Dmesg());
    }

    /// <summary>The rows of a slabinfo dump: name, active, total, objsize, objperslab, pagesperslab, slabs.</summary>
    private static List<(string Name, long Active, long Total, int Size, int Objs, int Pages, long Slabs)> Rows(string slabinfo) =>
        Regex.Matches(slabinfo, @"^(\S+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) : tunables +0 +0 +0 : slabdata +(\d+) +\7 +0$", RegexOptions.Multiline)
            .Select(m => (m.Groups[1].Value, long.Parse(m.Groups[2].Value), long.Parse(m.Groups[3].Value), int.Parse(m.Groups[4].Value),
                int.Parse(m.Groups[5].Value), int.Parse(m.Groups[6].Value), long.Parse(m.Groups[7].Value)))
            .ToList();

    /// <summary>
    /// The machine of the 2010 dump: x86_64, SLUB, CONFIG_NUMA, two nodes, 8 CPUs (kmalloc-1024 at 32 objects in 8 pages
    /// needs SLUB's min_objects 20, i.e. 8 to 15 CPUs). Its kernel (2.6.3x) is older than any release Kmem models: the
    /// oldest, 3.10, has the same slabinfo 2.1 layout, SLUB geometry and kmem_cache_node. Memory is scaled down to 2 × 256
    /// MiB (the slab rows depend on the CPUs and the page size, not on the memory size).
    /// </summary>
    private static MachineProfile Dump2010Machine()
    {
        var p = MachineProfile.Parse(NumaSlabMachines.Json
            .Replace("\"cpus\": 4, \"cpu_nodes\": [0, 0, 1, 1]", "\"cpus\": 8, \"cpu_nodes\": [0, 0, 0, 0, 1, 1, 1, 1]")
            .Replace("\"version\": \"6.6\"", "\"version\": \"3.10\"")
            .Replace("\"size\": \"0x7f00000\"", "\"size\": \"0xff00000\"")
            .Replace("{ \"base\": \"0x8000000\", \"size\": \"0x8000000\", \"node\": 1 }", "{ \"base\": \"0x10000000\", \"size\": \"0x10000000\", \"node\": 1 }"));
        Assert.Equal(KernelVersion.Oldest, p.Version);
        return p;
    }

    [Fact]
    public void The_slabinfo_of_a_two_node_2_6_3x_machine_is_reproduced_in_layout()
    {
        string dump = TestSupport.Fixture("slabinfo_meminfo_buddyinfo_x86_64_numa2_2.6.3x_linuxmm2010.txt");
        string theirsText = dump[dump.IndexOf("# cat /proc/slabinfo", StringComparison.Ordinal)..dump.IndexOf("# cat /proc/buddyinfo", StringComparison.Ordinal)];
        var theirs = Rows(theirsText);
        Assert.Equal(83, theirs.Count);                                    // every row parses with the 2.1 layout
        using var m = Machine.Boot(Dump2010Machine());
        Assert.Equal(2, m.NodeCount);
        Assert.Contains("CPUs=8, Nodes=2", m.Dmesg());
        string oursText = m.ProcFs.Read("/proc/slabinfo");
        // The two header lines, byte for byte.
        Assert.Equal(string.Join("\n", theirsText.Split('\n').Skip(1).Take(2)), string.Join("\n", oursText.Split('\n').Take(2)));
        var ours = Rows(oursText);
        Assert.Equal(oursText.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length - 2, ours.Count);
        // Every kmalloc-N row and kmem_cache_node: the same objsize, objperslab and pagesperslab.
        var wrong = new List<string>();
        foreach (var r in theirs.Where(r => Regex.IsMatch(r.Name, @"^kmalloc-\d+$") || r.Name == "kmem_cache_node"))
        {
            var c = m.FindSlabCache(r.Name);
            if (c is null) wrong.Add($"{r.Name}: missing");
            else if ((c.Size, c.ObjectsPerSlab, 1 << c.Order) != (r.Size, r.Objs, r.Pages))
                wrong.Add($"{r.Name}: kernel {r.Size} {r.Objs}/{r.Pages}, Kmem {c.Size} {c.ObjectsPerSlab}/{1 << c.Order}");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        Assert.Equal(13, theirs.Count(r => Regex.IsMatch(r.Name, @"^kmalloc-\d+$")));
        // 2.6.3x's DMA cache kmalloc_dma-512 is 3.10's dma-kmalloc-512 (the name changed in 3.9's common kmalloc code).
        var dma = theirs.Single(r => r.Name == "kmalloc_dma-512");
        var ourDma = m.FindSlabCache("dma-kmalloc-512")!;
        Assert.Equal((dma.Size, dma.Objs, dma.Pages), (ourDma.Size, ourDma.ObjectsPerSlab, 1 << ourDma.Order));
        // Each row in the kernel's columns: %-17s %6lu %6lu %6u %4u %4d, then the SLUB tunables and slabdata.
        foreach (string line in oursText.Split('\n').Skip(2).Where(l => l.Length > 0))
            Assert.Matches(@"^\S.{16} [ \d]{5}\d [ \d]{5}\d [ \d]{5}\d [ \d]{3}\d [ \d]{3}\d : tunables    0    0    0 : slabdata [ \d]{5}\d [ \d]{5}\d      0$|^\S{18,} ", line);
        // NUMA: one kmem_cache_node per cache per node, each from its node's memory (the dump's 196 = 2 × 98 caches).
        Assert.Equal(0, theirs.Single(r => r.Name == "kmem_cache_node").Active % 2);
        var kcn = m.FindSlabCache("kmem_cache_node")!;
        Assert.Equal(2L * m.SlabCaches.Count, kcn.ObjectsInUse);
        kcn.Shrink();                                                      // no thread holds a slab of it now
        for (int node = 0; node < 2; node++)
            Assert.Equal(m.SlabCaches.Count, kcn.Root.NodeTotalObjects(node) - kcn.Root.NodeCountPartial(node, inuse: false));
        // slabinfo's figures are the sums over the nodes.
        var row = Rows(m.ProcFs.Read("/proc/slabinfo")).Single(r => r.Name == "kmem_cache_node");
        Assert.Equal(2L * m.SlabCaches.Count, row.Active);
        Assert.Equal(kcn.Root.NodeSlabs(0) + kcn.Root.NodeSlabs(1), row.Slabs);
        Assert.Equal(kcn.Root.NodeTotalObjects(0) + kcn.Root.NodeTotalObjects(1), row.Total);
        Assert.True(kcn.Root.NodeSlabs(0) > 0 && kcn.Root.NodeSlabs(1) > 0);
        TestSupport.AssertConsistent(m);
    }
}
