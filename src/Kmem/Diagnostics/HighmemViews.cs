// Kmem's own debugfs file of the high-memory mappings, /sys/kernel/debug/kmem/pkmap (the kernel has no such file:
// its pkmap_count[] and last_pkmap_nr are static in mm/highmem.c). Served only on machines with ZONE_HIGHMEM: the
// persistent kmap pool's slots by their count (0 free, 1 mapped but unused until the next flush, 2+ in use), its
// users and cursor, what kmap_high() has done (maps, hits, new mappings, flushes, sleeps), and the threads'
// kmap_atomic/kmap_local stacks with the hits and cold maps of their windows.
using System.Text;
using Kmem.Highmem;

namespace Kmem.Diagnostics;

internal static class HighmemViews
{
    /// <summary>The path of the file.</summary>
    public const string PkmapPath = "/sys/kernel/debug/kmem/pkmap";

    /// <summary>Registers the file when the machine has HighMem frames (nothing is ever kmapped otherwise).</summary>
    public static void Register(ProcFs fs, KmapSpace kmaps)
    {
        if (!kmaps.HasHighMem) return;
        fs.Register(PkmapPath, () => Pkmap(kmaps));
    }

    /// <summary>The file's text: one "name value" line per figure, pool first, then the stacks.</summary>
    public static string Pkmap(KmapSpace kmaps)
    {
        var s = kmaps.Pool.State();
        var local = kmaps.Local;
        var (threads, entries, atomic) = local.Totals;
        var sb = new StringBuilder();
        void Line(string name, long value) => sb.Append($"{name,-20}{value}\n");
        // The pool (mm/highmem.c: pkmap_count[], last_pkmap_nr, kmap_high(), flush_all_zero_pkmaps()).
        Line("slots", s.Slots);
        Line("free", s.Free);
        Line("mapped_unused", s.Unused);
        Line("in_use", s.InUse);
        Line("users", s.Users);
        Line("last_pkmap_nr", s.LastPkmapNr);
        Line("maps", s.Maps);
        Line("hits", s.Hits);
        Line("new_mappings", s.NewMappings);
        Line("flushes", s.Flushes);
        Line("flushed_slots", s.Unmapped);
        Line("sleeps", s.Sleeps);
        Line("sleeping", s.SleepingNow);
        Line("high_gets", s.HighGets);
        // The stacks (kmap_atomic(); kmap_local_page() from 5.11) and the threads' windows.
        Line("kmap_local", kmaps.Settings.HasKmapLocal ? 1 : 0);
        Line("stack_depth_max", local.MaxDepth);
        Line("stack_threads", threads);
        Line("stack_entries", entries);
        Line("atomic_depth", atomic);
        Line("local_hits", local.Hits);
        Line("local_cold_maps", local.ColdMaps);
        return sb.ToString();
    }
}
