// The import entry points of this issue on a machine that is already disposed: the machine's ObjectDisposedException,
// nothing else (a /proc snapshot, and an rk-dma-heap-info dump in its grep form, which picks the board's heap).
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

    [Fact]
    public void A_grep_form_dump_on_a_disposed_machine_throws_ObjectDisposedException()
    {
        var m = Machine.Boot();
        var entries = RkDmaHeapImport.Parse("Alloc by (vmpi )[0x02800000-0x02800fff] 0x00001000 (4 KiB)\n");
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => RkDmaHeapImport.BoardHeap(m));
        Assert.Throws<ObjectDisposedException>(() => RkDmaHeapImport.Replay(m, entries));
    }
}
