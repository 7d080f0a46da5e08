// rk_dma_heap_cma_setup() as the vendor source has it (drivers/dma-buf/rk_heaps/rk-dma-cma.c of the Luckfox SDK's
// 5.10.110 and khadas/linux's 6.1 tree): a base with no size takes the 32 MiB default at that base (fixed), and the
// request goes through cma_declare_contiguous() with PAGE_SIZE alignment and no limit, so a kernel without
// CONFIG_CMA_INACTIVE rounds it to the CMA alignment and may place it anywhere in memory.
using System.Text.Json.Nodes;
using Xunit;

namespace Kmem.Tests;

public class RkDmaHeapCmaSourceTests
{
    private static Machine Boot(string cmdline, bool inactive = true)
    {
        var json = JsonNode.Parse(MachineProfile.EmbeddedJson("rv1106"))!.AsObject();
        json["dram"] = new JsonArray(new JsonObject { ["base"] = "0x0", ["size"] = "128M" });
        json["cmdline"] = cmdline;
        json["config"]!["CMA_INACTIVE"] = inactive;
        return Machine.Boot(MachineProfile.Parse(json.ToJsonString()));
    }

    [Fact]
    public void A_base_without_a_size_takes_the_default_size_there()
    {
        // early_dma_heap_cma(): memparse("0") leaves rk_dma_heap_size 0, '@' sets the base; the setup then uses
        // RK_DMA_HEAP_CMA_DEFAULT_SIZE and fix = (base != 0).
        using var m = Boot("rk_dma_heap_cma=0@0x4000000");
        var area = m.Cma["rk-dma-heap-cma"];
        Assert.Equal((0x4000000UL, 32UL << 20), (area.Base, area.Size));
        Assert.Contains("cma: Reserved 32768 KiB at 0x04000000", m.Dmesg());
    }

    [Fact]
    public void Without_cma_inactive_the_request_is_rounded_to_the_cma_alignment()
    {
        // cma_declare_contiguous_nid() raises PAGE_SIZE to PAGE_SIZE << max(MAX_ORDER - 1, pageblock_order) and aligns
        // the size up to it: 1 MiB becomes the rv1106's 1 MiB alignment (MAX_ORDER 9), 1028 KiB becomes 2 MiB.
        using var m = Boot("rk_dma_heap_cma=1028K", inactive: false);
        Assert.Equal(2UL << 20, m.Cma["rk-dma-heap-cma"].Size);
        Assert.Contains("cma: Reserved 2 MiB at ", m.Dmesg());
        using var kept = Boot("rk_dma_heap_cma=1028K");                   // CMA_INACTIVE keeps the caller's page alignment
        Assert.Equal(1028UL << 10, kept.Cma["rk-dma-heap-cma"].Size);
    }
}
