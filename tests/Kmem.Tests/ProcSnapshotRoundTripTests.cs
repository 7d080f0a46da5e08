// A machine's own state after a seeded random workload, exported as /proc files and imported into a fresh machine of
// the same profile: pagetypeinfo (both tables) and buddyinfo must read the same.
namespace Kmem.Tests;

public class ProcSnapshotRoundTripTests
{
    [Theory]
    [InlineData("rv1106", 1)]
    [InlineData("rv1106", 2)]
    [InlineData("x86_64", 3)]
    public void Export_then_import_gives_the_same_views(string profile, int seed)
    {
        var rng = new Random(seed);
        using var src = Machine.Boot(profile);
        var held = new List<(Page Page, int Order)>();
        Gfp[] kinds = [Gfp.Kernel, Gfp.Kernel | Gfp.Movable, Gfp.Kernel | Gfp.Reclaimable, Gfp.HighUserMovable];
        for (int i = 0; i < 3000; i++)
        {
            if (held.Count > 0 && rng.Next(3) == 0)
            {
                int k = rng.Next(held.Count);
                src.FreePages(held[k].Page, held[k].Order);
                held[k] = held[^1];
                held.RemoveAt(held.Count - 1);
                continue;
            }
            int order = rng.Next(10) < 7 ? 0 : rng.Next(1, Math.Min(6, src.MaxOrder));
            var p = src.AllocPages(kinds[rng.Next(kinds.Length)] | Gfp.NoWarn, order);
            if (!p.IsNull) held.Add((p, order));
        }
        src.DrainAllPages();
        var files = new Dictionary<string, string>
        {
            ["pagetypeinfo"] = src.ProcFs.Read("/proc/pagetypeinfo"),
            ["buddyinfo"] = src.ProcFs.Read("/proc/buddyinfo"),
        };
        var snap = ProcSnapshot.Parse(files);
        Assert.Empty(snap.Findings);
        using var dst = Machine.Boot(profile);
        var import = snap.Apply(dst);
        Assert.Equal(files["pagetypeinfo"], dst.ProcFs.Read("/proc/pagetypeinfo"));
        Assert.Equal(files["buddyinfo"], dst.ProcFs.Read("/proc/buddyinfo"));
        // The import's pages are ordinary allocations: freeing them all leaves a machine whose allocator still works.
        import.Release();
        var page = dst.AllocPages(Gfp.Kernel, 3);
        Assert.False(page.IsNull);
        dst.FreePages(page, 3);
        foreach (var (p, o) in held) src.FreePages(p, o);
    }
}
