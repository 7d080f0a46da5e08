// The one way Kmem refuses a feature that needs a page mapped at a second address (vmalloc, vmap, dma_buf_vmap,
// a GEM object's CPU view, videobuf2-vmalloc) on a machine whose memory cannot be remapped: a plain native block
// instead of a memfd (macOS, Windows, or KMEM_NO_MEMFD=1 on Linux). A line in the machine's log, and an exception
// that names the feature and the reason.
namespace Kmem.Core;

/// <summary>Refusals of remapping on a machine without remappable memory.</summary>
internal static class NoRemap
{
    /// <summary>What the log and the exception say the reason is.</summary>
    public const string Reason = "the machine's memory is a plain native block (no memfd), so no page can be mapped at a second address";

    /// <summary>
    /// Logs <c>{feature}: refused: …</c> (a warning, as a kernel built without the facility would say it cannot) and
    /// returns the exception to throw: <see cref="PlatformNotSupportedException"/> naming <paramref name="feature"/>.
    /// </summary>
    public static PlatformNotSupportedException Refuse(KernelLog log, string feature)
    {
        log.Warn($"{feature}: refused: no remappable memory ({Reason})");
        return Exception(feature);
    }

    /// <summary>The exception alone (for callers that have logged already).</summary>
    public static PlatformNotSupportedException Exception(string feature) =>
        new($"{feature} needs remappable memory (a memfd, Linux); {Reason}: this happens on macOS and Windows, or with KMEM_NO_MEMFD=1");
}
