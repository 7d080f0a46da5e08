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
        Gfp[] kinds = [Gfp.Kernel, Gfp.Kernel | Gfp.Movable, Gfp.Kernel | Gfp.Reclaimable, Gfp.HighUserMovable];
        var held = TestSupport.Churn(src, rng, 3000, kinds, r => r.Next(10) < 7 ? 0 : r.Next(1, Math.Min(6, src.MaxOrder)));
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
