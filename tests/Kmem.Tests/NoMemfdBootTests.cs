// Every embedded board boots on the no-memfd fallback (macOS, Windows, KMEM_NO_MEMFD=1 on Linux), says so and why
// in its boot log, names each boot step it skips, and shows every /proc and /sys view; the switch that forces the
// fallback is per machine (per flow of control) for tests and per process (an environment variable) for users.
using System.Diagnostics;
using Kmem.Physical;

namespace Kmem.Tests;

public class NoMemfdBootTests
{
    public static TheoryData<string> Profiles() => new(MachineProfile.EmbeddedNames);

    [Theory]
    [MemberData(nameof(Profiles))]
    public void Every_embedded_profile_boots_on_the_fallback_and_reads_every_view(string name)
    {
        using var m = NoMemfd.Boot(name);
        Assert.False(m.IsFileBacked);
        string log = TestSupport.LogText(m);
        Assert.Contains(NoMemfd.BootLine, log);
        Assert.DoesNotContain("BUG", log);
        Assert.DoesNotContain("WARNING", log);
        TestSupport.AssertConsistent(m);
        using var reference = NoMemfd.BootMemfd(name);
        // The same files exist (/proc/vmallocinfo too, empty: no area can exist) and each reads without an error.
        Assert.Equal(reference.ProcFs.Paths.Order(), m.ProcFs.Paths.Order());
        foreach (string path in m.ProcFs.Paths) Assert.NotNull(m.ProcFs.Read(path));
        Assert.Equal("", m.ProcFs.Read("/proc/vmallocinfo"));
        Assert.Empty(m.VmallocAreas);
        Assert.Equal((0, 0), (m.VmallocStart, m.VmallocEnd));
        // The page allocator's zones and the slab caches are the same boards.
        Assert.Equal(reference.Zones.Select(z => (z.Name, z.Spanned, z.Present, z.Managed)), m.Zones.Select(z => (z.Name, z.Spanned, z.Present, z.Managed)));
    }

    [SkippableFact]
    public void The_switch_is_per_flow_so_a_memfd_machine_boots_beside_a_forced_one()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the memfd exists on Linux only");
        Skip.If(PhysicalMemory.NoMemfdRequested(Environment.GetEnvironmentVariable(PhysicalMemory.NoMemfdVariable)), "KMEM_NO_MEMFD is set for the whole run");
        using var forced = NoMemfd.Boot("rv1106");
        using var normal = Machine.Boot("rv1106");
        Assert.False(forced.IsFileBacked);
        Assert.True(normal.IsFileBacked);
        Assert.DoesNotContain("plain native block", normal.Dmesg());
        // A task started inside the scope inherits it; one started after it does not.
        Machine? inner;
        using (PhysicalMemory.ForceNativeScope()) inner = Task.Run(() => Machine.Boot("x86_64")).Result;
        using (inner) Assert.False(inner.IsFileBacked);
        using var after = Task.Run(() => Machine.Boot("x86_64")).Result;
        Assert.True(after.IsFileBacked);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData(" YES ", true)]
    [InlineData("on", true)]
    [InlineData("0", false)]
    [InlineData("", false)]
    [InlineData("false", false)]
    [InlineData("2", false)]
    [InlineData(null, false)]
    public void KMEM_NO_MEMFD_accepts_the_usual_words_for_yes(string? value, bool fallback) =>
        Assert.Equal(fallback, PhysicalMemory.NoMemfdRequested(value));

    [SkippableFact]
    public void KMEM_NO_MEMFD_1_puts_the_kmem_command_on_the_fallback_and_its_boot_log_says_why()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the variable matters on Linux only (elsewhere there is no memfd anyway)");
        string dll = Path.Combine(AppContext.BaseDirectory, "Kmem.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("boot");
        psi.Environment[PhysicalMemory.NoMemfdVariable] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "kmem boot did not finish");
        Assert.True(p.ExitCode == 0, stderr.Result);
        Assert.Contains("kmem: physical memory is a plain native block (no memfd: KMEM_NO_MEMFD is set): remapping is unavailable", stdout.Result);
    }

    [Fact]
    public void A_board_that_ioremaps_and_remaps_at_boot_skips_those_steps_and_says_so()
    {
        // rk3588 (arm64, 5.10): kernel/dma/pool.c's atomic pools are remapped and every device's registers ioremapped.
        using var m = NoMemfd.Boot("rk3588");
        using var reference = NoMemfd.BootMemfd("rk3588");
        string log = TestSupport.LogText(m);
        int windows = m.Profile.Devices.Count(d => d.UnitAddress is not null);
        Assert.True(windows > 0);
        Assert.Contains($"kmem: {windows} device register windows not ioremapped: this machine has no vmalloc window (no memfd)", log);
        Assert.Contains("kmem: DMA atomic_pool_kernel not remapped: this machine has no vmalloc window (no memfd); its CPU address is the linear map", log);
        // The pools' own lines are the kernel's, as with a memfd.
        foreach (var line in TestSupport.LogText(reference).Split('\n').Where(l => l.StartsWith("DMA: preallocated", StringComparison.Ordinal)))
            Assert.Contains(line, log);
        if (reference.IsFileBacked) Assert.Contains("ioremap", reference.ProcFs.Read("/proc/vmallocinfo"));   // (KMEM_NO_MEMFD unset)
    }

    [Fact]
    public void A_numa_board_names_the_hash_tables_it_would_vmalloc_and_keeps_their_lines()
    {
        using var m = NoMemfd.Boot("x86_64-numa2");
        using var reference = NoMemfd.BootMemfd("x86_64-numa2");
        string log = TestSupport.LogText(m);
        var hashLines = TestSupport.LogText(reference).Split('\n').Where(l => l.Contains(" hash table entries: ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(hashLines);
        Assert.Contains("hash table not allocated: it is vmalloc'ed", log);
        if (reference.IsFileBacked) Assert.Contains("alloc_large_system_hash", reference.ProcFs.Read("/proc/vmallocinfo"));
        // Every table's line is still printed (without the huge-vmalloc note a window would have given).
        foreach (var line in hashLines)
            Assert.Contains(line.Split(" hash table entries: ")[0] + " hash table entries: ", log);
        TestSupport.AssertConsistent(m);
    }
}
