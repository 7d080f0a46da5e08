// The public face of a machine's kernel views by path (/proc/..., /sys/...): the table itself is the
// proc registry at the bottom of the stack, where each subsystem registers the files it renders;
// Read() renders one on demand from the live state.
using Kmem.Core;

namespace Kmem;

/// <summary>A path that no view serves.</summary>
public sealed class ProcPathException : KmemException
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public ProcPathException(string path, string known)
        : base($"{path}: No such file or directory (known: {known})") { Path = path; }

    /// <summary>The path that was asked for.</summary>
    public string Path { get; }
}

/// <summary>The kernel's views of a machine, by path, rendered from the live state on each read.</summary>
public sealed class ProcFs
{
    private readonly ProcRegistry _files;

    internal ProcFs(ProcRegistry files) => _files = files;

    /// <summary>Registers (or replaces) the renderer of a path.</summary>
    public void Register(string path, Func<string> render) => _files.Register(path, render);

    /// <summary>Removes a path (a view that went away, such as a destroyed cache's sysfs files).</summary>
    public bool Unregister(string path) => _files.Unregister(path);

    /// <summary>The registered paths, sorted.</summary>
    public IReadOnlyList<string> Paths => _files.Paths;

    /// <summary>True if a view serves <paramref name="path"/>.</summary>
    public bool Exists(string path) => _files.Exists(path);

    /// <summary>Renders the file at <paramref name="path"/>.</summary>
    /// <exception cref="ProcPathException">No view serves that path.</exception>
    /// <exception cref="ObjectDisposedException">The machine has been disposed.</exception>
    public string Read(string path)
    {
        using var _ = _files.Life.Enter();   // a view walks live lists: the machine's shutdown waits for it
        ArgumentNullException.ThrowIfNull(path);
        var render = _files.Find(path);
        if (render is null) throw new ProcPathException(path, string.Join(", ", Paths));
        return render();
    }
}
