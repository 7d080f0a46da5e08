// The exception hierarchy: every misuse Kmem detects is logged in the kernel's words first, then
// raised as one of these, with the allocator's state left as it was before the call.
namespace Kmem;

/// <summary>The base of every error Kmem raises for misuse or malformed input.</summary>
public class KmemException : Exception
{
    /// <summary>Creates the exception with the one-line reason.</summary>
    public KmemException(string message) : base(message) { }

    /// <summary>Creates the exception with the one-line reason and the underlying cause.</summary>
    public KmemException(string message, Exception inner) : base(message, inner) { }

    /// <summary>
    /// The text on one line: control characters and line separators quoted from user input are written as
    /// escapes (<c>\n</c>, <c>\t</c>, <c>\x01</c>), so that a reason always prints as a single line.
    /// </summary>
    internal static string OneLine(string text)
    {
        int i = 0;
        while (i < text.Length && !NeedsEscape(text[i])) i++;
        if (i == text.Length) return text;
        var sb = new System.Text.StringBuilder(text.Length + 8).Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!NeedsEscape(c)) sb.Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c <= 0xff) sb.Append("\\x").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            else sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    private static bool NeedsEscape(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';
}

/// <summary>
/// A page was freed or referenced in a state that does not allow it: already free, freed with the wrong
/// order, a tail page, a reserved page, a refcount that would drop below zero ("BUG: Bad page state").
/// </summary>
public sealed class BadPageStateException : KmemException
{
    /// <summary>Creates the exception for <paramref name="pfn"/>.</summary>
    public BadPageStateException(ulong pfn, string reason)
        : base($"Bad page state at pfn 0x{pfn:x}: {reason}") { Pfn = pfn; Reason = reason; }

    /// <summary>The page frame number involved.</summary>
    public ulong Pfn { get; }

    /// <summary>What was wrong, in the kernel's words ("nonzero _refcount", …).</summary>
    public string Reason { get; }
}

/// <summary>An address, PFN or page handle that does not belong to this machine's memory.</summary>
public sealed class InvalidAddressException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public InvalidAddressException(string message) : base(message) { }
}

/// <summary>A machine profile that cannot be booted; <see cref="Field"/> names the offending field.</summary>
public sealed class ProfileException : KmemException
{
    /// <summary>Creates the exception for <paramref name="field"/> (a JSON path such as <c>dram[1].size</c>).</summary>
    public ProfileException(string field, string problem)
        : base(OneLine($"profile: {field}: {problem}")) { Field = field; Problem = problem; }

    /// <summary>Creates the exception with an underlying cause (bad JSON).</summary>
    public ProfileException(string field, string problem, Exception inner)
        : base(OneLine($"profile: {field}: {problem}"), inner) { Field = field; Problem = problem; }

    /// <summary>The JSON path of the field at fault.</summary>
    public string Field { get; }

    /// <summary>What is wrong with it.</summary>
    public string Problem { get; }
}

/// <summary>A workload file that cannot be run; <see cref="Location"/> names the step or field.</summary>
public sealed class WorkloadException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public WorkloadException(string location, string problem)
        : base(OneLine($"workload: {location}: {problem}")) { Location = location; Problem = problem; }

    /// <summary>Creates the exception with an underlying cause.</summary>
    public WorkloadException(string location, string problem, Exception inner)
        : base(OneLine($"workload: {location}: {problem}"), inner) { Location = location; Problem = problem; }

    /// <summary>Where in the workload (e.g. <c>steps[3].order</c>).</summary>
    public string Location { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}

/// <summary>
/// A workload step that failed while it ran (a refused call, or any other exception of the calls it makes);
/// <see cref="Location"/> and <see cref="Op"/> name the step, <see cref="Exception.InnerException"/> is the cause.
/// What the runner held stays held and tracked, so <see cref="WorkloadRunner.ReleaseAll"/> frees it.
/// </summary>
public sealed class WorkloadStepException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public WorkloadStepException(string location, string op, Exception inner)
        : base($"workload: {location} ({op}) failed: {(inner is KmemException ? "" : inner.GetType().Name + ": ")}{inner.Message}", inner)
    {
        Location = location;
        Op = op;
    }

    /// <summary>The step (e.g. <c>steps[2].steps[0]</c>).</summary>
    public string Location { get; }

    /// <summary>The step's operation.</summary>
    public string Op { get; }
}

/// <summary>What a <see cref="SlabException"/> reports.</summary>
public enum SlabError
{
    /// <summary>The object is already free ("Object already free", or the freelist head: a naive double free).</summary>
    DoubleFree,
    /// <summary>The address is not the start of an object of a slab ("Invalid object pointer").</summary>
    InvalidPointer,
    /// <summary>The object belongs to another cache ("Wrong slab cache").</summary>
    WrongCache,
    /// <summary>Bytes before or after the object were overwritten ("Redzone overwritten").</summary>
    RedzoneOverwritten,
    /// <summary>A free object was written to ("Poison overwritten").</summary>
    PoisonOverwritten,
    /// <summary>Padding after the object or at the end of the slab was overwritten.</summary>
    PaddingOverwritten,
    /// <summary>A free pointer or the slab's counters were corrupt ("Freepointer corrupt").</summary>
    FreelistCorrupt,
    /// <summary>The cache still has objects and cannot be destroyed.</summary>
    CacheInUse,
    /// <summary>A pool or cache was used in a way its rules forbid (bad size, destroyed, busy).</summary>
    Misuse,
}

/// <summary>
/// Misuse of a slab cache, kmalloc or a mempool: the report is in the machine's log (in the kernel's words)
/// and the cache's objects, counters and lists are as they were before the call.
/// </summary>
public sealed class SlabException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public SlabException(SlabError error, string cache, nint address, string message) : base(message)
    {
        Error = error;
        Cache = cache;
        Address = address;
    }

    /// <summary>The class of error.</summary>
    public SlabError Error { get; }

    /// <summary>The cache involved.</summary>
    public string Cache { get; }

    /// <summary>The object address involved (0 when none).</summary>
    public nint Address { get; }
}
