// The boot messages of mm initialisation, in the kernel's words and order: banner, CMA
// reservations, zone ranges, node ranges, per-zone memmap/LIFO batch lines, zonelists, "Memory:".
using Kmem.Boot;
using Kmem.Paging;

namespace Kmem;

public sealed partial class Machine
{
    private void PrintEarlyBootLines(MemoryLayout layout)
    {
        var m = this;
        var p = m.Profile;
        var log = m.Log;
        bool x86 = p.Arch is Arch.X86_64 or Arch.I386;
        if (p.Arch is Arch.Arm or Arch.Arm64) log.Info("Booting Linux on physical CPU 0x0");
        log.Printk(LogLevel.Notice, $"Linux version {ReleaseOf(p)} (kmem@kmem) (.NET {Environment.Version}) #1 {(p.Config.IsEnabled("SMP") ? "SMP " : "")}PREEMPT");
        if (x86)
        {
            foreach (var b in p.Dram) log.Info($"BIOS-e820: [mem {Hex18(b.Base)}-{Hex18(b.End - 1)}] usable");
            log.Info($"DMI: {(p.Description.Length > 0 ? p.Description : p.Name)}");
        }
        else
        {
            log.Info($"Machine model: {(p.Description.Length > 0 ? p.Description : p.Name)}");
        }
        if (p.Cmdline.Length > 0) log.Printk(LogLevel.Notice, $"Kernel command line: {p.Cmdline}");
        PrintUnknownParameters(UnknownParameters(p, KernelCmdline.Parse(p.Cmdline, "cmdline")));
        int paDigits = p.Is64Bit ? 16 : 8;
        foreach (var c in layout.CmaAreas)
            log.Info($"cma: Reserved {(long)(c.Size >> 20)} MiB at 0x{c.Base.ToString($"x{paDigits}")}");

        log.Info("Zone ranges:");
        foreach (var (type, s, e) in layout.Zones)
        {
            if (type == ZoneType.Movable) continue;
            string name = PageTypes.ZoneNames[(int)type];
            log.Info(e > s ? $"  {name,-8} [mem {Hex18(s << 12)}-{Hex18((e << 12) - 1)}]" : $"  {name,-8} empty");
        }
        log.Info("Movable zone start for each node");
        log.Info("Early memory node ranges");
        foreach (var b in p.Dram) log.Info($"  node   0: [mem {Hex18(b.Base)}-{Hex18(b.End - 1)}]");
        log.Info($"Initmem setup node 0 [mem {Hex18(p.Dram[0].Base)}-{Hex18(p.Dram[^1].End - 1)}]");
    }

    /// <summary>
    /// print_unknown_bootoptions(): from 5.8 ("init: print out unknown kernel parameters") the words no parameter took;
    /// from 5.16 ("init: make unknown command line param message clearer", also in 5.15.3) quoted, with where they go.
    /// </summary>
    private void PrintUnknownParameters(List<string> unknown)
    {
        var v = Profile.Version;
        if (unknown.Count == 0 || !v.IsAtLeast(5, 8)) return;
        string list = string.Join(' ', unknown);
        bool clearer = v.IsAtLeast(5, 16) || (v.Major == 5 && v.Minor == 15 && v.Patch >= 3);
        Log.Printk(LogLevel.Notice, clearer
            ? $"Unknown kernel command line parameters \"{list}\", will be passed to user space."
            : $"Unknown command line parameters: {list}");
    }

    /// <summary>The lines printed from free_area_init_core() to mem_init().</summary>
    private void PrintMemInitLines(MemoryLayout layout)
    {
        var m = this;
        var pa = m.Pages;
        var p = m.Profile;
        var log = m.Log;
        long total = pa.Zones.Sum(z => z.Present);
        log.Printk(LogLevel.Debug, $"On node 0 totalpages: {total}");
        long vmTotal = 0;
        foreach (var z in pa.Zones)
        {
            bool high = z.Type == ZoneType.HighMem;
            long freesize = z.Present;
            if (z.Spanned > 0 && !high)
            {
                long memmap = (z.Spanned * p.StructPageSize + 4095) / 4096;
                if (freesize >= memmap)
                {
                    freesize -= memmap;
                    if (memmap > 0) log.Printk(LogLevel.Debug, $"  {z.Name} zone: {memmap} pages used for memmap");
                }
                else log.Warn($"  {z.Name} zone: {memmap} pages exceeds freesize {freesize}");
            }
            if (z.Index == 0 && freesize > 0) log.Printk(LogLevel.Debug, $"  {z.Name} zone: 0 pages reserved");
            if (z.Populated) log.Printk(LogLevel.Debug, $"  {z.Name} zone: {z.Present} pages, LIFO batch:{Watermarks.PcpBatch(freesize)}");
            vmTotal += freesize;
        }
        bool grouping = vmTotal >= (1L << pa.PageblockOrder) * PageTypes.MigrateTypes;
        log.Info($"Built 1 zonelists, mobility grouping {(grouping ? "on" : "off")}.  Total pages: {vmTotal}");

        // mem_init(): CMA pages are still reserved at this point (they are activated later at core_initcall).
        long freeNow = pa.Zones.Sum(z => z.FreePages) - pa.TotalCmaPages;
        long totalramNow = pa.TotalRamPages - pa.TotalCmaPages;
        long phys = pa.PhysPages;
        var k = p.Kernel;
        string high2 = p.LowmemLimit is not null ? $", {pa.Zones.Where(z => z.Type == ZoneType.HighMem).Sum(z => z.Managed) * 4}K highmem" : "";
        log.Info($"Memory: {freeNow * 4}K/{phys * 4}K available ({(k?.Code ?? 0) >> 10}K kernel code, {(k?.RwData ?? 0) >> 10}K rwdata, " +
                 $"{(k?.RoData ?? 0) >> 10}K rodata, {(k?.Init ?? 0) >> 10}K init, {(k?.Bss ?? 0) >> 10}K bss, " +
                 $"{(phys - totalramNow - pa.TotalCmaPages) * 4}K reserved, {pa.TotalCmaPages * 4}K cma-reserved{high2})");
        log.Info($"mem_map: {layout.MemMapBytes >> 10} KiB at 0x{layout.MemMapBase:x} for {layout.SpanEnd - layout.SpanStart >> 12} page frames");
        log.Info($"min_free_kbytes: {pa.MinFreeKbytes}, page block order {pa.PageblockOrder}, MAX_ORDER {pa.MaxOrder}");
        if (!m.IsFileBacked) log.Warn("kmem: physical memory is a plain native block (no memfd): remapping is unavailable");
    }

    private static string Hex18(ulong v) => "0x" + v.ToString("x16");
}
