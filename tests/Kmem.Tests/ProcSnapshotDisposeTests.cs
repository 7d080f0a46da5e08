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

    [Fact]
    public void Release_after_the_machine_is_disposed_throws_ObjectDisposedException_and_touches_nothing()
    {
        // A source machine with a cache of its own, exported as a user would copy its files.
        var files = new Dictionary<string, string>();
        using (var src = Machine.Boot("x86_64"))
        {
            var c = src.KmemCacheCreate("snap_obj", 200, 0, SlabFlags.NoMerge);
            for (int i = 0; i < 500; i++) c.Alloc(Gfp.Kernel);
            foreach (var f in new[] { "pagetypeinfo", "buddyinfo", "slabinfo" }) files[f] = src.ProcFs.Read("/proc/" + f);
        }
        var (m, import) = ProcSnapshot.Parse(files).Boot(MachineProfile.Embedded("x86_64"));
        Assert.Contains(import.SlabCaches, r => r.Name == "snap_obj" && r.Created && r.Objects > 0);
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(import.Release);
        Assert.Throws<ObjectDisposedException>(import.Release);
    }
}
