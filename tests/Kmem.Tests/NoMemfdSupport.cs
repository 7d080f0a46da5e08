// Helpers for the tests of the no-memfd fallback (what macOS and Windows get): machines booted on a plain
// native block in this process, beside machines on a memfd, and the checks every fallback test shares.
using Kmem.Physical;

namespace Kmem.Tests;

internal static class NoMemfd
{
    /// <summary>The boot log's line on the fallback, as a test forces it.</summary>
    public const string BootLine = "kmem: physical memory is a plain native block (no memfd: forced for this machine): remapping is unavailable";

    /// <summary>Boots a profile on a plain native block, whatever the host.</summary>
    public static Machine Boot(MachineProfile profile, string? cmdline = null)
    {
        using (PhysicalMemory.ForceNativeScope())
        {
            var m = cmdline is null ? Machine.Boot(profile) : Machine.Boot(profile, cmdline);
            m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
            return m;
        }
    }

    /// <summary>Free pages of every zone once the per-CPU lists are drained: what "nothing lost" compares.</summary>
    public static long FreePages(Machine m)
    {
        m.DrainAllPages();
        return m.Zones.Sum(z => z.FreePages);
    }

    /// <summary>Boots an embedded profile on a plain native block.</summary>
    public static Machine Boot(string name, string? cmdline = null) => Boot(MachineProfile.Embedded(name), cmdline);

    /// <summary>The same profile on a memfd (the reference a fallback result is compared with).</summary>
    public static Machine BootMemfd(string name, string? cmdline = null)
    {
        var m = cmdline is null ? Machine.Boot(name) : Machine.Boot(name, cmdline);
        m.Sysctl.Kmem.ReclaimRetryWait = TimeSpan.Zero;
        return m;
    }

    /// <summary>Runs the <c>kmem</c> command in-process with every machine it boots on the fallback.</summary>
    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        using (PhysicalMemory.ForceNativeScope()) return TestSupport.Cli(args);
    }

    /// <summary>The command's output without the times it measured (they differ from run to run).</summary>
    public static string WithoutTimes(string output) => System.Text.RegularExpressions.Regex.Replace(
        System.Text.RegularExpressions.Regex.Replace(output, @"\b\d+(\.\d+)? ?(ms|µs|us|ns|s)\b", "T"), @"""elapsedMs"": [0-9.]+", "T");

    /// <summary>
    /// The command on the fallback either ends as it does on a memfd, with the same output, or, where the memfd run got
    /// further, stops with exit 1 and a message naming the remapping it lacks; never an internal error.
    /// </summary>
    public static void AssertRanOrRefused(params string[] args) => AssertRanOrRefused(sameFigures: true, args);

    /// <summary>
    /// The same; with <paramref name="sameFigures"/> false (a NUMA board, whose boot vmallocs its large hash tables, which
    /// the fallback does not allocate) the output may differ in its figures but not in its lines.
    /// </summary>
    public static void AssertRanOrRefused(bool sameFigures, params string[] args)
    {
        var (code, o, e) = Cli(args);
        var (refCode, refOut, refErr) = TestSupport.Cli(args);
        Assert.DoesNotContain("internal error", e);
        if (code == refCode)
        {
            if (!sameFigures)
            {
                static string Words(string text) => System.Text.RegularExpressions.Regex.Replace(WithoutTimes(text), @"[0-9.]+", "N");
                Assert.Equal(Words(refOut).Split('\n').Length, Words(o).Split('\n').Length);
                Assert.Equal(Words(refErr), Words(e));
                return;
            }
            Assert.Equal(WithoutTimes(refOut), WithoutTimes(o));
            Assert.Equal(WithoutTimes(refErr), WithoutTimes(e));
            return;
        }
        Assert.True(code == 1, $"exit {code} (memfd: {refCode}): {e}");
        Assert.Contains("needs remappable memory", e);
        Assert.Contains("plain native block", e);
    }

    /// <summary>
    /// A feature the fallback cannot give must be refused with <see cref="PlatformNotSupportedException"/> whose message
    /// names <paramref name="feature"/> and the reason, and leave the page allocator and every invariant as they were.
    /// </summary>
    public static PlatformNotSupportedException Refused(Machine m, string feature, Action call)
    {
        string before = TestSupport.State(m);
        int logLen = m.Dmesg().Length;
        var ex = Assert.Throws<PlatformNotSupportedException>(call);
        Assert.Contains(feature, ex.Message);
        Assert.Contains("needs remappable memory", ex.Message);
        string line = m.Dmesg()[logLen..];
        Assert.Contains(feature, line);
        Assert.Contains(": refused: no remappable memory", line);
        Assert.Equal(before, TestSupport.State(m));
        TestSupport.AssertConsistent(m);
        return ex;
    }
}
