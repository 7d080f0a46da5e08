// A dma-buf's reservation object (struct dma_resv): the fences the buffer's users attach, by the rules of the
// machine's release, and their lines in /sys/kernel/debug/dma_buf/bufinfo as dma_buf_debug_show() prints them:
//  - 4.12 ("dma-buf: fence debugging"): "\tExclusive fence: <driver> <timeline> [un]signalled", then one
//    "\tShared fence: …" per shared fence (none before 4.12);
//  - 5.17 ("dma-buf: add dma_resv_describe and dma_fence_describe v2"): "\tExclusive fence:" or "\tShared fence:"
//    followed by dma_fence_describe()'s "<driver> <timeline> seq <n> [un]signalled" (no space after the colon);
//  - 5.19 ("dma-buf: add enum dma_resv_usage v4", then the KERNEL and BOOKKEEP usages of the same release): one
//    array of fences with a usage each, printed in order as "\t<kernel|write|read> fence:…"; bookkeeping fences
//    are not shown (the iteration stops at DMA_RESV_USAGE_READ), and a write fence no longer drops the readers.
using System.Text;

namespace Kmem.DmaHeaps;

/// <summary>The fences of one dma-buf.</summary>
internal sealed class DmaResv
{
    private readonly KernelVersion _version;
    private readonly List<(DmaFence Fence, DmaResvUsage Usage)> _fences = [];   // 5.19: the array; before: the shared list
    private DmaFence? _exclusive;                                              // before 5.19

    public DmaResv(KernelVersion version) => _version = version;

    /// <summary>True when the release has the four usages of enum dma_resv_usage (5.19).</summary>
    public bool HasUsages => _version.IsAtLeast(5, 19);

    /// <summary>
    /// dma_resv_add_fence() from 5.19, dma_resv_add_excl_fence()/dma_resv_add_shared_fence() before. The caller holds
    /// the buffer's lock and has checked the usage exists in this release.
    /// </summary>
    public void Add(DmaFence fence, DmaResvUsage usage)
    {
        if (!HasUsages && usage == DmaResvUsage.Write)
        {
            // A new exclusive fence replaces the old one and every shared fence.
            _exclusive = fence;
            _fences.Clear();
            return;
        }
        for (int i = 0; i < _fences.Count; i++)
        {
            var (old, oldUsage) = _fences[i];
            // The same context (of no lesser usage, from 5.19) or an already signalled fence is replaced in place.
            bool replace = old.IsSignaled || (old.SameContext(fence) && (!HasUsages || oldUsage >= usage));
            if (!replace) continue;
            _fences[i] = (fence, usage);
            return;
        }
        _fences.Add((fence, usage));
    }

    /// <summary>The fences in the order bufinfo lists them (the exclusive one first before 5.19).</summary>
    public IReadOnlyList<(DmaFence Fence, DmaResvUsage Usage)> Fences()
    {
        var r = new List<(DmaFence, DmaResvUsage)>(_fences.Count + 1);
        if (_exclusive is not null) r.Add((_exclusive, DmaResvUsage.Write));
        r.AddRange(_fences);
        return r;
    }

    /// <summary>dma_resv_test_signaled(): every fence of <paramref name="usage"/> or a stronger usage has signalled.</summary>
    public bool Signaled(DmaResvUsage usage)
    {
        foreach (var (f, u) in Fences())
            if (u <= usage && !f.IsSignaled) return false;
        return true;
    }

    /// <summary>Drops every fence (the buffer's release).</summary>
    public void Clear()
    {
        _exclusive = null;
        _fences.Clear();
    }

    /// <summary>The buffer's fence lines in bufinfo for this release.</summary>
    public void Describe(StringBuilder sb)
    {
        if (!_version.IsAtLeast(4, 12)) return;
        bool describe = _version.IsAtLeast(5, 17);
        foreach (var (f, u) in Fences())
        {
            string label;
            if (HasUsages)
            {
                if (u > DmaResvUsage.Read) continue;
                label = u switch { DmaResvUsage.Kernel => "kernel", DmaResvUsage.Write => "write", _ => "read" };
            }
            else label = f == _exclusive ? "Exclusive" : "Shared";
            string state = f.IsSignaled ? "" : "un";
            if (describe) sb.Append($"\t{label} fence:{f.DriverName} {f.TimelineName} seq {f.Seqno} {state}signalled\n");
            else sb.Append($"\t{label} fence: {f.DriverName} {f.TimelineName} {state}signalled\n");
        }
    }
}
