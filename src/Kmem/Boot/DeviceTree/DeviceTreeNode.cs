// One node of a parsed device tree: its name, properties and children, and the typed reads the boot code needs
// (strings, cells, the parent's #address-cells/#size-cells, reg as (address, size) pairs), each checked so a
// property that does not fit its type is a DeviceTreeException naming the node.
using System.Buffers.Binary;
using System.Text;

namespace Kmem;

/// <summary>A device tree node.</summary>
public sealed class DeviceTreeNode
{
    private readonly List<DeviceTreeNode> _children = [];
    private readonly Dictionary<string, byte[]> _props = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    internal DeviceTreeNode(string fullName, DeviceTreeNode? parent, int offset)
    {
        FullName = fullName;
        Parent = parent;
        Offset = offset;
        int at = fullName.IndexOf('@');
        Name = at < 0 ? fullName : fullName[..at];
        UnitAddress = at < 0 ? null : fullName[(at + 1)..];
        Path = parent is null ? "/" : parent.Parent is null ? "/" + fullName : parent.Path + "/" + fullName;
    }

    /// <summary>The name with its unit address (<c>memory@0</c>); empty for the root.</summary>
    public string FullName { get; }
    /// <summary>The name without the unit address (<c>memory</c>).</summary>
    public string Name { get; }
    /// <summary>The unit address after '@' as written, or null.</summary>
    public string? UnitAddress { get; }
    /// <summary>The full path (<c>/reserved-memory/linux,cma</c>).</summary>
    public string Path { get; }
    /// <summary>The parent, or null for the root.</summary>
    public DeviceTreeNode? Parent { get; }
    /// <summary>The byte offset of the node's FDT_BEGIN_NODE token in the blob.</summary>
    public int Offset { get; }
    /// <summary>The children in blob order.</summary>
    public IReadOnlyList<DeviceTreeNode> Children => _children;
    /// <summary>The property names in blob order.</summary>
    public IReadOnlyList<string> PropertyNames => _order;

    internal void AddChild(DeviceTreeNode child) => _children.Add(child);

    internal bool AddProperty(string name, byte[] value)
    {
        if (!_props.TryAdd(name, value)) return false;
        _order.Add(name);
        return true;
    }

    /// <summary>True when the node has the property (an empty one such as <c>no-map</c> included).</summary>
    public bool Has(string property) => _props.ContainsKey(property);

    /// <summary>The raw bytes of a property, or null.</summary>
    public ReadOnlyMemory<byte>? Get(string property) => _props.TryGetValue(property, out var v) ? v : null;

    /// <summary>The first string of a property (up to its first NUL), or null when absent.</summary>
    /// <exception cref="DeviceTreeException">The property is not a NUL-terminated string.</exception>
    public string? GetString(string property) => GetStrings(property) is { Count: > 0 } s ? s[0] : null;

    /// <summary>The strings of a string-list property (<c>compatible</c>), empty when absent.</summary>
    /// <exception cref="DeviceTreeException">The property does not end with a NUL.</exception>
    public IReadOnlyList<string> GetStrings(string property)
    {
        if (!_props.TryGetValue(property, out var v) || v.Length == 0) return [];
        if (v[^1] != 0) throw Error($"property '{property}' is not a NUL-terminated string");
        return Encoding.UTF8.GetString(v, 0, v.Length - 1).Split('\0');
    }

    /// <summary>The 32-bit cells of a property, or null when absent.</summary>
    /// <exception cref="DeviceTreeException">The property's length is not a multiple of 4.</exception>
    public uint[]? GetCells(string property)
    {
        if (!_props.TryGetValue(property, out var v)) return null;
        if (v.Length % 4 != 0) throw Error($"property '{property}' is {v.Length} bytes, not a whole number of cells");
        var cells = new uint[v.Length / 4];
        for (int i = 0; i < cells.Length; i++) cells[i] = BinaryPrimitives.ReadUInt32BigEndian(v.AsSpan(i * 4));
        return cells;
    }

