// Bad input that only shows once a verb runs (a board without the heap a dump needs, an output file the
// system refuses to write): the verb throws this, `kmem` prints its one line and exits 2, as for a parse error.
namespace Kmem.Cli;

/// <summary>Input refused while a verb runs, after the command line itself was valid (exit code 2).</summary>
internal sealed class CliInputException : Exception
{
    public CliInputException(string message) : base(message) { }

    public CliInputException(string message, Exception inner) : base(message, inner) { }
}
