// Shared helpers for the tests: small machines, fixture files, and a snapshot of allocator state
// used to prove that a rejected call changed nothing.
using Kmem.Diagnostics;

namespace Kmem.Tests;

internal static class TestSupport
{
    /// <summary>A small 32-bit board (32 MiB, one 8 MiB CMA area) so that exhaustion is quick.</summary>
    public const string SmallProfileJson = """
    {
      "name": "small", "arch": "arm", "cpus": 2,
      "dram": [ { "base": "0x60000000", "size": "32M" } ],
      "kernel": { "base": "0x60008000", "code": "1M", "rwdata": "128K", "rodata": "256K", "init": "64K", "bss": "64K" },
      "cma": [ { "name": "small-cma", "base": "0x61000000", "size": "8M" } ]
    }
    """;

    public static Machine Small()
    {
        var m = Machine.Boot(MachineProfile.Parse(SmallProfileJson));
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    /// <summary>The log's text without timestamps, one record a line (for multi-line report checks).</summary>
    public static string LogText(Machine m) => string.Join("\n", m.Log.Snapshot().Select(r => r.Text)) + "\n";

    public static string Fixture(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", name));

    /// <summary>Everything observable about the page allocator's free memory, as text.</summary>
    public static string State(Machine m) =>
        m.ProcFs.Read("/proc/pagetypeinfo") + m.ProcFs.Read("/proc/zoneinfo") +
        string.Join(",", m.Zones.Select(z => $"{z.Name}:{z.FreePages}/{z.PcpPages}/{z.FreeCmaPages}"));

    /// <summary>
    /// A misuse must raise <typeparamref name="T"/>, log <paramref name="logText"/>, and leave the machine's state
    /// (plus <paramref name="moreState"/>, what the caller also watches) exactly as it was, every invariant holding.
    /// </summary>
    public static T Rejected<T>(Machine m, Action misuse, string logText, Func<string>? moreState = null) where T : Exception
    {
        string Now() => State(m) + moreState?.Invoke();
        string before = Now();
        int logLen = m.Dmesg().Length;
        var ex = Assert.Throws<T>(misuse);
        Assert.Equal(before, Now());
        Assert.Contains(logText, m.Dmesg()[logLen..]);
        AssertConsistent(m);
        return ex;
    }

    /// <summary>Runs the <c>kmem</c> command in-process: its exit code and what it wrote to stdout and stderr.</summary>
    /// <summary>An embedded board at another release, its own config changed by <paramref name="config"/> (the board's
    /// options stay unless named).</summary>
    public static MachineProfile AtRelease(string profile, string version, params (string Name, object Value)[] config)
    {
        var p = profile == "arm" ? GenericArm() : MachineProfile.Embedded(profile);
        var options = new Dictionary<string, object>(p.ConfigOptions);
        foreach (var (name, value) in config) options[name] = value;
        return p with { Version = KernelVersion.Parse(version), ConfigOptions = options };
    }

    /// <summary>
    /// A generic 32-bit arm board: the rv1106's hardware (one Cortex-A7, 256 MiB) with the arm defconfig instead of
    /// Rockchip's vendor config (SMP, HIGHMEM, SLUB_DEBUG, MAX_ORDER 11, CMA areas in the buddy allocator; the RK heap's
    /// driver kept, so the same 32 MiB area exists). Tests of
    /// generic arm behaviour use it under the name "arm" in <see cref="AtRelease"/>.
    /// </summary>
    public static MachineProfile GenericArm()
    {
        var p = MachineProfile.Embedded("rv1106");
        // Rockchip's RK heap stays (its rk_dma_heap_cma= word places the 32 MiB area), as kernel.org CMA: in the buddy allocator.
        return p with
        {
            Name = "arm", Version = KernelVersion.Parse("5.10"), MaxOrder = 11,
            ConfigOptions = new Dictionary<string, object> { ["DMABUF_HEAPS_ROCKCHIP"] = true, ["CMA_DEBUGFS"] = true },
        };
    }

    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Kmem.Cli.KmemCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>
    /// Random page work: <paramref name="steps"/> steps, each freeing a held block (one time in three) or allocating one
    /// of <paramref name="kinds"/> (with __GFP_NOWARN) at the order <paramref name="order"/> draws. The blocks still held.
    /// </summary>
    public static List<(Page Page, int Order)> Churn(Machine m, Random rng, int steps, Gfp[] kinds, Func<Random, int> order)
    {
        var held = new List<(Page Page, int Order)>();
        for (int i = 0; i < steps; i++)
        {
            if (held.Count > 0 && rng.Next(3) == 0)
            {
                int k = rng.Next(held.Count);
                m.FreePages(held[k].Page, held[k].Order);
                held[k] = held[^1];
                held.RemoveAt(held.Count - 1);
                continue;
            }
            int o = order(rng);
            var p = m.AllocPages(kinds[rng.Next(kinds.Length)] | Gfp.NoWarn, o);
            if (!p.IsNull) held.Add((p, o));
        }
        return held;
    }

    public static void AssertConsistent(Machine m)
    {
        var errors = m.VerifyIntegrity();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(20)));
    }

    /// <summary>Per-order free block counts across zones after draining the per-CPU lists.</summary>
    public static string Buddy(Machine m)
    {
        m.DrainAllPages();
        return m.ProcFs.Read("/proc/buddyinfo");
    }

    /// <summary>A shrinker over pages a test hoards: it frees them back on a scan, most recent first.</summary>
    public sealed class PageHoardShrinker(Machine m, List<Page> hoard, string name = "test-hoard", bool emptyIsShrinkEmpty = false) : Shrinker(name)
    {
        public int Scans;

        public override long CountObjects(ShrinkControl sc)
        {
            lock (hoard) return hoard.Count == 0 && emptyIsShrinkEmpty ? ShrinkEmpty : hoard.Count;
        }

        public override long ScanObjects(ShrinkControl sc)
        {
            Interlocked.Increment(ref Scans);
            long freed = 0;
            lock (hoard)
            {
                while (freed < sc.NrToScan && hoard.Count > 0)
                {
                    m.FreePage(hoard[^1]);
                    hoard.RemoveAt(hoard.Count - 1);
                    freed++;
                }
            }
            return freed;
        }
    }
}