    /// <summary>A one-cell property, or null when absent.</summary>
    /// <exception cref="DeviceTreeException">The property is not exactly one cell.</exception>
    public uint? GetU32(string property)
    {
        var c = GetCells(property);
        if (c is null) return null;
        if (c.Length != 1) throw Error($"property '{property}' is {c.Length * 4} bytes, not one cell");
        return c[0];
    }

    /// <summary>
    /// A one- or two-cell number (<c>size</c>, <c>alignment</c>: as many cells as the parent's #size-cells, read as the
    /// kernel's dt_mem_next_cell() reads them), or null when absent.
    /// </summary>
    /// <exception cref="DeviceTreeException">The length is not <paramref name="cells"/> cells.</exception>
    public ulong? GetNumber(string property, int cells)
    {
        var c = GetCells(property);
        if (c is null) return null;
        if (c.Length != cells) throw Error($"property '{property}' is {c.Length} cells, not #size-cells = {cells}");
        return Combine(c, 0, cells, property);
    }

    /// <summary>
    /// #address-cells for this node's <c>reg</c>: the nearest ancestor's, as the kernel's of_n_addr_cells() looks it up
    /// (the parent first, then its parents), and 1 (OF_ROOT_NODE_ADDR_CELLS_DEFAULT) when none says.
    /// </summary>
    /// <exception cref="DeviceTreeException">The property is not one cell, or is 0 or above 4.</exception>
    public int AddressCells => CellsOf("#address-cells", 4, allowZero: false);

    /// <summary>#size-cells for this node's <c>reg</c>, looked up as <see cref="AddressCells"/> (default 1).</summary>
    /// <exception cref="DeviceTreeException">The property is not one cell or is above 2.</exception>
    public int SizeCells => CellsOf("#size-cells", 2, allowZero: true);

    private int CellsOf(string property, int max, bool allowZero)
    {
        for (var n = Parent; n is not null; n = n.Parent)
        {
            if (n.GetU32(property) is not { } v) continue;
            if (v > (uint)max || (!allowZero && v == 0)) throw n.Error($"{property} = {v} is outside {(allowZero ? 0 : 1)}..{max}");
            return (int)v;
        }
        return 1;
    }

    /// <summary>
    /// The node's <c>reg</c> as (address, size) pairs in its parent bus's address space, using the inherited
    /// #address-cells and #size-cells; empty when the node has no reg.
    /// </summary>
    /// <exception cref="DeviceTreeException">The cells do not divide the reg length, or an entry needs more than 64 bits.</exception>
    public IReadOnlyList<(ulong Address, ulong Size)> Reg()
    {
        var c = GetCells("reg");
        if (c is null) return [];
        int ac = AddressCells, sc = SizeCells, entry = ac + sc;
        if (c.Length == 0 || c.Length % entry != 0)
            throw Error($"reg is {c.Length * 4} bytes, not a whole number of entries of #address-cells {ac} + #size-cells {sc}");
        var r = new List<(ulong, ulong)>(c.Length / entry);
        for (int i = 0; i < c.Length; i += entry)
            r.Add((Combine(c, i, ac, "reg"), sc == 0 ? 0 : Combine(c, i + ac, sc, "reg")));
        return r;
    }

    /// <summary>The <c>status</c> property allows the node (absent, "okay" or "ok"), as of_device_is_available() decides.</summary>
    public bool IsAvailable => GetString("status") is null or "okay" or "ok";

    /// <summary>The node's phandle, or null.</summary>
    public uint? Phandle => GetU32("phandle") ?? GetU32("linux,phandle");

    internal ulong Combine(uint[] c, int at, int count, string property)
    {
        ulong v = 0;
        for (int k = 0; k < count; k++)
        {
            if (v >> 32 != 0) throw Error($"property '{property}' holds a number wider than 64 bits");
            v = (v << 32) | c[at + k];
        }
        return v;
    }

    internal DeviceTreeException Error(string problem) => new(Path, Offset, problem);

    /// <inheritdoc/>
    public override string ToString() => Path;
}
