// `kmem profile from-dt FILE [--out board.json]`: a board's profile from its device tree. A .dtb (or a copy of a
// board's /sys/firmware/fdt) is read directly; a .dts is compiled with the device-tree compiler (dtc) when it is
// installed, found through KMEM_DTC or PATH. The profile JSON, with the derivation as comments, goes to stdout or --out.
using System.CommandLine;
using System.Diagnostics;

namespace Kmem.Cli.Verbs;

internal static class ProfileFromDtVerb
{
    /// <summary>The environment variable naming the dtc to run instead of the one on PATH (tests set it).</summary>
    public const string DtcVariable = "KMEM_DTC";

    public static Command Create(CliContext ctx)
    {
        var file = new Argument<string>("FILE") { Description = "The device tree: a .dtb, a copy of /sys/firmware/fdt, or a .dts (needs dtc)." };
        var output = new Option<string?>("--out", "-o") { Description = "Write the profile JSON to this file instead of stdout." };
        var name = new Option<string?>("--name") { Description = "The profile's name (default: from the root's compatible)." };
        var fromDt = new Command("from-dt", "Derive a machine profile from a board's device tree, as the kernel reads it at boot.") { file, output, name };
        fromDt.SetAction(pr => Run(ctx, pr.GetValue(file)!, pr.GetValue(output), pr.GetValue(name)));
        return new Command("profile", "Make a machine profile from a board's own files.") { fromDt };
    }

    private static int Run(CliContext ctx, string file, string? output, string? name)
    {
        if (!File.Exists(file)) throw new CliInputException($"profile from-dt: {file}: no such file");
        byte[] blob = file.EndsWith(".dts", StringComparison.OrdinalIgnoreCase) ? Compile(file) : File.ReadAllBytes(file);
        DeviceTreeProfile result;
        try
        {
            var tree = DeviceTree.Parse(blob);
            result = MachineProfile.FromDeviceTree(tree, new DeviceTreeOptions { Name = name, Version = ctx.Kernel });
        }
        catch (DeviceTreeException e)
        {
            throw new CliInputException($"profile from-dt: {file}: {e.Message}", e);
        }
        if (output is null) ctx.Out.Write(result.Json);
        else
        {
            try
            {
                File.WriteAllText(output, result.Json);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliInputException($"profile from-dt: cannot write {output}: {e.Message}", e);
            }
            ctx.Err.WriteLine($"kmem: wrote {output} ({result.Profile.Name}: {result.Profile.Arch.ToString().ToLowerInvariant()}, {result.Profile.Cpus} CPUs, {result.Profile.TotalRam >> 20} MiB, {result.Profile.Cma.Count} CMA area(s), {result.Profile.Devices.Count} devices)");
        }
        return 0;
    }

    /// <summary>The dtc to run: $KMEM_DTC when set, else the first dtc on PATH; null when there is none.</summary>
    internal static string? FindDtc()
    {
        if (Environment.GetEnvironmentVariable(DtcVariable) is { Length: > 0 } given) return File.Exists(given) ? given : null;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, OperatingSystem.IsWindows() ? "dtc.exe" : "dtc");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static byte[] Compile(string dts)
    {
        string dtc = FindDtc() ?? throw new CliInputException(
            $"profile from-dt: {dts} is device tree source and dtc was not found (install it: apt install device-tree-compiler; or pass the .dtb)");
        var psi = new ProcessStartInfo(dtc) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { "-q", "-I", "dts", "-O", "dtb", dts }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new CliInputException($"profile from-dt: could not start {dtc}");
        using var ms = new MemoryStream();
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.BaseStream.CopyTo(ms);
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            string first = err.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? $"exit code {p.ExitCode}";
            throw new CliInputException($"profile from-dt: dtc could not compile {dts}: {first} (a .dts with #include needs the C preprocessor first, or pass the .dtb)");
        }
        return ms.ToArray();
    }
}
