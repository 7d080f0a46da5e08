// The memory-map picture: a well-formed SVG whose legend names every owner a camera board has, zones, CMA areas
// and the free-block histogram; pageblock cells on a large board; rendered for real in headless Chromium when the
// opt-in browser check is on (KMEM_BROWSER_CHECK=1, before each release).
using System.Diagnostics;
using System.Xml.Linq;

namespace Kmem.Tests;

public class MemoryMapTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static string CameraBoardMap()
    {
        using var m = Machine.Boot("rv1106");
        var runner = new WorkloadRunner(m);
        Assert.True(runner.Run(Kmem.Cli.Commands.LoadWorkload("camera-pipeline")).Ok);
        Assert.True(runner.Run(Kmem.Cli.Commands.LoadWorkload("camera-vb2")).Ok);
        var p = m.AllocPages(Gfp.Kernel | Gfp.Comp, 3);                  // compound pages
        nint v = m.Vmalloc(64 * 1024);
        string svg = m.RenderMemoryMap();
        m.Vfree(v);
        m.FreePages(p, 3);
        runner.ReleaseAll();
        return svg;
    }

    [Fact]
    public void The_map_is_an_svg_whose_legend_names_every_owner()
    {
        string svg = CameraBoardMap();
        var doc = XDocument.Parse(svg);
        Assert.Equal(Svg + "svg", doc.Root!.Name);
        var texts = doc.Descendants(Svg + "text").Select(t => t.Value).ToList();
        foreach (var owner in new[] { "CMA rk-dma-heap-cma: vmpi", "CMA rk-dma-heap-cma: ffa00000.rkisp", "dma-buf: videobuf2_dma_contig",
                                      "dma-buf: drm", "vmalloc", "compound pages (large kmalloc, __GFP_COMP)", "free order 8",
                                      "reserved: kernel", "reserved: mem_map" })
            Assert.Contains(texts, t => t.StartsWith(owner + " (", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("slab: ", StringComparison.Ordinal));
        Assert.Contains("Normal", texts);
        Assert.Contains("CMA rk-dma-heap-cma", texts);
        Assert.Contains(texts, t => t.Contains("65536 pages, one page a cell"));
        var cells = doc.Descendants(Svg + "g").Single(g => (string?)g.Attribute("id") == "cells").Elements(Svg + "rect").ToList();
        Assert.True(cells.Count > 200, $"{cells.Count} cells");
        Assert.Equal(9, doc.Descendants(Svg + "g").Single(g => (string?)g.Attribute("id") == "histogram").Elements(Svg + "rect").Count());
    }

    [Fact]
    public void A_large_board_is_drawn_by_pageblock()
    {
        using var m = Machine.Boot("rk3588");
        var doc = XDocument.Parse(m.RenderMemoryMap());
        Assert.Contains(doc.Descendants(Svg + "text"), t => t.Value.Contains(" pages a cell,"));
        Assert.Contains(doc.Descendants(Svg + "text"), t => t.Value == "DMA32" || t.Value == "Normal");
    }

    [Fact]
    public void The_cli_writes_the_map_and_refuses_two_sources()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-map-{Environment.ProcessId}.svg");
        var o = new StringWriter();
        Assert.Equal(0, Kmem.Cli.KmemCli.Run(["map", "--workload", "camera-pages", "--out", path], o, new StringWriter()));
        Assert.Contains("wrote", o.ToString());
        XDocument.Load(path);
        File.Delete(path);
        var err = new StringWriter();
        Assert.Equal(2, Kmem.Cli.KmemCli.Run(["map", "--workload", "camera-pages", "--trace", "x.txt", "--out", path], new StringWriter(), err));
        Assert.Contains("not both", err.ToString());
    }

    /// <summary>The environment variable that turns the browser check on (the release checklist sets it).</summary>
    public const string BrowserCheckVariable = "KMEM_BROWSER_CHECK";

    /// <summary>The installed Chromium, or null.</summary>
    private static string? Chromium()
    {
        foreach (var c in new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" })
            if (File.Exists(c)) return c;
        return null;
    }

    private static long Screenshot(string chromium, string svgPath, string dir)
    {
        string png = Path.Combine(dir, Path.GetFileNameWithoutExtension(svgPath) + ".png");
        var psi = new ProcessStartInfo(chromium)
        {
            ArgumentList = { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", $"--user-data-dir={Path.Combine(dir, "profile")}",
                             "--window-size=1400,1000", $"--screenshot={png}", new Uri(svgPath).AbsoluteUri },
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync();
        p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "chromium did not finish");
        Assert.True(File.Exists(png), "no screenshot");
        var bytes = File.ReadAllBytes(png);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        return bytes.LongLength;
    }

    /// <summary>
    /// An integration check, run before each release (README, "Testing"): the picture renders in a real browser. Opt-in
    /// with KMEM_BROWSER_CHECK=1 and an installed Chromium; it then fails, rather than skips, when there is none.
    /// </summary>
    [SkippableFact]
    public void The_map_renders_in_headless_chromium()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable(BrowserCheckVariable) == "1", $"browser check off (set {BrowserCheckVariable}=1 to run it)");
        string? chromium = Chromium();
        Assert.True(chromium is not null, "Chromium is not installed (/usr/bin/chromium or /usr/bin/chromium-browser)");
        string dir = Path.Combine(Path.GetTempPath(), $"kmem-chromium-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            string map = Path.Combine(dir, "map.svg"), blank = Path.Combine(dir, "blank.svg");
            File.WriteAllText(map, CameraBoardMap());
            File.WriteAllText(blank, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1400\" height=\"1000\"><rect width=\"1400\" height=\"1000\" fill=\"#fafafa\"/></svg>");
            long mapBytes = Screenshot(chromium!, map, dir), blankBytes = Screenshot(chromium!, blank, dir);
            // A picture with thousands of coloured runs compresses far worse than an empty page of the same size.
            Assert.True(mapBytes > 4 * blankBytes, $"map {mapBytes} bytes, blank {blankBytes} bytes");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
