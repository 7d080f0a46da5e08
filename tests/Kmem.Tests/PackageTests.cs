// The packages, end to end: packs the library (Kmem) and the tool (Kmem.Tool) from this repository into a temporary
// local feed, checks what each package carries, installs the tool from the feed and runs `kmem`, and builds a console
// app against the Kmem *package* whose program is the README's first example. Also checks that the README says how to
// install both. Nothing here needs the network, and nothing is read from or written to the user's NuGet cache except
// the repository's own build dependencies, which `dotnet test` has already restored.
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Xunit.Abstractions;

namespace Kmem.Tests;

/// <summary>
/// The packaging tests run alone, after every parallel test: they start `dotnet pack`/`build` processes that take both
/// cores for a minute, which would only slow the other tests down (and make their timing-sensitive parts flaky).
/// </summary>
[CollectionDefinition(nameof(Packaging), DisableParallelization = true)]
public sealed class Packaging;

[Collection(nameof(Packaging))]
public sealed class PackageTests(PackageTests.Feed feed, ITestOutputHelper log) : IClassFixture<PackageTests.Feed>
{
    /// <summary>
    /// A temporary folder with the two packages packed once for the class: feed/ (the local feed), art/ (the pack's
    /// build outputs), packages/ (a private NuGet packages folder for the consumers), tools/ and app/.
    /// </summary>
    public sealed class Feed : IDisposable
    {
        public string Repo { get; } = RepoRoot();
        public string Root { get; }
        public string FeedDir => Path.Combine(Root, "feed");
        public string PackagesDir => Path.Combine(Root, "packages");
        /// <summary>A version no earlier run used: a package cache can never answer with stale bits of the same version.</summary>
        public string Version { get; }
        public XElement Props { get; }
        public string Dotnet { get; } = DotnetExecutable();
        /// <summary>Each process run and its wall time, for the test output (`--logger "console;verbosity=detailed"`).</summary>
        public List<string> Timings { get; } = [];

