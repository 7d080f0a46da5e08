// What a /proc snapshot import built on a machine: the slab caches and objects, vmalloc areas and CMA movable pages it
// rebuilt from the used memory, the pages it holds as recorded allocations, and the notes on how it placed things;
// Release() gives all of it back and destroys the caches the import created.
using Kmem.Paging;
using Kmem.Scenarios.ProcSnapshots;

namespace Kmem;

/// <summary>What <see cref="ProcSnapshot.Apply"/> built: rebuilt caches, areas and CMA pages, the recorded pages, and notes.</summary>
public sealed class ProcSnapshotImport
{
    private readonly Machine _m;
    private List<(int Idx, int Count)>? _held;
    private SnapshotRebuild? _rebuild;
    private List<MovablePage>? _cma;

    internal ProcSnapshotImport(Machine m, FreeStateResult r, SnapshotRebuild rebuild)
    {
        _m = m;
        _held = r.Held.ToList();
        _rebuild = rebuild;
        var names = new List<(string, long)>();
        void Add(string name, long count)
        {
            int i = names.FindIndex(n => n.Item1 == name);
            if (i < 0) names.Add((name, count)); else names[i] = (name, names[i].Item2 + count);
        }
        foreach (var (idx, count) in r.Held)
        {
            var z = m.Pages.ZoneOfIdx(idx)!;
            Add($"recorded:node{z.Node}:{z.Name}", count);
        }
        // The used pages of CMA pageblocks: in a running kernel mostly movable user pages, so movable pages here too, that a
        // cma_alloc migrates out of its way.
        _cma = [];
        foreach (var (idx, count) in r.HeldCma)
            for (int i = idx; i < idx + count; i++)
            {
                _cma.Add(m.AdoptMovable(i));
                ulong pfn = m.Pages.BasePfn + (ulong)i;
                var area = m.Cma.Values.FirstOrDefault(a => pfn >= a.BasePfn && pfn < a.BasePfn + a.Count);
                Add($"recorded:cma:{area?.Name ?? "?"}", 1);
            }
        Recorded = names;
        CmaPages = _cma.Count;
        SlabCaches = rebuild.Caches.AsEnumerable().Reverse().Select(c => (c.Cache.Name, c.Created, (long)c.Objects.Count)).ToList();
        SlabPages = rebuild.Caches.Select(c => c.Cache).Distinct().Sum(c => c.Slabs << c.Order);
        VmallocAreas = rebuild.Areas.Select(a => (a.Row.Caller, a.Address, a.Pages)).ToList();
        Notes = [.. r.Notes, .. rebuild.Notes];
    }

    /// <summary>
    /// The recorded allocations: one per zone ("recorded:nodeN:Zone") for the pages nothing was rebuilt in, and one per
    /// CMA area ("recorded:cma:AREA") for the CMA pageblocks' used pages, held as movable pages (<see cref="CmaPages"/>).
    /// </summary>
    public IReadOnlyList<(string Name, long Pages)> Recorded { get; }

    /// <summary>Pages held in all (the CMA movable pages included).</summary>
    public long RecordedPages => Recorded.Sum(r => r.Pages);

    /// <summary>
    /// slabinfo's caches as rebuilt, in the file's order: the name, whether the import created the cache (else it is the
    /// machine's own, such as a kmalloc cache) and the objects the import allocated in it.
    /// </summary>
    public IReadOnlyList<(string Name, bool Created, long Objects)> SlabCaches { get; }

    /// <summary>Pages in the slabs of the rebuilt caches after the import (the machine's own objects in them included).</summary>
    public long SlabPages { get; }

    /// <summary>vmallocinfo's areas as rebuilt: the caller, the address in the machine's window and the pages (0: an ioremap reservation).</summary>
    public IReadOnlyList<(string Caller, nint Address, int Pages)> VmallocAreas { get; }

    /// <summary>The CMA pageblocks' used pages, held as movable pages a <see cref="Machine.CmaAlloc"/> can migrate.</summary>
    public long CmaPages { get; }

    /// <summary>How the import placed blocks where the files leave a choice, and what it could not rebuild as the files say.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Frees every rebuilt object, area and page and every recorded page, and destroys the caches the import created (once; a second call does nothing).</summary>
    /// <exception cref="ObjectDisposedException">The machine is disposed (its memory is gone: nothing is freed).</exception>
    public void Release()
    {
        using var life = _m.Life.Enter();   // the objects and pages are written while freed: the machine must live meanwhile
        var held = Interlocked.Exchange(ref _held, null);
        if (held is null) return;
        Interlocked.Exchange(ref _rebuild, null)?.Undo();
        foreach (var p in Interlocked.Exchange(ref _cma, null) ?? []) p.Dispose();
        foreach (var (idx, count) in held)
            for (int i = 0; i < count; i++) _m.Pages.Free(idx + i, 0, "ProcSnapshotImport.Release");
    }
}
