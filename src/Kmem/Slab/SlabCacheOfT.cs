// A typed face of a slab cache for .NET callers: objects of an unmanaged struct type, handed out as
// T* or ref T, with a constructor that runs once per object when its slab is made.
using System.Runtime.CompilerServices;

namespace Kmem;

/// <summary>Initialises an object of a typed slab cache when its slab is made (the kernel's ctor).</summary>
public delegate void SlabCtor<T>(ref T obj) where T : unmanaged;

/// <summary>A slab cache of <typeparamref name="T"/> objects. Create one with <see cref="Machine.KmemCacheCreate{T}"/>.</summary>
public sealed unsafe class SlabCache<T> where T : unmanaged
{
    private SlabCache(SlabCache cache) => Cache = cache;

    internal static SlabCache<T> Create(Slab.SlabAllocator slab, string name, SlabFlags flags, SlabCtor<T>? ctor, int sheafCapacity)
    {
        Action<nint>? raw = ctor is null ? null : p => ctor(ref *(T*)p);
        return new SlabCache<T>(slab.Create(name, sizeof(T), AlignOf(), flags, raw, sheafCapacity));
    }

    /// <summary>The alignment the runtime gives <typeparamref name="T"/> in a struct.</summary>
    private static int AlignOf() => sizeof(AlignProbe) - sizeof(T) is var a && (a & (a - 1)) == 0 && a > 0 ? a : 8;

    private struct AlignProbe
    {
#pragma warning disable CS0649 // only measured
        public byte Pad;
        public T Value;
#pragma warning restore CS0649
    }

    /// <summary>The untyped cache.</summary>
    public SlabCache Cache { get; }

    /// <summary>The cache's name.</summary>
    public string Name => Cache.Name;

    /// <summary>Allocates an object; null when no memory could be found.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T* Alloc(Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => (T*)Cache.Alloc(gfp, caller, file, line);

    /// <summary>Allocates an object from node <paramref name="node"/>'s slabs (<c>kmem_cache_alloc_node()</c>); null when no memory could be found.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The node is neither <see cref="Machine.NumaNoNode"/> nor online.</exception>
    public T* AllocNode(Gfp gfp, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => (T*)Cache.AllocNode(gfp, node, caller, file, line);

    /// <summary>Allocates an object and returns a reference to it.</summary>
    /// <exception cref="InsufficientMemoryException">No memory could be found.</exception>
    public ref T AllocRef(Gfp gfp, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        T* p = (T*)Cache.Alloc(gfp, caller, file, line);
        if (p == null) throw new InsufficientMemoryException($"{Name}: no memory for a {sizeof(T)}-byte object");
        return ref *p;
    }

    /// <summary>Frees an object.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Free(T* obj, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Cache.Free((nint)obj, caller, file, line);

    /// <summary>Frees the object <paramref name="obj"/> refers to.</summary>
    public void Free(ref T obj, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => Cache.Free((nint)Unsafe.AsPointer(ref obj), caller, file, line);

    /// <summary>Gives back the slabs the cache can spare.</summary>
    public int Shrink() => Cache.Shrink();

    /// <summary>Destroys the cache (it must be empty).</summary>
    public void Destroy() => Cache.Destroy();
}
