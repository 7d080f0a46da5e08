// Memory policies on a two-node machine: set_mempolicy()'s modes and errors, interleaved pages and their
// numa_interleave counts, vmalloc per node and under interleave (N0=/N1= in /proc/vmallocinfo, per release), and the
// boot-time interleave of the large system hashes (hashdist).
using Kmem.Paging;
using static Kmem.Tests.NumaAllocTests;

namespace Kmem.Tests;

public class NumaPolicyTests
{
    private static string VmallocLine(Machine m, nint a) =>
        m.ProcFs.Read("/proc/vmallocinfo").Split('\n').Single(l => l.StartsWith($"0x{a:x16}-"));

    private static int[] NodesOf(Machine m, nint a, int pages) =>
        Enumerable.Range(0, pages).Select(i => m.PageToNid(m.VmallocToPage(a + i * 4096))).ToArray();

    [Fact]
    public void Interleave_alternates_the_nodes_and_counts_its_hits()
    {
        using var m = TwoNode();
        long il0 = m.Pages.NodeNumaEventState(0, NumaStat.Interleave), il1 = m.Pages.NodeNumaEventState(1, NumaStat.Interleave);
        var (nodes, policy, after) = OnCpu(m, 3, () =>
        {
            m.SetMempolicy(MemPolicyMode.Interleave, 0, 1);
            var pages = Enumerable.Range(0, 10).Select(i => m.AllocPages(Gfp.Kernel, i % 2)).ToArray();
            var r = pages.Select(m.PageToNid).ToArray();
            var pol = m.GetMempolicy();
            for (int i = 0; i < pages.Length; i++) m.FreePages(pages[i], i % 2);
            m.SetMempolicy(MemPolicyMode.Default);
            var local = m.AllocPage(Gfp.Kernel);
            int back = m.PageToNid(local);
            m.FreePage(local);
            return (r, pol, back);
        });
        Assert.Equal([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], nodes);
        Assert.Equal(MemPolicyMode.Interleave, policy.Mode);
        Assert.Equal([0, 1], policy.Nodes);
        Assert.Equal(1, after);
        m.DrainAllPages();
        Assert.Equal(il0 + 5, m.Pages.NodeNumaEventState(0, NumaStat.Interleave));
        Assert.Equal(il1 + 5, m.Pages.NodeNumaEventState(1, NumaStat.Interleave));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Preferred_and_bind_steer_alloc_pages_but_not_alloc_pages_node_or_thisnode()
    {
        using var m = TwoNode();
        OnCpu(m, 0, () =>
        {
            m.SetMempolicy(MemPolicyMode.Preferred, 1, 0); // only the first node of the mask counts: the lowest
            Assert.Equal([0], m.GetMempolicy().Nodes);
            m.SetMempolicy(MemPolicyMode.Preferred, 1);
            Assert.Equal([1], m.GetMempolicy().Nodes);
            var p = m.AllocPage(Gfp.Kernel);
            Assert.Equal(1, m.PageToNid(p));
            m.FreePage(p);
            m.SetMempolicy(MemPolicyMode.Bind, 1);
            p = m.AllocPages(Gfp.Kernel, 1);
            Assert.Equal(1, m.PageToNid(p));
            m.FreePages(p, 1);
            // __alloc_pages_node() and __GFP_THISNODE ignore the task policy (NUMA_NO_NODE is the thread's node).
            p = m.AllocPagesNode(Machine.NumaNoNode, Gfp.Kernel, 2);
            Assert.Equal(0, m.PageToNid(p));
            m.FreePages(p, 2);
            p = m.AllocPagesNode(Machine.NumaNoNode, Gfp.Kernel, 0);
            Assert.Equal(0, m.PageToNid(p));
            m.FreePage(p);
            p = m.AllocPagesNode(0, Gfp.Kernel, 0);
            Assert.Equal(0, m.PageToNid(p));
            m.FreePage(p);
            p = m.AllocPage(Gfp.Kernel | Gfp.ThisNode);
            Assert.Equal(0, m.PageToNid(p));
            m.FreePage(p);
            // Below policy_zone (DMA32 here) MPOL_BIND does not apply: GFP_DMA is node 0's DMA.
            p = m.AllocPage(Gfp.Kernel | Gfp.Dma);
            Assert.Equal(0, m.PageToNid(p));
            m.FreePage(p);
            m.SetMempolicy(MemPolicyMode.Local);
            Assert.Equal(MemPolicyMode.Local, m.GetMempolicy().Mode);
            p = m.AllocPage(Gfp.Kernel);
            Assert.Equal(0, m.PageToNid(p));
            m.FreePage(p);
            m.SetMempolicy(MemPolicyMode.Preferred); // no node: local
            Assert.Equal(MemPolicyMode.Local, m.GetMempolicy().Mode);
        });
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Bad_policies_are_refused_as_the_syscall_refuses_them()
    {
        using var m = TwoNode();
        OnCpu(m, 0, () =>
        {
            m.SetMempolicy(MemPolicyMode.Interleave, 0, 1);
            void Refused(Action a, string log)
            {
                var e = TestSupport.Rejected<MempolicyException>(m, a, log, () => string.Join(",", m.GetMempolicy().Nodes) + m.GetMempolicy().Mode);
                Assert.Equal(-22, e.Errno);
            }
            Refused(() => m.SetMempolicy(MemPolicyMode.Bind), "set_mempolicy(Bind, []): -EINVAL: the node set is empty");
            Refused(() => m.SetMempolicy(MemPolicyMode.Interleave), "-EINVAL: the node set is empty");
            Refused(() => m.SetMempolicy(MemPolicyMode.Default, 0), "-EINVAL: MPOL_DEFAULT takes no nodes");
            Refused(() => m.SetMempolicy(MemPolicyMode.Local, 1), "-EINVAL: MPOL_LOCAL takes no nodes");
            Refused(() => m.SetMempolicy(MemPolicyMode.Bind, 5), "-EINVAL: no node of the set has memory");
            Refused(() => m.SetMempolicy(MemPolicyMode.Bind, 64), "-EINVAL: node 64 is beyond MAX_NUMNODES");
            Refused(() => m.SetMempolicy(MemPolicyMode.Bind, -1), "-EINVAL: node -1 is beyond MAX_NUMNODES");
            Refused(() => m.SetMempolicy((MemPolicyMode)7, 0), "-EINVAL: mode 7 is not a policy mode");
            Assert.Equal(MemPolicyMode.Interleave, m.GetMempolicy().Mode);
            // A node without memory in the set is dropped, as nodes_and() with N_MEMORY drops it.
            m.SetMempolicy(MemPolicyMode.Interleave, 1, 7);
            Assert.Equal([1], m.GetMempolicy().Nodes);
        });
        using var one = TestSupport.Small();
        var e = TestSupport.Rejected<MempolicyException>(one, () => one.SetMempolicy(MemPolicyMode.Interleave, 0), "-ENOSYS");
        Assert.Equal(-38, e.Errno);
        Assert.Throws<ArgumentNullException>(() => m.SetMempolicy(MemPolicyMode.Bind, null!));
    }

    [Fact]
    public void VmallocNode_takes_that_nodes_pages_and_vmallocinfo_counts_them()
    {
        using var m = TwoNode();
        OnCpu(m, 0, () =>
        {
            nint a = m.VmallocNode(10 * 4096, 1);
            Assert.All(NodesOf(m, a, 10), n => Assert.Equal(1, n));
            Assert.EndsWith(" pages=10 vmalloc N1=10", VmallocLine(m, a));
            nint b = m.Vmalloc(3 * 4096); // the thread's node
            Assert.EndsWith(" pages=3 vmalloc N0=3", VmallocLine(m, b));
            m.Vfree(a);
            m.Vfree(b);
        });
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData("6.6", "runs")]
    [InlineData("5.14", "local")]
    [InlineData("5.10", "alternate")]
    public void Vmalloc_under_interleave_spreads_its_pages_as_the_release_does(string version, string how)
    {
        // 6.6: alloc_pages_bulk_array_interleave() gives each node of the set one run (the first runs a page more);
        // 5.13-5.14's bulk allocator ignored the policy (the thread's node, 1 here); before 5.13 the pages alternate
        // one by one. Where the cursor stands between areas depends on the slab pages their page arrays took (those
        // come from alloc_pages() under the same policy), so only each area's own pattern is checked.
        using var m = TwoNode(version);
        OnCpu(m, 2, () =>
        {
            m.SetMempolicy(MemPolicyMode.Interleave, 0, 1);
            nint a = m.Vmalloc(64 * 4096), b = m.Vmalloc(5 * 4096);
            int[] na = NodesOf(m, a, 64), nb = NodesOf(m, b, 5);
            switch (how)
            {
                case "runs":
                    Assert.EndsWith(" pages=64 vmalloc N0=32 N1=32", VmallocLine(m, a));
                    Assert.Equal(Enumerable.Repeat(na[0], 32).Concat(Enumerable.Repeat(1 - na[0], 32)), na);
                    Assert.Equal(Enumerable.Repeat(nb[0], 3).Concat(Enumerable.Repeat(1 - nb[0], 2)), nb);
                    break;
                case "alternate":
                    Assert.EndsWith(" pages=64 vmalloc N0=32 N1=32", VmallocLine(m, a));
                    Assert.Equal(Enumerable.Range(0, 64).Select(i => (na[0] + i) % 2), na);
                    Assert.Equal(Enumerable.Range(0, 5).Select(i => (nb[0] + i) % 2), nb);
                    break;
                default:
                    Assert.EndsWith(" pages=64 vmalloc N1=64", VmallocLine(m, a));
                    Assert.EndsWith(" pages=5 vmalloc N1=5", VmallocLine(m, b));
                    break;
            }
            m.Vfree(a);
            m.Vfree(b);
            m.SetMempolicy(MemPolicyMode.Default);
        });
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_boot_interleaves_the_large_system_hashes_over_both_nodes()
    {
        using var m = Machine.Boot("x86_64-numa2");
        string dmesg = m.Dmesg();
        // 6.6 x86_64: vmalloc_huge() maps a table whose per-node share reaches 2 MiB with PMD blocks.
        Assert.Matches(@"Dentry cache hash table entries: \d+ \(order: \d+, \d+ bytes, vmalloc hugepage\)", dmesg);
        Assert.Matches(@"Inode-cache hash table entries: \d+ \(order: \d+, \d+ bytes, vmalloc hugepage\)", dmesg);
        Assert.Matches(@"Mount-cache hash table entries: \d+ \(order: \d+, \d+ bytes, vmalloc\)", dmesg);
        var lines = m.ProcFs.Read("/proc/vmallocinfo").Split('\n').Where(l => l.Contains(" alloc_large_system_hash")).ToArray();
        Assert.True(lines.Length >= 4);
        foreach (var l in lines)
        {
            var g = System.Text.RegularExpressions.Regex.Match(l, @" pages=(\d+) vmalloc( vpages)? N0=(\d+) N1=(\d+)$");
            Assert.True(g.Success, l);
            int pages = int.Parse(g.Groups[1].Value), n0 = int.Parse(g.Groups[3].Value), n1 = int.Parse(g.Groups[4].Value);
            Assert.Equal(pages, n0 + n1);
            Assert.InRange(n0 - n1, 0, 1);
        }
        // The huge tables' pages come in 512-page blocks, one block per interleave step.
        foreach (var a in m.VmallocAreas.Where(a => a.Caller.StartsWith("alloc_large_system_hash") && a.NrPages >= 1024))
        {
            var nodes = Enumerable.Range(0, a.NrPages).Select(i => m.PageToNid(m.VmallocToPage(a.Address + i * 4096))).ToArray();
            Assert.Equal(Enumerable.Range(0, a.NrPages).Select(i => nodes[0] ^ (i / 512 % 2)), nodes);
        }
        // After boot the booting thread is back to the default policy.
        Assert.Equal(MemPolicyMode.Default, m.GetMempolicy().Mode);
        var p = MachineProfile.Embedded("x86_64-numa2");
        using (var small = Machine.Boot(p with { Cmdline = (p.Cmdline + " nohugevmalloc").Trim() }))
        {
            Assert.Matches(@"Dentry cache hash table entries: \d+ \(order: \d+, \d+ bytes, vmalloc\)", small.Dmesg());
            Assert.Contains(small.ProcFs.Read("/proc/vmallocinfo").Split('\n'), l => l.Contains(" alloc_large_system_hash") && l.Contains(" N0=") && l.Contains(" N1="));
        }
        // hashdist=0 keeps the early tables linear.
        using var off = Machine.Boot(p with { Cmdline = (p.Cmdline + " hashdist=0").Trim() });
        Assert.Matches(@"Dentry cache hash table entries: \d+ \(order: \d+, \d+ bytes, linear\)", off.Dmesg());
        Assert.DoesNotContain(" alloc_large_system_hash", off.ProcFs.Read("/proc/vmallocinfo"));
    }

    [Fact]
    public void Before_5_3_a_one_node_64_bit_numa_kernel_vmallocs_its_hashes_too()
    {
        // fixup_hashdist() (5.3) is what turns hashdist off on one node; 4.19 keeps HASHDIST_DEFAULT.
        using var m = Machine.Boot(TestSupport.AtRelease("x86_64", "4.19", ("NUMA", true)));
        var lines = m.ProcFs.Read("/proc/vmallocinfo").Split('\n').Where(l => l.Contains(" alloc_large_system_hash")).ToArray();
        Assert.True(lines.Length >= 2);
        Assert.All(lines, l => Assert.Matches(@" pages=(\d+) vmalloc( vpages)? N0=\1$", l));
        using var off = Machine.Boot(TestSupport.AtRelease("x86_64", "4.19", ("NUMA", false)));
        Assert.DoesNotContain(" alloc_large_system_hash", off.ProcFs.Read("/proc/vmallocinfo"));
    }

    [Fact]
    public void A_one_node_numa_kernel_keeps_linear_hashes_and_prints_N0()
    {
        var p = TestSupport.AtRelease("x86_64", "6.6", ("NUMA", true));
        using var m = Machine.Boot(p);
        Assert.Matches(@"Dentry cache hash table entries: \d+ \(order: \d+, \d+ bytes, linear\)", m.Dmesg());
        nint a = m.Vmalloc(2 * 4096);
        Assert.EndsWith(" pages=2 vmalloc N0=2", VmallocLine(m, a));
        m.Vfree(a);
    }
}
