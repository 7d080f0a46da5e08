// The memory-map picture: a well-formed SVG whose legend names every owner a camera board has, zones, CMA areas
// and the free-block histogram; pageblock cells on a large board; rendered for real in headless Chromium.
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
                                      "dma-buf: drm", "vmalloc", "compound pages (large kmalloc, __GFP_COMP)", "free order 10", "reserved" })
            Assert.Contains(texts, t => t.StartsWith(owner + " (", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("slab: ", StringComparison.Ordinal));
        Assert.Contains("Normal", texts);
        Assert.Contains("CMA rk-dma-heap-cma", texts);
        Assert.Contains(texts, t => t.Contains("65536 pages, one page a cell"));
        var cells = doc.Descendants(Svg + "g").Single(g => (string?)g.Attribute("id") == "cells").Elements(Svg + "rect").ToList();
        Assert.True(cells.Count > 200, $"{cells.Count} cells");
        Assert.Equal(11, doc.Descendants(Svg + "g").Single(g => (string?)g.Attribute("id") == "histogram").Elements(Svg + "rect").Count());
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

    /// <summary>Debian's Chromium: found, or installed with apt when this runs as root; null when neither works.</summary>
    private static string? Chromium()
    {
        foreach (var c in new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" })
            if (File.Exists(c)) return c;
        if (Environment.UserName != "root" || !File.Exists("/usr/bin/apt-get")) return null;
        // A fresh machine has no package lists yet: install, and when that fails update the lists and try once more.
        if (!AptGet("install -y --no-install-recommends chromium") &&
            !(AptGet("update") && AptGet("install -y --no-install-recommends chromium"))) return null;
        return File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium" : null;
    }

    private static bool AptGet(string args)
    {
        var psi = new ProcessStartInfo("/usr/bin/apt-get", args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync();
        p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10))) { p.Kill(); return false; }
        return p.ExitCode == 0;
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

    [SkippableFact]
    public void The_map_renders_in_headless_chromium()
    {
        string? chromium = Chromium();
        Skip.If(chromium is null, "Chromium is not installed and could not be installed here");
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
