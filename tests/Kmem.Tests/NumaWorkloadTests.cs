// The workload format's NUMA steps (run_on_cpu, alloc_pages with "node") and the built-in numa-spill workload on the
// two-node profile: pages land on the workload thread's node or the named one, and spill by the fallback order.
namespace Kmem.Tests;

public class NumaWorkloadTests
{
    private static long FreeOn(Machine m, int node) => m.Pages.Zones.Where(z => z.Node == node).Sum(z => z.FreePages + m.Pages.PcpTotal(z.Index));

    [Fact]
    public void Steps_allocate_on_the_node_of_the_cpu_they_run_as_or_the_node_they_name()
    {
        using var m = Machine.Boot("x86_64-numa2");
        m.DrainAllPages();
        long free0 = FreeOn(m, 0), free1 = FreeOn(m, 1);
        var w = Workload.Parse("""
            { "steps": [
              { "op": "run_on_cpu", "cpu": 3 },
              { "op": "alloc_pages", "label": "local", "order": 4, "count": 64 },
              { "op": "alloc_pages", "label": "named", "order": 4, "node": 0, "count": 32 },
              { "op": "check" } ] }
            """);
        var r = new WorkloadRunner(m).Run(w);
        Assert.True(r.Ok, string.Join("\n", r.Problems));
        m.DrainAllPages();
        Assert.Equal(64 * 16, free1 - FreeOn(m, 1));
        Assert.Equal(32 * 16, free0 - FreeOn(m, 0));
    }

    [Fact]
    public void A_cpu_or_node_the_machine_lacks_is_refused_naming_the_step()
    {
        using var m = Machine.Boot("x86_64-numa2");
        var runner = new WorkloadRunner(m);
        var cpu = Assert.Throws<WorkloadException>(() => runner.Run(Workload.Parse("""{ "steps": [ { "op": "run_on_cpu", "cpu": 4 } ] }""")));
        Assert.Equal("steps[0]", cpu.Location);
        Assert.Contains("CPU 4 is not online", cpu.Problem);
        var node = Assert.Throws<WorkloadException>(() => runner.Run(Workload.Parse("""{ "steps": [ { "op": "alloc_pages", "label": "x", "node": 2 } ] }""")));
        Assert.Contains("node 2 is not online", node.Problem);
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "run_on_cpu" } ] }"""));
        Assert.Throws<WorkloadException>(() => Workload.Parse("""{ "steps": [ { "op": "alloc_pages", "label": "x", "node": -2 } ] }"""));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Numa_spill_fills_node_1_with_THISNODE_then_spills_to_node_0()
    {
        var (code, o, e) = TestSupport.Cli("run", "numa-spill", "--profile", "x86_64-numa2");
        Assert.True(code == 0, o + e);
        Assert.Contains("all expectations held", o);
        string row = o.Split('\n').Single(l => l.Contains(" node1-thisnode "));
        Assert.Matches(@"│ node1-thisnode │ \d{4}\s+│ [1-9]\d*\s+│", row);   // some succeeded, then THISNODE refused
        Assert.Matches(@"│ spilled\s+│ 128\s+│ 0\s+│", o.Split('\n').Single(l => l.Contains(" spilled ")));
    }
}
