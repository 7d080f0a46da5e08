// The workload step registry: every operation is defined once (arguments, checks, run) and the format's
// documentation lists exactly the registry's operations; what a label holds is one of several kinds, and the
// generic steps (write, verify, any free) work on each kind through its own definition.
namespace Kmem.Tests;

public class WorkloadRegistryTests
{
    public static TheoryData<string> LabelledOperations()
    {
        var data = new TheoryData<string>();
        foreach (var (op, args) in Workload.Operations)
            if (args.Contains("label")) data.Add(op);
        return data;
    }

    [Theory]
    [MemberData(nameof(LabelledOperations))]
    public void An_operation_that_takes_a_label_refuses_a_step_without_one_before_anything_else(string op)
    {
        var e = Assert.Throws<WorkloadException>(() => Workload.Parse($$"""{"steps": [ {"op": "{{op}}"} ]}"""));
        Assert.Equal("steps[0].label", e.Location);
        Assert.StartsWith("is required", e.Problem);
    }

    [Fact]
    public void The_documentation_lists_exactly_the_operations_of_the_registry()
    {
        string doc = File.ReadAllText(Path.Combine(RepoRoot(), "docs", "workloads.md"));
        var documented = new HashSet<string>(StringComparer.Ordinal);
        bool inTable = false;
        foreach (string line in doc.Split('\n'))
        {
            if (line.StartsWith("| op |", StringComparison.Ordinal)) { inTable = true; continue; }
            if (!line.StartsWith('|')) { inTable = false; continue; }
            if (!inTable || line.StartsWith("|---", StringComparison.Ordinal)) continue;
            string first = line.Split('|')[1];
            foreach (var part in first.Split('`').Where((_, i) => i % 2 == 1)) documented.Add(part);
        }
        var known = Workload.Operations.Keys.ToHashSet(StringComparer.Ordinal);
        Assert.Empty(known.Except(documented).Order(StringComparer.Ordinal));     // defined but not documented
        Assert.Empty(documented.Except(known).Order(StringComparer.Ordinal));     // documented but not defined
    }

    [Fact]
    public void One_label_holds_every_kind_of_allocation_and_any_free_step_gives_each_back_its_own_way()
    {
        using var m = Machine.Boot("rv1106");
        var runner = new WorkloadRunner(m);
        var allocate = Workload.Parse("""
        { "steps": [
          { "op": "kmem_cache_create", "name": "registry_obj", "size": 64 },
          { "op": "alloc_pages", "label": "mixed", "order": 2 },
          { "op": "alloc_pages_exact", "label": "mixed", "size": 5000 },
          { "op": "kmalloc", "label": "mixed", "size": 128 },
          { "op": "kmem_cache_alloc", "label": "mixed", "cache": "registry_obj" },
          { "op": "vmalloc", "label": "mixed", "size": 10000 },
          { "op": "cma_alloc", "label": "mixed", "cma": "rk-dma-heap-cma", "count": 3 },
          { "op": "dma_alloc_coherent", "label": "mixed", "device": "ffa50000.rkvenc", "size": 8192 },
          { "op": "alloc_movable", "label": "mixed", "order": 1 },
          { "op": "dma_heap_alloc", "label": "mixed", "heap": "system", "size": 12288 },
          { "op": "rk_dma_heap_alloc_contig", "label": "mixed", "size": 6000 },
          { "op": "write", "label": "mixed", "pattern": "0x5a" },
          { "op": "verify", "label": "mixed", "pattern": "0x5a" } ] }
        """);
        var r = runner.Run(allocate);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(10, r.Labels["mixed"].Allocated);
        // Pages spanned by each page-backed kind: 4 (order 2) + 2 (5000 bytes) + 3 (10000) + 3 (CMA run) + 2 (8192)
        // + 2 (order 1) + 3 (12288) + 2 (6000 rounded up to pages); bytes are counted for the kmalloc buffer, the object,
        // the dma-buf and the RK page run: 128 (a kmalloc size class, so its ksize) + 64 (the cache's object size)
        // + 12288 (the dma-buf's size) + 8192 (the page run's, 6000 bytes rounded up to pages).
        Assert.Equal(4 + 2 + 3 + 3 + 2 + 2 + 3 + 2, r.Labels["mixed"].PagesHeld);
        Assert.Equal(128 + 64 + 12288 + 8192, r.Labels["mixed"].BytesHeld);
        Assert.Equal(r.Labels["mixed"].PagesHeld, runner.PagesHeld["mixed"]);
        long dmaBufs = m.DmaBufs.Count;

        // One free step of whatever name frees every kind; the cache can then be destroyed (its object went back to it).
        var free = Workload.Parse("""
        { "steps": [
          { "op": "kfree", "label": "mixed", "count": "all" },
          { "op": "kmem_cache_destroy", "cache": "registry_obj" },
          { "op": "check" } ] }
        """);
        r = runner.Run(free);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(10, r.Labels["mixed"].Freed);
        Assert.Equal(0, r.Labels["mixed"].PagesHeld);
        Assert.Equal(0, r.Labels["mixed"].BytesHeld);
        Assert.Equal(dmaBufs - 1, m.DmaBufs.Count);
        Assert.Null(m.FindSlabCache("registry_obj"));
        Assert.DoesNotContain("mixed", m.ProcFs.Read("/proc/vmallocinfo"));
        TestSupport.AssertConsistent(m);
    }

    /// <summary>The repository's root (the directory that holds Kmem.slnx), found upward from the test's binaries.</summary>
    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kmem.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Kmem.slnx above {AppContext.BaseDirectory}");
    }
}
