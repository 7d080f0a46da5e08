// A /proc snapshot with the board's fdt: the machine comes from the device tree (the Luckfox Pico Mini's published
// tree, Fixtures/SOURCES.md) and is checked against the files. A snapshot made by booting that tree's machine agrees
// with it and rebuilds; files from another machine are contradicted line by line, and a bad blob names the fdt.
using System.Text.RegularExpressions;
using Xunit;

namespace Kmem.Tests;

public class ProcSnapshotFdtTests
{
    private static readonly string Dtb = Path.Combine(AppContext.BaseDirectory, "Fixtures", "dtb_rv1103g_luckfox_pico_mini_mainline_64M.dtb");

    private static MachineProfile TreeProfile(byte[] blob) => MachineProfile.FromDeviceTree(DeviceTree.Parse(blob)).Profile;

    /// <summary>The /proc files of <paramref name="m"/> after some allocations, as a user would copy them.</summary>
    private static Dictionary<string, string> Files(Machine m)
    {
        var held = new List<Page>();
        for (int i = 0; i < 200; i++) held.Add(m.AllocPages(Gfp.Kernel, i % 3));
        for (int i = 0; i < held.Count; i += 2) m.FreePages(held[i], i % 3);
        m.DrainAllPages();
        return new Dictionary<string, string>
        {
            ["pagetypeinfo"] = m.ProcFs.Read("/proc/pagetypeinfo"),
            ["buddyinfo"] = m.ProcFs.Read("/proc/buddyinfo"),
            ["zoneinfo"] = m.ProcFs.Read("/proc/zoneinfo"),
            ["meminfo"] = m.ProcFs.Read("/proc/meminfo"),
        };
    }

    [Fact]
    public void The_tree_gives_the_machine_and_the_files_of_its_boot_agree_and_rebuild()
    {
        byte[] blob = File.ReadAllBytes(Dtb);
        var p = TreeProfile(blob);
        using var src = Machine.Boot(p);
        var files = Files(src);
        var snap = ProcSnapshot.Parse(files, blob);
        Assert.DoesNotContain(snap.Findings, f => f.Fatal);
        Assert.Equal("Luckfox Pico Mini", snap.Fdt!.Root.GetString("model"));
        var derived = snap.DeriveProfile();
        Assert.Equal(p.Dram, derived.Dram);
        Assert.Equal((p.Arch, p.Cpus), (derived.Arch, derived.Cpus));
        Assert.Equal(p.Devices.Select(d => d.Name), derived.Devices.Select(d => d.Name));
        Assert.Contains(snap.Derived, d => d.Contains("fdt ("));
        var (m, _) = snap.Boot();
        using (m)
        {
            Assert.Equal(files["pagetypeinfo"], m.ProcFs.Read("/proc/pagetypeinfo"));
            Assert.Equal(files["buddyinfo"], m.ProcFs.Read("/proc/buddyinfo"));
        }
    }

    [Fact]
    public void Load_reads_the_fdt_file_of_the_directory()
    {
        byte[] blob = File.ReadAllBytes(Dtb);
        using var src = Machine.Boot(TreeProfile(blob));
        string dir = Directory.CreateTempSubdirectory("kmem-fdt-").FullName;
        try
        {
            foreach (var (name, text) in Files(src)) File.WriteAllText(Path.Combine(dir, name), text);
            File.WriteAllBytes(Path.Combine(dir, "fdt"), blob);
            var snap = ProcSnapshot.Load(dir);
            Assert.NotNull(snap.Fdt);
            Assert.Equal(1, snap.DeriveProfile().Cpus);
            Assert.Equal("imported", snap.DeriveProfile().Name);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Kmem_import_proc_reads_the_fdt_and_derives_the_machine_from_it()
    {
        byte[] blob = File.ReadAllBytes(Dtb);
        using var src = Machine.Boot(TreeProfile(blob));
        string dir = Directory.CreateTempSubdirectory("kmem-fdt-cli-").FullName;
        try
        {
            foreach (var (name, text) in Files(src)) File.WriteAllText(Path.Combine(dir, name), text);
            File.WriteAllBytes(Path.Combine(dir, "fdt"), blob);
            var (code, o, e) = TestSupport.Cli("import", "proc", dir);
            Assert.Equal("", e);
            Assert.Equal(0, code);
            Assert.Contains("# read: pagetypeinfo, buddyinfo, zoneinfo, meminfo, fdt\n", o);
            Assert.Contains("# derived: CPUs (1), architecture Arm, memory banks", o);
            Assert.DoesNotContain(": error:", o);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Files_of_another_machine_are_contradicted_at_their_lines()
    {
        byte[] blob = File.ReadAllBytes(Dtb);
        var p = TreeProfile(blob);
        // The files of a 32 MiB board: the tree says 64 MiB.
        using var src = Machine.Boot(p with { Dram = [new DramBank(0, 32UL << 20)] });
        var files = Files(src);
        files["meminfo"] = Regex.Replace(files["meminfo"], @"^MemTotal:\s+\d+", "MemTotal:       99999999", RegexOptions.Multiline);
        var snap = ProcSnapshot.Parse(files, blob);
        Assert.True(snap.HasFatalFindings);
        Assert.Contains(snap.Findings, f => f.Fatal && f.File == "pagetypeinfo" && f.Line > 0 && f.Message.Contains("pageblocks; the device tree's memory gives the zone"));
        var zoneinfo = files["zoneinfo"].Split('\n');
        int spannedLine = Array.FindIndex(zoneinfo, l => l.TrimStart().StartsWith("spanned", StringComparison.Ordinal)) + 1;
        Assert.Contains(snap.Findings, f => f.Fatal && f.File == "zoneinfo" && f.Line == spannedLine && f.Message.Contains($"spanned {32 << 8}; the device tree's machine has {64 << 8}"));
        Assert.Contains(snap.Findings, f => f.Fatal && f.File == "meminfo" && f.Line == 1 && f.Message.Contains("is more than the 65536 kB"));
        // The import refuses to build on contradicting files.
        Assert.Throws<ProcSnapshotException>(() => snap.Boot());
    }

    [Fact]
    public void A_cma_total_the_tree_does_not_reserve_is_a_finding()
    {
        byte[] blob = File.ReadAllBytes(Dtb);
        using var src = Machine.Boot(TreeProfile(blob));
        var files = Files(src);
        string mi = files["meminfo"];
        files["meminfo"] = mi.Contains("CmaTotal:") ? Regex.Replace(mi, @"^CmaTotal:\s+\d+", "CmaTotal:           8192", RegexOptions.Multiline) : mi + "CmaTotal:           8192 kB\n";
        int line = Array.FindIndex(files["meminfo"].Split('\n'), l => l.StartsWith("CmaTotal:", StringComparison.Ordinal)) + 1;
        var snap = ProcSnapshot.Parse(files, blob);
        Assert.Contains(snap.Findings, f => f.Fatal && f.File == "meminfo" && f.Line == line && f.Message.StartsWith("CmaTotal 8192 kB; the device tree reserves 0 kB", StringComparison.Ordinal));
    }

    [Fact]
    public void A_blob_that_is_not_a_device_tree_is_an_error_naming_the_fdt()
    {
        using var src = Machine.Boot(TreeProfile(File.ReadAllBytes(Dtb)));
        var e = Assert.Throws<ProcSnapshotException>(() => ProcSnapshot.Parse(Files(src), [1, 2, 3, 4, 5, 6, 7, 8]));
        Assert.Equal("fdt", e.File);
    }
}
