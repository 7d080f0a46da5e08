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
