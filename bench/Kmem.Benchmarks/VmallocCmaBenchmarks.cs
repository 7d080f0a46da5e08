// Large buffers: Vmalloc+Vfree of 64 KiB, 1 MiB and 64 MiB next to NativeMemory (glibc) and mimalloc, and
// CmaAlloc+CmaRelease of 1 MiB in an empty and in a fragmented CMA area next to a buddy order-8 block.
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Kmem.Benchmarks;

/// <summary>
/// One alloc+free of a large buffer, writing one byte into each of its pages (what a user of the buffer does at
/// least once). Vmalloc takes order-0 pages one by one, maps them into its window (one host call per run of
/// consecutive frames) and unmaps them on free; glibc serves such sizes with mmap/munmap.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public unsafe class VmallocBenchmarks
{
    /// <summary>The buffer size.</summary>
    [Params(64 * 1024, 1 << 20, 64 << 20)]
    public int Size;

    private Machine _machine = null!;

    /// <summary>Boots one rk3588 machine (8 GiB) for the whole class.</summary>
    [GlobalSetup]
    public void Setup() => _machine = Machine.Boot("rk3588");

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    private void Touch(byte* p)
    {
        for (int off = 0; off < Size; off += Machine.PageSize) p[off] = 1;
    }

    /// <summary>Kmem <c>Vmalloc(size)</c> + <c>Vfree</c>.</summary>
    [Benchmark]
    public void KmemVmalloc()
    {
        nint v = _machine.Vmalloc((nuint)Size);
        if (v == 0) Fail.NoMemory("Vmalloc");
        Touch((byte*)v);
        _machine.Vfree(v);
    }

    /// <summary><c>NativeMemory.Alloc(size)</c> + <c>Free</c> (glibc malloc; the baseline).</summary>
    [Benchmark(Baseline = true)]
    public void NativeMalloc()
    {
        byte* p = (byte*)NativeMemory.Alloc((nuint)Size);
        Touch(p);
        NativeMemory.Free(p);
    }

    /// <summary><c>mi_malloc(size)</c> + <c>mi_free</c>; returns at once without mimalloc.</summary>
    [Benchmark]
    public void MimallocMalloc()
    {
        if (!Mimalloc.IsAvailable) return;
        byte* p = (byte*)Mimalloc.Malloc((nuint)Size);
        Touch(p);
        Mimalloc.Free(p);
    }
}

/// <summary>
/// CmaAlloc+CmaRelease of 1 MiB (256 pages, alignment 0) from rk3588's 16 MiB default area: empty, or fragmented
/// (its first 12 MiB hold 64 KiB runs every 128 KiB, so the search passes 96 holes too small for the request). A
/// buddy order-8 block (also 1 MiB, contiguous) is the reference.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public unsafe class CmaBenchmarks
{
    /// <summary>Whether the area is fragmented.</summary>
    [Params(false, true)]
    public bool Fragmented;

    private Machine _machine = null!;
    private CmaArea _cma = null!;

    /// <summary>Boots rk3588 and, for the fragmented case, takes the runs that cut the area up.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot("rk3588");
        _cma = _machine.Cma["reserved"];
        if (!Fragmented) return;
        var holes = new List<Page>();
        for (int i = 0; i < 96; i++)
        {
            _machine.CmaAlloc(_cma, 16, 0);                       // kept
            holes.Add(_machine.CmaAlloc(_cma, 16, 0));            // given back: a 64 KiB hole
        }
        foreach (var h in holes) _machine.CmaRelease(_cma, h, 16);
    }

    /// <summary>Shuts the machine down.</summary>
    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary>Kmem <c>CmaAlloc(area, 256, 0)</c> + <c>CmaRelease</c>.</summary>
    [Benchmark]
    public void KmemCmaAlloc()
    {
        Page p = _machine.CmaAlloc(_cma, 256, 0);
        if (p.IsNull) Fail.NoMemory("CmaAlloc");
        *(byte*)_machine.PageAddress(p) = 1;
        _machine.CmaRelease(_cma, p, 256);
    }

    /// <summary>Kmem <c>AllocPages(GFP_KERNEL, 8)</c> + <c>FreePages</c> (the reference: the buddy allocator's 1 MiB).</summary>
    [Benchmark(Baseline = true)]
    public void KmemBuddyOrder8()
    {
        Page p = _machine.AllocPages(Gfp.Kernel, 8);
        if (p.IsNull) Fail.NoMemory("AllocPages");
        *(byte*)_machine.PageAddress(p) = 1;
        _machine.FreePages(p, 8);
    }
}
