// What a dma-buf's exporter provides (struct dma_buf_ops): pages, tables for attachments, vmap, release.
using System.Text;
using Kmem.Dma;
using Kmem.Paging;
using Kmem.Vmalloc;

namespace Kmem.DmaHeaps;

/// <summary>What a heap provides for its buffers (the parts of <c>struct dma_buf_ops</c> Kmem needs).</summary>
internal abstract class DmaBufExporter
{
    /// <summary>exp_name.</summary>
    public abstract string Name { get; }

    /// <summary>The page blocks, in order.</summary>
    public abstract IReadOnlyList<(int Frame, int Order)> Blocks { get; }

    /// <summary>True for an uncached heap: map and CPU access skip the cache syncs.</summary>
    public virtual bool Uncached => false;

    /// <summary>The linear address when the buffer is one physically contiguous run, else 0.</summary>
    public abstract nint ContiguousAddress();

    /// <summary>A fresh table of the buffer for one attachment.</summary>
    public abstract SgTable TableForAttachment();

    /// <summary>The last reference is gone: give the memory back.</summary>
    public abstract void Release(DmaBuf buf);
}
