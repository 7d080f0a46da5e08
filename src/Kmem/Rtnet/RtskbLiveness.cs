// How an rtskb handle is told live from stale (the generation kept in its header).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Core;

namespace Kmem.Rtnet;

/// <summary>
/// Which addresses hold rtskbs of a live machine: an <see cref="Rtskb"/> is a bare pointer, so its members find its
/// stack's linear map here. The lookup only runs once some stack has been shut down (or its machine collected); until
/// then a member pays one load and branch.
/// </summary>
internal static class RtskbLiveness
{
    /// <summary>One RTnet stack's linear map. The machine is held weakly, so that an unreachable one can still be collected.</summary>
    internal sealed class Entry(nint start, nuint bytes, KernelLife life)
    {
        public readonly nint Start = start;
        public readonly nuint Bytes = bytes;
        public readonly WeakReference<KernelLife> Life = new(life);
    }

    /// <summary>What the stack holds: when it is collected without a shutdown (its machine never disposed), the lookup starts.</summary>
    internal sealed class Registration(Entry entry)
    {
        public readonly Entry Entry = entry;

        ~Registration() => Interlocked.Exchange(ref s_anyGone, 1);
    }

    private static readonly Lock s_lock = new();
    private static Entry[] s_live = [];
    private static int s_anyGone;

    /// <summary>True once some stack has been shut down or its machine collected.</summary>
    public static bool AnyGone
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref s_anyGone) != 0;
    }

    public static Registration Register(nint start, nuint bytes, KernelLife life)
    {
        var e = new Entry(start, bytes, life);
        lock (s_lock) s_live = [.. s_live.Where(x => x.Life.TryGetTarget(out _)), e];   // entries of collected machines go
        return new Registration(e);
    }

    public static void Unregister(Registration r)
    {
        Interlocked.Exchange(ref s_anyGone, 1);
        lock (s_lock) s_live = [.. s_live.Where(x => x != r.Entry)];
        GC.SuppressFinalize(r);
    }

    /// <summary>True when a live machine's stack owns <paramref name="p"/> (the null buffer counts as live: its members fault as before).</summary>
    public static bool IsLive(nint p)
    {
        if (p == 0) return true;
        foreach (var e in Volatile.Read(ref s_live))
            if ((nuint)(p - e.Start) < e.Bytes && e.Life.TryGetTarget(out var l) && !l.IsDead) return true;
        return false;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Check(nint p)
    {
        if (!IsLive(p)) KernelLife.ThrowDead();
    }
}
