// What a workload label holds: one sealed kind per resource a step can allocate (pages, an exact allocation, a
// kmalloc buffer, a slab object, a vmalloc area, a CMA run, a coherent DMA buffer, a movable block, a dma-buf, an
// RK-DMA-HEAP page run). Each kind knows what it counts in the summary, how its bytes are reached and how it is
// given back, so a free step needs no knowledge of what it frees.
namespace Kmem.Scenarios.Steps;

/// <summary>One allocation held by a label.</summary>
internal abstract record Held
{
    /// <summary>Pages it counts in "pages held" (kmalloc buffers and slab objects count bytes instead).</summary>
    public abstract long Pages { get; }

    /// <summary>Bytes it counts in "bytes held": the ksize of a kmalloc buffer, the object size of a slab object, the size of
    /// a dma-buf or an RK-DMA-HEAP page run (the buffers a heap hands out, counted in bytes as their dumps do).</summary>
    public virtual long Bytes => 0;

    /// <summary>Its first page, for get_page and put_page (null for kinds reached by address).</summary>
    public virtual Page Page => default;

    /// <summary>
    /// Its page blocks for the step summary: each block's first page and buddy order (-1: a run from a CMA area, not one
    /// buddy block). None for kinds without pages of their own (kmalloc buffers, slab objects) or whose pages are not one
    /// run (vmalloc areas).
    /// </summary>
    public virtual IEnumerable<(Page Page, int Order)> Blocks(Machine m) => [];

    /// <summary>Gives it back through the public API (a refused free leaves it held).</summary>
    public abstract void Free(Machine m);

    /// <summary>Writes <paramref name="b"/> over every byte.</summary>
    public abstract void Fill(Machine m, byte b);

    /// <summary>The first byte that is not <paramref name="b"/>, or -1.</summary>
    public abstract int FirstOther(Machine m, byte b);

    /// <summary>get_order() of <paramref name="pages"/> pages: the smallest order whose block holds them.</summary>
    private static int OrderOf(long pages) => pages <= 1 ? 0 : System.Numerics.BitOperations.Log2((ulong)pages - 1) + 1;

    /// <summary>Pages spanned by <paramref name="size"/> bytes (one for an empty size).</summary>
    private static long PagesOf(nuint size) => size > 0 ? (long)((size + 4095) / 4096) : 1;

    /// <summary>
    /// A physically contiguous run of pages: reached through its linear address, or, for a HighMem run (which has none),
    /// a page at a time under kmap(), as a driver would.
    /// </summary>
    public abstract record Frames : Held
    {
        /// <summary>The run's first page.</summary>
        protected abstract Page FirstPage { get; }

        /// <summary>The run's length in bytes.</summary>
        protected abstract long Length { get; }

        /// <summary>The run's linear address, or 0 when it is in HighMem.</summary>
        protected abstract nint Linear(Machine m);

        /// <inheritdoc/>
        public sealed override void Fill(Machine m, byte b) => Each(m, span => { span.Fill(b); return -1; });

        /// <inheritdoc/>
        public sealed override int FirstOther(Machine m, byte b) => Each(m, span => span.IndexOfAnyExcept(b));

        /// <summary>Runs <paramref name="use"/> over the bytes, a page at a time for HighMem; the first result that is not -1, offset into the run.</summary>
        private unsafe int Each(Machine m, SpanFunc use)
        {
            nint linear = Linear(m);
            if (linear != 0) return use(new Span<byte>((void*)linear, checked((int)Length)));
            for (long off = 0; off < Length; off += Machine.PageSize)
            {
                var page = FirstPage.Plus((int)(off / Machine.PageSize));
                nint a = m.Kmap(page);
                int at;
                try { at = use(new Span<byte>((void*)a, (int)Math.Min(Machine.PageSize, Length - off))); }
                finally { m.Kunmap(page); }
                if (at >= 0) return checked((int)(off + at));
            }
            return -1;
        }

        private delegate int SpanFunc(Span<byte> span);
    }

    /// <summary>Memory whose bytes stay where they are, reached through one span.</summary>
    public abstract record Direct : Held
    {
        /// <summary>The bytes.</summary>
        protected abstract Span<byte> Memory(Machine m);

        /// <inheritdoc/>
        public sealed override void Fill(Machine m, byte b) => Memory(m).Fill(b);

        /// <inheritdoc/>
        public sealed override int FirstOther(Machine m, byte b) => Memory(m).IndexOfAnyExcept(b);
    }

