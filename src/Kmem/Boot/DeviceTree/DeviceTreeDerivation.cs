// Turns a parsed device tree into a machine profile as the kernel reads the tree at boot: the memory nodes, the
// CPUs, /memreserve/, reserved-memory (static, no-map, dynamic and CMA pools), chosen/bootargs (mem= applied here;
// cma=, rk_dma_heap_cma= and the slab and dma-debug parameters applied by the boot) and the platform devices
// of_platform_populate() creates, and on arm64 the end of ZONE_DMA the buses' dma-ranges allow. Every value carries
// a note saying which node gave it; the result is profile JSON with those notes as // comments, checked by the
// profile reader before it is returned.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Kmem.Boot;

internal static class DeviceTreeDerivation
{
    private const ulong PageSize = MachineProfile.PageSize;
    /// <summary>The release from which a no-map region stays in memblock.memory marked MEMBLOCK_NOMAP: upstream commit
    /// 86588296acbf ("fdt: Properly handle "no-map" field in the memory region", in 5.12); before it,
    /// early_init_dt_reserve_memory_arch() removed the region (memblock_remove). The commit was also taken into stable
    /// releases of older branches in March 2021 and reverted from some of them in May 2021: a board on such a stable
    /// release gives its version as 5.12 to get the nomap behaviour.</summary>
    private static readonly KernelVersion NomapKept = new(5, 12);

