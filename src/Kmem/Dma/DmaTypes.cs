// The DMA API's value types: the transfer direction, the scatter-gather table (struct sg_table with its
// scatterlist entries, CPU side and device side) and the exception raised for DMA-API misuse.
using Kmem.Core;

namespace Kmem;

/// <summary>Direction of a streaming DMA mapping (<c>enum dma_data_direction</c>).</summary>
public enum DmaDirection
{
    /// <summary>DMA_BIDIRECTIONAL: the device reads and writes the buffer.</summary>
    Bidirectional = 0,
    /// <summary>DMA_TO_DEVICE: the device reads what the CPU wrote.</summary>
    ToDevice = 1,
    /// <summary>DMA_FROM_DEVICE: the device writes, the CPU reads afterwards.</summary>
    FromDevice = 2,
    /// <summary>DMA_NONE: not a valid direction for a mapping.</summary>
    None = 3,
}

/// <summary>One entry of a scatter-gather list (<c>struct scatterlist</c>): a run of bytes in one or more contiguous pages.</summary>
public sealed class Scatterlist
{
    internal Scatterlist(Page page, int offset, int length)
    {
        Page = page;
        Offset = offset;
        Length = length;
    }

    /// <summary>The first page of the run (<c>sg_page()</c>).</summary>
    public Page Page { get; }

    /// <summary>Byte offset into the first page.</summary>
    public int Offset { get; }

    /// <summary>Bytes in the run.</summary>
    public int Length { get; }

    /// <summary>The device address of this DMA segment after <see cref="Machine.DmaMapSg"/> (<c>sg_dma_address()</c>).</summary>
    public ulong DmaAddress { get; internal set; }

    /// <summary>The length of this DMA segment after mapping (<c>sg_dma_len()</c>); 0 past the mapped count.</summary>
    public int DmaLength { get; internal set; }
}

/// <summary>
/// A scatter-gather table (<c>struct sg_table</c>): the CPU-side entries (<see cref="OrigNents"/>) and, once mapped,
/// the device-side segments (<see cref="Nents"/>; an IOMMU may merge every entry into one).
/// </summary>
public sealed class SgTable
{
    private readonly Scatterlist[] _sgl;

    /// <summary>A table of the given runs (page, offset in it, length), each inside contiguous memory.</summary>
    /// <exception cref="ArgumentException">An empty list, a null page, or a negative offset or length.</exception>
    public SgTable(IEnumerable<(Page Page, int Offset, int Length)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var list = new List<Scatterlist>();
        foreach (var (page, offset, length) in entries)
        {
            if (page.IsNull) throw new ArgumentException("a scatterlist entry needs a page", nameof(entries));
            if (offset < 0 || length <= 0) throw new ArgumentException($"entry {list.Count}: offset {offset}, length {length}", nameof(entries));
            list.Add(new Scatterlist(page, offset, length));
        }
        if (list.Count == 0) throw new ArgumentException("a scatter-gather table needs at least one entry", nameof(entries));
        _sgl = [.. list];
    }

    /// <summary>
    /// sg_alloc_table_from_pages(): <paramref name="size"/> bytes from <paramref name="offset"/> in the first page,
    /// over the given pages; runs of consecutive page frames become one entry.
    /// </summary>
    public static SgTable FromPages(ReadOnlySpan<Page> pages, int offset, long size)
    {
        if (pages.Length == 0) throw new ArgumentException("no pages", nameof(pages));
        if (offset < 0 || offset >= KernelFacts.PageSize) throw new ArgumentOutOfRangeException(nameof(offset));
        if (size <= 0 || offset + size > (long)pages.Length * KernelFacts.PageSize) throw new ArgumentOutOfRangeException(nameof(size));
        var entries = new List<(Page, int, int)>();
        long left = size;
        int i = 0, off = offset;
        while (left > 0)
        {
            int first = i;
            while (i + 1 < pages.Length && pages[i + 1].MachineId == pages[i].MachineId && pages[i + 1].Pfn == pages[i].Pfn + 1
                   && (long)(i + 1 - first) * KernelFacts.PageSize - off < left) i++;
            long run = Math.Min(left, (long)(i - first + 1) * KernelFacts.PageSize - off);
            entries.Add((pages[first], off, (int)run));
            left -= run;
            off = 0;
            i++;
        }
        return new SgTable(entries);
    }

    /// <summary>The entries (<c>sgl</c>).</summary>
    public IReadOnlyList<Scatterlist> Entries => _sgl;

    /// <summary>CPU-side entries (<c>orig_nents</c>).</summary>
    public int OrigNents => _sgl.Length;

    /// <summary>Device-side segments after mapping (<c>nents</c>); 0 while unmapped.</summary>
    public int Nents { get; internal set; }

    /// <summary>
    /// The bytes from the first mapped segment for as long as each next one follows on in device addresses
    /// (drm_prime_get_contiguous_size, vb2_dc_get_contiguous_size); 0 when unmapped.
    /// </summary>
    public ulong ContiguousDmaLength()
    {
        if (Nents == 0) return 0;
        ulong expected = _sgl[0].DmaAddress, size = 0;
        for (int i = 0; i < Nents; i++)
        {
            var s = _sgl[i];
            if (s.DmaAddress != expected) break;
            expected += (ulong)s.DmaLength;
            size += (ulong)s.DmaLength;
        }
        return size;
    }

    /// <summary>Total bytes of the entries.</summary>
    public long Length => _sgl.Sum(s => (long)s.Length);
}

/// <summary>What a <see cref="DmaApiException"/> reports.</summary>
public enum DmaApiError
{
    /// <summary>Freeing or unmapping memory that is not mapped (never, or already freed).</summary>
    NotMapped,
    /// <summary>Freeing with another size, CPU address, direction, entry count or function than the mapping's.</summary>
    Mismatch,
    /// <summary>A sync outside the mapping, with another direction, or of a buffer the CPU may not touch that way.</summary>
    BadSync,
    /// <summary>The CPU touched a buffer the device owns.</summary>
    CpuAccess,
    /// <summary>An address the DMA API cannot map (vmalloc, not this machine's memory, beyond the device's mask).</summary>
    BadAddress,
    /// <summary>The device was removed.</summary>
    DeviceGone,
    /// <summary>The device belongs to another machine.</summary>
    ForeignDevice,
    /// <summary>The device's CMA area was not reserved at boot (its reservation failed).</summary>
    NoCmaArea,
}

/// <summary>Misuse of the DMA API: the report is in the machine's log (dma-debug's words) and nothing was changed.</summary>
public sealed class DmaApiException : KmemException
{
    /// <summary>Creates the exception.</summary>
    public DmaApiException(DmaApiError error, string device, string message) : base($"{device}: {message}")
    {
        Error = error;
        Device = device;
    }

    /// <summary>The class of error.</summary>
    public DmaApiError Error { get; }

    /// <summary>The device's name.</summary>
    public string Device { get; }
}
