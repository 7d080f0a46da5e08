// mimalloc reached through P/Invoke function pointers, loaded at run time so a missing library only skips its rows.
using System.Runtime.InteropServices;

namespace Kmem.Benchmarks;

/// <summary>
/// <c>mi_malloc</c>, <c>mi_malloc_aligned</c> and <c>mi_free</c> from libmimalloc.so.2, resolved with
/// <see cref="NativeLibrary.TryLoad(string, out nint)"/>. When the library is absent,
/// <see cref="IsAvailable"/> is false and the entry points must not be called.
/// </summary>
public static unsafe class Mimalloc
{
    private static readonly delegate* unmanaged<nuint, void*> s_malloc;
    private static readonly delegate* unmanaged<nuint, nuint, void*> s_mallocAligned;
    private static readonly delegate* unmanaged<void*, void> s_free;

    /// <summary>True when libmimalloc.so.2 was loaded and all three entry points were found.</summary>
    public static readonly bool IsAvailable;

    static Mimalloc()
    {
        foreach (var name in new[] { "libmimalloc.so.2", "libmimalloc.so" })
        {
            if (!NativeLibrary.TryLoad(name, out nint lib)) continue;
            if (NativeLibrary.TryGetExport(lib, "mi_malloc", out nint malloc)
                && NativeLibrary.TryGetExport(lib, "mi_malloc_aligned", out nint mallocAligned)
                && NativeLibrary.TryGetExport(lib, "mi_free", out nint free))
            {
                s_malloc = (delegate* unmanaged<nuint, void*>)malloc;
                s_mallocAligned = (delegate* unmanaged<nuint, nuint, void*>)mallocAligned;
                s_free = (delegate* unmanaged<void*, void>)free;
                IsAvailable = true;
                return;
            }
        }
    }

    /// <summary><c>mi_malloc(size)</c>; null on failure.</summary>
    public static void* Malloc(nuint size) => s_malloc(size);

    /// <summary><c>mi_malloc_aligned(size, alignment)</c>; null on failure.</summary>
    public static void* MallocAligned(nuint size, nuint alignment) => s_mallocAligned(size, alignment);

    /// <summary><c>mi_free(p)</c>.</summary>
    public static void Free(void* p) => s_free(p);
}
