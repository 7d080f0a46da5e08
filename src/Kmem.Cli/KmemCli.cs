// The `kmem` command line: boot a profile, run workloads, print the kernel's views and log.
// Exit codes: 0 success, 2 bad arguments or input (one-line reason on stderr), 1 internal failure.
using System.CommandLine;

namespace Kmem.Cli;

/// <summary>The command-line application, runnable in-process (tests pass their own writers).</summary>
public static class KmemCli
{
    /// <summary>The built-in workload run by the bare <c>kmem</c> command.</summary>
    public const string DefaultWorkload = "camera-pipeline";

    /// <summary>Parses and runs one command line.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var ctx = new CliContext(stdout, stderr);
        RootCommand root;
        try
        {
            root = Commands.Build(ctx);
        }
        catch (Exception e)
        {
            stderr.WriteLine($"kmem: internal error: {e.Message}");
            return 1;
        }
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            stderr.WriteLine($"kmem: {parsed.Errors[0].Message} (see 'kmem --help')");
            return 2;
        }
        if (parsed.GetValue<string?>(Commands.KernelOptionName) is { } kernel) ctx.Kernel = KernelVersion.Parse(kernel);
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        // Bad input found while running: the validators refuse bad arguments at parse time, so an argument or file exception
        // here comes from the library's own checks or from a file that went away since the line was parsed.
        catch (Exception e) when (e is ProfileException or WorkloadException or ProcPathException or DumpFormatException or ProcSnapshotException or CliInputException
                                       or ArgumentException or FileNotFoundException)
        {
            stderr.WriteLine($"kmem: {e.Message}");
            return 2;
        }
        // A feature the host cannot give (remapping without a memfd: macOS, Windows, KMEM_NO_MEMFD=1) is refused, not a bug.
        catch (Exception e) when (e is KmemException or PlatformNotSupportedException)
        {
            stderr.WriteLine($"kmem: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"kmem: internal error: {e.GetType().Name}: {e.Message}");
            return 1;
        }
    }
}
