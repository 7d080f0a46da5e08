// The profile's NUMA description: each bank's node ("node"), each CPU's node ("cpu_nodes"), nodes with CPUs but
// no memory ("memoryless_nodes") and the SLIT distance table ("distances"), checked as the kernel's SRAT/SLIT
// parsing and numa_set_distance() accept them.
using System.Text.Json;

namespace Kmem.Boot;

internal static partial class ProfileReader
{
    /// <summary>MAX_NUMNODES on x86_64 and arm64 defconfigs (NODES_SHIFT 6).</summary>
    internal const int MaxNodes = 64;

    /// <summary>LOCAL_DISTANCE: a node's distance to itself.</summary>
    private const int LocalDistance = 10;

    private static MachineProfile ReadNodes(JsonElement root, MachineProfile draft)
    {
        var dram = draft.Dram;
        var cpuNodes = new List<int>();
        if (Arr(root, "cpu_nodes", required: false) is { } cn)
        {
            int i = 0;
            foreach (var v in cn.EnumerateArray())
            {
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0 || n >= MaxNodes)
                    throw new ProfileException($"cpu_nodes[{i}]", $"must be a node number 0..{MaxNodes - 1}");
                cpuNodes.Add(n);
                i++;
            }
            if (cpuNodes.Count != draft.Cpus)
                throw new ProfileException("cpu_nodes", $"gives {cpuNodes.Count} CPUs' nodes but the profile has {draft.Cpus} CPUs");
        }
        var memoryless = new List<int>();
        if (Arr(root, "memoryless_nodes", required: false) is { } ml)
        {
            int i = 0;
            foreach (var v in ml.EnumerateArray())
            {
                string p = $"memoryless_nodes[{i}]";
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0 || n >= MaxNodes)
                    throw new ProfileException(p, $"must be a node number 0..{MaxNodes - 1}");
                if (dram.Any(b => b.Node == n)) throw new ProfileException(p, $"node {n} has a memory bank, so it is not memoryless");
                if (memoryless.Contains(n)) throw new ProfileException(p, $"node {n} is listed twice");
                memoryless.Add(n);
                i++;
            }
        }
        var withNodes = draft with { CpuNodes = cpuNodes, MemorylessNodes = memoryless };
        int count = withNodes.NodeCount;
        // Every node up to the highest one named is online: with memory, or declared memoryless (a node a CPU names
        // that has neither is most likely a typo in the bank's "node").
        for (int n = 0; n < count; n++)
            if (!withNodes.NodeHasMemory(n) && !memoryless.Contains(n))
                throw new ProfileException(cpuNodes.Contains(n) ? $"cpu_nodes[{cpuNodes.IndexOf(n)}]" : "dram",
                    $"node {n} has no memory bank: give it one (\"node\": {n}) or list it in \"memoryless_nodes\"");
        if (!withNodes.NodeHasMemory(0))
            throw new ProfileException("dram", "node 0 has no memory: Kmem needs the boot node's memory (node 0) for the early allocations");
        if (count > 1 && !draft.Config.IsEnabled("NUMA"))
            throw new ProfileException("dram", $"the profile describes {count} nodes but config NUMA is off: turn NUMA on (\"config\": {{\"NUMA\": true}}) or put every bank on node 0");
        // A node's banks form one span that no other node's bank enters (Kmem keeps each node's zones contiguous).
        for (int n = 0; n < count; n++)
        {
            var mine = dram.Where(b => b.Node == n).ToList();
            if (mine.Count == 0) continue;
            ulong s = mine.Min(b => b.Base), e = mine.Max(b => b.End);
            int k = 0;
            foreach (var b in dram)
            {
                if (b.Node != n && b.Base < e && s < b.End)
                    throw new ProfileException($"dram[{k}]", $"bank of node {b.Node} lies inside node {n}'s span 0x{s:x}-0x{e - 1:x} (Kmem needs each node's banks in one span)");
                k++;
            }
        }

        IReadOnlyList<IReadOnlyList<int>>? distances = null;
        if (Arr(root, "distances", required: false) is { } dEl)
        {
            var rows = new List<IReadOnlyList<int>>();
            int i = 0;
            foreach (var row in dEl.EnumerateArray())
            {
                string p = $"distances[{i}]";
                if (row.ValueKind != JsonValueKind.Array) throw new ProfileException(p, $"must be an array of {count} distances");
                var r = new List<int>();
                int j = 0;
                foreach (var v in row.EnumerateArray())
                {
                    string q = $"{p}[{j}]";
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int d) || d < 0 || d > 255)
                        throw new ProfileException(q, "must be a distance 0..255 (a SLIT entry is one byte)");
                    // numa_set_distance() and the SLIT check: a node is LOCAL_DISTANCE from itself, farther from any other.
                    if (i == j && d != LocalDistance) throw new ProfileException(q, $"a node's distance to itself is {LocalDistance}, not {d}");
                    if (i != j && d <= LocalDistance) throw new ProfileException(q, $"{d} is not farther than the local distance {LocalDistance}");
                    r.Add(d);
                    j++;
                }
                if (r.Count != count) throw new ProfileException(p, $"has {r.Count} entries for {count} nodes");
                rows.Add(r);
                i++;
            }
            if (rows.Count != count) throw new ProfileException("distances", $"has {rows.Count} rows for {count} nodes");
            distances = rows;
        }
        return withNodes with { Distances = distances };
    }

    /// <summary>
    /// A device's <c>"node"</c>: an online node (one with memory or declared memoryless); -1 when not given. The kernel
    /// takes it from the firmware (ACPI _PXM, the device tree's numa-node-id).
    /// </summary>
    private static int DeviceNode(JsonElement d, string p, MachineProfile draft)
    {
        if (!d.TryGetProperty("node", out var v) || v.ValueKind == JsonValueKind.Null) return -1;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0 || n >= draft.NodeCount)
            throw new ProfileException($"{p}.node", $"must be an online node 0..{draft.NodeCount - 1}");
        return n;
    }

    /// <summary>
    /// A CMA area's <c>"node"</c> (cma_declare_contiguous_nid()): a node with memory; a fixed base must lie in that node's
    /// memory; a device-tree reserved-memory node takes none (rmem_cma_setup() places it for no node). -1 when not given.
    /// </summary>
    private static int CmaNode(JsonElement c, string p, MachineProfile draft, ulong? @base, ulong size, bool reservedMemory)
    {
        if (!c.TryGetProperty("node", out var v) || v.ValueKind == JsonValueKind.Null) return -1;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0 || n >= draft.NodeCount)
            throw new ProfileException($"{p}.node", $"must be an online node 0..{draft.NodeCount - 1}");
        if (reservedMemory) throw new ProfileException($"{p}.node", "a device-tree reserved-memory node is not placed per node");
        if (!draft.NodeHasMemory(n)) throw new ProfileException($"{p}.node", $"node {n} has no memory to hold a CMA area");
        if (@base is { } b && !draft.Dram.Any(k => k.Node == n && b >= k.Base && b + size <= k.End))
            throw new ProfileException($"{p}.node", $"0x{b:x}-0x{b + size - 1:x} is not in node {n}'s memory");
        return n;
    }
}
