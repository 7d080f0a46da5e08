// The kernel's names of zones and migratetypes, as /proc prints them.
using Kmem.Paging;

namespace Kmem;

/// <summary>The kernel's names of zones and migratetypes, as /proc prints them.</summary>
public static class KernelNames
{
    /// <summary>The zone's name in <c>zone_names[]</c> ("DMA", "DMA32", "Normal", "HighMem", "Movable").</summary>
    public static string KernelName(this ZoneType type) => PageTypes.ZoneNames[(int)type];

    /// <summary>The migratetype's name in <c>migratetype_names[]</c> ("Unmovable", …, "CMA", "Isolate").</summary>
    public static string KernelName(this MigrateType type) => PageTypes.MigrateTypeNames[(int)type];
}