    public static DeviceTreeProfile Derive(DeviceTree tree, DeviceTreeOptions options)
    {
        var notes = new List<DerivationNote>();
        var version = options.Version ?? KernelVersion.Default;
        var root = tree.Root;
        string model = root.GetString("model") ?? "";
        var rootCompat = root.GetStrings("compatible");
        string name = options.Name ?? ProfileName(rootCompat);
        notes.Add(new("name", "/", options.Name is null ? $"from compatible \"{(rootCompat.Count > 0 ? rootCompat[0] : "")}\"" : "given"));
        if (model.Length > 0) notes.Add(new("description", "/", "model"));

        // ---- CPUs and architecture
        var cpusNode = tree.Find("/cpus") ?? throw new DeviceTreeException("/cpus", -1, "the tree has no /cpus node (the CPU count and architecture come from it)");
        var cpus = cpusNode.Children.Where(c => c.GetString("device_type") == "cpu" && c.IsAvailable).ToList();
        if (cpus.Count == 0) throw new DeviceTreeException(cpusNode.Path, cpusNode.Offset, "no available node with device_type \"cpu\"");
        notes.Add(new("cpus", cpusNode.Path, $"{cpus.Count} available node(s) with device_type \"cpu\""));
        Arch arch;
        if (options.Arch is { } given) { arch = given; notes.Add(new("arch", cpusNode.Path, "given")); }
        else
        {
            var (a, why) = ArchOf(cpus[0]);
            arch = a;
            notes.Add(new("arch", cpus[0].Path, why));
        }
        bool is64 = arch is Arch.Arm64 or Arch.X86_64 or Arch.Riscv64;

        // ---- memory nodes (early_init_dt_scan_memory: device_type "memory", linux,usable-memory over reg, pages only)
        var banks = new List<(ulong Base, ulong End)>();
        foreach (var n in tree.AllNodes())
        {
            if (n.GetString("device_type") != "memory" || !n.IsAvailable) continue;
            string prop = n.Has("linux,usable-memory") ? "linux,usable-memory" : "reg";
            var reg = prop == "reg" ? n.Reg() : RegOf(n, prop);
            foreach (var (b, s) in reg)
            {
                if (s == 0) continue;
                ulong start = AlignUp(b, PageSize), end = (b + s) & ~(PageSize - 1);
                if (b + s < b) throw n.Error($"{prop} 0x{b:x} size 0x{s:x} wraps around the address space");
                if (end <= start) continue;
                if (!is64 && end > 1UL << 32)
                {
                    notes.Add(new("dram", n.Path, $"0x{start:x}-0x{end - 1:x} ignored above 4 GiB (a 32-bit kernel without LPAE)"));
                    if (start >= 1UL << 32) continue;
                    end = 1UL << 32;
                }
                banks.Add((start, end));
                notes.Add(new("dram", n.Path, $"{prop}: 0x{start:x} size 0x{end - start:x}"));
            }
        }
        banks = Merge(banks);
        if (banks.Count == 0) throw new DeviceTreeException("/", -1, "no memory node (device_type \"memory\") with a usable reg");

        // ---- chosen/bootargs
        var chosen = tree.Find("/chosen");
        string cmdline = chosen?.GetString("bootargs") ?? "";
        if (chosen is not null && chosen.Has("bootargs")) notes.Add(new("cmdline", chosen.Path, "bootargs (cma=, rk_dma_heap_cma=, slub_*, slab_*, dma_debug= are applied at boot)"));
        var config = new SortedDictionary<string, object>(StringComparer.Ordinal);
        var words = cmdline.Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (words.LastOrDefault(w => w.StartsWith("mem=", StringComparison.Ordinal)) is { } memWord)
            banks = ApplyMem(banks, memWord, arch, notes, chosen!.Path);
        if (words.Any(w => w.StartsWith("rk_dma_heap_cma", StringComparison.Ordinal)))
        {
            config["DMABUF_HEAPS_ROCKCHIP"] = true;
            notes.Add(new("config", chosen!.Path, "rk_dma_heap_cma= on the command line: a Rockchip vendor kernel with CONFIG_DMABUF_HEAPS_ROCKCHIP (rk_dma_heap_cma_setup() reserves the rk-dma-heap-cma area, 32 MiB when no size is given)"));
        }
        ulong total = banks.Aggregate(0UL, (s, b) => s + (b.End - b.Base));
        // A draft for the facts that depend on the config (CMA alignment, lowmem end).
        var draft = new MachineProfile
        {
            Name = "draft", Arch = arch, Cpus = cpus.Count, CacheLineSize = 64, KmallocMinAlign = 64, Version = version,
            Dram = banks.Select(b => new DramBank(b.Base, b.End - b.Base)).ToList(), ConfigOptions = config.ToDictionary(),
        };
        if (arch == Arch.Arm && !draft.Config.IsEnabled("HIGHMEM") && banks[^1].End > banks[0].Base + MachineProfile.ArmLowmemSize(draft.Config))
        {
            config["HIGHMEM"] = true;
            notes.Add(new("config", "/memory", "RAM reaches past 32-bit arm's lowmem: CONFIG_HIGHMEM on"));
            draft = draft with { ConfigOptions = config.ToDictionary() };
        }
        ulong cmaAlign = draft.CmaAlignment;

        // ---- ZONE_DMA: arm64 from 5.11 ends it where every bus's dma-ranges still reach (zone_sizes_init():
        // zone_dma_bits = min(32, fls64(of_dma_get_max_cpu_address(NULL))), then max_zone_phys(zone_dma_bits)).
        ulong? dmaLimit = null;
        if (arch == Arch.Arm64 && version.IsAtLeast(5, 11) && draft.Config.IsEnabled("ZONE_DMA") && MaxDmaCpuAddress(root) is { } reach)
        {
            var (top, topNode) = reach;
            int bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(top);
            if (bits is > 0 and < 32)
            {
                ulong span = 1UL << bits;
                dmaLimit = (banks[0].Base & ~(span - 1)) + span;
                notes.Add(new("zones", topNode, $"dma-ranges reach no further than 0x{top:x}: zone_dma_bits {bits} (the least of 32 and fls64 of of_dma_get_max_cpu_address()), ZONE_DMA ends at 0x{dmaLimit:x}"));
            }
        }

        // ---- /memreserve/
        // Extra: the JSON of a reserved-memory node's placement keys (dt_order, and for a dynamic one alignment and alloc_ranges).
        var reserved = new List<(string Name, ulong? Base, ulong Size, string Extra)>();
        for (int i = 0; i < tree.MemoryReservations.Count; i++)
        {
            var r = tree.MemoryReservations[i];
            if (ClipToBank(banks, r.Address, r.Size) is not var (cb, cs)) { notes.Add(new("reserved", "/memreserve/", $"entry {i} 0x{r.Address:x} size 0x{r.Size:x} is outside RAM: nothing to reserve")); continue; }
            reserved.Add(($"memreserve{i}", cb, cs, ""));
            notes.Add(new("reserved", "/memreserve/", $"entry {i}: 0x{cb:x} size 0x{cs:x} (early_init_fdt_reserve_self/scan: memblock_reserve)"));
        }

        // ---- reserved-memory
        var cma = new List<(string Name, ulong? Base, ulong Size, bool Inactive, bool Default, string Extra)>();
        var cmaByNode = new Dictionary<DeviceTreeNode, string>();
        string? defaultCma = null;
        if (tree.Find("/reserved-memory") is { } rm)
        {
            int order = -1;
            foreach (var n in rm.Children)
            {
                // The kernel saves the nodes in the order it finds them (fdt_for_each_subnode()) and sorts by that order.
                order++;
                if (!n.IsAvailable) { notes.Add(new("reserved", n.Path, "status disabled: skipped")); continue; }
                bool nomap = n.Has("no-map"), reusable = n.Has("reusable");
                bool isCma = n.GetStrings("compatible").Contains("shared-dma-pool") && reusable && !nomap;
                var reg = n.Reg();
                int sc = n.SizeCells, ac = n.AddressCells;
                if (reg.Count == 0 && !n.Has("size")) { notes.Add(new("reserved", n.Path, "neither reg nor size: nothing reserved")); continue; }
                ulong size = reg.Count > 0 ? reg[0].Size : n.GetNumber("size", sc)!.Value;
                if (size == 0)
                {
                    // The scan still saves a node whose first reg has size 0 (base, size 0): it takes its place in the
                    // kernel's sort of the nodes, so it is kept as a placeholder that reserves nothing.
                    if (reg.Count > 0) reserved.Add((n.FullName, reg[0].Address, 0, $", \"dt_order\": {order}"));
                    notes.Add(new("reserved", n.Path, reg.Count > 0
                        ? $"Reserved memory: failed to reserve memory for node '{n.FullName}': base 0x{reg[0].Address:x8}, size 0 MiB (ignored)"
                        : $"Reserved memory: invalid size property in '{n.FullName}' node. (ignored)"));
                    continue;
                }
                string placement = reg.Count > 0 ? $", \"dt_order\": {order}" : DynamicKeys(n, order, ac, sc);
                if (isCma)
                {
                    ulong? cbase = reg.Count > 0 ? reg[0].Address : null;
                    if (size % cmaAlign != 0 || (cbase ?? 0) % cmaAlign != 0)
                    {
                        notes.Add(new("cma", n.Path, $"Reserved memory: incorrect alignment of CMA region (0x{cbase ?? 0:x} size 0x{size:x}, CMA alignment 0x{cmaAlign:x}): not created"));
                        continue;
                    }
                    bool isDefault = n.Has("linux,cma-default");
                    cma.Add((n.FullName, cbase, size, n.Has("inactive"), isDefault, placement));
                    cmaByNode[n] = n.FullName;
                    if (isDefault) defaultCma = n.FullName;
                    notes.Add(new("cma", n.Path, (cbase is { } cb2 ? $"shared-dma-pool, reusable, reg 0x{cb2:x} size 0x{size:x}" : $"shared-dma-pool, reusable, size 0x{size:x}{(n.Has("alloc-ranges") ? ", alloc-ranges" : "")}: placed at boot top-down with the CMA alignment, in the kernel's order of the reserved-memory nodes")
                        + (isDefault ? "; linux,cma-default: the default area (devices without memory-region use it)" : "")));
                    continue;
                }
                if (reg.Count > 0)
                {
                    bool kept = false;
                    foreach (var (b, s) in reg)
                    {
                        if (s == 0) continue;
                        if (nomap && !version.IsAtLeast(NomapKept.Major, NomapKept.Minor))
                        {
                            banks = Remove(banks, b, b + s);
                            notes.Add(new("dram", n.Path, $"no-map 0x{b:x} size 0x{s:x}: removed from memory (memblock_remove before {NomapKept})"));
                        }
                        else if (ClipToBank(banks, b, s) is var (rb, rs))
                        {
                            reserved.Add((n.FullName, rb, rs, placement));
                            kept = true;
                            notes.Add(new("reserved", n.Path, nomap ? $"no-map 0x{rb:x} size 0x{rs:x}: kept in memory, marked nomap and reserved (from {NomapKept})" : $"reg 0x{rb:x} size 0x{rs:x}"));
                        }
                        else notes.Add(new("reserved", n.Path, $"reg 0x{b:x} size 0x{s:x} is outside RAM: nothing to reserve"));
                    }
                    // Saved by the scan all the same (with its first reg): a placeholder keeps its place in the kernel's order.
                    if (!kept) reserved.Add((n.FullName, reg[0].Address, 0, placement));
                    continue;
                }
                // A dynamic region: __reserved_mem_alloc_size() places it at boot with its alignment (SMP_CACHE_BYTES by default)
                // inside alloc-ranges or anywhere in memory, top down, in the kernel's order of the nodes.
                reserved.Add((n.FullName, null, size, placement));
                notes.Add(new("reserved", n.Path, $"size 0x{size:x}{(n.Has("alignment") ? ", alignment" : "")}{(n.Has("alloc-ranges") ? ", alloc-ranges" : "")}: placed at boot top-down, in the kernel's order of the reserved-memory nodes{(n.Has("no-map") ? " (no-map: kept reserved)" : "")}"));
            }
        }

        // ---- platform devices
        bool iommuOn = draft.Config.IsEnabled("IOMMU_SUPPORT");
        var devices = new List<(string Json, string Comment)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dev in PlatformDevices(root))
        {
            string dn = BusId(dev);
            if (!IsDeviceName(dn)) { notes.Add(new("devices", dev.Path, $"'{dn}' is not a name the profile takes: skipped")); continue; }
            if (!names.Add(dn)) { notes.Add(new("devices", dev.Path, $"'{dn}' is a second device of that name: skipped")); continue; }
            var props = new List<string> { $"\"name\": {Q(dn)}" };
            var why = new List<string>();
            bool iommu = dev.Has("iommus");
            if (iommu && !iommuOn) { why.Add("iommus ignored (CONFIG_IOMMU_SUPPORT off)"); iommu = false; }
            else if (iommu) why.Add("iommus");
            props.Add($"\"iommu\": {(iommu ? "true" : "false")}");
            bool coherent = Ancestors(dev).Any(a => a.Has("dma-coherent"));
            if (coherent) why.Add("dma-coherent");
            props.Add($"\"coherent\": {(coherent ? "true" : "false")}");
            int mask = DmaMaskBits(dev, why);
            props.Add($"\"dma_mask\": {mask}");
            string? area = null;
            if (dev.GetCells("memory-region") is { Length: > 0 } mr)
            {
                var target = tree.FindByPhandle(mr[0]);
                if (target is not null && cmaByNode.TryGetValue(target, out var an)) { area = an; why.Add($"memory-region → {target.Path}"); }
                else why.Add($"memory-region → {target?.Path ?? $"phandle 0x{mr[0]:x}"} (not a CMA area)");
            }
            else if (defaultCma is not null) area = defaultCma;
            if (area is not null) props.Add($"\"cma\": {Q(area)}");
            var reg = TryReg(dev);
            if (reg is { } r && dn.Contains('.') && r.Size > 0 && r.Size <= 1UL << 30 && !banks.Any(b => Translate(dev, r.Address) is { } ta && ta < b.End && b.Base < ta + r.Size))
                props.Add($"\"reg_size\": \"0x{r.Size:x}\"");
            else if (dn.Contains('.') && char.IsAsciiHexDigit(dn[0])) props.Add("\"reg_size\": 0");
            devices.Add(($"    {{ {string.Join(", ", props)} }}", why.Count > 0 ? $"{dev.Path}: {string.Join("; ", why)}" : dev.Path));
        }

