// The coherent atomic pool (kernel/dma/pool.c; arch/arm/mm/dma-mapping.c on 32-bit ARM): memory set
// aside and remapped at boot, from which non-blocking coherent allocations for non-coherent devices
// are served first fit, page by page (a gen_pool of PAGE_SIZE granules).
namespace Kmem.Dma;

/// <summary>A preallocated, already remapped pool for atomic coherent allocations.</summary>
internal sealed class AtomicPool
{
    private readonly bool[] _used;
    private readonly Lock _lock = new();

    public AtomicPool(string name, Gfp gfp, int firstFrame, int pages, nint cpuBase)
    {
        Name = name;
        Gfp = gfp;
        FirstFrame = firstFrame;
        Pages = pages;
        CpuBase = cpuBase;
        _used = new bool[pages];
    }

    public string Name { get; }
    /// <summary>The zone flags the pool's pages were taken with (GFP_KERNEL, |GFP_DMA32, |GFP_DMA).</summary>
    public Gfp Gfp { get; }
    public int FirstFrame { get; }
    public int Pages { get; }
    /// <summary>The CPU address of the pool's first byte (its remap).</summary>
    public nint CpuBase { get; }

    /// <summary>Pages free now.</summary>
    public int FreePages { get { lock (_lock) return _used.Count(u => !u); } }

    /// <summary>gen_pool_alloc() first fit: the index of the first of <paramref name="pages"/> free pages, or -1.</summary>
    public int Alloc(int pages)
    {
        lock (_lock)
        {
            for (int i = 0; i + pages <= _used.Length; i++)
            {
                int k = 0;
                while (k < pages && !_used[i + k]) k++;
                if (k == pages)
                {
                    for (int j = 0; j < pages; j++) _used[i + j] = true;
                    return i;
                }
                i += k;
            }
            return -1;
        }
    }

    /// <summary>True when [index, index + pages) is allocated in the pool.</summary>
    public bool Holds(int index, int pages)
    {
        lock (_lock)
        {
            if (index < 0 || index + pages > _used.Length) return false;
            for (int j = 0; j < pages; j++) if (!_used[index + j]) return false;
            return true;
        }
    }

    /// <summary>gen_pool_free().</summary>
    public void Free(int index, int pages)
    {
        lock (_lock) for (int j = 0; j < pages; j++) _used[index + j] = false;
    }
}
