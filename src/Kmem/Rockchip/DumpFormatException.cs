// The error of an rk-dma-heap-info dump that cannot be read or rebuilt on a machine, naming the line at fault.
namespace Kmem;

/// <summary>A dump that cannot be read or replayed; <see cref="Line"/> names the line at fault (0: the whole dump).</summary>
public sealed class DumpFormatException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public DumpFormatException(int line, string problem) : base(OneLine(line > 0 ? $"dump: line {line}: {problem}" : $"dump: {problem}"))
    {
        Line = line;
        Problem = problem;
    }

    /// <summary>The 1-based line, or 0.</summary>
    public int Line { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}
