// A sheaf (struct slab_sheaf of Linux 6.18): a native array of pointers to objects that are free
// for the cache's users but still counted in use by their slabs. A thread's frees of objects
// outside its CPU slab fill its main sheaf without touching the objects; full sheaves go to the
// cache's barn, where an allocating thread whose CPU freelist is empty takes them.
using System.Runtime.InteropServices;

namespace Kmem.Slab;

/// <summary>The header of a sheaf; <see cref="Capacity"/> object pointers follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SlabSheaf
{
    /// <summary>Objects in the sheaf.</summary>
    public int Size;
    /// <summary>Objects the sheaf can hold.</summary>
    public int Capacity;

    /// <summary>The object pointers of <paramref name="s"/> (index 0 is the oldest).</summary>
    public static nint* Objects(SlabSheaf* s) => (nint*)(s + 1);

    /// <summary>A new empty sheaf in native memory.</summary>
    public static SlabSheaf* New(int capacity)
    {
        var s = (SlabSheaf*)NativeMemory.Alloc((nuint)(sizeof(SlabSheaf) + capacity * sizeof(nint)));
        s->Size = 0;
        s->Capacity = capacity;
        return s;
    }

    public static void Free(SlabSheaf* s) => NativeMemory.Free(s);
}
