// `kmem profile from-dt`: a .dtb to profile JSON on stdout or in --out that loads and boots, a malformed blob
// refused with its node and offset (exit 2), and a .dts without dtc refused with how to get it (exit 2).
using Xunit;

namespace Kmem.Tests;

public class ProfileFromDtCliTests
{
    private static string WriteDtb()
    {
        var root = FdtBuilder.ArmRoot(0, 256UL << 20)
            .Child("reserved-memory", r => r.Cells("#address-cells", 1).Cells("#size-cells", 1).Flag("ranges")
                .Child("linux,cma", x => x.Str("compatible", "shared-dma-pool").Flag("reusable").Cells("size", 0x2000000).Flag("linux,cma-default")))
            .Child("chosen", c => c.Str("bootargs", "console=ttyS0 slub_debug=FZ"));
        string path = Path.Combine(Path.GetTempPath(), $"kmem-dt-{Guid.NewGuid():N}.dtb");
        File.WriteAllBytes(path, FdtBuilder.Build(root));
        return path;
    }

    [Fact]
    public void FromDt_PrintsCommentedJsonThatLoadsAndBoots()
    {
        string dtb = WriteDtb();
        string json = Path.ChangeExtension(dtb, ".json");
        try
        {
            var (code, stdout, err) = TestSupport.Cli("profile", "from-dt", dtb);
            Assert.True(code == 0, err);
            Assert.Contains("// /reserved-memory/linux,cma: shared-dma-pool, reusable", stdout);
            Assert.Contains("\"cmdline\": \"console=ttyS0 slub_debug=FZ\"", stdout);
            (code, _, err) = TestSupport.Cli("profile", "from-dt", dtb, "--out", json, "--name", "acme-test");
            Assert.True(code == 0, err);
            Assert.Contains("wrote", err);
            var p = MachineProfile.Load(json);
            Assert.Equal("acme-test", p.Name);
            (code, stdout, err) = TestSupport.Cli("boot", "--profile", json);
            Assert.True(code == 0, err);
            Assert.Contains("Reserved memory: created CMA memory pool at", stdout);
        }
        finally
        {
            File.Delete(dtb);
            File.Delete(json);
        }
    }

    [Fact]
    public void FromDt_MalformedBlob_Exit2WithNodeAndOffset()
    {
        string dtb = WriteDtb();
        try
        {
            var b = File.ReadAllBytes(dtb);
            File.WriteAllBytes(dtb, b[..60]);
            var (code, _, err) = TestSupport.Cli("profile", "from-dt", dtb);
            Assert.Equal(2, code);
            Assert.Contains("device tree: / (offset 0x4): totalsize", err);
        }
        finally { File.Delete(dtb); }
    }

    [Fact]
    public void FromDt_DtsWithoutDtc_Exit2SayingHowToInstallIt()
    {
        string dts = Path.Combine(Path.GetTempPath(), $"kmem-dt-{Guid.NewGuid():N}.dts");
        File.WriteAllText(dts, "/dts-v1/;\n/ { };\n");
        string? before = Environment.GetEnvironmentVariable("KMEM_DTC");
        try
        {
            Environment.SetEnvironmentVariable("KMEM_DTC", Path.Combine(Path.GetTempPath(), "no-such-dtc-" + Guid.NewGuid().ToString("N")));
            var (code, _, err) = TestSupport.Cli("profile", "from-dt", dts);
            Assert.Equal(2, code);
            Assert.Contains("dtc was not found (install it: apt install device-tree-compiler; or pass the .dtb)", err);
            Assert.Single(err.TrimEnd('\n').Split('\n'));
        }
        finally
        {
            Environment.SetEnvironmentVariable("KMEM_DTC", before);
            File.Delete(dts);
        }
    }
}
