// The slab layer's views: /proc/slabinfo (version 2.1, SLUB's figures summed over the nodes, newest cache
// first) and the basic files of /sys/kernel/slab/<cache>/, registered and removed as caches come and go. A
// kernel without CONFIG_SLUB_DEBUG has no /proc/slabinfo and none of the debug attributes of /sys/kernel/slab;
// with CONFIG_NUMA the counting attributes append " N<node>=<count>" for each node with a non-zero count.
using System.Text;
using Kmem.Slab;

namespace Kmem.Diagnostics;

internal static class SlabViews
{
    /// <summary>
    /// Registers the views. <paramref name="slubDebug"/> is CONFIG_SLUB_DEBUG: without it SLUB has no /proc/slabinfo
    /// (mm/slab_common.c builds it only with CONFIG_SLAB or CONFIG_SLUB_DEBUG), no slabs, total_objects, sanity_checks,
    /// trace, red_zone, poison or store_user attributes (mm/slub.c, inside #ifdef CONFIG_SLUB_DEBUG), and its
    /// "objects" attribute counts nothing (show_slab_objects() handles SO_ALL only with the debug node counters) until
    /// the attribute itself moved under CONFIG_SLUB_DEBUG.
    /// </summary>
    public static void Register(ProcFs fs, SlabAllocator sa, bool slubDebug)
    {
        if (slubDebug) fs.Register("/proc/slabinfo", () => FormatSlabinfo(sa.Caches));
        bool numa = sa.Settings.Kernel.Numa;
        var files = slubDebug ? s_files : s_files.Except(s_debugFiles).ToArray();
        if (numa) files = [.. files, "remote_node_defrag_ratio"];      // #ifdef CONFIG_NUMA
        foreach (var c in sa.Caches) AddCache(fs, c, files, slubDebug, numa);
        sa.Created += c => AddCache(fs, c, files, slubDebug, numa);
        sa.Destroyed += c => RemoveCache(fs, c, files);
    }

    /// <summary>/proc/slabinfo from a list of caches (SLUB: tunables and sharedavail 0, active_slabs = num_slabs).</summary>
    public static string FormatSlabinfo(IEnumerable<SlabCache> caches)
    {
        var sb = new StringBuilder();
        sb.Append("slabinfo - version: 2.1\n");
        sb.Append("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
        foreach (var c in caches)
        {
            long slabs = c.Slabs;
            sb.Append($"{c.Name,-17} {c.ActiveObjects,6} {c.TotalObjects,6} {c.Size,6} {c.ObjectsPerSlab,4} {1 << c.Order,4}");
            sb.Append($" : tunables {0,4} {0,4} {0,4}");
            sb.Append($" : slabdata {slabs,6} {slabs,6} {0,6}\n");
        }
        return sb.ToString();
    }

    private static readonly string[] s_files =
    [
        "object_size", "slab_size", "align", "objs_per_slab", "order", "min_partial", "cpu_partial", "slabs", "objects",
        "total_objects", "partial", "objects_partial", "cpu_slabs", "red_zone", "poison", "store_user", "sanity_checks", "trace",
        "reclaim_account", "hwcache_align", "cache_dma", "ctor", "aliases",
    ];

    /// <summary>The attributes mm/slub.c defines only with CONFIG_SLUB_DEBUG.</summary>
    private static readonly string[] s_debugFiles = ["slabs", "total_objects", "red_zone", "poison", "store_user", "sanity_checks", "trace"];

    private static void AddCache(ProcFs fs, SlabCache c, string[] files, bool slubDebug, bool numa)
    {
        foreach (string f in files) fs.Register($"/sys/kernel/slab/{c.Name}/{f}", () => SysfsFile(c, f, slubDebug, numa) + "\n");
    }

    private static void RemoveCache(ProcFs fs, SlabCache c, string[] files)
    {
        foreach (string f in files) fs.Unregister($"/sys/kernel/slab/{c.Name}/{f}");
    }

    private static string SysfsFile(SlabCache c, string f, bool slubDebug, bool numa)
    {
        var g = c.Geometry;
        static string B(bool v) => v ? "1" : "0";
        return f switch
        {
            "object_size" => c.ObjectSize.ToString(),
            "slab_size" => c.Size.ToString(),
            "align" => c.Align.ToString(),
            "objs_per_slab" => c.ObjectsPerSlab.ToString(),
            "order" => c.Order.ToString(),
            "min_partial" => g.MinPartial.ToString(),
            "cpu_partial" => g.CpuPartial.ToString(),
            // show_slab_objects(): SO_ALL from the debug node counters, SO_PARTIAL from the partial lists, SO_CPU from the CPUs.
            "slabs" => PerNode(c, numa, n => c.NodeSlabs(n)),
            "objects" => slubDebug ? PerNode(c, numa, n => c.NodeTotalObjects(n) - c.NodeCountPartial(n, inuse: false)) : "0",
            "total_objects" => PerNode(c, numa, n => c.NodeTotalObjects(n)),
            "partial" => PerNode(c, numa, n => c.NodePartial(n)),
            "objects_partial" => PerNode(c, numa, n => c.NodeCountPartial(n, inuse: true)),
            "cpu_slabs" => CpuSlabs(c, numa),
            "remote_node_defrag_ratio" => c.RemoteNodeDefragRatio.ToString(),
            "red_zone" => B((c.Flags & SlabFlags.RedZone) != 0),
            "poison" => B((c.Flags & SlabFlags.Poison) != 0),
            "store_user" => B((c.Flags & SlabFlags.StoreUser) != 0),
            "sanity_checks" => B((c.Flags & SlabFlags.ConsistencyChecks) != 0),
            "trace" => B((c.Flags & SlabFlags.Trace) != 0),
            "reclaim_account" => B((c.Flags & SlabFlags.ReclaimAccount) != 0),
            "hwcache_align" => B((c.Flags & SlabFlags.HwcacheAlign) != 0),
            "cache_dma" => B((c.Flags & SlabFlags.CacheDma) != 0),
            "ctor" => c.HasCtor ? "ctor" : "",
            "aliases" => (c.RefCount - 1).ToString(),
            _ => "",
        };
    }

    /// <summary>show_slab_objects(SO_CPU): the threads' CPU slabs and CPU partial slabs, by the node of each.</summary>
    private static string CpuSlabs(SlabCache c, bool numa)
    {
        long[] cpu = c.CpuSlabsPerNode();
        return PerNode(c, numa, n => cpu[n]);
    }

    /// <summary>
    /// show_slab_objects()'s line: the total, then with CONFIG_NUMA " N%d=%lu" for each node whose count is not zero
    /// (the same in 3.10, which walked N_NORMAL_MEMORY nodes, and 6.6, which walks every node id).
    /// </summary>
    private static string PerNode(SlabCache c, bool numa, Func<int, long> count)
    {
        var sb = new StringBuilder();
        long total = 0;
        var nodes = new long[c.NodeCount];
        for (int n = 0; n < nodes.Length; n++) total += nodes[n] = count(n);
        sb.Append(total);
        if (numa)
            for (int n = 0; n < nodes.Length; n++)
                if (nodes[n] != 0) sb.Append($" N{n}={nodes[n]}");
        return sb.ToString();
    }
}
