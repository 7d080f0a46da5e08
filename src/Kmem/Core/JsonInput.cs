// Reading user-supplied JSON (profiles, workloads): one place for the file read, the parser options
// (comments and trailing commas allowed) and turning failures into the caller's error type.
using System.Text.Json;

namespace Kmem;

internal static class JsonInput
{
    private static readonly JsonDocumentOptions s_options = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>Reads a text file; an I/O failure becomes <paramref name="error"/>("cannot read …").</summary>
    public static string ReadFile(string path, Func<string, Exception, Exception> error)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw error($"cannot read {path}: {e.Message}", e);
        }
    }

    /// <summary>Parses JSON; a syntax error becomes <paramref name="error"/>("not valid JSON: line L, byte B: …").</summary>
    public static JsonDocument Parse(string json, Func<string, Exception, Exception> error)
    {
        try
        {
            return JsonDocument.Parse(json, s_options);
        }
        catch (JsonException e)
        {
            string why = e.Message;
            int cut = why.IndexOf(". ", StringComparison.Ordinal);
            why = cut > 0 ? why[..cut] : why.TrimEnd('.');
            throw error($"not valid JSON: line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {why}", e);
        }
    }
}
