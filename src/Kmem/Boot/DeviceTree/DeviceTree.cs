// A flattened device tree (the .dtb a boot loader hands the kernel, or /sys/firmware/fdt) read into a tree of nodes
// with their properties, the /memreserve/ table and the phandle index. The reader checks every offset and length
// against the blob before it reads, so a malformed or hostile blob gives a DeviceTreeException, never an index or
// overflow error, and nothing is returned half built.
using System.Buffers.Binary;
using System.Text;

namespace Kmem;

/// <summary>A /memreserve/ entry of the blob's memory reservation block.</summary>
public sealed record MemoryReservation(ulong Address, ulong Size);

/// <summary>
/// A parsed flattened device tree (FDT format versions 16 and 17, as libfdt and the kernel read them). Read one with
/// <see cref="Parse"/> or <see cref="Load"/>; turn it into a profile with <see cref="MachineProfile.FromDeviceTree"/>.
/// </summary>
public sealed class DeviceTree
{
    /// <summary>FDT_MAGIC, the first four bytes of a blob (big-endian).</summary>
    public const uint Magic = 0xd00dfeed;

    /// <summary>The largest blob read (the kernel's MAX_FDT_SIZE on arm64 is 2 MiB; 16 MiB leaves room).</summary>
    public const int MaxSize = 16 << 20;

    private const uint BeginNode = 1, EndNode = 2, Prop = 3, Nop = 4, End = 9;
    private const int HeaderSize = 40;
    private const int MaxDepth = 64;   // FDT_MAX_DEPTH of the kernel's unflatten_dt_nodes()

    private readonly Dictionary<uint, DeviceTreeNode> _phandles;

    private DeviceTree(DeviceTreeNode root, IReadOnlyList<MemoryReservation> reservations, int version, uint bootCpu, int size,
        Dictionary<uint, DeviceTreeNode> phandles)
    {
        Root = root;
        MemoryReservations = reservations;
        Version = version;
        BootCpuId = bootCpu;
        TotalSize = size;
        _phandles = phandles;
    }

    /// <summary>The root node (<c>/</c>).</summary>
    public DeviceTreeNode Root { get; }

    /// <summary>The /memreserve/ entries, in blob order (the terminating zero entry left out).</summary>
    public IReadOnlyList<MemoryReservation> MemoryReservations { get; }

    /// <summary>The header's version field (16 or 17).</summary>
    public int Version { get; }

    /// <summary>boot_cpuid_phys from the header (version 2 and later).</summary>
    public uint BootCpuId { get; }

    /// <summary>fdt_totalsize: the blob's size in bytes.</summary>
    public int TotalSize { get; }

    /// <summary>The node whose <c>phandle</c> (or <c>linux,phandle</c>) is <paramref name="phandle"/>, or null.</summary>
    public DeviceTreeNode? FindByPhandle(uint phandle) => _phandles.GetValueOrDefault(phandle);