    /// <summary>A block of 2^order pages (alloc_pages).</summary>
    public sealed record PageBlock(Page First, int Order) : Frames
    {
        public override long Pages => 1L << Order;
        public override Page Page => First;
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) => [(First, Order)];
        public override void Free(Machine m) => m.FreePages(First, Order);
        protected override Page FirstPage => First;
        protected override long Length => 4096L << Order;
        protected override nint Linear(Machine m) => m.PageHighMem(First) ? 0 : m.PageAddress(First);
    }

    /// <summary>An exact allocation (alloc_pages_exact).</summary>
    public sealed record Exact(nint Address, nuint Size) : Direct
    {
        public override long Pages => PagesOf(Size);
        // alloc_pages_exact() takes one block of get_order(size) and gives back the tail it does not need.
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) => [(m.VirtToPage(Address), OrderOf(Pages))];
        public override void Free(Machine m) => m.FreePagesExact(Address, Size);
        protected override unsafe Span<byte> Memory(Machine m) => new((void*)Address, (int)Size);
    }

    /// <summary>A kmalloc buffer; <paramref name="ObjectSize"/> is its ksize (the whole size class is usable).</summary>
    public sealed record KmallocBuffer(nint Address, nuint ObjectSize) : Direct
    {
        public override long Pages => 0;
        public override long Bytes => (long)ObjectSize;
        public override void Free(Machine m) => m.Kfree(Address, "workload");
        protected override unsafe Span<byte> Memory(Machine m) => new((void*)Address, (int)ObjectSize);
    }

    /// <summary>An object of a slab cache.</summary>
    public sealed record SlabObject(nint Address, nuint ObjectSize, SlabCache Cache) : Direct
    {
        public override long Pages => 0;
        public override long Bytes => (long)ObjectSize;
        public override void Free(Machine m) => Cache.Free(Address, "workload");
        protected override unsafe Span<byte> Memory(Machine m) => new((void*)Address, (int)ObjectSize);
    }

    /// <summary>A vmalloc area.</summary>
    public sealed record VmallocArea(nint Address, nuint Size) : Direct
    {
        public override long Pages => PagesOf(Size);
        public override void Free(Machine m) => m.Vfree(Address, "workload");
        protected override unsafe Span<byte> Memory(Machine m) => new((void*)Address, (int)Size);
    }

    /// <summary>A run of pages from a CMA area, at <paramref name="Address"/> in the linear map (0 in a HighMem area).</summary>
    public sealed record CmaRun(CmaArea Area, Page First, nint Address, nuint Size) : Frames
    {
        public override long Pages => PagesOf(Size);
        public override Page Page => First;
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) => [(First, -1)];
        public override void Free(Machine m) => m.CmaRelease(Area, First, (int)(Size / 4096));
        protected override Page FirstPage => First;
        protected override long Length => (long)Size;
        protected override nint Linear(Machine m) => Address;
    }

    /// <summary>
    /// A coherent DMA buffer of a device: its CPU address and DMA handle. <paramref name="Blocking"/>: asked with a GFP that
    /// may block (a non-blocking one may be served from the atomic pool, a chunk of a block taken long before).
    /// </summary>
    public sealed record Coherent(Device Device, nint Address, nuint Size, ulong Handle, bool Blocking = true) : Direct
    {
        public override long Pages => PagesOf(Size);

        // In the linear map it is one contiguous run: a CMA run, or dma-direct's alloc_pages() block of get_order(size).
        // Behind an IOMMU or remapped (not in the linear map), or perhaps from the atomic pool, it is not counted.
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) =>
            Blocking && m.VirtAddrValid(Address) ? [(m.VirtToPage(Address), OrderOf(Pages))] : [];
        public override void Free(Machine m) => m.DmaFreeCoherent(Device, Size, Address, Handle, "workload");
        protected override unsafe Span<byte> Memory(Machine m) => new((void*)Address, (int)Size);
    }

    /// <summary>A reference to a dma-buf; its bytes are its CPU view.</summary>
    public sealed record DmaBuffer(DmaBuf Buf) : Direct
    {
        private readonly nuint _size = (nuint)Buf.Size;

        public override long Pages => PagesOf(_size);
        public override long Bytes => (long)_size;
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) => Buf.PageBlocks;
        public override void Free(Machine m) => Buf.Put();
        protected override Span<byte> Memory(Machine m) => Buf.Span;
    }

    /// <summary>An RK-DMA-HEAP page run (rk_dma_heap_alloc_contig_pages) of <paramref name="Size"/> bytes, page-aligned.</summary>
    public sealed record RkRun(RkDmaHeap Heap, Page First, nint Address, nuint Size) : Frames
    {
        public override long Pages => PagesOf(Size);
        public override long Bytes => (long)Size;
        public override Page Page => First;
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) => [(First, -1)];
        public override void Free(Machine m) => Heap.FreeContigPages(First, (long)Size);
        protected override Page FirstPage => First;
        protected override long Length => (long)Size;
        protected override nint Linear(Machine m) => Address;
    }

    /// <summary>A movable block: its pages may move, so its bytes are reached under a pin.</summary>
    public sealed record Movable(MovablePage Block, int Order) : Held
    {
        public override long Pages => 1L << Order;
        public override IEnumerable<(Page Page, int Order)> Blocks(Machine m) => [(Block.Page, Order)];
        public override void Free(Machine m) => Block.Dispose();

        public override void Fill(Machine m, byte b)
        {
            using var pin = Block.Pin();
            pin.Span.Fill(b);
        }

        public override int FirstOther(Machine m, byte b)
        {
            using var pin = Block.Pin();
            return pin.Span.IndexOfAnyExcept(b);
        }
    }
}
