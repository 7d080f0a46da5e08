// The fuzzing program: "Kmem.Fuzz <target>" runs one target under afl-fuzz through SharpFuzz (out of
// process, so a crash of the runtime is seen as one); "Kmem.Fuzz <target> <file>..." replays files once
// without a fuzzer and prints what each did, for triage of a finding.
using Kmem.Fuzzing;
using SharpFuzz;

if (args.Length == 0 || Array.IndexOf(FuzzTargets.Names, args[0]) < 0)
{
    Console.Error.WriteLine($"usage: Kmem.Fuzz <{string.Join("|", FuzzTargets.Names)}> [file...]");
    return 2;
}
string target = args[0];
if (args.Length > 1)
{
    foreach (string file in args.Skip(1))
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        bool accepted = FuzzTargets.Run(target, File.ReadAllBytes(file));
        Console.WriteLine($"{file}: {(accepted ? "accepted" : "refused")} in {sw.Elapsed.TotalMilliseconds:F1} ms");
    }
    return 0;
}
Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    FuzzTargets.Run(target, buffer.ToArray());
});
return 0;
