// The bare `kmem` command: boots a board (rv1106 by default), runs the built-in camera-pipeline workload (the
// RV1106 camera pipeline of Rockchip's DMA-BUF guide, rebuilt so that rk-dma-heap-info prints the guide's dump)
// and prints rk-dma-heap-info, the CMA lines of meminfo and buddyinfo; then streams the same board's camera
// through videobuf2 and DRM PRIME (camera-vb2) and prints the dma-bufs it added and the GEM objects.
namespace Kmem.Cli.Verbs;

internal static class MainJob
{
    public static int Run(CliContext ctx, string profile, string? cmdline)
    {
        using var m = VerbSupport.BootMachine(ctx, profile, cmdline);
        var wl = Commands.LoadWorkload(KmemCli.DefaultWorkload);
        var result = VerbSupport.RunWorkload(ctx, m, wl, out _);
        ctx.Out.WriteLine($"# kmem: booted {m.Profile.Name} ({m.Profile.Description}), ran workload '{wl.Name}'");
        ctx.Out.WriteLine();
        if (m.ProcFs.Exists("/proc/rk_dma_heap/rk-dma-heap-info"))
        {
            ctx.Out.WriteLine("$ cat /proc/rk_dma_heap/rk-dma-heap-info");
            ctx.Out.Write(m.ProcFs.Read("/proc/rk_dma_heap/rk-dma-heap-info"));
            ctx.Out.WriteLine();
        }
        ctx.Out.WriteLine("$ grep Cma /proc/meminfo");
        foreach (var line in m.ProcFs.Read("/proc/meminfo").Split('\n').Where(l => l.StartsWith("Cma", StringComparison.Ordinal)))
            ctx.Out.WriteLine(line);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("$ cat /proc/buddyinfo");
        ctx.Out.Write(m.ProcFs.Read("/proc/buddyinfo"));
        ctx.Out.WriteLine();
        VerbSupport.SummaryLine(ctx, m, result);

        // The same board streams: ISP → encoder through videobuf2, the display's framebuffers through PRIME.
        var vb2 = Commands.LoadWorkload("camera-vb2");
        var streamed = VerbSupport.RunWorkload(ctx, m, vb2, out var vb2Runner);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine($"# kmem: then ran workload '{vb2.Name}' on the same board");
        foreach (var note in streamed.Notes) ctx.Out.WriteLine(note);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("$ cat /sys/kernel/debug/dma_buf/bufinfo   # the buffers it added");
        ctx.Out.Write(BufinfoOf(m, b => b.ExpName.StartsWith("videobuf2", StringComparison.Ordinal) || b.ExpName == "drm"));
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("$ cat /sys/kernel/debug/dri/0/gem_objects");
        ctx.Out.Write(m.ProcFs.Read("/sys/kernel/debug/dri/0/gem_objects"));
        ctx.Out.WriteLine();
        VerbSupport.SummaryLine(ctx, m, streamed);
        vb2Runner.ReleaseAll();
        return result.Ok && streamed.Ok ? 0 : 1;
    }

    /// <summary>The bufinfo blocks of the buffers that match, in the kernel's order and format, without the totals.</summary>
    private static string BufinfoOf(Machine m, Func<DmaBuf, bool> which)
    {
        var inos = m.DmaBufs.Where(which).Select(b => b.Ino).ToHashSet();
        var text = m.ProcFs.Read("/sys/kernel/debug/dma_buf/bufinfo");
        var sb = new System.Text.StringBuilder();
        var lines = text.Split('\n');
        sb.Append(lines[2]).Append('\n');                                       // the header line
        for (int i = 3; i < lines.Length; i++)
        {
            var cols = lines[i].Split('\t');
            if (cols.Length < 6 || !ulong.TryParse(cols[5], out var ino) || !inos.Contains(ino)) continue;
            for (; i < lines.Length && lines[i].Length > 0; i++) sb.Append(lines[i]).Append('\n');
        }
        return sb.ToString();
    }
}
