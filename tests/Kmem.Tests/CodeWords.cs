// The words of C# source that are code: comments, string literals (their interpolation holes excepted) and
// character literals taken out. The layering test uses it to find a name the compiler leaves no trace of in
// the assembly (a constant's owner, nameof()).
using System.Text;
using System.Text.RegularExpressions;

namespace Kmem.Tests;

internal static partial class CodeWords
{
    [GeneratedRegex(@"[\p{L}_][\p{L}\p{Nd}_]*")]
    private static partial Regex Identifier();

    /// <summary>The 1-based line numbers of the code lines of <paramref name="source"/> that hold <paramref name="word"/> as a whole word.</summary>
    public static IReadOnlyList<int> LinesNaming(string source, string word)
    {
        var lines = CodeOnly(source).Split('\n');
        return [.. Enumerable.Range(0, lines.Length)
            .Where(i => Identifier().Matches(lines[i]).Any(m => m.Value == word))
            .Select(i => i + 1)];
    }

    /// <summary>The source with comments and literals blanked (line breaks kept, so line numbers stay).</summary>
    public static string CodeOnly(string s)
    {
        var sb = new StringBuilder(s.Length);
        int i = 0;
        Code(s, ref i, sb, inHole: false);
        return sb.ToString();
    }

    /// <summary>Copies code from <paramref name="i"/> until the end, or (in an interpolation hole) its closing brace.</summary>
    private static void Code(string s, ref int i, StringBuilder sb, bool inHole)
    {
        int depth = 0;
        while (i < s.Length)
        {
            char c = s[i];
            char next = i + 1 < s.Length ? s[i + 1] : '\0';
            if (c == '/' && next == '/')
                while (i < s.Length && s[i] != '\n') i++;
            else if (c == '/' && next == '*')
            {
                int end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                int stop = end < 0 ? s.Length : end + 2;
                Blank(s, i, stop, sb);
                i = stop;
            }
            else if (c == '\'')
            {
                i++;
                while (i < s.Length && s[i] != '\'') i += s[i] == '\\' ? 2 : 1;
                i++;
                sb.Append(' ');
            }
            else if (c == '"' || ((c == '$' || c == '@') && StringStartsAt(s, i)))
                Literal(s, ref i, sb);
            else if (inHole && c == '}' && depth == 0)
                return;
            else
            {
                if (c == '{') depth++;
                else if (c == '}') depth--;
                sb.Append(c);
                i++;
            }
        }
    }

    private static bool StringStartsAt(string s, int i)
    {
        while (i < s.Length && (s[i] == '$' || s[i] == '@')) i++;
        return i < s.Length && s[i] == '"';
    }

    /// <summary>Skips a string literal at <paramref name="i"/> (regular, verbatim, interpolated or raw), copying the code of its holes.</summary>
    private static void Literal(string s, ref int i, StringBuilder sb)
    {
        int dollars = 0;
        bool verbatim = false;
        for (; s[i] != '"'; i++)
        {
            if (s[i] == '$') dollars++;
            else verbatim = true;
        }
        int quotes = 0;
        while (i + quotes < s.Length && s[i + quotes] == '"') quotes++;
        if (quotes >= 3)
        {
            // A raw string: up to the same run of quotes (its holes are not searched).
            int end = s.IndexOf(new string('"', quotes), i + quotes, StringComparison.Ordinal);
            int stop = end < 0 ? s.Length : end + quotes;
            Blank(s, i, stop, sb);
            i = stop;
            return;
        }
        if (quotes == 2) { i += 2; sb.Append(' '); return; }   // ""
        i++;
        while (i < s.Length)
        {
            char c = s[i];
            if (verbatim && c == '"' && i + 1 < s.Length && s[i + 1] == '"') i += 2;
            else if (c == '"') { i++; break; }
            else if (!verbatim && c == '\\') i += 2;
            else if (dollars > 0 && c == '{' && i + 1 < s.Length && s[i + 1] == '{') i += 2;
            else if (dollars > 0 && c == '{')
            {
                i++;
                sb.Append(' ');
                Code(s, ref i, sb, inHole: true);
                i++;
            }
            else
            {
                if (c == '\n') sb.Append('\n');
                i++;
            }
        }
        sb.Append(' ');
    }

    private static void Blank(string s, int from, int to, StringBuilder sb)
    {
        for (int k = from; k < to; k++) sb.Append(s[k] == '\n' ? '\n' : ' ');
    }
}
