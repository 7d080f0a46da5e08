// Workload steps of the slab layer: caches, objects and kmalloc buffers held by labels, and bad steps.
namespace Kmem.Tests;

public class SlabWorkloadTests
{
    [Fact]
    public void Slab_and_kmalloc_steps_allocate_write_verify_and_free()
    {
        using var m = Machine.Boot("x86_64");
        var wl = Workload.Parse("""
        { "name": "slab", "steps": [
          { "op": "kmem_cache_create", "name": "wl_obj", "size": 100, "flags": "SLAB_HWCACHE_ALIGN|SLAB_NO_MERGE" },
          { "op": "kmem_cache_alloc", "label": "objs", "cache": "wl_obj", "count": 50, "expect": "success", "fill": "0x42" },
          { "op": "kmalloc", "label": "bufs", "size": "2K", "count": 10, "fill": 7 },
          { "op": "kmalloc", "label": "big", "size": "64K", "count": 2 },
          { "op": "verify", "label": "objs", "pattern": "0x42" },
          { "op": "verify", "label": "bufs", "pattern": 7 },
          { "op": "kmem_cache_free", "label": "objs", "count": 20, "which": "random" },
          { "op": "kfree", "label": "bufs", "count": "all" },
          { "op": "kmem_cache_shrink", "cache": "wl_obj" },
          { "op": "check" }
        ] }
        """);
        var runner = new WorkloadRunner(m);
        var r = runner.Run(wl);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(30 * 100, r.Labels["objs"].BytesHeld);
        Assert.Equal(2 * 65536, r.Labels["big"].BytesHeld);
        Assert.Equal(0, r.Labels["bufs"].BytesHeld);
        Assert.Equal(30, m.FindSlabCache("wl_obj")!.ObjectsInUse);
        runner.ReleaseAll();
        Assert.Equal(0, m.FindSlabCache("wl_obj")!.ObjectsInUse);
        var destroy = Workload.Parse("""{ "steps": [ { "op": "kmem_cache_destroy", "cache": "wl_obj" } ] }""");
        Assert.True(new WorkloadRunner(m).Run(destroy).Ok);
        Assert.Null(m.FindSlabCache("wl_obj"));
    }

    [Fact]
    public void A_cache_with_sheaves_from_a_workload_keeps_exact_counts()
    {
        using var m = Machine.Boot("rk3588");
        var wl = Workload.Parse("""
        { "steps": [
          { "op": "kmem_cache_create", "name": "rx_buf", "size": 2048, "sheaf_capacity": 4 },
          { "op": "kmem_cache_alloc", "label": "rx", "cache": "rx_buf", "count": 200, "fill": "0x5a" },
          { "op": "kmem_cache_free", "label": "rx", "count": 150, "which": "random" },
          { "op": "verify", "label": "rx", "pattern": "0x5a" },
          { "op": "check" },
          { "op": "kmem_cache_shrink", "cache": "rx_buf" },
          { "op": "check" }
        ] }
        """);
        var r = new WorkloadRunner(m).Run(wl);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        var c = m.FindSlabCache("rx_buf")!;
        Assert.Equal(4, c.SheafCapacity);
        Assert.Equal(50, c.ObjectsInUse);
        Assert.Equal(0, c.BarnFullSheaves);
    }

    [Theory]
    [InlineData("""{ "op": "kmem_cache_create", "name": "x", "size": 10, "flags": "SLAB_FAST" }""", "steps[0].flags")]
    [InlineData("""{ "op": "kmem_cache_create", "name": "x" }""", "steps[0].size")]
    [InlineData("""{ "op": "kmem_cache_create", "name": "x", "size": 10, "sheaf_capacity": 5000 }""", "steps[0].sheaf_capacity")]
    [InlineData("""{ "op": "kmem_cache_alloc", "label": "a" }""", "steps[0].cache")]
    [InlineData("""{ "op": "kmalloc", "label": "a" }""", "steps[0].size")]
    [InlineData("""{ "op": "kmalloc", "size": 10 }""", "steps[0].label")]
    public void Malformed_slab_steps_are_rejected_before_anything_runs(string step, string location)
    {
        var ex = Assert.Throws<WorkloadException>(() => Workload.Parse($$"""{ "steps": [ {{step}} ] }"""));
        Assert.Equal(location, ex.Location);
    }

    [Fact]
    public void An_unknown_cache_is_a_clear_error()
    {
        using var m = Machine.Boot("x86_64");
        var wl = Workload.Parse("""{ "steps": [ { "op": "kmem_cache_alloc", "label": "a", "cache": "nope" } ] }""");
        Assert.Contains("no slab cache named 'nope'", Assert.Throws<WorkloadException>(() => new WorkloadRunner(m).Run(wl)).Message);
    }
}
