// The calling thread's stack range, read once from the C library (pthread_getattr_np). A live thread's stack
// belongs to that thread alone, so "the address of one of my locals lies in the owner's stack" identifies the
// owner with a subtraction and a compare: no thread-local storage lookup (which on Linux is a call into the
// C library's __tls_get_addr from managed code).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Rtnet;

/// <summary>The stack of the calling thread, as a range of addresses.</summary>
internal static unsafe partial class ThreadStack
{
    /// <summary>
    /// The calling thread's stack: its lowest address and its size; false where the C library cannot tell (not
    /// Linux, or an error), and the caller then does without.
    /// </summary>
    public static bool TryGetCurrent(out nint low, out nint size)
    {
        low = size = 0;
        if (!OperatingSystem.IsLinux()) return false;
        byte* attr = stackalloc byte[256];                    // pthread_attr_t: 56 bytes on x86-64, 64 on arm64
        try
        {
            if (PthreadGetattrNp(PthreadSelf(), attr) != 0) return false;
            nint addr = 0;
            nuint bytes = 0;
            int rc = PthreadAttrGetstack(attr, &addr, &bytes);
            PthreadAttrDestroy(attr);
            if (rc != 0 || addr == 0 || bytes == 0) return false;
            nint here = (nint)Unsafe.AsPointer(ref rc);
            if ((nuint)(here - addr) >= bytes) return false;  // not the stack we run on: trust nothing
            (low, size) = (addr, (nint)bytes);
            return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "pthread_self")]
    private static partial nint PthreadSelf();

    [LibraryImport("libc", EntryPoint = "pthread_getattr_np")]
    private static partial int PthreadGetattrNp(nint thread, byte* attr);

    [LibraryImport("libc", EntryPoint = "pthread_attr_getstack")]
    private static partial int PthreadAttrGetstack(byte* attr, nint* addr, nuint* size);

    [LibraryImport("libc", EntryPoint = "pthread_attr_destroy")]
    private static partial int PthreadAttrDestroy(byte* attr);
}
