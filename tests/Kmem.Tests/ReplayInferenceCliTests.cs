// `kmem replay` without --profile: it prints what it inferred of the recording machine (one line each, with the
// reason) and replays on that machine; with --profile it replays where it is told and infers nothing.
namespace Kmem.Tests;

public class ReplayInferenceCliTests
{
    private static string FixturePath(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void Replay_without_a_profile_prints_its_inference_and_replays_on_that_machine()
    {
        var (code, o, e) = TestSupport.Cli("replay", FixturePath("ftrace_kmem_i386_slub_3.6_boot.txt"));
        Assert.True(code == 0, e);
        var lines = o.Split('\n');
        Assert.StartsWith("inferred pointer width: 32-bit (pointers print at most 8 hex digits, e.g. ", lines[0]);
        Assert.StartsWith("inferred architecture: i386 (call_site=c1", lines[1]);
        Assert.Equal("inferred CPUs: 1 (the trace header's #P:1)", lines[2]);
        Assert.StartsWith("inferred cache line: 32 bytes (", lines[3]);
        Assert.StartsWith("inferred slab allocator: SLUB (", lines[4]);
        Assert.StartsWith("inferred kmalloc minimum alignment: 8 bytes (", lines[5]);
        Assert.StartsWith("inferred kernel version: 4.5 (gfp_flags=", lines[6]);
        Assert.StartsWith("replay on inferred-i386: ", lines[7]);
        Assert.Matches(@"\n  (\d+) of \1 sizes as recorded\n(.|\n)*\n  (\d+) of \3 sizes as recorded\n", o);
    }

    [Fact]
    public void Replay_with_a_profile_infers_nothing_and_json_carries_the_inference()
    {
        string path = FixturePath("ftrace_kmem_i386_slab_3.6_boot.txt");
        var (code, o, e) = TestSupport.Cli("replay", path, "--profile", "x86_64");
        Assert.True(code == 0, e);
        Assert.StartsWith("replay on x86_64: ", o);
        Assert.DoesNotContain("inferred ", o);
        (code, o, e) = TestSupport.Cli("replay", path, "--json");
        Assert.True(code == 0, e);
        using var doc = System.Text.Json.JsonDocument.Parse(o);
        Assert.Equal("inferred-i386", doc.RootElement.GetProperty("profile").GetString());
        Assert.Equal("SLAB", doc.RootElement.GetProperty("recordedSlabAllocator").GetString());
        Assert.Contains(doc.RootElement.GetProperty("inference").EnumerateArray(), l => l.GetString()!.StartsWith("slab allocator: SLAB", StringComparison.Ordinal));
        Assert.Contains(doc.RootElement.GetProperty("kmalloc").EnumerateArray(), r => r.TryGetProperty("cause", out var c) && c.GetString() == "SLAB");
        // --kernel still overrides the inferred version.
        (code, o, e) = TestSupport.Cli("replay", path, "--kernel", "3.10");
        Assert.True(code == 0, e);
        Assert.Contains("replay on inferred-i386: ", o);
    }
}