    /// <summary>
    /// The node at <paramref name="path"/> (<c>/cpus</c>, <c>/reserved-memory/linux,cma</c>): each component matches a
    /// child's full name, or its name without the unit address when that is unique. Null when there is none.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    public DeviceTreeNode? Find(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var node = Root;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            DeviceTreeNode? next = node.Children.FirstOrDefault(c => c.FullName == part);
            if (next is null)
            {
                var byName = node.Children.Where(c => c.Name == part).Take(2).ToList();
                next = byName.Count == 1 ? byName[0] : null;
            }
            if (next is null) return null;
            node = next;
        }
        return node;
    }

    /// <summary>Every node, depth first from the root.</summary>
    public IEnumerable<DeviceTreeNode> AllNodes()
    {
        var stack = new Stack<DeviceTreeNode>();
        stack.Push(Root);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            yield return n;
            for (int i = n.Children.Count - 1; i >= 0; i--) stack.Push(n.Children[i]);
        }
    }

    /// <summary>Reads a blob from a file (a .dtb, or /sys/firmware/fdt copied from a board).</summary>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="DeviceTreeException">The file is larger than <see cref="MaxSize"/> or is not a valid blob.</exception>
    public static DeviceTree Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var f = File.OpenRead(path);
        if (f.Length > MaxSize) throw new DeviceTreeException("/", -1, $"{path} is {f.Length} bytes, more than a device tree blob ({MaxSize >> 20} MiB at most)");
        var bytes = new byte[f.Length];
        f.ReadExactly(bytes);
        return Parse(bytes);
    }

    /// <summary>Parses a blob: the header, the memory reservation block, the structure block and the strings block.</summary>
    /// <exception cref="DeviceTreeException">Bad magic, an unsupported version, an offset or size outside the blob, a token
    /// or property that runs past its block, unbalanced nodes, or a duplicate phandle; the message names the node and offset.</exception>
    public static DeviceTree Parse(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < HeaderSize) throw new DeviceTreeException("/", 0, $"{blob.Length} bytes is shorter than the 40-byte FDT header");
        uint magic = U32(blob, 0);
        if (magic != Magic) throw new DeviceTreeException("/", 0, $"bad magic 0x{magic:x8} (an FDT starts with 0xd00dfeed)");
        uint total = U32(blob, 4), offStruct = U32(blob, 8), offStrings = U32(blob, 12), offRsv = U32(blob, 16);
        uint version = U32(blob, 20), lastComp = U32(blob, 24), bootCpu = U32(blob, 28), sizeStrings = U32(blob, 32), sizeStruct = U32(blob, 36);
        // libfdt reads versions 2..17 with last_comp_version <= 17; size_dt_struct exists from 17, so Kmem needs 16 or 17.
        if (version < 16 || lastComp > 17) throw new DeviceTreeException("/", 20, $"version {version} (last compatible {lastComp}) is not one Kmem reads (16 or 17)");
        if (total > (uint)blob.Length) throw new DeviceTreeException("/", 4, $"totalsize {total} is more than the {blob.Length} bytes given (the blob is truncated)");
        if (total < HeaderSize || total > MaxSize) throw new DeviceTreeException("/", 4, $"totalsize {total} is outside 40..{MaxSize}");
        if (version < 17) sizeStruct = total - Math.Min(offStruct, total);
        CheckBlock("memory reservation block", offRsv, 16, total, 16);
        CheckBlock("structure block", offStruct, sizeStruct, total, 8);
        CheckBlock("strings block", offStrings, sizeStrings, total, 12);
        if (offRsv % 8 != 0) throw new DeviceTreeException("/", 16, $"off_mem_rsvmap 0x{offRsv:x} is not 8-byte aligned");
        if (offStruct % 4 != 0) throw new DeviceTreeException("/", 8, $"off_dt_struct 0x{offStruct:x} is not 4-byte aligned");

        var b = blob[..(int)total];
        var reservations = new List<MemoryReservation>();
        for (long at = offRsv; ; at += 16)
        {
            if (at + 16 > total) throw new DeviceTreeException("/", at, "the /memreserve/ table has no terminating zero entry");
            ulong addr = BinaryPrimitives.ReadUInt64BigEndian(b[(int)at..]), size = BinaryPrimitives.ReadUInt64BigEndian(b[(int)(at + 8)..]);
            if (addr == 0 && size == 0) break;
            if (addr + size < addr) throw new DeviceTreeException("/", at, $"/memreserve/ 0x{addr:x} size 0x{size:x} wraps around the address space");
            reservations.Add(new MemoryReservation(addr, size));
        }

        var structs = b.Slice((int)offStruct, (int)sizeStruct);
        var strings = b.Slice((int)offStrings, (int)sizeStrings);
        var phandles = new Dictionary<uint, DeviceTreeNode>();
        DeviceTreeNode? root = null, current = null;
        int depth = 0, pos = 0;
        bool ended = false;
        while (!ended)
        {
            long abs = offStruct + pos;
            string path = current?.Path ?? "/";
            if (pos + 4 > structs.Length) throw new DeviceTreeException(path, abs, "the structure block ends without FDT_END");
            uint token = U32(structs, pos);
            pos += 4;
            switch (token)
            {
                case BeginNode:
                {
                    int nul = structs[pos..].IndexOf((byte)0);
                    if (nul < 0) throw new DeviceTreeException(path, abs, "a node name runs past the structure block");
                    string name = Encoding.ASCII.GetString(structs.Slice(pos, nul));
                    pos = Align4(pos + nul + 1);
                    if (current is null)
                    {
                        if (root is not null) throw new DeviceTreeException("/", abs, "a second root node after the first one closed");
                        // Version 16 trees may give the root a name ("/"); the root's path is "/" either way.
                        root = current = new DeviceTreeNode("", null, (int)abs);
                    }
                    else
                    {
                        if (name.Length == 0) throw new DeviceTreeException(path, abs, "a child node without a name");
                        if (++depth >= MaxDepth) throw new DeviceTreeException(path, abs, $"nodes nested deeper than {MaxDepth}");
                        var child = new DeviceTreeNode(name, current, (int)abs);
                        current.AddChild(child);
                        current = child;
                    }
                    break;
                }
                case EndNode:
                    if (current is null) throw new DeviceTreeException("/", abs, "FDT_END_NODE without an open node");
                    current = current.Parent;
                    if (current is not null) depth--;
                    break;
                case Prop:
                {
                    if (current is null) throw new DeviceTreeException("/", abs, "a property outside any node");
                    if (pos + 8 > structs.Length) throw new DeviceTreeException(path, abs, "a property header runs past the structure block");
                    uint len = U32(structs, pos), nameOff = U32(structs, pos + 4);
                    pos += 8;
                    if (len > (uint)(structs.Length - pos)) throw new DeviceTreeException(path, abs, $"a property of {len} bytes runs past the structure block");
                    if (nameOff >= (uint)strings.Length) throw new DeviceTreeException(path, abs, $"a property name offset 0x{nameOff:x} is outside the strings block");
                    int end = strings[(int)nameOff..].IndexOf((byte)0);
                    if (end <= 0) throw new DeviceTreeException(path, abs, $"the property name at strings offset 0x{nameOff:x} is empty or not terminated");
                    string pname = Encoding.ASCII.GetString(strings.Slice((int)nameOff, end));
                    byte[] value = structs.Slice(pos, (int)len).ToArray();
                    pos = Align4(pos + (int)len);
                    if (!current.AddProperty(pname, value)) throw new DeviceTreeException(path, abs, $"property '{pname}' is given twice");
                    if (pname is "phandle" or "linux,phandle")
                    {
                        if (len != 4) throw new DeviceTreeException(path, abs, $"{pname} is {len} bytes, not one cell");
                        uint ph = BinaryPrimitives.ReadUInt32BigEndian(value);
                        if (ph is 0 or 0xffffffff) throw new DeviceTreeException(path, abs, $"{pname} 0x{ph:x} is not a valid phandle");
                        if (phandles.TryGetValue(ph, out var other) && other != current)
                            throw new DeviceTreeException(path, abs, $"phandle 0x{ph:x} is also {other.Path}'s");
                        phandles[ph] = current;
                    }
                    break;
                }
                case Nop: break;
                case End:
                    if (current is not null) throw new DeviceTreeException(current.Path, abs, "FDT_END while the node is still open (unbalanced nodes)");
                    if (root is null) throw new DeviceTreeException("/", abs, "the structure block has no root node");
                    ended = true;
                    break;
                default:
                    throw new DeviceTreeException(path, abs, $"unknown token 0x{token:x8}");
            }
            if (pos > structs.Length) throw new DeviceTreeException(current?.Path ?? "/", offStruct + structs.Length, "the padding after a name or property runs past the structure block");
        }
        return new DeviceTree(root!, reservations, (int)version, bootCpu, (int)total, phandles);
    }

    private static void CheckBlock(string what, uint off, uint size, uint total, int field)
    {
        if (off > total || size > total - off)
            throw new DeviceTreeException("/", field, $"the {what} (offset 0x{off:x}, 0x{size:x} bytes) lies outside the {total}-byte blob");
    }

    private static int Align4(int v) => (v + 3) & ~3;

    private static uint U32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32BigEndian(s[at..]);
}
