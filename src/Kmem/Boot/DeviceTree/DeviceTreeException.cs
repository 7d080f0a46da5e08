// The error of a flattened device tree that cannot be read, naming the node path and the byte offset at fault.
namespace Kmem;

/// <summary>
/// A flattened device tree blob that cannot be read, or a node whose properties cannot mean what the kernel takes them
/// to mean: <see cref="NodePath"/> names the node (<c>/</c> for the header and the tables), <see cref="Offset"/> the byte
/// offset in the blob (-1 when the problem is not at one place).
/// </summary>
public sealed class DeviceTreeException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public DeviceTreeException(string nodePath, long offset, string problem)
        : base(OneLine(offset >= 0 ? $"device tree: {nodePath} (offset 0x{offset:x}): {problem}" : $"device tree: {nodePath}: {problem}"))
    {
        NodePath = nodePath;
        Offset = offset;
        Problem = problem;
    }

    /// <summary>The full path of the node at fault (e.g. <c>/reserved-memory/linux,cma</c>).</summary>
    public string NodePath { get; }

    /// <summary>The byte offset in the blob, or -1.</summary>
    public long Offset { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}
