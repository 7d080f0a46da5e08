// What one `kmem` invocation writes to: its two writers and a Spectre console over stdout (plain text,
// 160 columns, when the output is not a terminal, so that tests and pipes see the same bytes).
using Spectre.Console;

namespace Kmem.Cli;

/// <summary>The writers of one invocation and a Spectre console over stdout.</summary>
internal sealed class CliContext
{
    public CliContext(TextWriter stdout, TextWriter stderr)
    {
        Out = stdout;
        Err = stderr;
        bool redirected = !ReferenceEquals(stdout, System.Console.Out) || System.Console.IsOutputRedirected;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        if (redirected) Console.Profile.Width = 160;
    }

    /// <summary>The kernel version --kernel gave (it replaces the profile's "version"), or null.</summary>
    public KernelVersion? Kernel { get; set; }

    public TextWriter Out { get; }
    public TextWriter Err { get; }
    public IAnsiConsole Console { get; }
}
