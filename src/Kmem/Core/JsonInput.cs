// Reading user-supplied JSON (profiles, workloads): one place for the file read, the parser options
// (comments and trailing commas allowed) and turning failures into the caller's error type. Every key and
// string value is checked once here, so that no reader later meets text that cannot become a .NET string
// (a lone UTF-16 surrogate written as an escape, "\ud800"): such input is refused naming its field.
using System.Text.Json;

namespace Kmem.Core;

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

    /// <summary>
    /// Parses JSON. A syntax error becomes <paramref name="error"/>("(json)", "not valid JSON: line L, byte B: …");
    /// a key or string that holds a lone UTF-16 surrogate becomes <paramref name="error"/>(its path, "…").
    /// The path is written as the readers write theirs: <c>steps[3].label</c>, <c>dram[0].size</c>.
    /// </summary>
    public static JsonDocument Parse(string json, Func<string, string, Exception, Exception> error)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, s_options);
        }
        catch (JsonException e)
        {
            string why = e.Message;
            int cut = why.IndexOf(". ", StringComparison.Ordinal);
            why = cut > 0 ? why[..cut] : why.TrimEnd('.');
            throw error("(json)", $"not valid JSON: line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {why}", e);
        }
        try
        {
            CheckText(doc.RootElement, "", error);
            return doc;
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }

    /// <summary>Walks the document; every key and string must decode to well-formed UTF-16.</summary>
    private static void CheckText(JsonElement el, string path, Func<string, string, Exception, Exception> error)
    {
        switch (el.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in el.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = p.Name;
                    }
                    catch (InvalidOperationException e)
                    {
                        throw error(path.Length == 0 ? "(root)" : path, $"a key holds a lone UTF-16 surrogate: {Excerpt(p.ToString())}", e);
                    }
                    CheckText(p.Value, path.Length == 0 ? name : $"{path}.{name}", error);
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in el.EnumerateArray()) CheckText(item, $"{path}[{i++}]", error);
                break;
            case JsonValueKind.String:
                try
                {
                    _ = el.GetString();
                }
                catch (InvalidOperationException e)
                {
                    throw error(path.Length == 0 ? "(root)" : path, $"the string holds a lone UTF-16 surrogate: {Excerpt(el.GetRawText())}", e);
                }
                break;
        }
    }

    /// <summary>The raw JSON text (escapes as written), cut to one short line.</summary>
    private static string Excerpt(string raw)
    {
        raw = raw.ReplaceLineEndings(" ");
        return raw.Length > 48 ? raw[..48] + "…" : raw;
    }
}
