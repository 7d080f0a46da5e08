// Replays every kept fuzzing input (fuzz/corpus/<target>, fuzz/regressions/<target>) through the same rule the
// fuzzer checks (fuzz/Kmem.Fuzz/FuzzTargets.cs, compiled into this assembly too): each input parses or is
// refused with the parser's documented exception, within a time limit, so CI guards every finding.
using System.Diagnostics;
using Kmem.Fuzzing;

namespace Kmem.Tests;

public class FuzzCorpusTests
{
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(10);

    private static string Root => Path.Combine(AppContext.BaseDirectory, "Fuzz");

    public static TheoryData<string> Targets() => new(FuzzTargets.Names);

    private static string[] Files(string kind, string target)
    {
        string dir = Path.Combine(Root, kind, target);
        return Directory.Exists(dir) ? Directory.GetFiles(dir).Order(StringComparer.Ordinal).ToArray() : [];
    }

    /// <summary>Runs each file under the rule; returns what broke it, one line each.</summary>
    private static List<string> Replay(string target, IEnumerable<string> files, Action<string, bool>? seen = null)
    {
        var broken = new List<string>();
        foreach (string file in files)
        {
            byte[] input = File.ReadAllBytes(file);
            var sw = Stopwatch.StartNew();
            var run = Task.Run(() => FuzzTargets.Run(target, input));
            string name = Path.GetRelativePath(Root, file);
            try
            {
                if (!run.Wait(s_limit)) { broken.Add($"{name}: still running after {s_limit.TotalSeconds} s (a hang)"); continue; }
                seen?.Invoke(name, run.Result);
            }
            catch (AggregateException e)
            {
                broken.Add($"{name}: {e.InnerException!.GetType().Name}: {e.InnerException.Message.ReplaceLineEndings(" ")}");
            }
        }
        return broken;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_corpus_input_parses_or_is_refused_with_the_documented_exception(string target)
    {
        var files = Files("corpus", target);
        Assert.True(files.Length >= 4, $"fuzz/corpus/{target} holds {files.Length} inputs");
        int accepted = 0;
        var broken = Replay(target, files, (_, ok) => accepted += ok ? 1 : 0);
        Assert.True(broken.Count == 0, string.Join("\n", broken));
        Assert.True(accepted > 0, $"no input of fuzz/corpus/{target} is accepted: the seeds no longer reach the parser's end");
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_regression_input_parses_or_is_refused_with_the_documented_exception(string target)
    {
        var broken = Replay(target, Files("regressions", target));
        Assert.True(broken.Count == 0, string.Join("\n", broken));
    }

    [Fact]
    public void The_rule_lets_no_other_exception_through()
    {
        // A refusal must be the documented type with a one-line reason; the rule itself fails otherwise.
        Assert.False(FuzzTargets.Run("profile", "{"));
        Assert.False(FuzzTargets.Run("workload", "[]"));
        Assert.False(FuzzTargets.Run("rkdma", "nothing here"));
        Assert.False(FuzzTargets.Run("cmdline", "slub_max_order=11"));
        Assert.False(FuzzTargets.Run("trace", "# only a comment\n"));
        Assert.True(FuzzTargets.Run("trace", "  <idle>-0 [000] ..s1. 1.000000: kfree: call_site=x+0x1 ptr=0xffff888000001000\n"));
        Assert.Throws<ArgumentException>(() => FuzzTargets.Run("no-such-target", ""));
    }

    [Fact]
    public void Regressions_are_kept_for_what_the_fuzzer_found()
    {
        int total = FuzzTargets.Names.Sum(t => Files("regressions", t).Length);
        Assert.True(total > 0, "fuzz/regressions is empty");
    }
}
