// The PRIME exporter of a GEM object: its pages as a dma-buf.
using Kmem.Dma;
using Kmem.DmaHeaps;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Drm;

/// <summary>The dma-buf exporter of a GEM object (drm_gem_prime_dmabuf_ops; exp_name "drm").</summary>
internal sealed class GemDmaBufExporter : DmaBufExporter
{
    private readonly GemObject _obj;

    public GemDmaBufExporter(GemObject obj) => _obj = obj;

    public GemObject Object => _obj;
    public override string Name => "drm";
    public override IReadOnlyList<(int Frame, int Order)> Blocks => _obj.Blocks;

    public override nint ContiguousAddress() =>
        _obj.Backing == GemBacking.Contiguous ? _obj.ContiguousAddress() : 0;

    /// <summary>drm_gem_map_dma_buf() uses drm_prime_pages_to_sg(): one entry per block.</summary>
    public override SgTable TableForAttachment() => _obj.Drm.Kernel.DmaBufs.TableOfBlocks(_obj.Blocks);

    /// <summary>drm_gem_dmabuf_release(): the dma-buf's reference on the object goes.</summary>
    public override void Release(DmaBuf buf) => _obj.Put();
}
