// Randomized boot inputs of the RV1106 kind (RAM size, image sections, FDT placement, rk_dma_heap_cma=, cma=,
// log_buf_len=, hash sizes): every one either boots a consistent machine or is refused with a ProfileException,
// never an exception of another kind, never a write outside the machine's memory.
using System.Globalization;
using Kmem;
using Xunit;

namespace Kmem.Tests;

public class BootInputFuzzTests
{
    private static string Size(Random r, ulong max)
    {
        ulong v = (ulong)r.NextInt64(0, (long)Math.Max(1, max));
        return r.Next(4) switch
        {
            0 => $"{v >> 20}M",
            1 => $"{v >> 10}K",
            2 => "0x" + v.ToString("x", CultureInfo.InvariantCulture),
            _ => v.ToString(CultureInfo.InvariantCulture),
        };
    }

    [Fact]
    public void Random_board_inputs_boot_consistently_or_are_refused()
    {
        var rng = new Random(int.Parse(Environment.GetEnvironmentVariable("BIF_SEED") ?? "22"));
        int booted = 0, refused = 0;
        for (int i = 0; i < int.Parse(Environment.GetEnvironmentVariable("BIF_N") ?? "120"); i++)
        {
            int ramMiB = 8 << rng.Next(6);                              // 8 .. 256 MiB
            ulong ram = (ulong)ramMiB << 20;
            var words = new List<string>();
            if (rng.Next(3) > 0) words.Add($"rk_dma_heap_cma={Size(rng, ram)}" + (rng.Next(3) == 0 ? $"@{Size(rng, ram + (1UL << 20))}" : ""));
            if (rng.Next(6) == 0) words.Add($"log_buf_len={Size(rng, 1UL << 33)}");
            if (rng.Next(6) == 0) words.Add($"dhash_entries={rng.Next(0, 1 << 22)}");
            if (rng.Next(8) == 0) words.Add("earlycon");
            string fdt = rng.Next(3) switch
            {
                0 => "",
                1 => $$""" "fdt": { "size": "{{rng.Next(40, 1 << 21)}}", "unflattened": "{{Size(rng, 32UL << 20)}}" }, """,
                _ => $$""" "fdt": { "base": "{{Size(rng, ram)}}", "size": "{{rng.Next(1, 1 << 22)}}" }, """,
            };
            string pool = rng.Next(4) == 0 ? $$""" "cma": [ { "name": "linux,cma", "reserved_memory": true, "size": "{{1 << rng.Next(0, 6)}}M" } ], """ : "";
            string json = $$"""
                { "name": "fuzz", "arch": "arm", "cpus": 1, "version": "5.10.110",
                  "config": { "SMP": false, "VMSPLIT_3G_OPT": true, "HIGHMEM": false, "FORCE_MAX_ZONEORDER": 9, "CMA_INACTIVE": {{(rng.Next(2) == 0 ? "true" : "false")}},
                              "DMABUF_HEAPS_ROCKCHIP": true, "CMA_DEBUGFS": true },
                  "dram": [ { "base": "0", "size": "{{ramMiB}}M" } ],
                  "kernel": { "base": "0x8000", "code": "{{Size(rng, ram / 8)}}", "rodata": "{{Size(rng, ram / 16)}}", "rwdata": "{{Size(rng, 1 << 20)}}",
                              "init": "{{Size(rng, 1 << 20)}}", "bss": "{{Size(rng, 1 << 20)}}"{{(rng.Next(4) == 0 ? $", \"tables\": \"{Size(rng, 80UL << 20)}\"" : "")}} },
                  {{fdt}} {{pool}}
                  "cmdline": "{{string.Join(' ', words)}}" }
                """;
            try
            {
                if (Environment.GetEnvironmentVariable("BIF_LOG") is { } log) File.WriteAllText(log, json);
                using var m = Machine.Boot(MachineProfile.Parse(json));
                Assert.True(m.VerifyIntegrity().Count == 0, json + "\n" + string.Join("\n", m.VerifyIntegrity()));
                var line = System.Text.RegularExpressions.Regex.Match(m.Dmesg(), @"Memory: (\d+)K/(\d+)K available .* (\d+)K reserved, (\d+)K cma-reserved\)");
                Assert.True(line.Success, json);
                Assert.Equal(long.Parse(line.Groups[2].Value), long.Parse(line.Groups[1].Value) + long.Parse(line.Groups[3].Value) + long.Parse(line.Groups[4].Value));
                booted++;
            }
            catch (ProfileException)
            {
                refused++;
            }
        }
        Assert.True(booted > 10 && refused > 10, $"{booted} booted, {refused} refused");
    }

    [Fact]
    public void A_board_too_small_for_its_own_boot_is_refused_as_the_kernel_panics()
    {
        // 8 MiB with a 6355 KiB RK heap leaves 36 KiB: the slab caches' boot allocations cannot be met. Linux's OOM killer
        // finds no process to kill and panics; Kmem refuses the board instead of waiting for memory that never comes.
        var e = Assert.Throws<ProfileException>(() => Machine.Boot(MachineProfile.Parse("""
            { "name": "tiny", "arch": "arm", "cpus": 1, "version": "5.10.110",
              "config": { "SMP": false, "VMSPLIT_3G_OPT": true, "HIGHMEM": false, "FORCE_MAX_ZONEORDER": 9, "CMA_INACTIVE": true, "DMABUF_HEAPS_ROCKCHIP": true },
              "dram": [ { "base": "0", "size": "8M" } ],
              "kernel": { "base": "0x8000", "code": "0xaaebc", "rwdata": "0x41bd2", "init": "0x721d9" },
              "cmdline": "rk_dma_heap_cma=6355K" }
            """)));
        Assert.Equal("dram", e.Field);
        Assert.Contains("out of memory while booting", e.Message);
        using var fits = Machine.Boot(MachineProfile.Parse("""
            { "name": "small", "arch": "arm", "cpus": 1, "version": "5.10.110",
              "config": { "SMP": false, "VMSPLIT_3G_OPT": true, "HIGHMEM": false, "FORCE_MAX_ZONEORDER": 9, "CMA_INACTIVE": true, "DMABUF_HEAPS_ROCKCHIP": true },
              "dram": [ { "base": "0", "size": "8M" } ],
              "kernel": { "base": "0x8000", "code": "0xaaebc", "rwdata": "0x41bd2", "init": "0x721d9" },
              "cmdline": "rk_dma_heap_cma=4M" }
            """));
        TestSupport.AssertConsistent(fits);
    }
}
