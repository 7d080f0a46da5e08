// A /proc snapshot applied to a machine that is already disposed: the machine's ObjectDisposedException, nothing else.
namespace Kmem.Tests;

public sealed class ProcSnapshotDisposeTests
{
    [Fact]
    public void Apply_on_a_disposed_machine_throws_ObjectDisposedException()
    {
        var m = Machine.Boot("x86_64");
        string buddy = m.ProcFs.Read("/proc/buddyinfo");
        var snap = ProcSnapshot.Parse(new Dictionary<string, string> { ["buddyinfo"] = buddy });
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => snap.Apply(m));
    }
}
