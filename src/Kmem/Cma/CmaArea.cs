// A contiguous-memory-allocator area reserved at boot: its pageblocks are MIGRATE_CMA and serve
// movable allocations while free. (Allocation from the area arrives with the CMA subsystem.)
namespace Kmem;

/// <summary>A CMA area of a booted machine (<c>struct cma</c>).</summary>
public sealed class CmaArea
{
    internal CmaArea(string name, ulong basePfn, ulong count, int orderPerBit)
    {
        Name = name;
        BasePfn = basePfn;
        Count = count;
        OrderPerBit = orderPerBit;
    }

    /// <summary>The area's name (<c>cma_get_name()</c>).</summary>
    public string Name { get; }

    /// <summary>First page frame of the area.</summary>
    public ulong BasePfn { get; }

    /// <summary>Pages in the area.</summary>
    public ulong Count { get; }

    /// <summary>Pages per bitmap bit, as a power of two.</summary>
    public int OrderPerBit { get; }

    /// <summary>Physical base address.</summary>
    public ulong Base => BasePfn << 12;

    /// <summary>Size in bytes.</summary>
    public ulong Size => Count << 12;

    /// <inheritdoc/>
    public override string ToString() => $"{Name} [0x{Base:x}-0x{Base + Size - 1:x}]";
}
