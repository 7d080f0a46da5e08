// Workloads: the format is validated before anything runs, and each step does what it says.
namespace Kmem.Tests;

public class WorkloadTests
{
    [Theory]
    [InlineData("[", "(json)", "not valid JSON")]
    [InlineData("""{"steps": 3}""", "steps", "array")]
    [InlineData("""{"stepz": []}""", "stepz", "unknown key")]
    [InlineData("""{"steps": [ {"label": "a"} ]}""", "steps[0]", "needs \"op\"")]
    [InlineData("""{"steps": [ {"op": "explode"} ]}""", "steps[0].op", "unknown operation")]
    [InlineData("""{"steps": [ {"op": "alloc_pages"} ]}""", "steps[0].label", "required")]
    [InlineData("""{"steps": [ {"op": "alloc_pages", "label": "a", "order": "big"} ]}""", "steps[0].order", "whole number")]
    [InlineData("""{"steps": [ {"op": "alloc_pages", "label": "a", "gfp": "GFP_SOMETIMES"} ]}""", "steps[0].gfp", "not a GFP mask")]
    [InlineData("""{"steps": [ {"op": "alloc_pages", "label": "a", "colour": 1} ]}""", "steps[0].colour", "unknown argument")]
    [InlineData("""{"steps": [ {"op": "alloc_pages", "label": "a", "expect": "maybe"} ]}""", "steps[0].expect", "success, failure or any")]
    [InlineData("""{"steps": [ {"op": "free_pages", "label": "a", "which": "middle"} ]}""", "steps[0].which", "newest, oldest or random")]
    [InlineData("""{"steps": [ {"op": "write", "label": "a", "pattern": 300} ]}""", "steps[0].pattern", "byte value")]
    [InlineData("""{"steps": [ {"op": "repeat", "times": 2} ]}""", "steps[0].steps", "at least one step")]
    [InlineData("""{"steps": [ {"op": "repeat", "times": 2, "steps": [ {"op": "nope"} ]} ]}""", "steps[0].steps[0].op", "unknown operation")]
    [InlineData("""{"steps": [ {"op": "alloc_pages_exact", "label": "a"} ]}""", "steps[0].size", "required")]
    public void Malformed_workloads_name_the_step(string json, string location, string problem)
    {
        var e = Assert.Throws<WorkloadException>(() => Workload.Parse(json));
        Assert.Equal(location, e.Location);
        Assert.Contains(problem, e.Problem);
    }

    [Fact]
    public void Steps_do_what_they_say()
    {
        using var m = Machine.Boot("rv1106");
        var wl = Workload.Parse("""
        { "seed": 3, "steps": [
          { "op": "alloc_pages", "label": "a", "order": 2, "count": 10, "fill": "0x33", "expect": "success" },
          { "op": "alloc_pages_exact", "label": "x", "size": "20K", "count": 2 },
          { "op": "write", "label": "x", "pattern": 9 },
          { "op": "verify", "label": "x", "pattern": 9 },
          { "op": "verify", "label": "a", "pattern": "0x33" },
          { "op": "get_page", "label": "a" },
          { "op": "put_page", "label": "a" },
          { "op": "repeat", "times": 5, "steps": [
            { "op": "alloc_pages", "label": "r", "order": 0, "count": 3 },
            { "op": "free_pages", "label": "r", "count": 1, "which": "random" } ] },
          { "op": "free_pages", "label": "a", "count": 4, "which": "oldest" },
          { "op": "alloc_pages", "label": "huge", "order": 11, "gfp": "GFP_KERNEL|__GFP_NOWARN", "expect": "failure" },
          { "op": "drain" }, { "op": "reclaim" }, { "op": "min_free_kbytes", "value": 4096 },
          { "op": "check" } ] }
        """);
        var runner = new WorkloadRunner(m);
        var r = runner.Run(wl);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        Assert.Equal(10, r.Labels["a"].Allocated);
        Assert.Equal(4, r.Labels["a"].Freed);
        Assert.Equal(24, r.Labels["a"].PagesHeld);
        Assert.Equal(10, r.Labels["x"].PagesHeld);
        Assert.Equal(10, r.Labels["r"].PagesHeld);
        Assert.Equal(1, r.Labels["huge"].Failed);
        Assert.Equal(4096, m.Sysctl.Vm.MinFreeKbytes);
        Assert.Equal(24, r.StepsRun);
        runner.ReleaseAll();
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Broken_expectations_are_reported_not_thrown()
    {
        using var m = TestSupport.Small();
        var r = new WorkloadRunner(m).Run(Workload.Parse("""
        { "steps": [ { "op": "alloc_pages", "label": "a", "order": 10, "count": 50, "gfp": "GFP_KERNEL|__GFP_NORETRY|__GFP_NOWARN", "expect": "success" },
                     { "op": "alloc_pages", "label": "b", "order": 0, "expect": "failure" } ] }
        """));
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("failed"));
        Assert.Contains(r.Problems, p => p.Contains("expected to fail"));
    }
}
