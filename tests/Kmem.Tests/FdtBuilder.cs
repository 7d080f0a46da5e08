// A tiny flattened-device-tree writer for tests: nodes with string, cell and empty properties, /memreserve/
// entries, written in the FDT v17 layout (header, reservation block, structure block, strings block).
using System.Buffers.Binary;
using System.Text;

namespace Kmem.Tests;

internal sealed class FdtNode(string name)
{
    public string Name { get; } = name;
    public List<(string Name, byte[] Value)> Props { get; } = [];
    public List<FdtNode> Children { get; } = [];

    public FdtNode Str(string prop, params string[] values)
    {
        Props.Add((prop, Encoding.ASCII.GetBytes(string.Concat(values.Select(v => v + "\0")))));
        return this;
    }

    public FdtNode Cells(string prop, params ulong[] cells)
    {
        var b = new byte[cells.Length * 4];
        for (int i = 0; i < cells.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(i * 4), checked((uint)cells[i]));
        Props.Add((prop, b));
        return this;
    }

    public FdtNode Flag(string prop)
    {
        Props.Add((prop, []));
        return this;
    }

    public FdtNode Raw(string prop, byte[] value)
    {
        Props.Add((prop, value));
        return this;
    }

    public FdtNode Child(string name, Action<FdtNode>? fill = null)
    {
        var c = new FdtNode(name);
        fill?.Invoke(c);
        Children.Add(c);
        return this;
    }
}

internal static class FdtBuilder
{
    /// <summary>A root with #address-cells/#size-cells 1 and one Cortex-A7 CPU, for tests to add to.</summary>
    public static FdtNode ArmRoot(ulong ramBase = 0, ulong ramSize = 256UL << 20, string cpu = "arm,cortex-a7") =>
        new FdtNode("").Str("compatible", "acme,board", "acme,soc").Str("model", "Acme Board").Cells("#address-cells", 1).Cells("#size-cells", 1)
            .Child("cpus", c => c.Cells("#address-cells", 1).Cells("#size-cells", 0)
                .Child("cpu@0", x => x.Str("device_type", "cpu").Str("compatible", cpu).Cells("reg", 0)))
            .Child($"memory@{ramBase:x}", m => m.Str("device_type", "memory").Cells("reg", ramBase, ramSize));

    public static byte[] Build(FdtNode root, params (ulong Address, ulong Size)[] reservations)
    {
        var strings = new MemoryStream();
        var offsets = new Dictionary<string, int>();
        var st = new MemoryStream();
        void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); st.Write(b); }
        void Pad() { while (st.Length % 4 != 0) st.WriteByte(0); }
        void Node(FdtNode n)
        {
            U32(1);
            st.Write(Encoding.ASCII.GetBytes(n.Name + "\0"));
            Pad();
            foreach (var (name, value) in n.Props)
            {
                if (!offsets.TryGetValue(name, out int off))
                {
                    off = (int)strings.Length;
                    offsets[name] = off;
                    strings.Write(Encoding.ASCII.GetBytes(name + "\0"));
                }
                U32(3);
                U32((uint)value.Length);
                U32((uint)off);
                st.Write(value);
                Pad();
            }
            foreach (var c in n.Children) Node(c);
            U32(2);
        }
        Node(root);
        U32(9);
        int rsvOff = 40, rsvSize = (reservations.Length + 1) * 16;
        int structOff = rsvOff + rsvSize, stringsOff = structOff + (int)st.Length, total = stringsOff + (int)strings.Length;
        var blob = new byte[total];
        var s = blob.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(s, 0xd00dfeed);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], (uint)total);
        BinaryPrimitives.WriteUInt32BigEndian(s[8..], (uint)structOff);
        BinaryPrimitives.WriteUInt32BigEndian(s[12..], (uint)stringsOff);
        BinaryPrimitives.WriteUInt32BigEndian(s[16..], (uint)rsvOff);
        BinaryPrimitives.WriteUInt32BigEndian(s[20..], 17);
        BinaryPrimitives.WriteUInt32BigEndian(s[24..], 16);
        BinaryPrimitives.WriteUInt32BigEndian(s[28..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(s[32..], (uint)strings.Length);
        BinaryPrimitives.WriteUInt32BigEndian(s[36..], (uint)st.Length);
        for (int i = 0; i < reservations.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(s[(rsvOff + i * 16)..], reservations[i].Address);
            BinaryPrimitives.WriteUInt64BigEndian(s[(rsvOff + i * 16 + 8)..], reservations[i].Size);
        }
        st.ToArray().CopyTo(s[structOff..]);
        strings.ToArray().CopyTo(s[stringsOff..]);
        return blob;
    }
}
