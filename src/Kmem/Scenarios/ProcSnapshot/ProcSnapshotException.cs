// The error of a /proc snapshot that cannot be read or rebuilt on a machine, naming the file and line at fault.
namespace Kmem;

/// <summary>
/// A /proc snapshot file that cannot be read, or a snapshot that cannot be rebuilt on a machine; <see cref="File"/> and
/// <see cref="Line"/> name the place at fault (line 0: the whole file; file empty: the snapshot as a whole).
/// </summary>
public sealed class ProcSnapshotException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public ProcSnapshotException(string file, int line, string problem)
        : base(OneLine(file.Length == 0 ? $"import: {problem}" : line > 0 ? $"{file}:{line}: {problem}" : $"{file}: {problem}"))
    {
        File = file;
        Line = line;
        Problem = problem;
    }

    /// <summary>The file (its name in the snapshot, such as "pagetypeinfo"), or empty.</summary>
    public string File { get; }

    /// <summary>The 1-based line, or 0.</summary>
    public int Line { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}
