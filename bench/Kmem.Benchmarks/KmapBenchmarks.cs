// High memory: KmapLocalPage+KunmapLocal of a HighMem page the thread mapped a moment ago (a hit in its window), of a
// cold page (each call another page, more pages than the window holds, so each one is a new mapping of the frame),
// and PageAddress of a lowmem page (what the same code costs on memory the linear map covers). Kmem only: no peer
// library has high memory to compare with.
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// One kmap_local_page()+kunmap_local() on rv1126 (2 GiB, HighMem above 1 GiB) modelled at Linux 5.15, where
/// kmap_local exists (the board's own 4.19 has kmap_atomic only, which takes the same path).
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public unsafe class KmapBenchmarks
{
    /// <summary>Pages the cold case cycles over: twice the thread's window, so every mapping misses.</summary>
    private const int ColdPages = 64;

    private Machine _machine = null!;
    private Page _hot;
    private Page _low;
    private readonly Page[] _cold = new Page[ColdPages];
    private int _next;

    /// <summary>Boots the board and takes the pages: one HighMem page mapped once already, the cold ring, a lowmem page.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot(MachineProfile.Embedded("rv1126") with { Version = KernelVersion.Parse("5.15") });
        _hot = _machine.AllocPages(Gfp.HighUser, 0);
        _low = _machine.AllocPages(Gfp.Kernel, 0);
        for (int i = 0; i < ColdPages; i++) _cold[i] = _machine.AllocPages(Gfp.HighUser, 0);
        if (!_machine.PageHighMem(_hot) || _machine.PageHighMem(_low) || _cold.Any(p => !_machine.PageHighMem(p)))
            throw new InvalidOperationException("kmap benchmark: the pages are not where they should be");
        _machine.KunmapLocal(_machine.KmapLocalPage(_hot));
    }

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary><c>KmapLocalPage</c>+<c>KunmapLocal</c> of the page mapped last (the window still shows it).</summary>
    [Benchmark]
    public byte KmapLocalHit()
    {
        nint a = _machine.KmapLocalPage(_hot);
        byte b = *(byte*)a;
        _machine.KunmapLocal(a);
        return b;
    }

    /// <summary><c>KmapLocalPage</c>+<c>KunmapLocal</c> of the next of 64 pages (a new mapping of the frame every call).</summary>
    [Benchmark]
    public byte KmapLocalCold()
    {
        var page = _cold[_next];
        _next = (_next + 1) % ColdPages;
        nint a = _machine.KmapLocalPage(page);
        byte b = *(byte*)a;
        _machine.KunmapLocal(a);
        return b;
    }

    /// <summary><c>PageAddress</c> of a lowmem page (the linear map; the baseline).</summary>
    [Benchmark(Baseline = true)]
    public byte PageAddressLowmem() => *(byte*)_machine.PageAddress(_low);
}
