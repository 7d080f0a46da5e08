// Mapping a machine's frames a second time: address space reserved and inaccessible until used, and frames of the
// memfd mapped into it at a fixed address. vmalloc's window, the persistent kmap pool and the threads' kmap_local
// windows all remap frames this one way, so that the bytes every mapping shows are the frame's own.
namespace Kmem.Physical;

internal static class FrameMappings
{
    /// <summary>Reserves <paramref name="bytes"/> of address space (no access, nothing committed); 0 when the host refused.</summary>
    public static nint Reserve(nuint bytes)
    {
        nint p = Libc.Mmap(0, bytes, Libc.ProtNone, Libc.MapPrivate | Libc.MapAnonymous | Libc.MapNoReserve, -1, 0);
        return p == Libc.MapFailed ? 0 : p;
    }

    /// <summary>
    /// Maps <paramref name="pages"/> frames of the memfd <paramref name="fd"/>, from frame index <paramref name="frame"/>,
    /// read-write and shared at <paramref name="at"/> (replacing whatever was there). MAP_POPULATE fills the page-table
    /// entries now: one call instead of a fault on each page's first touch. False when the host refused (errno in the
    /// last P/Invoke error).
    /// </summary>
    public static bool MapFrames(nint at, int fd, int frame, int pages) =>
        Libc.Mmap(at, (nuint)pages << PhysicalMemory.PageShift, Libc.ProtRead | Libc.ProtWrite,
            Libc.MapShared | Libc.MapFixed | Libc.MapPopulate, fd, (long)frame << PhysicalMemory.PageShift) == at;
}
