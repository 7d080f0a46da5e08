// Machine profiles: the embedded ones load, and every malformed profile is rejected with the
// field's path and the problem, before anything is built.
namespace Kmem.Tests;

public class ProfileTests
{
    [Theory]
    [InlineData("rv1106", Arch.Arm, 1, 256)]
    [InlineData("rk3588", Arch.Arm64, 8, 8192)]
    [InlineData("x86_64", Arch.X86_64, 2, 4095)]
    public void Embedded_profiles_load(string name, Arch arch, int cpus, long ramMiB)
    {
        var p = MachineProfile.Embedded(name);
        Assert.Equal(arch, p.Arch);
        Assert.Equal(cpus, p.Cpus);
        Assert.Equal(ramMiB, (long)(p.TotalRam >> 20));
    }

    [Fact]
    public void Rv1106_matches_the_seed_board()
    {
        var p = MachineProfile.Embedded("rv1106");
        // The seed's 32 MiB area at 0x02800000 comes from the command line, as on the vendor kernel.
        Assert.Empty(p.Cma);
        Assert.Contains("rk_dma_heap_cma=32M@0x2800000", p.Cmdline);
        using (var m = Machine.Boot(p))
        {
            var cma = Assert.Single(m.Cma.Values);
            Assert.Equal("rk-dma-heap-cma", cma.Name);
            Assert.Equal(0x02800000UL, cma.Base);
            Assert.Equal(32UL << 20, cma.Size);
        }
        Assert.Contains(p.Devices, d => d.Name == "ffa00000.rkisp");
        Assert.Contains(p.Devices, d => d.Name == "ffa50000.rkvenc");
        Assert.Contains(p.Devices, d => d.Name == "ff660000.npu");
        Assert.Equal(new[] { ZoneType.Normal, ZoneType.Movable }, p.ZoneTypes);      // rv1106_defconfig: no HIGHMEM
        Assert.Equal(8, p.EffectivePageblockOrder);                                   // FORCE_MAX_ZONEORDER=9
        Assert.Equal(9, p.MaxOrder);
        Assert.Equal(0xB0000000UL, p.PageOffset);                                      // VMSPLIT_3G_OPT
    }

