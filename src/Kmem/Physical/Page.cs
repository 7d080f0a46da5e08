// The public handle of a page frame: what AllocPages returns and FreePages takes. A value type that
// carries the PFN, the identity of its machine and the frame's index there; default(Page) is the null page.
namespace Kmem;

/// <summary>
/// A page frame of one machine (the kernel's <c>struct page *</c>). <c>default(Page)</c> is the null page
/// returned by a failed allocation. Convert with <see cref="Machine.PageAddress"/>,
/// <see cref="Machine.PageToPfn"/> and friends.
/// </summary>
public readonly struct Page : IEquatable<Page>
{
    /// <summary>The PFN (0 in the null page, whose <see cref="MachineId"/> tells it apart).</summary>
    internal readonly ulong RawPfn;
    /// <summary>The machine's id (from 1; 0 only in the null page).</summary>
    internal readonly int MachineId;
    /// <summary>
    /// The frame's index in its machine's mem_map (PFN less the machine's first), carried so that the page entry points
    /// find the descriptor without arithmetic on the PFN. Always the PFN's: only the machine makes pages.
    /// </summary>
    internal readonly int Index;

    internal Page(ulong pfn, int machineId, int index)
    {
        RawPfn = pfn;
        MachineId = machineId;
        Index = index;
    }

    /// <summary>The page <paramref name="pages"/> frames after this one, of the same machine.</summary>
    internal Page Plus(int pages) => new(RawPfn + (ulong)pages, MachineId, Index + pages);

    /// <summary>The null page (a failed allocation).</summary>
    public static Page Null => default;

    /// <summary>True for the null page.</summary>
    public bool IsNull => MachineId == 0;

    /// <summary>The page frame number (physical address &gt;&gt; 12). Throws for the null page.</summary>
    public ulong Pfn => MachineId != 0 ? RawPfn : throw new InvalidAddressException("the null page has no PFN");

    /// <inheritdoc/>
    public bool Equals(Page other) => RawPfn == other.RawPfn && MachineId == other.MachineId;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Page p && Equals(p);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(RawPfn, MachineId);

    /// <summary>Equality of PFN and machine.</summary>
    public static bool operator ==(Page a, Page b) => a.Equals(b);

    /// <summary>Inequality.</summary>
    public static bool operator !=(Page a, Page b) => !a.Equals(b);

    /// <summary>"pfn:0x…" or "(null)".</summary>
    public override string ToString() => IsNull ? "(null)" : $"pfn:0x{RawPfn:x}";
}
