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
        var cpuNodes = new List<int>();
        if (Arr(root, "cpu_nodes", required: false) is { } cn)
        {
            int i = 0;
            foreach (var v in cn.EnumerateArray())
            {
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n))
                    throw new ProfileException($"cpu_nodes[{i}]", $"must be a node number 0..{MaxNodes - 1}");
                cpuNodes.Add(n);
                i++;
            }
        }
        var memoryless = new List<int>();
        if (Arr(root, "memoryless_nodes", required: false) is { } ml)
        {
            int i = 0;
            foreach (var v in ml.EnumerateArray())
            {
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n))
                    throw new ProfileException($"memoryless_nodes[{i}]", $"must be a node number 0..{MaxNodes - 1}");
                memoryless.Add(n);
                i++;
            }
        }
        List<IReadOnlyList<int>>? distances = null;
        if (Arr(root, "distances", required: false) is { } dEl)
        {
            distances = [];
            int i = 0;
            foreach (var row in dEl.EnumerateArray())
            {
                if (row.ValueKind != JsonValueKind.Array) throw new ProfileException($"distances[{i}]", "must be an array of distances");
                var r = new List<int>();
                int j = 0;
                foreach (var v in row.EnumerateArray())
                {
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int d))
                        throw new ProfileException($"distances[{i}][{j}]", "must be a distance 0..255 (a SLIT entry is one byte)");
                    r.Add(d);
                    j++;
                }
                distances.Add(r);
                i++;
            }
        }
        var withNodes = draft with { CpuNodes = cpuNodes, MemorylessNodes = memoryless, Distances = distances };
        ValidateNodes(withNodes);
        return withNodes;
    }

    /// <summary>
    /// The NUMA rules of a profile, for the reader and for a profile changed with <c>with</c> (which the reader never
    /// saw): every bank, CPU and memoryless entry names a node 0..63; every node up to the highest one named is online,
    /// with memory or declared memoryless, node 0 with memory; more than one node needs config NUMA; each node's banks
    /// form one span no other node's bank enters; the distance table is square, 10 on its diagonal and farther
    /// elsewhere (numa_set_distance() and the SLIT check); devices and CMA areas name online nodes, a CMA area's a node
    /// with memory that holds its fixed base.
    /// </summary>
    /// <exception cref="ProfileException">The first problem found, with its field.</exception>
    internal static void ValidateNodes(MachineProfile p)
    {
        var dram = p.Dram;
        for (int k = 0; k < dram.Count; k++)
            if (dram[k].Node < 0 || dram[k].Node >= MaxNodes) throw new ProfileException($"dram[{k}].node", $"{dram[k].Node} is outside 0..{MaxNodes - 1}");
        var cpuNodes = p.CpuNodes;
        if (cpuNodes.Count != 0 && cpuNodes.Count != p.Cpus)
            throw new ProfileException("cpu_nodes", $"gives {cpuNodes.Count} CPUs' nodes but the profile has {p.Cpus} CPUs");
        for (int i = 0; i < cpuNodes.Count; i++)
            if (cpuNodes[i] < 0 || cpuNodes[i] >= MaxNodes) throw new ProfileException($"cpu_nodes[{i}]", $"must be a node number 0..{MaxNodes - 1}");
        var memoryless = p.MemorylessNodes;
        for (int i = 0; i < memoryless.Count; i++)
        {
            string f = $"memoryless_nodes[{i}]";
            int n = memoryless[i];
            if (n < 0 || n >= MaxNodes) throw new ProfileException(f, $"must be a node number 0..{MaxNodes - 1}");
            if (dram.Any(b => b.Node == n)) throw new ProfileException(f, $"node {n} has a memory bank, so it is not memoryless");
            if (memoryless.Take(i).Contains(n)) throw new ProfileException(f, $"node {n} is listed twice");
        }
        int count = p.NodeCount;
        // Every node up to the highest one named is online: with memory, or declared memoryless (a node a CPU names
        // that has neither is most likely a typo in the bank's "node").
        for (int n = 0; n < count; n++)
            if (!p.NodeHasMemory(n) && !memoryless.Contains(n))
                throw new ProfileException(cpuNodes.Contains(n) ? $"cpu_nodes[{cpuNodes.ToList().IndexOf(n)}]" : "dram",
                    $"node {n} has no memory bank: give it one (\"node\": {n}) or list it in \"memoryless_nodes\"");
        if (!p.NodeHasMemory(0))
            throw new ProfileException("dram", "node 0 has no memory: Kmem needs the boot node's memory (node 0) for the early allocations");
        if (count > 1 && !p.Config.IsEnabled("NUMA"))
            throw new ProfileException("dram", $"the profile describes {count} nodes but config NUMA is off: turn NUMA on (\"config\": {{\"NUMA\": true}}) or put every bank on node 0");
        // A node's banks form one span that no other node's bank enters (Kmem keeps each node's zones contiguous).
        for (int n = 0; n < count; n++)
        {
            var mine = dram.Where(b => b.Node == n).ToList();
            if (mine.Count == 0) continue;
            ulong s = mine.Min(b => b.Base), e = mine.Max(b => b.End);
            for (int k = 0; k < dram.Count; k++)
                if (dram[k].Node != n && dram[k].Base < e && s < dram[k].End)
                    throw new ProfileException($"dram[{k}]", $"bank of node {dram[k].Node} lies inside node {n}'s span 0x{s:x}-0x{e - 1:x} (Kmem needs each node's banks in one span)");
        }
        if (p.Distances is { } rows)
        {
            for (int i = 0; i < rows.Count; i++)
            {
                var r = rows[i];
                for (int j = 0; j < r.Count; j++)
                {
                    string q = $"distances[{i}][{j}]";
                    int d = r[j];
                    if (d < 0 || d > 255) throw new ProfileException(q, "must be a distance 0..255 (a SLIT entry is one byte)");
                    if (i == j && d != LocalDistance) throw new ProfileException(q, $"a node's distance to itself is {LocalDistance}, not {d}");
                    if (i != j && d <= LocalDistance) throw new ProfileException(q, $"{d} is not farther than the local distance {LocalDistance}");
                }
                if (r.Count != count) throw new ProfileException($"distances[{i}]", $"has {r.Count} entries for {count} nodes");
            }
            if (rows.Count != count) throw new ProfileException("distances", $"has {rows.Count} rows for {count} nodes");
        }
        for (int i = 0; i < p.Devices.Count; i++)
            if (p.Devices[i].Node is var dn && (dn < -1 || dn >= count))
                throw new ProfileException($"devices[{i}].node", $"must be an online node 0..{count - 1}");
        for (int i = 0; i < p.Cma.Count; i++)
        {
            var c = p.Cma[i];
            string f = $"cma[{i}].node";
            int n = c.Node;
            if (n == -1) continue;
            if (n < 0 || n >= count) throw new ProfileException(f, $"must be an online node 0..{count - 1}");
            if (c.ReservedMemory) throw new ProfileException(f, "a device-tree reserved-memory node is not placed per node");
            if (!p.NodeHasMemory(n)) throw new ProfileException(f, $"node {n} has no memory to hold a CMA area");
            if (c.Base is { } b && !dram.Any(k => k.Node == n && b >= k.Base && b + c.Size <= k.End))
                throw new ProfileException(f, $"0x{b:x}-0x{b + c.Size - 1:x} is not in node {n}'s memory");
        }
    }

    /// <summary>
    /// A device's or CMA area's <c>"node"</c> as written (-1 when not given); <see cref="ValidateNodes"/> checks it
    /// against the profile's nodes. The kernel takes a device's from the firmware (ACPI _PXM, the device tree's
    /// numa-node-id), an area's from cma_declare_contiguous_nid()'s caller.
    /// </summary>
    private static int NodeKey(JsonElement e, string p)
    {
        if (!e.TryGetProperty("node", out var v) || v.ValueKind == JsonValueKind.Null) return -1;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0)
            throw new ProfileException($"{p}.node", $"must be a node number 0..{MaxNodes - 1}");
        return n;
    }
}
