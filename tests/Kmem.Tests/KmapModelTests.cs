// Model-based randomized test of kmap usage: seeded random sequences of kmap/kunmap, kmap_local/kunmap_local,
// kmap_atomic/kunmap_atomic, page_address and writes through the mappings, on lowmem and HighMem pages, checked
// step by step against a simple reference model of the kernel's rules (users per page, one stack per thread,
// the atomic count, each page's contents). Enough pages that the pool wraps and flushes many times.
namespace Kmem.Tests;

public class KmapModelTests
{
    private sealed class Model
    {
        public readonly Dictionary<int, int> Users = [];            // kmap() references per page
        public readonly Dictionary<int, nint> PoolAddress = [];     // the kmap() address while users > 0
        public readonly List<(int Page, bool Atomic, nint Address)> Stack = [];
        /// <summary>ARM from 5.11: kmap_local/kmap_atomic served from the page's pkmap slot (kmap_high_get), any order.</summary>
        public readonly List<(int Page, bool Atomic)> PoolGets = [];
        public int Atomic;
        public readonly Dictionary<int, ulong> Tag = [];
    }

    private static unsafe ulong Read(nint a) => *(ulong*)a;
    private static unsafe void Write(nint a, ulong v) => *(ulong*)a = v;

    [Theory]
    [InlineData(1, "5.15")]
    [InlineData(2, "5.15")]
    [InlineData(3, "6.6")]
    [InlineData(4, "5.10")]
    [InlineData(5, "5.15", "i386")]
    public void Random_kmap_usage_matches_the_model(int seed, string version, string arch = "arm")
    {
        int steps = int.TryParse(Environment.GetEnvironmentVariable("KMAP_MODEL_STEPS"), out int n) ? n : 40000;
        using var m = KmapTests.HighBoard(version, arch);
        bool hasLocal = version != "5.10";
        bool highGet = arch == "arm";   // kmap_high_get(): __kmap_atomic() before 5.11, arch_kmap_local_high_get() from 5.11
        int depthLimit = m.Kmaps.Local.MaxDepth;
        var rnd = new Random(seed);
        var pages = new List<Page>();
        for (int i = 0; i < m.Kmaps.Pool.Slots + 200; i++) pages.Add(m.AllocPage(Gfp.HighUser));   // more than the pool holds
        for (int i = 0; i < 16; i++) pages.Add(m.AllocPage(Gfp.Kernel));
        var model = new Model();
        bool High(int i) => m.PageHighMem(pages[i]);
        // Every page starts with a known tag, written through a mapping.
        for (int i = 0; i < pages.Count; i++)
        {
            nint a = m.KmapAtomic(pages[i]);
            Write(a, (ulong)i * 1000);
            m.KunmapAtomic(a);
            model.Tag[i] = (ulong)i * 1000;
        }
        int Users(int i) => model.Users.GetValueOrDefault(i);
        string State() => $"{m.Kmaps.Local.Depth}/{m.Kmaps.Local.AtomicDepth}/{m.Kmaps.Pool.State().Users}";
        void Expect(HighMemError error, Action call, string what)
        {
            string before = State();
            var ex = Assert.Throws<HighMemException>(call);
            Assert.True(ex.Error == error, $"{what}: expected {error}, got {ex.Error}: {ex.Message}");
            Assert.Equal(before, State());
        }
        void CheckTag(int i, nint a, string what) =>
            Assert.True(Read(a) == model.Tag[i], $"step {what}: page {i} read {Read(a)}, model says {model.Tag[i]}");
        void UndoUnstackedAtomic()
        {
            m.KunmapAtomic(m.PageAddress(pages[^1]));
            model.Atomic--;
        }
        void PoolGet(int i, nint a, nint slot, bool atomic)
        {
            Assert.Equal(slot, a);                                // kmap_high_get(): the slot's own address, one more user
            model.Users[i] = Users(i) + 1;
            model.PoolAddress[i] = a;
            model.PoolGets.Add((i, atomic));
        }

        for (int step = 0; step < steps; step++)
        {
            int op = rnd.Next(100);
            int i = rnd.Next(pages.Count);
            string what = $"{step} op {op} page {i}";
            if (Environment.GetEnvironmentVariable("KMAP_MODEL_TRACE") == "1")
                Console.Error.WriteLine($"{what}: model atomic {model.Atomic} stack {model.Stack.Count} gets {model.PoolGets.Count} atomic entries {model.Stack.Count(e => e.Atomic) + model.PoolGets.Count(e => e.Atomic)} | real {State()}");
            if (op < 22)
            {
                // kmap
                if (model.Atomic > 0) { Expect(HighMemError.AtomicContext, () => m.Kmap(pages[i]), what); continue; }
                // Keep the pages held below the pool's size: one thread holding every slot would sleep in kmap() for good.
                if (High(i) && Users(i) == 0 && model.Users.Count(kv => kv.Value > 0) >= m.Kmaps.Pool.Slots - 32) continue;
                nint a = m.Kmap(pages[i]);
                CheckTag(i, a, what);
                if (!High(i)) { Assert.Equal(m.PageAddress(pages[i]), a); continue; }
                if (Users(i) > 0) Assert.Equal(model.PoolAddress[i], a);
                model.Users[i] = Users(i) + 1;
                model.PoolAddress[i] = a;
            }
            else if (op < 36)
            {
                // kunmap: mostly of a page that holds a reference
                var held = model.Users.Where(kv => kv.Value > 0).Select(kv => kv.Key).ToList();
                if (held.Count > 0 && rnd.Next(5) != 0) i = held[rnd.Next(held.Count)];
                if (!High(i)) { m.Kunmap(pages[i]); continue; }
                if (Users(i) == 0) { Expect(HighMemError.NotMapped, () => m.Kunmap(pages[i]), what); continue; }
                // Only kmap()'s own references: kunmap() would also drop one a kmap_high_get() mapping holds, which that
                // mapping's own unmap then finds gone (the kernel's BUG, tested in KmapTests).
                if (Users(i) <= model.PoolGets.Count(e => e.Page == i)) continue;
                m.Kunmap(pages[i]);
                model.Users[i]--;
            }
            else if (op < 52)
            {
                // kmap_local_page
                if (!hasLocal) { Expect(HighMemError.NotInRelease, () => m.KmapLocalPage(pages[i]), what); continue; }
                nint slot = highGet && High(i) ? m.PageAddress(pages[i]) : 0;
                if (High(i) && slot == 0 && model.Stack.Count == depthLimit) { Expect(HighMemError.StackOverflow, () => m.KmapLocalPage(pages[i]), what); continue; }
                nint a = m.KmapLocalPage(pages[i]);
                CheckTag(i, a, what);
                if (slot != 0) PoolGet(i, a, slot, atomic: false);
                else if (High(i)) model.Stack.Add((i, false, a));
            }
            else if (op < 56)
            {
                // kmap_atomic
                nint slot = highGet && High(i) ? m.PageAddress(pages[i]) : 0;
                if (High(i) && slot == 0 && model.Stack.Count == depthLimit) { Expect(HighMemError.StackOverflow, () => m.KmapAtomic(pages[i]), what); continue; }
                nint a = m.KmapAtomic(pages[i]);
                CheckTag(i, a, what);
                if (slot != 0) PoolGet(i, a, slot, atomic: true);
                else if (High(i)) model.Stack.Add((i, true, a));
                model.Atomic++;
            }
            else if (op < 86)
            {
                // undo: mostly the top entry with the right call; sometimes a wrong entry or the wrong call
                if (model.PoolGets.Count > 0 && rnd.Next(model.PoolGets.Count + model.Stack.Count + 1) < model.PoolGets.Count)
                {
                    // a mapping served from a pkmap slot: undone in any order, its reference dropped
                    int g = rnd.Next(model.PoolGets.Count);
                    var (pg, atomic) = model.PoolGets[g];
                    nint at = model.PoolAddress[pg] + rnd.Next(4096);
                    if (atomic) { m.KunmapAtomic(at); model.Atomic--; }
                    else m.KunmapLocal(at);
                    model.PoolGets.RemoveAt(g);
                    model.Users[pg]--;
                    continue;
                }
                // kmap_atomic()s of lowmem pages: no stack entry, a lowmem address undoes any of them.
                int lowAtomics = model.Atomic - model.Stack.Count(e => e.Atomic) - model.PoolGets.Count(e => e.Atomic);
                if (lowAtomics > 0 && rnd.Next(2) == 0) { UndoUnstackedAtomic(); continue; }
                if (model.Stack.Count == 0)
                {
                    if (lowAtomics > 0) UndoUnstackedAtomic();
                    else Expect(HighMemError.Unbalanced, () => m.KunmapAtomic(m.PageAddress(pages[^1])), what);   // none to undo
                    continue;
                }
                int pick = rnd.Next(6) == 0 ? rnd.Next(model.Stack.Count) : model.Stack.Count - 1;
                bool asAtomic = rnd.Next(8) == 0 ? !model.Stack[pick].Atomic : model.Stack[pick].Atomic;
                var e = model.Stack[pick];
                nint addr = e.Address + rnd.Next(4096);
                bool top = pick == model.Stack.Count - 1;
                bool sameAddressAsTop = e.Address == model.Stack[^1].Address;
                if (!asAtomic && !hasLocal) { Expect(HighMemError.NotInRelease, () => m.KunmapLocal(addr), what); continue; }
                if (asAtomic && model.Atomic == 0) { Expect(HighMemError.Unbalanced, () => m.KunmapAtomic(addr), what); continue; }
                if (!top && !sameAddressAsTop)
                {
                    Expect(HighMemError.OutOfOrder, () => { if (asAtomic) m.KunmapAtomic(addr); else m.KunmapLocal(addr); }, what);
                    continue;
                }
                if (asAtomic != model.Stack[^1].Atomic)
                {
                    Expect(HighMemError.Unbalanced, () => { if (asAtomic) m.KunmapAtomic(addr); else m.KunmapLocal(addr); }, what);
                    continue;
                }
                if (asAtomic) { m.KunmapAtomic(addr); model.Atomic--; }
                else m.KunmapLocal(addr);
                model.Stack.RemoveAt(model.Stack.Count - 1);
            }
            else if (op < 94)
            {
                // write a new tag through a mapping this test holds
                var choices = model.Stack.Select(s => (s.Page, s.Address))
                    .Concat(model.Users.Where(kv => kv.Value > 0).Select(kv => (Page: kv.Key, Address: model.PoolAddress[kv.Key]))).ToList();
                if (choices.Count == 0) continue;
                var (pg, at) = choices[rnd.Next(choices.Count)];
                ulong tag = (ulong)rnd.NextInt64();
                Write(at, tag);
                model.Tag[pg] = tag;
            }
            else
            {
                // page_address(): the pool's address while kmapped; 0 or a lazily kept mapping (of this very frame) after
                nint a = m.PageAddress(pages[i]);
                if (!High(i)) { Assert.NotEqual(0, a); CheckTag(i, a, what); }
                else if (Users(i) > 0) Assert.Equal(model.PoolAddress[i], a);
                else if (a != 0) CheckTag(i, a, what);
            }
            Assert.Equal(model.Stack.Count, m.Kmaps.Local.Depth);
            Assert.Equal(model.Atomic, m.Kmaps.Local.AtomicDepth);
        }
        // Unwind, and the pool and stack are empty again.
        foreach (var (pg, atomic) in model.PoolGets)
        {
            if (atomic) { m.KunmapAtomic(model.PoolAddress[pg]); model.Atomic--; }
            else m.KunmapLocal(model.PoolAddress[pg]);
            model.Users[pg]--;
        }
        for (int k = model.Stack.Count - 1; k >= 0; k--)
        {
            if (model.Stack[k].Atomic) { m.KunmapAtomic(model.Stack[k].Address); model.Atomic--; }
            else m.KunmapLocal(model.Stack[k].Address);
        }
        while (model.Atomic-- > 0) m.KunmapAtomic(m.PageAddress(pages[^1]));
        foreach (var (pg, users) in model.Users) for (int u = 0; u < users; u++) m.Kunmap(pages[pg]);
        var state = m.Kmaps.Pool.State();
        Assert.Equal((0, 0L), (state.InUse, state.Users));
        Assert.True(state.Flushes > 0, $"the pool should have wrapped at least once: {state}");
        Assert.Equal(0, m.Kmaps.Local.Depth);
        foreach (var p in pages) m.FreePage(p);
        TestSupport.AssertConsistent(m);
    }
}
