// The kmalloc family against the kernel: ksize for every size, the recorded bytes_alloc of real traces,
// large allocations, overflow, krealloc, and kfree of pointers that kmalloc never handed out.
using System.Text.RegularExpressions;

namespace Kmem.Tests;

public unsafe class KmallocTests
{
    /// <summary>The kernel's class for a request on x86_64 (kernel-facts §1.2).</summary>
    private static int X86Class(int n) => n <= 8 ? 8 : n <= 16 ? 16 : n <= 32 ? 32 : n <= 64 ? 64 : n <= 96 ? 96 : n <= 128 ? 128
        : n <= 192 ? 192 : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n);

    [Fact]
    public void Ksize_equals_the_kernels_bytes_alloc_for_every_size_up_to_8k()
    {
        using var m = Machine.Boot("x86_64");
        for (int n = 1; n <= 8192; n++)
        {
            nint p = m.Kmalloc(n, Gfp.Kernel);
            Assert.Equal((nuint)X86Class(n), m.Ksize(p));
            m.Kfree(p);
        }
    }

    [Theory]
    [InlineData("rv1106", 1, 64)]
    [InlineData("rv1106", 65, 128)]
    [InlineData("rv1106", 129, 192)]
    [InlineData("rv1106", 193, 256)]
    [InlineData("rk3588", 1, 128)]
    [InlineData("rk3588", 129, 256)]
    [InlineData("rk3588", 193, 256)]
    [InlineData("rk3588", 8192, 8192)]
    public void Arm_classes_start_at_the_dma_alignment(string profile, int request, int expected)
    {
        using var m = Machine.Boot(profile);
        nint p = m.Kmalloc(request, Gfp.Kernel);
        Assert.Equal((nuint)expected, m.Ksize(p));
        Assert.Equal(0, p % Math.Min(expected, m.Profile.KmallocMinAlign));
        m.Kfree(p);
    }

    [Fact]
    public void Ksize_matches_bytes_alloc_recorded_on_real_x86_64_machines()
    {
        // The kmalloc events of the x86_64 sections of the trace samples ([A], [B], [F], [G]).
        string text = TestSupport.Fixture("ftrace_kmem_modern_small_samples.txt");
        var pairs = new List<(int Req, int Alloc)>();
        string section = "";
        foreach (string line in text.Split('\n'))
        {
            var s = Regex.Match(line, @"^### \[([A-K])\]");
            if (s.Success) section = s.Groups[1].Value;
            if (section is not ("A" or "B" or "F" or "G") || line.Contains("kmem_cache_alloc")) continue;
            var r = Regex.Match(line, @"bytes_req=(\d+)\s*bytes_alloc=(\d+)");
            if (r.Success) pairs.Add((int.Parse(r.Groups[1].Value), int.Parse(r.Groups[2].Value)));
        }
        Assert.True(pairs.Count >= 20, $"{pairs.Count} samples");
        using var m = Machine.Boot("x86_64");
        foreach (var (req, alloc) in pairs)
        {
            nint p = m.Kmalloc(req, Gfp.Kernel);
            Assert.True((nuint)alloc == m.Ksize(p), $"bytes_req={req}: recorded bytes_alloc={alloc}, Kmem {m.Ksize(p)}");
            m.Kfree(p);
        }
    }

    /// <summary>The cache that owns the slab holding <paramref name="p"/>, read from its page descriptor as kfree does.</summary>
    private static string CacheOf(Machine m, nint p)
    {
        int idx = m.Pages.CompoundHead((int)(m.PageToPfn(m.VirtToPage(p)) - m.Pages.BasePfn));
        return m.Slab.CacheById(m.Pages.Frame(idx).SlabCacheSlot)!.Name;
    }

    [Fact]
    public void Gfp_chooses_the_reclaimable_and_dma_caches()
    {
        using var m = Machine.Boot("x86_64");
        nint r = m.Kmalloc(100, Gfp.Kernel | Gfp.Reclaimable);
        nint d = m.Kmalloc(100, Gfp.Kernel | Gfp.Dma);
        nint both = m.Kmalloc(100, Gfp.Kernel | Gfp.Dma | Gfp.Reclaimable);
        Assert.Equal("kmalloc-rcl-128", CacheOf(m, r));
        Assert.Equal("dma-kmalloc-128", CacheOf(m, d));
        Assert.Equal("dma-kmalloc-128", CacheOf(m, both));
        Assert.Equal(1, m.FindSlabCache("kmalloc-rcl-128")!.ObjectsInUse);
        Assert.Equal(2, m.FindSlabCache("dma-kmalloc-128")!.ObjectsInUse); // __GFP_DMA wins
        ulong dmaPfn = m.PageToPfn(m.VirtToPage(d));
        Assert.True(m.PfnToPhys(dmaPfn) < 16UL << 20, "dma-kmalloc slabs come from ZONE_DMA");
        m.Kfree(r);
        m.Kfree(d);
        m.Kfree(both);
        using var arm = Machine.Boot("rv1106"); // no ZONE_DMA: __GFP_DMA maps to the normal caches
        nint a = arm.Kmalloc(100, Gfp.Kernel | Gfp.Dma);
        Assert.Equal("kmalloc-128", CacheOf(arm, a));
        Assert.Equal(1, arm.FindSlabCache("kmalloc-128")!.ObjectsInUse);
        arm.Kfree(a);
    }

    [Fact]
    public void Kzalloc_clears_the_whole_class_and_kmemdup_copies()
    {
        using var m = Machine.Boot("x86_64");
        nint p = m.Kmalloc(96, Gfp.Kernel);
        new Span<byte>((void*)p, 96).Fill(0xff);
        m.Kfree(p);
        nint z = m.Kzalloc(70, Gfp.Kernel);
        Assert.Equal(p, z);
        Assert.True(new Span<byte>((void*)z, 96).IndexOfAnyExcept((byte)0) < 0); // kzalloc(70) clears 96 bytes
        m.Kfree(z);
        nint d = m.Kmemdup("hello kmem"u8, Gfp.Kernel);
        Assert.Equal("hello kmem"u8.ToArray(), new Span<byte>((void*)d, 10).ToArray());
        nint d2 = m.Kmemdup(d, 10, Gfp.Kernel);
        Assert.Equal("hello kmem"u8.ToArray(), new Span<byte>((void*)d2, 10).ToArray());
        m.Kfree(d);
        m.Kfree(d2);
    }

    [Theory]
    [InlineData(8193, 2)]
    [InlineData(16385, 3)]
    [InlineData(65536, 4)]
    [InlineData(4 << 20, 10)]
    public void Large_requests_are_compound_pages_counted_as_unreclaimable_slab(int size, int order)
    {
        using var m = Machine.Boot("x86_64");
        string Sun() => Regex.Match(m.ProcFs.Read("/proc/meminfo"), @"SUnreclaim:\s+(\d+) kB").Groups[1].Value;
        long before = long.Parse(Sun());
        nint p = m.Kmalloc(size, Gfp.Kernel);
        Assert.NotEqual(0, p);
        Assert.Equal((nuint)(4096 << order), m.Ksize(p));
        Assert.Equal(before + (4 << order), long.Parse(Sun()));
        new Span<byte>((void*)p, size).Fill(7);
        m.Kfree(p);
        Assert.Equal(before, long.Parse(Sun()));
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Above_kmalloc_max_size_fails_with_the_kernels_warning()
    {
        using var m = Machine.Boot("x86_64");
        Assert.Equal(4L << 20, m.KmallocMaxSize);
        Assert.Equal(0, m.Kmalloc((4 << 20) + 1, Gfp.Kernel));
        Assert.Contains("WARNING: CPU: ", m.Dmesg());
        Assert.Contains("__alloc_pages_nodemask", m.Dmesg());
        string log = m.Dmesg();
        Assert.Equal(0, m.Kmalloc((nuint)(64 << 20), Gfp.Kernel | Gfp.NoWarn));
        Assert.Equal(log, m.Dmesg());
    }

    [Fact]
    public void Kmalloc_array_overflow_fails_without_allocating()
    {
        using var m = Machine.Boot("x86_64");
        string before = m.ProcFs.Read("/proc/slabinfo");
        Assert.Equal(0, m.KmallocArray(nuint.MaxValue / 2, 3, Gfp.Kernel));
        Assert.Equal(0, m.Kcalloc((nuint)1 << 62, 8, Gfp.Kernel));
        Assert.Equal(before, m.ProcFs.Read("/proc/slabinfo"));
        nint a = m.Kcalloc(10, 12, Gfp.Kernel);
        Assert.Equal((nuint)128, m.Ksize(a));
        Assert.True(new Span<byte>((void*)a, 120).IndexOfAnyExcept((byte)0) < 0);
        m.Kfree(a);
    }

    [Fact]
    public void Krealloc_keeps_contents_and_reuses_a_big_enough_buffer()
    {
        using var m = Machine.Boot("x86_64");
        nint p = m.Kmalloc(50, Gfp.Kernel);
        new Span<byte>((void*)p, 50).Fill(9);
        Assert.Equal(p, m.Krealloc(p, 64, Gfp.Kernel)); // ksize 64 is enough
        nint q = m.Krealloc(p, 1000, Gfp.Kernel);
        Assert.NotEqual(p, q);
        Assert.True(new Span<byte>((void*)q, 50).IndexOfAnyExcept((byte)9) < 0);
        Assert.Equal((nuint)1024, m.Ksize(q));
        Assert.Equal(Machine.ZeroSizePtr, m.Krealloc(q, 0, Gfp.Kernel));
        nint fresh = m.Krealloc(0, 10, Gfp.Kernel);
        Assert.Equal((nuint)16, m.Ksize(fresh));
        m.Kfree(fresh);
        Assert.Equal(0, m.FindSlabCache("kmalloc-1k")!.ObjectsInUse);
    }

    [Fact]
    public void Kfree_accepts_null_and_zero_size_and_rejects_foreign_pointers_without_damage()
    {
        using var m = Machine.Boot("x86_64");
        Assert.Equal(Machine.ZeroSizePtr, m.Kmalloc(0, Gfp.Kernel));
        m.Kfree(0);
        m.Kfree(Machine.ZeroSizePtr);
        Assert.Equal((nuint)0, m.Ksize(Machine.ZeroSizePtr));
        nint keep = m.Kmalloc(64, Gfp.Kernel);
        nint big = m.Kmalloc(20000, Gfp.Kernel);
        string state = m.ProcFs.Read("/proc/slabinfo") + m.ProcFs.Read("/proc/meminfo");
        nint page = m.GetFreePages(Gfp.Kernel, 1);
        state = m.ProcFs.Read("/proc/slabinfo") + m.ProcFs.Read("/proc/meminfo");
        nint foreign = (nint)System.Runtime.InteropServices.NativeMemory.Alloc(64);
        Assert.Throws<InvalidAddressException>(() => m.Kfree(foreign));
        System.Runtime.InteropServices.NativeMemory.Free((void*)foreign);
        Assert.Throws<InvalidAddressException>(() => m.Kfree(page));              // pages, not kmalloc
        Assert.Throws<InvalidAddressException>(() => m.Kfree(big + 4096));       // inside a large buffer
        Assert.Equal(SlabError.InvalidPointer, Assert.Throws<SlabException>(() => m.Kfree(keep + 16)).Error);
        Assert.Equal(state, m.ProcFs.Read("/proc/slabinfo") + m.ProcFs.Read("/proc/meminfo"));
        Assert.Contains("is not an address of this machine's memory", m.Dmesg());
        Assert.Contains("was not allocated by kmalloc", m.Dmesg());
        m.Kfree(keep);
        m.Kfree(big);
        m.FreePages(page, 1);
        TestSupport.AssertConsistent(m);
    }
}
