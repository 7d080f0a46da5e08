// The exporter of a VB2 buffer (VIDIOC_EXPBUF): its pages as a dma-buf.
using Kmem.DmaHeaps;
using Kmem.Kernel;
using Kmem.Physical;

namespace Kmem.Vb2;

/// <summary>The dma-buf exporter of an MMAP plane (vb2_dc_dmabuf_ops, vb2_dma_sg_dmabuf_ops, vb2_vmalloc_dmabuf_ops).</summary>
internal sealed class Vb2DmaBufExporter : DmaBufExporter
{
    private readonly Vb2MemBuffer _buf;
    private readonly Func<nint> _contiguous;

    public Vb2DmaBufExporter(Vb2MemBuffer buf, Func<nint> contiguous)
    {
        _buf = buf;
        _contiguous = contiguous;
    }

    public override string Name => _buf.Ops.Name;
    public override IReadOnlyList<(int Frame, int Order)> Blocks => _buf.Blocks;
    public override nint ContiguousAddress() => _contiguous();

    public override SgTable TableForAttachment() => _buf.Ops.Kernel.DmaBufs.TableOfBlocks(_buf.Blocks);

    /// <summary>The dma-buf's release drops its reference on the plane (vb2_dc_dmabuf_ops_release → vb2_dc_put).</summary>
    public override void Release(DmaBuf buf) => _buf.Ops.Put(_buf);
}