        public Feed()
        {
            Root = Directory.CreateTempSubdirectory("kmem-pack-").FullName;
            try
            {
                Props = XDocument.Load(Path.Combine(Repo, "Directory.Build.props")).Root!;
                Version = $"{Prop("VersionPrefix")}-test.g{Guid.NewGuid():N}";
                // Keep the consumers away from any Directory.Build.* or central package versions above the temp folder.
                foreach (var f in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
                    File.WriteAllText(Path.Combine(Root, f), "<Project />\n");
                // Only the local feed: restores and installs from it never need the network.
                File.WriteAllText(Path.Combine(Root, "nuget.config"), $"""
                    <?xml version="1.0" encoding="utf-8"?>
                    <configuration>
                      <packageSources>
                        <clear />
                        <add key="kmem-test-feed" value="{FeedDir}" />
                      </packageSources>
                    </configuration>
                    """);
                // Packing happens in the repository (so SourceLink and the repository commit come from its git clone) while
                // this test run's own Debug outputs are loaded. --artifacts-path sends everything the pack writes (restore's
                // project.assets.json, obj/, bin/, publish/) under the temp folder, with the projects' own bin/ and obj/
                // excluded from their items (the SDK does so in artifacts mode), so it cannot disturb or read the test
                // run's build. Release and the unique version are global properties, so Kmem.Cli's reference to Kmem
                // builds the same Kmem once. Audit is off: it would ask the package sources for vulnerability data.
                // Analyzers are skipped (source generators still run): they only report, never change the output, they
                // already ran over the same sources in this run's build, and they are two thirds of the library's compile
                // time (127 s against 46 s for `dotnet pack src/Kmem` measured on a busy 2-core host).
                foreach (var project in new[] { "src/Kmem", "src/Kmem.Cli" })
                    Run(Repo, null, TimeSpan.FromMinutes(10), "pack", Path.Combine(Repo, project), "-c", "Release", "-o", FeedDir,
                        "--artifacts-path", Path.Combine(Root, "art"), $"-p:Version={Version}", "-p:NuGetAudit=false",
                        "-p:RunAnalyzers=false", "-nodeReuse:false");
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public string Prop(string name) =>
            Props.Descendants(name).Select(e => e.Value.Trim()).FirstOrDefault(v => v.Length > 0)
            ?? throw new InvalidDataException($"Directory.Build.props sets no {name}");

        /// <summary>Runs `dotnet <paramref name="args"/>`; fails with the whole output unless it exits with 0.</summary>
        public string Run(string dir, string? nugetPackages, TimeSpan timeout, params string[] args)
        {
            var watch = Stopwatch.StartNew();
            var (code, output) = RunProcess(Dotnet, dir, Environment(nugetPackages), timeout, args);
            lock (Timings) Timings.Add($"{watch.Elapsed.TotalSeconds,6:F1} s  {Dotnet} {string.Join(" ", args.Take(2))}");
            Assert.True(code == 0, $"dotnet {string.Join(" ", args)} exited with {code}:\n{output}");
            return output;
        }

        /// <summary>The environment of a child process: quiet, no lingering build nodes, and the packages folder given.</summary>
        public Dictionary<string, string?> Environment(string? nugetPackages)
        {
            var env = new Dictionary<string, string?>
            {
                ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1", ["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1",
                ["MSBUILDDISABLENODEREUSE"] = "1",
                // What `dotnet test` sets for its own MSBuild; a child dotnet finds its SDK by itself.
                ["MSBuildExtensionsPath"] = null, ["MSBuildSDKsPath"] = null, ["MSBUILD_EXE_PATH"] = null,
                ["MSBuildLoadMicrosoftTargetsReadOnly"] = null,
            };
            // An apphost (the installed `kmem`) looks for the runtime in DOTNET_ROOT first: the dotnet running the tests.
            if (Path.IsPathRooted(Dotnet))
                env["DOTNET_ROOT"] = Path.GetDirectoryName(new FileInfo(Dotnet).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Dotnet);
            if (nugetPackages != null) env["NUGET_PACKAGES"] = nugetPackages;
            return env;
        }

        public void Dispose()
        {
            try { Directory.Delete(Root, recursive: true); }
            catch (IOException) { }            // a file still held open: the folder is in the temp directory anyway
            catch (UnauthorizedAccessException) { }
        }
    }

    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromMinutes(5);

    [Fact]
    public void The_library_package_carries_the_assembly_its_docs_the_readme_the_licence_and_its_symbols()
    {
        var nupkg = Path.Combine(feed.FeedDir, $"Kmem.{feed.Version}.nupkg");
        var files = Entries(nupkg);
        foreach (var f in new[] { "lib/net10.0/Kmem.dll", "lib/net10.0/Kmem.xml", "README.md", "LICENSE", "Kmem.nuspec" })
            Assert.Contains(f, files);
        Assert.True(files.Count(f => f.StartsWith("lib/", StringComparison.Ordinal)) == 2, "lib/ holds more than the dll and its docs: " + string.Join(", ", files));
        Assert.Contains("<member name=\"T:Kmem.Machine\">", Text(nupkg, "lib/net10.0/Kmem.xml"));
        Assert.Equal(File.ReadAllText(Path.Combine(feed.Repo, "README.md")), Text(nupkg, "README.md"));
        Assert.Equal(File.ReadAllText(Path.Combine(feed.Repo, "LICENSE")), Text(nupkg, "LICENSE"));

        var meta = Nuspec(nupkg);
        CheckMetadata(meta, "Kmem");
        // BCL only: the library depends on no package.
        Assert.DoesNotContain(meta.Descendants(), e => e.Name.LocalName == "dependency");

        // The assembly is the packed version (with the commit after a '+' when built in a git clone).
        var dll = Extract(nupkg, "lib/net10.0/Kmem.dll");
        string? product = FileVersionInfo.GetVersionInfo(dll).ProductVersion;
        Assert.True(product != null && (product == feed.Version || product.StartsWith(feed.Version + "+", StringComparison.Ordinal)),
            $"Kmem.dll's informational version is {product}, the package's {feed.Version}");

        var snupkg = Path.Combine(feed.FeedDir, $"Kmem.{feed.Version}.snupkg");
        Assert.Contains("lib/net10.0/Kmem.pdb", Entries(snupkg));
        Assert.Equal("BSJB"u8.ToArray(), Bytes(snupkg, "lib/net10.0/Kmem.pdb")[..4]);     // a portable PDB (metadata signature)
    }

    [Fact]
    public void The_tool_package_carries_the_kmem_command_the_readme_the_licence_and_its_symbols()
    {
        var nupkg = Path.Combine(feed.FeedDir, $"Kmem.Tool.{feed.Version}.nupkg");
        var files = Entries(nupkg);
        foreach (var f in new[] { "tools/net10.0/any/DotnetToolSettings.xml", "tools/net10.0/any/Kmem.Cli.dll", "tools/net10.0/any/Kmem.dll",
                                  "tools/net10.0/any/Kmem.Cli.runtimeconfig.json", "tools/net10.0/any/System.CommandLine.dll",
                                  "tools/net10.0/any/Spectre.Console.dll", "README.md", "LICENSE" })
            Assert.Contains(f, files);
        var command = Assert.Single(XDocument.Parse(Text(nupkg, "tools/net10.0/any/DotnetToolSettings.xml")).Descendants("Command"));
        Assert.Equal("kmem", (string?)command.Attribute("Name"));
        Assert.Equal("Kmem.Cli.dll", (string?)command.Attribute("EntryPoint"));

        var meta = Nuspec(nupkg);
        CheckMetadata(meta, "Kmem.Tool");
        Assert.Equal("DotnetTool", meta.Descendants().Single(e => e.Name.LocalName == "packageType").Attribute("name")?.Value);

        var symbols = Entries(Path.Combine(feed.FeedDir, $"Kmem.Tool.{feed.Version}.snupkg"));
        Assert.Contains("tools/net10.0/any/Kmem.Cli.pdb", symbols);
        Assert.Contains("tools/net10.0/any/Kmem.pdb", symbols);
    }

    [Fact]
    public void The_tool_installs_from_the_local_feed_and_kmem_prints_the_profiles_and_buddyinfo()
    {
        string tools = Path.Combine(feed.Root, "tools");
        feed.Run(feed.Root, feed.PackagesDir, ProcessTimeout, "tool", "install", "Kmem.Tool", "--version", feed.Version,
            "--tool-path", tools, "--configfile", Path.Combine(feed.Root, "nuget.config"));
        string kmem = Path.Combine(tools, OperatingSystem.IsWindows() ? "kmem.exe" : "kmem");
        Assert.True(File.Exists(kmem), $"no {kmem} after the install");

        var env = feed.Environment(feed.PackagesDir);
        var (code, profiles) = RunProcess(kmem, feed.Root, env, ProcessTimeout, "profiles");
        Assert.True(code == 0, $"kmem profiles exited with {code}:\n{profiles}");
        foreach (var name in MachineProfile.EmbeddedNames)
            Assert.True(Regex.IsMatch(profiles, $@"(^|\W){Regex.Escape(name)}(\W|$)", RegexOptions.Multiline), $"kmem profiles does not list {name}:\n{profiles}");
        Assert.Contains("rv1106 (default)", profiles);

        (code, string buddy) = RunProcess(kmem, feed.Root, env, ProcessTimeout, "cat", "/proc/buddyinfo");
        Assert.True(code == 0, $"kmem cat /proc/buddyinfo exited with {code}:\n{buddy}");
        // The default board (rv1106), booted by the packed tool, prints what the library in this process prints:
        // "Node 0, zone   Normal" and one count per order (the board's MAX_ORDER, 9 on rv1106).
        using var m = Machine.Boot();
        var lines = buddy.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.NotEmpty(lines);
        foreach (var line in lines)
            Assert.Matches($@"^Node 0, zone +(DMA|DMA32|Normal|HighMem|Movable)( +\d+){{{m.MaxOrder}}} $", line);
        Assert.StartsWith("Node 0, zone   Normal ", lines[0]);
        Assert.Equal(m.ProcFs.Read("/proc/buddyinfo"), buddy.ReplaceLineEndings("\n"));
        WriteTimings();
    }

    [Fact]
    public void A_console_app_on_the_Kmem_package_runs_the_READMEs_first_example()
    {
        string app = Path.Combine(feed.Root, "app");
        Directory.CreateDirectory(app);
        File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>{feed.Prop("TargetFramework")}</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <NuGetAudit>false</NuGetAudit>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Kmem" Version="{feed.Version}" />
              </ItemGroup>
            </Project>
            """);
        // The README's first example as it stands, plus lines that print what it computed.
        File.WriteAllText(Path.Combine(app, "Program.cs"), FirstLibraryExample(File.ReadAllText(Path.Combine(feed.Repo, "README.md"))) + """

            // Added by the test: what the example computed.
            Console.WriteLine($"bytes: {bytes.Length}");
            Console.WriteLine($"min_free_kbytes: {m.Sysctl.Vm.MinFreeKbytes}");
            Console.Write(buddy);
            """);
        string outDir = Path.Combine(app, "out");
        feed.Run(app, feed.PackagesDir, ProcessTimeout, "build", app, "-c", "Release", "-o", outDir,
            $"-p:RestoreConfigFile={Path.Combine(feed.Root, "nuget.config")}", "-nodeReuse:false");

        // The Kmem it runs is the package's, restored into the private packages folder, not the project's.
        Assert.True(File.Exists(Path.Combine(feed.PackagesDir, "kmem", feed.Version.ToLowerInvariant(), "lib", "net10.0", "Kmem.dll")),
            "the package was not restored into the private packages folder");
        string deps = File.ReadAllText(Path.Combine(outDir, "App.deps.json"));
        Assert.Matches($"\"Kmem/{Regex.Escape(feed.Version)}\": \\{{\\s*\"type\": \"package\"", deps);

        var (code, output) = RunProcess(feed.Dotnet, app, feed.Environment(feed.PackagesDir), ProcessTimeout, Path.Combine(outDir, "App.dll"));
        Assert.True(code == 0, $"the README's example exited with {code}:\n{output}");
        output = output.ReplaceLineEndings("\n");
        Assert.Contains("bytes: 16384\n", output);               // 4 pages of 4 KiB
        Assert.Contains("min_free_kbytes: 8192\n", output);
        // x86_64: three populated zones, 11 orders each.
        var zones = Regex.Matches(output, @"^Node 0, zone +(\w+)( +\d+){11} $", RegexOptions.Multiline).Select(x => x.Groups[1].Value).ToArray();
        Assert.Equal(new[] { "DMA", "DMA32", "Normal" }, zones);
        WriteTimings();
    }

    private void WriteTimings()
    {
        lock (feed.Timings) foreach (var t in feed.Timings) log.WriteLine(t);
    }

    [Fact]
    public void The_README_says_how_to_install_both_and_keeps_its_two_commands()
    {
        string readme = File.ReadAllText(Path.Combine(feed.Repo, "README.md")).ReplaceLineEndings("\n");
        string setup = Section(readme, "## Set-up: two commands");
        Assert.Contains("dotnet run --project src/Kmem.Cli ", setup);
        Assert.Contains("\ndotnet test ", setup);
        Assert.True(readme.IndexOf("\n## Install", StringComparison.Ordinal) is int install && install > readme.IndexOf("\n## Set-up: two commands", StringComparison.Ordinal)
                    && install < readme.IndexOf("\n## A tour of the library", StringComparison.Ordinal), "## Install must follow the set-up section");
        string text = Section(readme, "## Install");
        foreach (var s in new[] { "dotnet add package Kmem", "dotnet tool install -g Kmem.Tool", "dotnet pack src/Kmem ", "dotnet pack src/Kmem.Cli ",
                                  "--add-source", "--tool-path", "nuget.org" })
            Assert.True(text.Contains(s, StringComparison.Ordinal), $"the README's Install section does not mention `{s}`");
    }

    /// <summary>The first C# block under "## A tour of the library", as the README shows it.</summary>
    internal static string FirstLibraryExample(string readme)
    {
        var lines = readme.ReplaceLineEndings("\n").Split('\n');
        int tour = Array.IndexOf(lines, "## A tour of the library");
        Assert.True(tour >= 0, "README.md has no \"## A tour of the library\"");
        int open = Array.FindIndex(lines, tour, l => l == "```csharp");
        int close = open < 0 ? -1 : Array.FindIndex(lines, open + 1, l => l.StartsWith("```", StringComparison.Ordinal));
        Assert.True(open > tour && close > open, "no ```csharp block under \"## A tour of the library\"");
        return string.Join("\n", lines[(open + 1)..close]) + "\n";
    }

    private static string Section(string readme, string heading)
    {
        int at = readme.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        Assert.True(at >= 0, $"README.md has no \"{heading}\"");
        int next = readme.IndexOf("\n## ", at + heading.Length + 1, StringComparison.Ordinal);
        return readme[at..(next < 0 ? readme.Length : next)];
    }

    /// <summary>The metadata both packages share, as Directory.Build.props declares it once.</summary>
    private void CheckMetadata(XElement meta, string id)
    {
        string Get(string name) => meta.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value ?? "";
        Assert.Equal(id, Get("id"));
        Assert.Equal(feed.Version, Get("version"));
        Assert.Equal(feed.Prop("Authors"), Get("authors"));
        Assert.Equal(feed.Prop("Copyright"), Get("copyright"));
        Assert.True(Get("description").Length > 40, "no description");
        Assert.Equal("README.md", Get("readme"));
        var license = meta.Elements().Single(e => e.Name.LocalName == "license");
        Assert.Equal("expression", license.Attribute("type")?.Value);
        Assert.Equal(feed.Prop("PackageLicenseExpression"), license.Value);
        Assert.Equal("MIT", license.Value);                                    // the LICENSE file's text
        Assert.StartsWith("MIT License\n", File.ReadAllText(Path.Combine(feed.Repo, "LICENSE")).ReplaceLineEndings("\n"));
        Assert.Contains("Copyright (c) " + feed.Prop("Authors"), File.ReadAllText(Path.Combine(feed.Repo, "LICENSE")));
        Assert.Equal(feed.Prop("PackageTags").Split(';'), Get("tags").Split(' '));
        var repository = meta.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        if (GitHead(feed.Repo) is { } head)
            Assert.Equal(head, repository.Attribute("commit")?.Value);
    }

    /// <summary>The commit checked out in <paramref name="repo"/> when it is a git clone (and git is there), else null.</summary>
    private string? GitHead(string repo)
    {
        if (!Directory.Exists(Path.Combine(repo, ".git")) && !File.Exists(Path.Combine(repo, ".git"))) return null;
        try
        {
            var (code, output) = RunProcess("git", repo, new Dictionary<string, string?>(), ProcessTimeout, "rev-parse", "HEAD");
            return code == 0 ? output.Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }          // no git on this machine
    }

    private static List<string> Entries(string package)
    {
        using var zip = ZipFile.OpenRead(package);
        return [.. zip.Entries.Select(e => e.FullName)];
    }

    private static byte[] Bytes(string package, string entry)
    {
        using var zip = ZipFile.OpenRead(package);
        using var s = (zip.GetEntry(entry) ?? throw new FileNotFoundException(entry + " in " + package)).Open();
        using var copy = new MemoryStream();
        s.CopyTo(copy);
        return copy.ToArray();
    }

    private static string Text(string package, string entry) => Encoding.UTF8.GetString(Bytes(package, entry)).TrimStart('\uFEFF');

    private static XElement Nuspec(string package)
    {
        string name = Entries(package).Single(e => e.EndsWith(".nuspec", StringComparison.Ordinal) && !e.Contains('/'));
        return XDocument.Parse(Text(package, name)).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private string Extract(string package, string entry)
    {
        string to = Path.Combine(feed.Root, "x", Path.GetFileName(package), entry);
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        File.WriteAllBytes(to, Bytes(package, entry));
        return to;
    }

    /// <summary>
    /// Runs a process with its output (stdout then stderr lines, interleaved as they come) captured; kills the whole
    /// process tree and fails with the output so far when it outlives <paramref name="timeout"/>. A build can leave
    /// a server process holding the output pipes after the command itself has exited, so the end of the output is
    /// awaited only briefly once the process is gone.
    /// </summary>
    internal static (int ExitCode, string Output) RunProcess(string file, string dir, IReadOnlyDictionary<string, string?> env,
        TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env)
            if (v == null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        var output = new StringBuilder();
        using var outDone = new ManualResetEventSlim();
        using var errDone = new ManualResetEventSlim();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data == null) outDone.Set(); else lock (output) output.Append(e.Data).Append('\n'); };
        p.ErrorDataReceived += (_, e) => { if (e.Data == null) errDone.Set(); else lock (output) output.Append(e.Data).Append('\n'); };
        var watch = Stopwatch.StartNew();
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeout))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit(10_000);
            lock (output)
                Assert.Fail($"{file} {string.Join(" ", args)} did not finish in {timeout} and was killed:\n{output}");
        }
        outDone.Wait(TimeSpan.FromSeconds(20));
        errDone.Wait(TimeSpan.FromSeconds(20));
        lock (output) return (p.ExitCode, output.ToString());
    }

    /// <summary>The dotnet running these tests (`dotnet test` sets DOTNET_HOST_PATH), else the one on the PATH.</summary>
    private static string DotnetExecutable()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kmem.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Kmem.slnx above {AppContext.BaseDirectory}");
    }
}