    [Fact]
    public void Unknown_embedded_name_is_a_profile_error()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Embedded("pdp11"));
        Assert.Equal("name", e.Field);
        Assert.Contains("rv1106", e.Message);
    }

    private const string Base = """{"name":"t","arch":"arm","cpus":1,"dram":[{"base":"0x0","size":"64M"}]""";

    [Theory]
    [InlineData("{", "(json)", "not valid JSON")]
    [InlineData("[]", "(root)", "object")]
    [InlineData(Base + ",\"colour\":1}", "colour", "unknown key")]
    [InlineData("""{"arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"}]}""", "name", "required")]
    [InlineData("""{"name":"t","arch":"mips","cpus":1,"dram":[{"base":0,"size":"64M"}]}""", "arch", "unknown architecture")]
    [InlineData("""{"name":"t","arch":"arm","cpus":0,"dram":[{"base":0,"size":"64M"}]}""", "cpus", "outside")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[]}""", "dram", "at least one")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":0,"size":0}]}""", "dram[0].size", "zero")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":"0x100","size":"64M"}]}""", "dram[0].base", "page aligned")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M"},{"base":"32M","size":"64M"}]}""", "dram[1]", "overlaps dram[0]")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":0,"size":"1M"}]}""", "dram", "too little")]
    [InlineData("""{"name":"t","arch":"x86_64","cpus":1,"dram":[{"base":0,"size":"128G"}]}""", "dram", "more than Kmem models")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":0,"size":"lots"}]}""", "dram[0].size", "not a size")]
    [InlineData("""{"name":"t","arch":"arm","cpus":1,"dram":[{"base":0,"size":"64M","speed":3}]}""", "dram[0].speed", "unknown key")]
    [InlineData(Base + ",\"page_size\":16384}", "page_size", "not supported")]
    [InlineData(Base + ",\"max_order\":40}", "max_order", "outside")]
    [InlineData(Base + ",\"cma\":[{\"name\":\"c\",\"base\":\"0x100000\",\"size\":\"8M\"}]}", "cma[0].base", "not aligned")]
    [InlineData(Base + ",\"cma\":[{\"name\":\"c\",\"base\":\"0x8000000\",\"size\":\"8M\"}]}", "cma[0]", "outside RAM")]
    [InlineData(Base + ",\"cma\":[{\"name\":\"c\",\"size\":\"6M\"}]}", "cma[0].size", "multiple of the CMA alignment")]
    [InlineData(Base + ",\"cma\":[{\"name\":\"c\",\"size\":\"4M\"},{\"name\":\"c\",\"size\":\"4M\"}]}", "cma[1].name", "duplicate")]
    [InlineData(Base + ",\"cma\":[{\"name\":\"c\",\"size\":\"48M\"}]}", "cma[0].size", "more than half")]
    [InlineData(Base + ",\"reserved\":[{\"name\":\"r\",\"base\":\"0x3ff0000\",\"size\":\"1M\"}]}", "reserved[0]", "not inside a memory bank")]
    [InlineData(Base + ",\"cma\":[{\"name\":\"c\",\"base\":\"0\",\"size\":\"4M\"}],\"reserved\":[{\"name\":\"fw\",\"base\":\"0x100000\",\"size\":\"4K\"}]}", "cma[0]", "overlaps reserved range 'fw'")]
    [InlineData(Base + ",\"devices\":[{\"name\":\"d\",\"cma\":\"nope\"}]}", "devices[0].cma", "no CMA area")]
    [InlineData(Base + ",\"devices\":[{\"name\":\"d\"},{\"name\":\"d\"}]}", "devices[1].name", "duplicate")]
    [InlineData(Base + ",\"devices\":[{\"name\":\"d\",\"dma_mask\":8}]}", "devices[0].dma_mask", "outside")]
    [InlineData(Base + ",\"devices\":[{\"name\":\"d\",\"iommu\":\"yes\"}]}", "devices[0].iommu", "true or false")]
    [InlineData(Base + ",\"zones\":{\"lowmem_limit\":\"0x123\"}}", "zones.lowmem_limit", "multiple of the page size")]
    [InlineData(Base + ",\"min_free_kbytes\":99999999}", "min_free_kbytes", "outside")]
    [InlineData(Base + ",\"kernel\":{\"base\":\"0x8000\"}}", "kernel", "no size")]
    [InlineData(Base + ",\"vmalloc_size\":\"100K\"}", "vmalloc_size", "whole number of MiB")]
    [InlineData(Base + ",\"vmalloc_size\":\"128G\"}", "vmalloc_size", "above the 64 GiB")]
    [InlineData(Base + ",\"dma_debug\":1}", "dma_debug", "true or false")]
    [InlineData(Base + ",\"devices\":[{\"name\":\"d\",\"driver\":\"bad name\"}]}", "devices[0].driver", "not a driver name")]
    public void Malformed_profiles_name_the_field(string json, string field, string problem)
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Parse(json));
        Assert.Equal(field, e.Field);
        Assert.Contains(problem, e.Problem);
    }

    [Fact]
    public void A_users_file_boots()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kmem-board-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, TestSupport.SmallProfileJson);
        try
        {
            using var m = Machine.Boot(MachineProfile.Load(path));
            Assert.Equal("small", m.Profile.Name);
            Assert.Contains("cma: Reserved 8 MiB at 0x61000000", m.Dmesg());
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Missing_file_is_a_profile_error()
    {
        var e = Assert.Throws<ProfileException>(() => MachineProfile.Load("/nonexistent/board.json"));
        Assert.Equal("(file)", e.Field);
    }

    [Theory]
    [InlineData("4096", 4096UL)]
    [InlineData("0x1000", 4096UL)]
    [InlineData("4K", 4096UL)]
    [InlineData("16M", 16UL << 20)]
    [InlineData("2GiB", 2UL << 30)]
    public void Sizes_parse(string text, ulong value)
    {
        Assert.True(MachineProfile.TryParseSize(text, out var v));
        Assert.Equal(value, v);
    }

    [Fact]
    public void Auto_cma_is_placed_top_down_below_the_limit()
    {
        using var m = Machine.Boot("rk3588");
        var cma = m.Cma["reserved"];
        Assert.Equal(0UL, cma.Base % (4UL << 20));
        Assert.True(cma.Base + cma.Size <= 4UL << 30);
        Assert.True(cma.Base > 3UL << 30, $"placed at 0x{cma.Base:x}");
    }
}
