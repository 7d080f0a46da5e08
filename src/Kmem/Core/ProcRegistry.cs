// The table of a machine's kernel views by path (/proc/..., /sys/...): each layer registers the files it
// renders here, knowing nothing of the facade that reads them (the public ProcFs) or of the machine.
namespace Kmem.Core;

/// <summary>
/// The renderers of a machine's views, by absolute path. Any layer registers its files; the public
/// <c>ProcFs</c> reads them. Every member throws <see cref="ObjectDisposedException"/> once the machine is dead.
/// </summary>
internal sealed class ProcRegistry
{
    private readonly Lock _lock = new();
    private readonly SortedDictionary<string, Func<string>> _files = new(StringComparer.Ordinal);

    public ProcRegistry(KernelLife life) => Life = life;

    /// <summary>The machine's life (a read counts itself in, so that the shutdown waits for a view walking live lists).</summary>
    public KernelLife Life { get; }

    /// <summary>Registers (or replaces) the renderer of a path.</summary>
    public void Register(string path, Func<string> render)
    {
        Life.ThrowIfDead();
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(render);
        if (path[0] != '/') throw new ArgumentException($"'{path}' is not an absolute path", nameof(path));
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) _files[path] = render;
    }

    /// <summary>Removes a path (a view that went away, such as a destroyed cache's sysfs files).</summary>
    public bool Unregister(string path)
    {
        Life.ThrowIfDead();
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) return _files.Remove(path);
    }

    /// <summary>The registered paths, sorted.</summary>
    public IReadOnlyList<string> Paths
    {
        get
        {
            Life.ThrowIfDead();
            LockOrder.Enter(LockRank.ProcFs, _lock);
            lock (_lock) return _files.Keys.ToArray();
        }
    }

    /// <summary>True if a view serves <paramref name="path"/>.</summary>
    public bool Exists(string path)
    {
        Life.ThrowIfDead();
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) return _files.ContainsKey(path);
    }

    /// <summary>The renderer of <paramref name="path"/> (a trailing '/' ignored), or null when no view serves it.</summary>
    public Func<string>? Find(string path)
    {
        Func<string>? render;
        LockOrder.Enter(LockRank.ProcFs, _lock);
        lock (_lock) _files.TryGetValue(path.TrimEnd('/') is { Length: > 0 } p ? p : path, out render);
        return render;
    }
}
