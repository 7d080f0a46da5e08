// What a snapshot's used memory is rebuilt as, while the pages the snapshot does not show free are the machine's only
// free memory (PageAllocator.ImportWithRebuild): vmallocinfo's areas with pages as vmalloc areas of those pages with
// their caller (ioremap ranges as address-space reservations), then slabinfo's caches (the machine's cache of that
// name, else a new one of that object size) with their slabs and active objects. It checks the plan against the pages
// each zone leaves allocated before anything changes, keeps every object and area so that Release() gives them back,
// and destroys the caches it created.
using Kmem.Core;
using Kmem.Paging;
using Kmem.Slab;
using Kmem.Vmalloc;

namespace Kmem.Scenarios.ProcSnapshots;

/// <summary>One slabinfo cache as rebuilt: the cache, whether the import created it, and the objects it holds.</summary>
internal sealed record RebuiltCache(SlabRow Row, SlabCache Cache, bool Created, List<nint> Objects);

/// <summary>One vmallocinfo area as rebuilt: its address in the machine's window, pages, and whether it is an ioremap reservation.</summary>
internal sealed record RebuiltArea(VmallocRow Row, nint Address, int Pages, bool Ioremap);

internal sealed class SnapshotRebuild(Machine m, IReadOnlyList<SlabRow>? slabs, IReadOnlyList<VmallocRow>? areas) : IFreeStateRebuild
{
    // Rebuild allocations ignore the watermarks: the free memory they see is exactly the memory they are to fill.
    private const Gfp RebuildGfp = Gfp.Kernel | Gfp.NoWarn | Gfp.Memalloc;

    public List<RebuiltCache> Caches { get; } = [];
    public List<RebuiltArea> Areas { get; } = [];
    public List<string> Notes { get; } = [];

    public void Check(IReadOnlyList<HeldZone> held)
    {
        long low = held.Where(h => h.Zone.Name is not ("HighMem" or "Movable")).Sum(h => h.Pages - h.CmaPages);
        long all = held.Sum(h => h.Pages - h.CmaPages);
        long slabPages = 0;
        foreach (var r in slabs ?? [])
        {
            if (r.ObjSize > m.KmallocMaxSize && m.FindSlabCache(r.Name) is null)
                throw new ProcSnapshotException("slabinfo", r.Line, $"{r.Name}: objects of {r.ObjSize} bytes; the largest slab object of {m.Profile.Name} is {m.KmallocMaxSize}");
            var c = m.FindSlabCache(r.Name)?.Root;
            long have = c is null ? 0 : c.Slabs << c.Order;
            slabPages += Math.Max(0, r.NumSlabs * r.PagesPerSlab - have);
            if (slabPages > low)
                throw new ProcSnapshotException("slabinfo", r.Line,
                    $"the caches down to {r.Name} need {slabPages} pages of slab; the snapshot leaves {low} pages of lowmem allocated (not free, outside CMA)");
        }
        long vmPages = slabPages;
        foreach (var a in areas ?? [])
        {
            vmPages += PagesOf(a);
            if (vmPages > all)
                throw new ProcSnapshotException("vmallocinfo", a.Line,
                    $"the slab caches and the vmalloc areas down to this line need {vmPages} pages; the snapshot leaves {all} pages allocated (not free, outside CMA)");
        }
    }

    /// <summary>pages=N of a vmalloc area (0 for ioremap, vmap without pages, unpurged ranges).</summary>
    internal static int PagesOf(VmallocRow a) => Words(a).Contains("vmalloc") ? PagesField(a) : 0;

    private static int PagesField(VmallocRow a)
    {
        foreach (var w in Words(a))
            if (w.StartsWith("pages=", StringComparison.Ordinal) && int.TryParse(w.AsSpan(6), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n))
                return n;
        return 0;
    }

