// The rv1106 rk-dma-heap-info dump of the fixtures as the kernel printed it: the guide's copy kept every field but
// collapsed its whitespace, so the exact bytes are rebuilt from those fields with the vendor driver's own
// seq_printf formats (rk_dma_heap_proc_show), written out here independently of Kmem's renderer.
using System.Text;
using System.Text.RegularExpressions;

namespace Kmem.Tests;

internal static class RkDumpFixture
{
    private static readonly Regex s_alloc = new(@"^Alloc by \((.*?) ?\) \[(0x[0-9a-f]{8})-(0x[0-9a-f]{8})\] (0x[0-9a-f]{8}) \((\d+) KiB\)$");

    /// <summary>The fixture's lines after <paramref name="part"/>'s marker, up to the next part.</summary>
    private static IEnumerable<string> Part(string part) =>
        TestSupport.Fixture("rk_dma_heap_info_rv1106.txt").Split('\n')
            .SkipWhile(l => !l.StartsWith("## " + part, StringComparison.Ordinal)).Skip(1)
            .TakeWhile(l => !l.StartsWith("## PART", StringComparison.Ordinal) && !l.StartsWith('#'))
            .Where(l => l.Length > 0);

    /// <summary>"\tAlloc by (%-20s)\t[%pa-%pa]\t%pa (%lu KiB)\n" of one fixture line (32-bit %pa: 0x and 8 digits).</summary>
    private static string AllocLine(string fixtureLine)
    {
        var m = s_alloc.Match(fixtureLine);
        Assert.True(m.Success, $"not an Alloc line: {fixtureLine}");
        return $"\tAlloc by ({m.Groups[1].Value,-20})\t[{m.Groups[2].Value}-{m.Groups[3].Value}]\t{m.Groups[4].Value} ({m.Groups[5].Value} KiB)\n";
    }

    /// <summary>
    /// PART A, the dma-buf records newest first, byte for byte: "dma-heap:&lt;%s&gt; -dmabuf", "\ti_ino = %ld\n", the
    /// Alloc line, "\t\tAttached Devices:\n", "\t\t%s\n" per device, "Total %d devices attached\n\n".
    /// </summary>
    public static string PartA()
    {
        var sb = new StringBuilder();
        foreach (string l in Part("PART A"))
        {
            var head = Regex.Match(l, @"^dma-heap:<([^>]+)> -dmabuf i_ino = (\d+)$");
            var total = Regex.Match(l, @"^Total (\d+) devices attached$");
            if (head.Success) sb.Append($"dma-heap:<{head.Groups[1].Value}> -dmabuf\ti_ino = {head.Groups[2].Value}\n");
            else if (l.StartsWith("Alloc by ", StringComparison.Ordinal)) sb.Append(AllocLine(l));
            else if (l == "Attached Devices:") sb.Append("\t\tAttached Devices:\n");
            else if (total.Success) sb.Append($"Total {total.Groups[1].Value} devices attached\n\n");
            else sb.Append("\t\t").Append(l).Append('\n');           // an attached device's name
        }
        return sb.ToString();
    }

    /// <summary>PART B, the page runs' Alloc lines as the kernel prints them (without their line break).</summary>
    public static IEnumerable<string> PartBLines() => Part("PART B").Select(l => AllocLine(l).TrimEnd('\n'));
}
