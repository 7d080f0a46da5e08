// The flattened-device-tree reader: nodes, properties, phandles, inherited cells and /memreserve/, and every kind
// of malformed blob refused with the node path and offset (a fuzz loop checks nothing else escapes).
using System.Buffers.Binary;
using Xunit;

namespace Kmem.Tests;

public class DeviceTreeReaderTests
{
    private static byte[] Sample() => FdtBuilder.Build(
        FdtBuilder.ArmRoot()
            .Child("soc", s => s.Str("compatible", "simple-bus").Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
                .Child("uart@ff4c0000", u => u.Str("compatible", "snps,dw-apb-uart").Cells("reg", 0xff4c0000, 0x100).Cells("phandle", 7))
                .Child("sub", b => b.Child("leaf@10", l => l.Cells("reg", 0x10, 0x20)))),
        (0x100000, 0x2000));

    [Fact]
    public void Parse_ReadsNodesPropertiesPhandlesAndMemreserve()
    {
        var t = DeviceTree.Parse(Sample());
        Assert.Equal(17, t.Version);
        Assert.Equal("Acme Board", t.Root.GetString("model"));
        Assert.Equal(["acme,board", "acme,soc"], t.Root.GetStrings("compatible"));
        var uart = t.Find("/soc/uart@ff4c0000")!;
        Assert.Equal("uart", uart.Name);
        Assert.Equal("ff4c0000", uart.UnitAddress);
        Assert.Same(uart, t.FindByPhandle(7));
        Assert.Null(t.FindByPhandle(8));
        Assert.Equal([(0xff4c0000UL, 0x100UL)], uart.Reg());
        Assert.Equal([new MemoryReservation(0x100000, 0x2000)], t.MemoryReservations);
        Assert.Equal("/memory@0", t.Find("/memory")!.Path);
        Assert.Null(t.Find("/nothing"));
    }

    [Fact]
    public void Cells_AreInheritedFromTheNearestAncestor()
    {
        // "sub" has no #address-cells: leaf@10's reg is read with soc's (1, 1), as of_n_addr_cells() walks up.
        var t = DeviceTree.Parse(Sample());
        var leaf = t.Find("/soc/sub/leaf@10")!;
        Assert.Equal(1, leaf.AddressCells);
        Assert.Equal([(0x10UL, 0x20UL)], leaf.Reg());
        var two = DeviceTree.Parse(FdtBuilder.Build(new FdtNode("").Cells("#address-cells", 2).Cells("#size-cells", 2)
            .Child("a", a => a.Child("b@1", b => b.Cells("reg", 1, 0, 0, 0x1000)))));
        Assert.Equal([(0x1_00000000UL, 0x1000UL)], two.Find("/a/b@1")!.Reg());
    }

    [Fact]
    public void RegNotDividedByTheCells_NamesTheNode()
    {
        var t = DeviceTree.Parse(FdtBuilder.Build(new FdtNode("").Cells("#address-cells", 2).Cells("#size-cells", 1).Child("x@0", x => x.Cells("reg", 0, 0))));
        var e = Assert.Throws<DeviceTreeException>(() => t.Find("/x@0")!.Reg());
        Assert.Equal("/x@0", e.NodePath);
        Assert.True(e.Offset > 0);
        Assert.Contains("#address-cells 2 + #size-cells 1", e.Message);
    }

    public static TheoryData<string, string> Malformed => new()
    {
        { "truncated", "truncated" },
        { "magic", "bad magic" },
        { "version", "version 1" },
        { "struct-offset", "structure block" },
        { "strings-offset", "strings block" },
        { "prop-past-block", "runs past the structure block" },
        { "unbalanced", "still open" },
        { "extra-end-node", "without an open node" },
        { "bad-token", "unknown token" },
        { "name-offset", "outside the strings block" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedBlob_IsRefusedWithNodeAndOffset(string what, string expected)
    {
        byte[] b = Sample();
        var s = b.AsSpan();
        int structOff = (int)BinaryPrimitives.ReadUInt32BigEndian(s[8..]);
        int structSize = (int)BinaryPrimitives.ReadUInt32BigEndian(s[36..]);
        int end = structOff + structSize;               // just past FDT_END
        // The uart's first property header: find the FDT_PROP token after "uart@ff4c0000".
        int uart = IndexOf(b, "uart@ff4c0000"u8.ToArray());
        int prop = (uart + "uart@ff4c0000".Length + 1 + 3) & ~3;
        switch (what)
        {
            case "truncated": b = b[..(b.Length - 8)]; break;
            case "magic": s[0] = 0; break;
            case "version": BinaryPrimitives.WriteUInt32BigEndian(s[20..], 1); BinaryPrimitives.WriteUInt32BigEndian(s[24..], 1); break;
            case "struct-offset": BinaryPrimitives.WriteUInt32BigEndian(s[8..], 0x7fff0000); break;
            case "strings-offset": BinaryPrimitives.WriteUInt32BigEndian(s[32..], 0x7fff0000); break;
            case "prop-past-block": BinaryPrimitives.WriteUInt32BigEndian(s[(prop + 4)..], 0x10000); break;
            case "unbalanced": BinaryPrimitives.WriteUInt32BigEndian(s[(end - 8)..], 4); break;                 // the root's END_NODE → NOP
            case "extra-end-node": BinaryPrimitives.WriteUInt32BigEndian(s[(end - 4)..], 2); BinaryPrimitives.WriteUInt32BigEndian(s[36..], (uint)structSize); b = [.. b]; break;
            case "bad-token": BinaryPrimitives.WriteUInt32BigEndian(s[prop..], 0x77); break;
            case "name-offset": BinaryPrimitives.WriteUInt32BigEndian(s[(prop + 8)..], 0xffff); break;
        }
        var e = Assert.Throws<DeviceTreeException>(() => DeviceTree.Parse(b));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("device tree: /", e.Message);
        Assert.False(string.IsNullOrEmpty(e.NodePath));
        if (what is "prop-past-block" or "bad-token" or "name-offset")
        {
            Assert.Equal("/soc/uart@ff4c0000", e.NodePath);
            Assert.Equal(prop, e.Offset);
        }
    }

    [Fact]
    public void RandomlyCorruptedBlobs_OnlyEverGiveDeviceTreeException()
    {
        byte[] good = Sample();
        var rng = new Random(26);
        for (int round = 0; round < 3000; round++)
        {
            byte[] b = (byte[])good.Clone();
            int flips = 1 + rng.Next(4);
            for (int k = 0; k < flips; k++) b[rng.Next(b.Length)] = (byte)rng.Next(256);
            if (rng.Next(4) == 0) b = b[..rng.Next(b.Length)];
            try
            {
                var t = DeviceTree.Parse(b);
                foreach (var n in t.AllNodes())
                {
                    _ = n.Reg();
                    foreach (var p in n.PropertyNames) _ = n.Get(p);
                }
                _ = MachineProfile.FromDeviceTree(t);
            }
            catch (DeviceTreeException) { }
            catch (ProfileException) { }
        }
    }

    [Fact]
    public void Load_RefusesAnEmptyPath() => Assert.Throws<ArgumentException>(() => DeviceTree.Load(""));

    private static int IndexOf(byte[] hay, byte[] needle) => hay.AsSpan().IndexOf(needle);
}