    private static string[] Words(VmallocRow a) => a.Rest.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    public void Build()
    {
        BuildAreas();
        // slabinfo lists the newest cache first: create from the bottom up so the rebuilt file lists them in its order.
        // Every cache is made before any is filled: making one allocates the kmem_cache and kmem_cache_node objects
        // that those two caches' own rows count.
        if (slabs is not null)
        {
            for (int i = slabs.Count - 1; i >= 0; i--)
            {
                var found = m.FindSlabCache(slabs[i].Name);
                var c = found?.Root ?? m.KmemCacheCreate(slabs[i].Name, slabs[i].ObjSize, 0, SlabFlags.NoMerge);
                Caches.Add(new RebuiltCache(slabs[i], c, found is null, []));
            }
            foreach (var rc in Caches) BuildCache(rc.Row, rc.Cache, rc.Objects);
        }
        foreach (var rc in Caches) CompareCounts(rc);
    }

    private void BuildAreas()
    {
        if (areas is null || areas.Count == 0) return;
        var space = m.Kernel.VmallocSpaceOrNull;
        if (space is null)
        {
            Notes.Add($"vmallocinfo: {areas.Count} areas not rebuilt: this machine has no vmalloc window (no memfd); their pages stay recorded");
            return;
        }
        int skipped = 0, present = 0;
        // The machine's own boot areas (an ioremap of a device window, say) stand for the file's lines that match them.
        var own = space.Areas().Select(x => (x.Caller, (long)x.Size, x.NrPages)).ToList();
        foreach (var a in areas)
        {
            var w = Words(a);
            int mine = own.IndexOf((a.Caller, a.Size, PagesField(a)));
            if (mine >= 0)
            {
                own.RemoveAt(mine);
                present++;
                continue;
            }
            var caller = new CallSite(a.Caller.Length == 0 ? "?" : a.Caller, "", 0);
            int pages = PagesOf(a);
            if (pages > 0)
            {
                var flags = w.Contains("user") ? VmFlags.UserMap : VmFlags.None;
                nint v = space.Vmalloc((ulong)pages << 12, RebuildGfp | Gfp.HighMem, flags, caller);
                if (v == 0) throw new ProcSnapshotException("vmallocinfo", a.Line, $"the vmalloc area of {pages} pages ({a.Caller}) cannot be rebuilt: no room in the machine's window or its pages");
                Areas.Add(new RebuiltArea(a, v, pages, false));
            }
            else if (w.Contains("ioremap") && !w.Contains("vmalloc"))
            {
                ulong phys = 0;
                foreach (var x in w)
                    if (x.StartsWith("phys=", StringComparison.Ordinal))
                        phys = ulong.Parse(x.AsSpan(5).TrimStart("0x"), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
                ulong size = (ulong)a.Size - 4096;   // the size column counts the guard page
                nint v = size == 0 ? 0 : space.Ioremap(phys, size, VmallocCallers.IoremapMaxOrder(m.Profile.Arch), caller);
                if (v == 0) throw new ProcSnapshotException("vmallocinfo", a.Line, $"the ioremap range of {size} bytes ({a.Caller}) has no room in the machine's window");
                Areas.Add(new RebuiltArea(a, v & ~(nint)4095, 0, true));
            }
            else skipped++;
        }
        if (present > 0) Notes.Add($"vmallocinfo: {present} areas are the machine's own (the same caller, size and pages): not made again");
        if (skipped > 0)
            Notes.Add($"vmallocinfo: {skipped} areas without pages that are not ioremap ranges (vmap, unpurged) are not rebuilt");
        Notes.Add($"vmallocinfo: {Areas.Count} areas rebuilt at addresses of the machine's window (the file's addresses are the board's kernel addresses, not placeable here)");
    }

    private void BuildCache(SlabRow r, SlabCache c, List<nint> objs)
    {
        bool same = c.ObjectsPerSlab == r.ObjPerSlab && (1 << c.Order) == r.PagesPerSlab;
        long inuse0 = c.ObjectsInUse;
        if (!same)
        {
            Notes.Add($"slabinfo:{r.Line}: {r.Name}: the machine's cache has {c.ObjectsPerSlab} objects in {1 << c.Order} pages per slab, the file {r.ObjPerSlab} in {r.PagesPerSlab}: {r.ActiveObjs} objects rebuilt in the machine's slabs");
            for (long k = inuse0; k < r.ActiveObjs; k++) objs.Add(Alloc(c, r));
            c.Root.FlushAll();
            return;
        }
        if (c.Slabs > r.NumSlabs || inuse0 > r.ActiveObjs)
        {
            Notes.Add($"slabinfo:{r.Line}: {r.Name}: the machine already has {c.Slabs} slabs and {inuse0} objects in use, the file {r.NumSlabs} and {r.ActiveObjs}: nothing added");
            return;
        }
        // Fill every slab: the file's slabs, all full, then free the inactive objects from the last slabs, keeping one
        // object in each (full slabs first, then the partial ones).
        while ((c.TotalObjects < r.NumObjs || inuse0 + objs.Count < c.TotalObjects) && objs.Count <= r.NumObjs)
            objs.Add(Alloc(c, r));
        long free = c.TotalObjects - r.ActiveObjs;
        if (free > objs.Count) free = objs.Count;
        // Objects of one slab were allocated one after another: walk back in runs of one slab, freeing all but the
        // first of each run, then (when the file has more free objects than that) the slabs' last objects too.
        ulong SlabOf(nint o) => (((ulong)(o - m.Slab.Linear) >> 12) + m.Pages.BasePfn) >> c.Order;
        for (int pass = 0; pass < 2 && free > 0; pass++)
        {
            int i = objs.Count - 1;
            while (i >= 0 && objs[i] == 0) i--;
            while (i >= 0 && free > 0)
            {
                ulong key = SlabOf(objs[i]);
                int j = i;
                while (j > 0 && (objs[j - 1] == 0 || SlabOf(objs[j - 1]) == key)) j--;
                for (int k = i; k >= j + 1 - pass && free > 0; k--)
                {
                    if (objs[k] == 0) continue;
                    c.Free(objs[k]);
                    objs[k] = 0;
                    free--;
                }
                i = j - 1;
                while (i >= 0 && objs[i] == 0) i--;
            }
        }
        objs.RemoveAll(o => o == 0);
        c.Root.FlushAll();
    }

    private nint Alloc(SlabCache c, SlabRow r)
    {
        nint o = c.Alloc(RebuildGfp);
        return o != 0 ? o : throw new ProcSnapshotException("slabinfo", r.Line, $"{r.Name}: no page left for its slabs among the pages the snapshot leaves allocated");
    }

    private void CompareCounts(RebuiltCache rc)
    {
        var (r, c) = (rc.Row, rc.Cache);
        if (c.ObjectsPerSlab != r.ObjPerSlab || (1 << c.Order) != r.PagesPerSlab) return;
        if (c.ActiveObjects != r.ActiveObjs || c.TotalObjects != r.NumObjs || c.Slabs != r.NumSlabs)
            Notes.Add($"slabinfo:{r.Line}: {r.Name}: rebuilt as {c.ActiveObjects} active of {c.TotalObjects} objects in {c.Slabs} slabs, the file says {r.ActiveObjs} of {r.NumObjs} in {r.NumSlabs}");
    }

    /// <summary>Frees every object and area the rebuild made and destroys the caches it created (once).</summary>
    public void Undo()
    {
        for (int i = Caches.Count - 1; i >= 0; i--)
        {
            var rc = Caches[i];
            foreach (var o in rc.Objects) rc.Cache.Free(o);
            rc.Objects.Clear();
            if (rc.Created) rc.Cache.Destroy();
        }
        Caches.Clear();
        var space = m.Kernel.VmallocSpaceOrNull;
        for (int i = Areas.Count - 1; i >= 0; i--)
            space!.Free(Areas[i].Address, freePages: !Areas[i].Ioremap, CallSite.Kernel(Areas[i].Ioremap ? "iounmap" : "vfree"));
        Areas.Clear();
        space?.PurgeLazy();
        // The slabs the rebuild added to the machine's own caches (and the page arrays' kmalloc slabs) are empty now.
        m.ShrinkSlabs();
    }
}
