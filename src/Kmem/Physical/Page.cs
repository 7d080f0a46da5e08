// The public handle of a page frame: what AllocPages returns and FreePages takes. A value type that
// carries the PFN and the identity of its machine; default(Page) is the null page.
namespace Kmem;

/// <summary>
/// A page frame of one machine (the kernel's <c>struct page *</c>). <c>default(Page)</c> is the null page
/// returned by a failed allocation. Convert with <see cref="Machine.PageAddress"/>,
/// <see cref="Machine.PageToPfn"/> and friends.
/// </summary>
public readonly struct Page : IEquatable<Page>
{
    internal readonly ulong PfnPlusOne;
    internal readonly int MachineId;

    internal Page(ulong pfn, int machineId)
    {
        PfnPlusOne = pfn + 1;
        MachineId = machineId;
    }

    /// <summary>The null page (a failed allocation).</summary>
    public static Page Null => default;

    /// <summary>True for the null page.</summary>
    public bool IsNull => PfnPlusOne == 0;

    /// <summary>The page frame number (physical address &gt;&gt; 12). Throws for the null page.</summary>
    public ulong Pfn => PfnPlusOne != 0 ? PfnPlusOne - 1 : throw new InvalidAddressException("the null page has no PFN");

    /// <inheritdoc/>
    public bool Equals(Page other) => PfnPlusOne == other.PfnPlusOne && MachineId == other.MachineId;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Page p && Equals(p);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(PfnPlusOne, MachineId);

    /// <summary>Equality of PFN and machine.</summary>
    public static bool operator ==(Page a, Page b) => a.Equals(b);

    /// <summary>Inequality.</summary>
    public static bool operator !=(Page a, Page b) => !a.Equals(b);

    /// <summary>"pfn:0x…" or "(null)".</summary>
    public override string ToString() => IsNull ? "(null)" : $"pfn:0x{PfnPlusOne - 1:x}";
}
