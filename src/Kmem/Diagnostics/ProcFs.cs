// The registry of a machine's kernel views by path (/proc/..., /sys/...): each subsystem registers
// the files it renders; Read() renders one on demand from the live state.
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
    private readonly Lock _lock = new();
    private readonly SortedDictionary<string, Func<string>> _files = new(StringComparer.Ordinal);
    private readonly KernelLife _life;

    internal ProcFs(KernelLife life) => _life = life;

    /// <summary>Registers (or replaces) the renderer of a path.</summary>
    public void Register(string path, Func<string> render)
    {
        _life.ThrowIfDead();
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(render);
        if (path[0] != '/') throw new ArgumentException($"'{path}' is not an absolute path", nameof(path));
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) _files[path] = render;
    }

    /// <summary>Removes a path (a view that went away, such as a destroyed cache's sysfs files).</summary>
    public bool Unregister(string path)
    {
        _life.ThrowIfDead();
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) return _files.Remove(path);
    }

    /// <summary>The registered paths, sorted.</summary>
    public IReadOnlyList<string> Paths
    {
        get
        {
            _life.ThrowIfDead();
            LockOrder.Enter(LockRank.ProcFs, _lock);
            lock (_lock) return _files.Keys.ToArray();
        }
    }

    /// <summary>True if a view serves <paramref name="path"/>.</summary>
    public bool Exists(string path)
    {
        _life.ThrowIfDead();
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) return _files.ContainsKey(path);
    }

    /// <summary>Renders the file at <paramref name="path"/>.</summary>
    /// <exception cref="ProcPathException">No view serves that path.</exception>
    /// <exception cref="ObjectDisposedException">The machine has been disposed.</exception>
    public string Read(string path)
    {
        using var _ = _life.Enter();   // a view walks live lists: the machine's shutdown waits for it
        ArgumentNullException.ThrowIfNull(path);
        Func<string>? render;
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) _files.TryGetValue(path.TrimEnd('/') is { Length: > 0 } p ? p : path, out render);
        if (render is null) throw new ProcPathException(path, string.Join(", ", Paths));
        return render();
    }
}