        // ---- the JSON
        var sb = new StringBuilder();
        sb.Append("// Derived from a flattened device tree (FDT version ").Append(tree.Version).Append(", ").Append(tree.TotalSize).Append(" bytes) as the kernel reads it at boot.\n");
        sb.Append("{\n");
        void Field(string key, string json, bool comma = true)
        {
            foreach (var note in notes.Where(x => x.Key == key)) sb.Append("  // ").Append(note.Node).Append(": ").Append(note.Text.Replace('\n', ' ')).Append('\n');
            sb.Append("  ").Append(Q(key)).Append(": ").Append(json).Append(comma ? ",\n" : "\n");
        }
        Field("name", Q(name));
        Field("description", Q(model));
        Field("arch", Q(arch switch { Arch.Arm => "arm", Arch.Arm64 => "arm64", Arch.X86_64 => "x86_64", Arch.I386 => "i386", Arch.Riscv32 => "riscv32", _ => "riscv64" }));
        Field("cpus", cpus.Count.ToString(CultureInfo.InvariantCulture));
        Field("version", Q(version.ToString()));
        if (config.Count > 0) Field("config", "{ " + string.Join(", ", config.Select(kv => $"{Q(kv.Key)}: {(kv.Value is true ? "true" : "false")}")) + " }");
        Field("cmdline", Q(cmdline));
        Field("dram", "[\n" + string.Join(",\n", banks.Select(b => $"    {{ \"base\": \"0x{b.Base:x}\", \"size\": \"0x{b.End - b.Base:x}\" }}")) + "\n  ]");
        if (dmaLimit is { } dl) Field("zones", $"{{ \"dma_limit\": \"0x{dl:x}\" }}");
        if (arch == Arch.Arm) { notes.Add(new("fdt", "/", "the blob's totalsize")); Field("fdt", $"{{ \"size\": \"0x{tree.TotalSize:x}\" }}"); }
        Field("reserved", "[" + (reserved.Count == 0 ? "" : "\n" + string.Join(",\n", reserved.Select(r => $"    {{ \"name\": {Q(r.Name)}, \"base\": {(r.Base is { } rb ? Q($"0x{rb:x}") : "\"auto\"")}, \"size\": \"0x{r.Size:x}\"{r.Extra} }}")) + "\n  ") + "]");
        Field("cma", "[" + (cma.Count == 0 ? "" : "\n" + string.Join(",\n", cma.Select(c =>
            $"    {{ \"name\": {Q(c.Name)}, \"base\": {(c.Base is { } cb ? Q($"0x{cb:x}") : "\"auto\"")}, \"size\": \"0x{c.Size:x}\", \"reserved_memory\": true{(c.Inactive ? ", \"inactive\": true" : "")}{c.Extra} }}")) + "\n  ") + "]");
        Field("devices", "[" + (devices.Count == 0 ? "" : "\n" + string.Join("\n", devices.Select((d, k) => d.Json + (k < devices.Count - 1 ? "," : "") + " // " + d.Comment.Replace('\n', ' '))) + "\n  ") + "]", comma: false);
        sb.Append("}\n");
        string json = sb.ToString();
        var profile = MachineProfile.Parse(json);
        return new DeviceTreeProfile(profile, json, notes);
    }

    /// <summary>The placement keys of a dynamic reserved-memory node: its position, its <c>alignment</c> (root #address-cells
    /// wide, as __reserved_mem_alloc_size() reads it) and its <c>alloc-ranges</c> windows.</summary>
    private static string DynamicKeys(DeviceTreeNode n, int order, int ac, int sc)
    {
        var sb = new StringBuilder($", \"dt_order\": {order}");
        if (n.GetCells("alignment") is { } ac2)
        {
            // __reserved_mem_alloc_size() reads it with the root's #address-cells (and refuses another length).
            if (ac2.Length != ac) throw n.Error($"alignment is {ac2.Length} cells, not #address-cells = {ac}");
            ulong align = n.Combine(ac2, 0, ac, "alignment");
            if (align == 0 || (align & (align - 1)) != 0) throw n.Error($"alignment 0x{align:x} is not a power of two");
            sb.Append($", \"alignment\": \"0x{align:x}\"");
        }
        if (n.GetCells("alloc-ranges") is { } ar)
        {
            if (ar.Length == 0 || ar.Length % (ac + sc) != 0) throw n.Error($"alloc-ranges is {ar.Length * 4} bytes, not entries of #address-cells {ac} + #size-cells {sc}");
            var windows = new List<string>();
            for (int k = 0; k < ar.Length; k += ac + sc)
            {
                ulong rb = n.Combine(ar, k, ac, "alloc-ranges"), rsz = n.Combine(ar, k + ac, sc, "alloc-ranges");
                if (rsz == 0) continue;
                windows.Add($"{{ \"base\": \"0x{rb:x}\", \"size\": \"0x{rsz:x}\" }}");
            }
            if (windows.Count > 0) sb.Append($", \"alloc_ranges\": [ {string.Join(", ", windows)} ]");
        }
        return sb.ToString();
    }

    private static string Q(string s) => "\"" + JsonEncodedText.Encode(s).ToString() + "\"";

    private static bool IsDeviceName(string s) => s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '@' or '-');

    private static string ProfileName(IReadOnlyList<string> compat)
    {
        string c = compat.Count > 0 ? compat[0] : "board";
        int comma = c.IndexOf(',');
        var s = new string((comma >= 0 ? c[(comma + 1)..] : c).Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-' ? ch : '-').ToArray());
        return s.Length == 0 ? "board" : s;
    }

    private static (Arch, string) ArchOf(DeviceTreeNode cpu)
    {
        var compat = cpu.GetStrings("compatible");
        foreach (string c in compat)
        {
            if (c == "riscv")
            {
                string isa = cpu.GetString("riscv,isa") ?? cpu.GetString("riscv,isa-base") ?? "";
                string mmu = cpu.GetString("mmu-type") ?? "";
                if (isa.StartsWith("rv32", StringComparison.OrdinalIgnoreCase) || mmu == "riscv,sv32") return (Arch.Riscv32, $"compatible \"riscv\", {(isa.Length > 0 ? $"riscv,isa \"{isa}\"" : $"mmu-type \"{mmu}\"")}");
                if (isa.StartsWith("rv64", StringComparison.OrdinalIgnoreCase) || mmu.StartsWith("riscv,sv", StringComparison.Ordinal)) return (Arch.Riscv64, $"compatible \"riscv\", {(isa.Length > 0 ? $"riscv,isa \"{isa}\"" : $"mmu-type \"{mmu}\"")}");
                throw cpu.Error("compatible \"riscv\" without a riscv,isa or mmu-type that says 32 or 64 bits");
            }
            if (!c.StartsWith("arm,", StringComparison.Ordinal)) continue;
            string core = c[4..];
            if (core is "cortex-a5" or "cortex-a7" or "cortex-a8" or "cortex-a9" or "cortex-a12" or "cortex-a15" or "cortex-a17"
                || core.StartsWith("arm", StringComparison.Ordinal))
                return (Arch.Arm, $"compatible \"{c}\" (an ARMv7 or older core: 32-bit arm)");
            if (core.StartsWith("cortex-a", StringComparison.Ordinal) || core.StartsWith("cortex-x", StringComparison.Ordinal) || core.StartsWith("neoverse", StringComparison.Ordinal))
                return (Arch.Arm64, $"compatible \"{c}\" (an ARMv8 or later core: arm64)");
        }
        throw cpu.Error($"compatible \"{string.Join("\", \"", compat)}\" names no core Kmem knows the architecture of (give the architecture)");
    }

    private static IReadOnlyList<(ulong, ulong)> RegOf(DeviceTreeNode n, string prop)
    {
        var c = n.GetCells(prop)!;
        int ac = n.AddressCells, sc = n.SizeCells;
        if (c.Length == 0 || c.Length % (ac + sc) != 0) throw n.Error($"{prop} is {c.Length * 4} bytes, not entries of #address-cells {ac} + #size-cells {sc}");
        var r = new List<(ulong, ulong)>();
        for (int i = 0; i < c.Length; i += ac + sc) r.Add((n.Combine(c, i, ac, prop), n.Combine(c, i + ac, sc, prop)));
        return r;
    }

    private static ulong AlignUp(ulong v, ulong a) => v + (a - 1) < v ? v & ~(a - 1) : (v + a - 1) & ~(a - 1);

    private static List<(ulong Base, ulong End)> Merge(List<(ulong Base, ulong End)> banks)
    {
        var sorted = banks.OrderBy(b => b.Base).ToList();
        var r = new List<(ulong Base, ulong End)>();
        foreach (var b in sorted)
            if (r.Count > 0 && b.Base <= r[^1].End) r[^1] = (r[^1].Base, Math.Max(r[^1].End, b.End));
            else r.Add(b);
        return r;
    }

    private static List<(ulong Base, ulong End)> Remove(List<(ulong Base, ulong End)> banks, ulong lo, ulong hi)
    {
        var r = new List<(ulong Base, ulong End)>();
        foreach (var b in banks)
        {
            if (hi <= b.Base || lo >= b.End) { r.Add(b); continue; }
            if (lo > b.Base) r.Add((b.Base, lo));
            if (hi < b.End) r.Add((hi, b.End));
        }
        return r;
    }

    private static (ulong, ulong)? ClipToBank(List<(ulong Base, ulong End)> banks, ulong b, ulong s)
    {
        ulong e = b + s < b ? ulong.MaxValue : b + s;
        foreach (var k in banks)
            if (b < k.End && k.Base < e) { ulong lo = Math.Max(b, k.Base), hi = Math.Min(e, k.End); return (lo, hi - lo); }
        return null;
    }

    /// <summary>mem=: arm's early_mem() drops the banks and adds one at PHYS_OFFSET of that size (or at @start); other
    /// architectures cap memblock.memory at that much RAM (memblock_enforce_memory_limit / memblock_cap_memory_range).</summary>
    private static List<(ulong Base, ulong End)> ApplyMem(List<(ulong Base, ulong End)> banks, string word, Arch arch, List<DerivationNote> notes, string node)
    {
        string v = word[4..];
        int pos = 0;
        if (!KernelCmdline.TryMemparse(v, ref pos, out ulong size) || size == 0) throw new DeviceTreeException(node, -1, $"bootargs {word}: not a size");
        ulong start = banks[0].Base;
        if (pos < v.Length && v[pos] == '@')
        {
            pos++;
            if (!KernelCmdline.TryMemparse(v, ref pos, out start)) throw new DeviceTreeException(node, -1, $"bootargs {word}: the start after '@' is not an address");
        }
        List<(ulong Base, ulong End)> r;
        if (arch == Arch.Arm)
        {
            ulong s0 = AlignUp(start, PageSize), e0 = (start + size) & ~(PageSize - 1);
            if (start + size < start || e0 <= s0) throw new DeviceTreeException(node, -1, $"bootargs {word}: not a range of whole pages inside the address space");
            r = banks.Where(b => b.Base < e0 && s0 < b.End).Select(b => (Math.Max(b.Base, s0), Math.Min(b.End, e0))).ToList();
            if (r.Count == 0) r = [(s0, e0)];
            notes.Add(new("dram", node, $"{word}: arm's early_mem() keeps only 0x{s0:x}-0x{e0 - 1:x}"));
        }
        else
        {
            r = [];
            ulong left = size & ~(PageSize - 1);
            foreach (var b in banks)
            {
                if (left == 0) break;
                ulong take = Math.Min(left, b.End - b.Base);
                r.Add((b.Base, b.Base + take));
                left -= take;
            }
            if (r.Count == 0) throw new DeviceTreeException(node, -1, $"bootargs {word}: less than one whole page of RAM would be left");
            notes.Add(new("dram", node, $"{word}: memblock_enforce_memory_limit() keeps the first 0x{size:x} bytes of RAM"));
        }
        return r;
    }

    /// <summary>The nodes of_platform_populate() makes platform devices of: the root's children and, below a node
    /// matching of_default_bus_match_table (simple-bus, simple-mfd, isa, arm,amba-bus), its children, each needing a
    /// compatible and an available status, OPP tables (operating-points-v2) skipped.</summary>
    private static IEnumerable<DeviceTreeNode> PlatformDevices(DeviceTreeNode root)
    {
        // Depth first, as of_platform_bus_create() creates a bus's device and then its children's.
        var stack = new Stack<DeviceTreeNode>(root.Children.Reverse());
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            var compat = n.GetStrings("compatible");
            // of_skipped_node_table: an OPP table is not a device.
            if (compat.Count == 0 || !n.IsAvailable || compat.Contains("operating-points-v2")) continue;
            yield return n;
            if (compat.Any(c => c is "simple-bus" or "simple-mfd" or "isa" or "arm,amba-bus"))
                foreach (var c in n.Children.Reverse()) stack.Push(c);
        }
    }

    private static IEnumerable<DeviceTreeNode> Ancestors(DeviceTreeNode n)
    {
        for (var a = n; a is not null; a = a.Parent) yield return a;
    }

    private static (ulong Address, ulong Size)? TryReg(DeviceTreeNode n)
    {
        var reg = n.Reg();
        return reg.Count > 0 ? reg[0] : null;
    }

    /// <summary>of_device_make_bus_id(): "&lt;translated address&gt;.&lt;name&gt;" for the first node up the tree with a
    /// translatable reg, each node without one prefixing its full name.</summary>
    private static string BusId(DeviceTreeNode dev)
    {
        string? id = null;
        for (var n = dev; n.Parent is not null; n = n.Parent)
        {
            if (TryReg(n) is { } r && Translate(n, r.Address) is { } a)
                return id is null ? $"{a:x}.{n.Name}" : $"{a:x}.{n.Name}:{id}";
            id = id is null ? n.FullName : $"{n.FullName}:{id}";
        }
        return id ?? dev.FullName;
    }

    /// <summary>of_translate_address(): up through each bus's <c>ranges</c> (empty: one to one; absent: untranslatable).</summary>
    private static ulong? Translate(DeviceTreeNode n, ulong address)
    {
        for (var bus = n.Parent; bus is not null && bus.Parent is not null; bus = bus.Parent)
        {
            var ranges = bus.GetCells("ranges");
            if (ranges is null) return null;
            if (ranges.Length == 0) continue;
            int childAc = bus.Children.Count > 0 ? bus.Children[0].AddressCells : 1;
            int sc = bus.Children.Count > 0 ? bus.Children[0].SizeCells : 1;
            int parentAc = bus.AddressCells;
            if (TranslateStep(bus, ranges, "ranges", childAc, parentAc, sc, address) is not { } mapped) return null;
            address = mapped;
        }
        return address;
    }

    /// <summary>of_dma_get_max_cpu_address(NULL): over the root and its available descendants with a non-empty
    /// <c>dma-ranges</c>, the least of the highest CPU address each one's ranges reach (with the node that sets it); null
    /// when no node has one. A range whose parent address does not translate reaches everything, as the kernel's
    /// OF_BAD_ADDR does.</summary>
    private static (ulong Top, string Node)? MaxDmaCpuAddress(DeviceTreeNode node)
    {
        (ulong Top, string Node)? best = null;
        if (node.GetCells("dma-ranges") is { Length: > 0 } dr)
        {
            int childAc = OwnCells(node, "#address-cells"), sc = OwnCells(node, "#size-cells"), parentAc = node.AddressCells;
            int entry = childAc + parentAc + sc;
            if (sc == 0 || dr.Length % entry != 0) throw node.Error($"dma-ranges is {dr.Length * 4} bytes, not entries of {childAc} + {parentAc} + {sc} cells");
            ulong end = 0;
            for (int i = 0; i < dr.Length; i += entry)
            {
                ulong size = node.Combine(dr, i + childAc + parentAc, sc, "dma-ranges");
                if (size == 0) continue;
                ulong last = TranslateDma(node, node.Combine(dr, i + childAc, parentAc, "dma-ranges")) is { } cpu && cpu + (size - 1) >= cpu ? cpu + (size - 1) : ulong.MaxValue;
                end = Math.Max(end, last);
            }
            if (end > 0) best = (end, node.Path);
        }
        foreach (var c in node.Children)
            if (c.IsAvailable && MaxDmaCpuAddress(c) is { } sub && (best is null || sub.Top < best.Value.Top)) best = sub;
        return best;
    }

    /// <summary>A node's own #address-cells or #size-cells (for its children), else the inherited one.</summary>
    private static int OwnCells(DeviceTreeNode n, string property)
    {
        if (n.GetU32(property) is not { } v) return property == "#address-cells" ? n.AddressCells : n.SizeCells;
        if (v > (property == "#address-cells" ? 4u : 2u)) throw n.Error($"{property} = {v} is out of range");
        return (int)v;
    }

    /// <summary>of_translate_dma_address(): an address in <paramref name="n"/>'s parent bus up to the CPU through each bus's
    /// <c>dma-ranges</c> (absent or empty: one to one); null when no range holds it.</summary>
    private static ulong? TranslateDma(DeviceTreeNode n, ulong address)
    {
        for (var bus = n.Parent; bus is not null && bus.Parent is not null; bus = bus.Parent)
        {
            if (bus.GetCells("dma-ranges") is not { Length: > 0 } dr) continue;
            int childAc = OwnCells(bus, "#address-cells"), sc = OwnCells(bus, "#size-cells"), parentAc = bus.AddressCells;
            if (TranslateStep(bus, dr, "dma-ranges", childAc, parentAc, sc, address) is not { } mapped) return null;
            address = mapped;
        }
        return address;
    }

    /// <summary>of_dma_configure(): the coherent mask is 32 bits, narrowed to what the nearest <c>dma-ranges</c> above the
    /// device reaches (at least 24, the least a profile takes).</summary>
    private static int DmaMaskBits(DeviceTreeNode dev, List<string> why)
    {
        for (var bus = dev.Parent; bus is not null; bus = bus.Parent)
        {
            var dr = bus.GetCells("dma-ranges");
            if (dr is null) continue;
            if (dr.Length == 0) return 32;
            int childAc = bus.Children.Count > 0 ? bus.Children[0].AddressCells : 1, sc = bus.Children.Count > 0 ? bus.Children[0].SizeCells : 1;
            int entry = childAc + bus.AddressCells + sc;
            if (dr.Length % entry != 0) throw bus.Error($"dma-ranges is {dr.Length * 4} bytes, not entries of {entry} cells");
            ulong end = 0;
            for (int i = 0; i < dr.Length; i += entry)
                end = Math.Max(end, bus.Combine(dr, i, childAc, "dma-ranges") + bus.Combine(dr, i + childAc + bus.AddressCells, sc, "dma-ranges"));
            int bits = end <= 1 ? 1 : 64 - System.Numerics.BitOperations.LeadingZeroCount(end - 1);
            int mask = Math.Clamp(bits, 24, 32);
            why.Add($"dma-ranges of {bus.Path}: {mask}-bit mask");
            return mask;
        }
        return 32;
    }

    /// <summary>
    /// One step of of_translate_address() through a bus's <paramref name="prop"/> (ranges or dma-ranges: child address,
    /// parent address, size per entry): the parent address of <paramref name="address"/>, or null when no entry holds it.
    /// </summary>
    private static ulong? TranslateStep(DeviceTreeNode bus, uint[] cells, string prop, int childAc, int parentAc, int sc, ulong address)
    {
        int entry = childAc + parentAc + sc;
        if (cells.Length % entry != 0) throw bus.Error($"{prop} is {cells.Length * 4} bytes, not entries of {childAc} + {parentAc} + {sc} cells");
        for (int i = 0; i < cells.Length; i += entry)
        {
            ulong child = bus.Combine(cells, i, childAc, prop), parent = bus.Combine(cells, i + childAc, parentAc, prop), size = bus.Combine(cells, i + childAc + parentAc, sc, prop);
            if (address >= child && address - child < size) return parent + (address - child);
        }
        return null;
    }
}
