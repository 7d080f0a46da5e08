// The `kmem` command line itself: the one --profile that the root and every verb share (before or after the
// verb's name, refused where it means nothing), the validators that refuse bad arguments before a board boots,
// and the help, which names the main job's real workload.
namespace Kmem.Tests;

public class CliOptionTests
{
    [Fact]
    public void The_profile_given_before_the_verb_is_the_one_the_verb_boots()
    {
        static string Untimed(string log) => System.Text.RegularExpressions.Regex.Replace(log, @"(?m)^\[ *[0-9]+\.[0-9]+\] ", "");
        var (code, before, e) = TestSupport.Cli("-p", "x86_64", "boot");
        Assert.True(code == 0, e);
        var (_, after, _) = TestSupport.Cli("boot", "--profile", "x86_64");
        Assert.Equal(Untimed(after), Untimed(before));
        Assert.Contains("DMI: Standard PC", before);
        Assert.DoesNotContain("DMI: Standard PC", TestSupport.Cli("boot").Out);   // the default is another board
    }

    [Fact]
    public void Profiles_refuses_a_profile_it_would_ignore()
    {
        foreach (var args in new[] { new[] { "profiles", "--profile", "x86_64" }, ["--profile", "x86_64", "profiles"] })
        {
            var (code, o, e) = TestSupport.Cli(args);
            Assert.Equal(2, code);
            Assert.Equal("", o);
            Assert.Equal("kmem: profiles: --profile does not apply (the verb lists every embedded profile) (see 'kmem --help')\n", e);
        }
        Assert.Equal(0, TestSupport.Cli("profiles").Code);
    }

    [Theory]
    [InlineData(new[] { "dmesg", "--level", "-1" }, "--level -1 is outside 0..7")]
    [InlineData(new[] { "slabtop", "--sort", "ab" }, "--sort ab: not one of c, o, a, s, l, b, n")]
    [InlineData(new[] { "slabtop", "--lines", "-1" }, "--lines -1 is negative")]
    [InlineData(new[] { "cat", "--profile", "pdp11" }, "cat needs a path (or --list)")]            // before the board boots
    [InlineData(new[] { "import", "frob", "/nonexistent/dump.txt" }, "import: unknown kind 'frob' (known: rk-dma-heap-info, proc)")]
    [InlineData(new[] { "import", "rk-dma-heap-info", "/nonexistent/dump.txt" }, "import: no file '/nonexistent/dump.txt'")]
    [InlineData(new[] { "run", "camera-pages", "--after", "/nonexistent/dump.txt" }, "run --after: no file '/nonexistent/dump.txt'")]
    [InlineData(new[] { "replay", "/nonexistent/trace.txt", "--profile", "pdp11" }, "replay: no trace file '/nonexistent/trace.txt'")]
    [InlineData(new[] { "map", "--out", "m.svg", "--trace", "/nonexistent/trace.txt" }, "map --trace: no trace file '/nonexistent/trace.txt'")]
    [InlineData(new[] { "map", "--out", "m.svg", "--workload", "camera-pages", "--trace", "t.txt" }, "map: give --workload or --trace, not both")]
    [InlineData(new[] { "map", "--out", "" }, "map --out: the file name is empty")]
    [InlineData(new[] { "map", "--out", "/nonexistent/dir/m.svg" }, "map --out /nonexistent/dir/m.svg: the directory /nonexistent/dir does not exist")]
    public void A_bad_argument_is_refused_while_the_line_is_parsed(string[] args, string reason)
    {
        var (code, o, e) = TestSupport.Cli(args);
        Assert.Equal(2, code);
        Assert.Equal("", o);
        Assert.Equal($"kmem: {reason} (see 'kmem --help')\n", e);
    }

    [Fact]
    public void A_value_that_is_not_a_number_is_the_parsers_own_error()
    {
        var (code, _, e) = TestSupport.Cli("dmesg", "--level", "x");
        Assert.Equal(2, code);
        Assert.Equal("kmem: Cannot parse argument 'x' for option '--level' as expected type 'System.Int32'. (see 'kmem --help')\n", e);
    }

    [Fact]
    public void A_board_without_the_dumps_heap_is_refused_once_booted()
    {
        string file = Path.Combine(AppContext.BaseDirectory, "Fixtures", "rk_dma_heap_info_rv1106.txt");
        var (code, o, e) = TestSupport.Cli("import", "rk-dma-heap-info", file, "--profile", "x86_64");
        Assert.Equal(2, code);
        Assert.Equal("", o);
        Assert.Equal("kmem: import: x86_64 has no RK-DMA-HEAP (try --profile rv1106)\n", e);
    }

    [Fact]
    public void Help_shows_the_one_profile_option_on_every_verb_and_describes_the_main_job()
    {
        var (code, root, _) = TestSupport.Cli("--help");
        Assert.Equal(0, code);
        Assert.Contains("run the built-in camera-pipeline workload", root);
        Assert.DoesNotContain("camera-pages", root);
        foreach (var verb in new[] { "boot", "cat", "run", "dmesg", "slabtop", "import", "replay", "map" })
        {
            var (_, help, _) = TestSupport.Cli(verb, "--help");
            var options = help[help.IndexOf("Options:\n", StringComparison.Ordinal)..].Split('\n');
            Assert.Single(options, l => l.StartsWith("  -p, --profile <profile>", StringComparison.Ordinal));
            Assert.Single(options, l => l.Contains("--help"));
        }
    }
}
