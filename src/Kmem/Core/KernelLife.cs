// One machine's life: live until Dispose (or its finalizer) begins the shutdown, dead after. Every
// object that belongs to a machine holds it, checks it at each public member and throws
// ObjectDisposedException once the machine is dead. Slow paths also count themselves in (Enter), so
// that the shutdown can wait until no call is inside before it tears anything down; the fast paths
// never count themselves: they are fenced off by their own owner/drainer handshakes and by the
// harmless mappings that replace a dead machine's memory (docs/reliability.md, "After Dispose").
namespace Kmem.Core;

/// <summary>
/// The live/dead state of one machine and the count of calls inside its slow paths. Holds the machine
/// itself (as <see cref="Owner"/>) so that any object handed out by a machine keeps it reachable: a
/// machine is finalized only when nothing of it is reachable any more.
/// </summary>
internal sealed class KernelLife
{
    private volatile int _dead;
    private int _inside;
    [ThreadStatic] private static KernelLife? t_life;
    [ThreadStatic] private static int t_depth;

    /// <summary>The object this life belongs to (the machine), kept reachable by everything that holds the life.</summary>
    public object? Owner { get; set; }

    /// <summary>True once the shutdown has begun.</summary>
    public bool IsDead => _dead != 0;

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the shutdown has begun.</summary>
    public void ThrowIfDead()
    {
        if (_dead != 0) ThrowDead();
    }

    /// <summary>Returns <paramref name="value"/>, a figure of the live machine; throws once it is dead (a dead machine has only stale ones).</summary>
    public T Live<T>(T value)
    {
        if (_dead != 0) ThrowDead();
        return value;
    }

    /// <summary>
    /// Counts the calling thread in as <see cref="Enter"/> does; false (and nothing counted) when the machine is dead
    /// (for an owner's Dispose, which does nothing then, and for background workers, which stop).
    /// </summary>
    public bool TryEnter(out Scope scope)
    {
        scope = default;
        if (_dead != 0) return false;
        try
        {
            scope = Enter();
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>The exception every member of a dead machine throws.</summary>
    public static ObjectDisposedException Dead() => new("Machine", "the machine has been shut down (disposed)");

    /// <summary>Throws <see cref="Dead"/>.</summary>
    public static void ThrowDead() => throw Dead();

    /// <summary>
    /// Counts the calling thread in (a slow path begins) and throws <see cref="ObjectDisposedException"/> when the
    /// machine is dead; dispose the scope when the call ends. The shutdown waits for every counted call to leave.
    /// </summary>
    public Scope Enter()
    {
        Interlocked.Increment(ref _inside);
        if (_dead != 0)
        {
            Interlocked.Decrement(ref _inside);
            ThrowDead();
        }
        if (ReferenceEquals(t_life, this)) t_depth++;
        else if (t_depth == 0)
        {
            t_life = this;
            t_depth = 1;
        }
        return new Scope(this);
    }

    private void Leave()
    {
        if (ReferenceEquals(t_life, this) && t_depth > 0 && --t_depth == 0) t_life = null;
        Interlocked.Decrement(ref _inside);
    }

    /// <summary>A counted call; <see cref="Dispose"/> leaves.</summary>
    public readonly struct Scope(KernelLife life) : IDisposable
    {
        /// <summary>Leaves the counted call.</summary>
        public void Dispose() => life?.Leave();
    }

    /// <summary>Marks the machine dead; true for the one caller that does it first.</summary>
    public bool BeginShutdown() => Interlocked.Exchange(ref _dead, 1) == 0;

    /// <summary>
    /// Waits until no counted call is inside, other than the calling thread's own (a dispose from inside a callback
    /// of this machine must not wait for itself).
    /// </summary>
    public void WaitUntilQuiet()
    {
        int own = ReferenceEquals(t_life, this) ? t_depth : 0;
        var spin = new SpinWait();
        while (Volatile.Read(ref _inside) > own) spin.SpinOnce(sleep1Threshold: 20);
    }
}
