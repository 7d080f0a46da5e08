// SLUB's object layout and slab order for a cache (Linux 5.10 calculate_alignment(),
// calculate_sizes(), calculate_order(), slab_order()): pure functions, so that objsize, objperslab
// and pagesperslab can be checked against real kernels for any architecture and CPU count. What
// changes with the release comes in through SlabArch.TrackSize (5.17) and the kmalloc request size kept
// after the tracks (6.1); see SlabKernel.
using Kmem.Core;

namespace Kmem.Slab;

/// <summary>The architecture figures the layout depends on.</summary>
/// <param name="PointerSize"><c>sizeof(void *)</c>: 4 on 32-bit ARM, 8 otherwise.</param>
/// <param name="CacheLineSize"><c>cache_line_size()</c>.</param>
/// <param name="SlabMinAlign"><c>ARCH_SLAB_MINALIGN</c> (8 on the modelled architectures).</param>
/// <param name="TrackSize"><c>sizeof(struct track)</c>: up to 5.16 152 on 64-bit, 80 on 32-bit (16 stack entries); from 5.17
/// 32 and 20 (a stack depot handle), see <see cref="SlabKernel.TrackSize"/>.</param>
/// <param name="Cpus"><c>nr_cpu_ids</c>.</param>
/// <param name="MaxOrder">MAX_ORDER of the page allocator.</param>
/// <param name="MinOrder"><c>slub_min_order</c>.</param>
/// <param name="MaxSlabOrder"><c>slub_max_order</c> (default <c>PAGE_ALLOC_COSTLY_ORDER</c> = 3).</param>
/// <param name="MinObjects"><c>slub_min_objects</c>; 0 means 4·(fls(nr_cpus)+1).</param>
internal readonly record struct SlabArch(int PointerSize, int CacheLineSize, int SlabMinAlign, int TrackSize,
    int Cpus, int MaxOrder, int MinOrder = 0, int MaxSlabOrder = 3, int MinObjects = 0)
{
    public const int PageSize = KernelFacts.PageSize;
    /// <summary>MAX_OBJS_PER_PAGE.</summary>
    public const int MaxObjsPerPage = 32767;

    /// <summary>The automatic slub_min_objects: 4·(fls(nr_cpu_ids)+1).</summary>
    public int AutoMinObjects => 4 * (Fls(Cpus) + 1);

    /// <summary>fls(): the 1-based index of the highest set bit (0 for 0).</summary>
    public static int Fls(long x) => x == 0 ? 0 : 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)x);

    /// <summary>get_order() for the slab's signed sizes (the page allocator's, see <see cref="Paging.PageAllocator.GetOrder"/>).</summary>
    public static int GetOrder(long size) => size <= 0 ? 0 : Paging.PageAllocator.GetOrder((ulong)size);
}

/// <summary>The layout of one cache's objects and slabs, as <c>struct kmem_cache</c> records it.</summary>
internal readonly record struct SlabGeometry
{
    /// <summary><c>object_size</c>: what the caller asked for.</summary>
    public int ObjectSize { get; init; }
    /// <summary><c>size</c>: the stride of objects in a slab, metadata included.</summary>
    public int Size { get; init; }
    /// <summary><c>inuse</c>: where the metadata after the object starts.</summary>
    public int Inuse { get; init; }
    /// <summary><c>offset</c>: where the free pointer is kept, from the object start.</summary>
    public int Offset { get; init; }
    /// <summary><c>red_left_pad</c>: the left red zone before each object.</summary>
    public int RedLeftPad { get; init; }
    /// <summary><c>align</c>.</summary>
    public int Align { get; init; }
    /// <summary>The flags in force (debug flags may have been dropped by slub_debug=O).</summary>
    public SlabFlags Flags { get; init; }
    /// <summary>Objects are poisoned (<c>__OBJECT_POISON</c>): Poison without ctor or RCU.</summary>
    public bool ObjectPoison { get; init; }
    /// <summary><c>oo</c>: the preferred slab order and its object count.</summary>
    public int Order { get; init; }
    public int Objects { get; init; }
    /// <summary><c>min</c>: the fallback order (get_order(size)) and its object count.</summary>
    public int MinOrder { get; init; }
    public int MinObjects { get; init; }
    /// <summary>Where the two tracks are kept (after the free pointer), or -1 without StoreUser.</summary>
    public int TrackOffset { get; init; }
    /// <summary>The bytes after the free pointer that StoreUser adds: the two tracks, and from 6.1 a kmalloc cache's
    /// requested size (<c>orig_size</c>); 0 without StoreUser.</summary>
    public int TrackBytes { get; init; }

    /// <summary>Bytes of one slab.</summary>
    public int SlabBytes => SlabArch.PageSize << Order;

    /// <summary><c>set_min_partial()</c>: clamp(ilog2(size)/2, 5, 10).</summary>
    public int MinPartial => Math.Clamp((SlabArch.Fls(Size) - 1) / 2, 5, 10);

    /// <summary>Built without CONFIG_SLUB_CPU_PARTIAL: no CPU keeps partial slabs.</summary>
    public bool NoCpuPartialLists { get; init; }

    /// <summary><c>set_cpu_partial()</c>: objects kept on a CPU's partial list (0 for debug caches, and without
    /// CONFIG_SLUB_CPU_PARTIAL).</summary>
    public int CpuPartial => NoCpuPartialLists || (Flags & SlabFlags.DebugFlags) != 0 ? 0
        : Size >= SlabArch.PageSize ? 2 : Size >= 1024 ? 6 : Size >= 256 ? 13 : 30;

    /// <summary><c>calculate_alignment()</c>.</summary>
    public static int CalculateAlignment(SlabFlags flags, int align, int size, SlabArch arch)
    {
        if ((flags & SlabFlags.HwcacheAlign) != 0)
        {
            int ralign = arch.CacheLineSize;
            while (size <= ralign / 2) ralign /= 2;
            align = Math.Max(align, ralign);
        }
        if (align < arch.SlabMinAlign) align = arch.SlabMinAlign;
        return AlignUp(align, arch.PointerSize);
    }

    /// <summary>
    /// <c>calculate_sizes()</c> and <c>calculate_order()</c> for a cache; null when no order can hold an
    /// object (the kernel's <c>-ENOSYS</c>).
    /// </summary>
    /// <remarks><paramref name="origSize"/>: a kmalloc cache of 6.1 or later, whose StoreUser also keeps the requested size.</remarks>
    public static SlabGeometry? Compute(int objectSize, int align, SlabFlags flags, bool hasCtor, SlabArch arch, bool origSize = false)
    {
        var g = Sizes(objectSize, align, flags, hasCtor, arch, origSize);
        if ((flags & SlabFlags.DebugFlags) != 0 && (flags & DebugOnlyIfOrderUnchanged) != 0)
        {
            // slub_debug=O: drop debugging when it would raise the minimum order.
            var plain = Sizes(objectSize, align, flags & ~SlabFlags.DebugFlags, hasCtor, arch, origSize);
            if (SlabArch.GetOrder(g.Size) > SlabArch.GetOrder(plain.Size)) g = plain;
        }
        int order = CalculateOrder(g.Size, arch);
        if (order < 0) return null;
        int minOrder = SlabArch.GetOrder(g.Size);
        return g with
        {
            Flags = g.Flags & ~DebugOnlyIfOrderUnchanged,
            Order = order,
            Objects = OrderObjects(order, g.Size),
            MinOrder = minOrder,
            MinObjects = OrderObjects(minOrder, g.Size),
        };
    }

    /// <summary>An internal marker carried in the flags by slub_debug=O (never a public SLAB_ value).</summary>
    internal const SlabFlags DebugOnlyIfOrderUnchanged = (SlabFlags)0x80000000;

    private static SlabGeometry Sizes(int objectSize, int align, SlabFlags flags, bool hasCtor, SlabArch arch, bool origSize)
    {
        int ptr = arch.PointerSize;
        int size = AlignUp(objectSize, ptr);
        bool poison = (flags & SlabFlags.Poison) != 0 && (flags & SlabFlags.TypesafeByRcu) == 0 && !hasCtor;
        if ((flags & SlabFlags.RedZone) != 0 && size == objectSize) size += ptr;
        int inuse = size, offset;
        if ((flags & (SlabFlags.TypesafeByRcu | SlabFlags.Poison)) != 0 ||
            ((flags & SlabFlags.RedZone) != 0 && objectSize < ptr) || hasCtor)
        {
            offset = size;
            size += ptr;
        }
        else
        {
            offset = objectSize / 2 / ptr * ptr; // ALIGN_DOWN(object_size / 2, sizeof(void *))
        }
        int track = -1, trackBytes = 0;
        if ((flags & SlabFlags.StoreUser) != 0)
        {
            track = size;
            trackBytes = 2 * arch.TrackSize + (origSize ? sizeof(uint) : 0);
            size += trackBytes;
        }
        int redLeft = 0;
        if ((flags & SlabFlags.RedZone) != 0)
        {
            size += ptr;
            redLeft = AlignUp(ptr, align);
            size += redLeft;
        }
        size = AlignUp(size, align);
        return new SlabGeometry
        {
            ObjectSize = objectSize, Size = size, Inuse = inuse, Offset = offset, RedLeftPad = redLeft,
            Align = align, Flags = flags, ObjectPoison = poison, TrackOffset = track, TrackBytes = trackBytes,
        };
    }

    /// <summary><c>order_objects()</c>.</summary>
    public static int OrderObjects(int order, int size) => (SlabArch.PageSize << order) / size;

    /// <summary><c>slab_order()</c>: the first order from the minimum whose leftover is at most 1/fraction; may exceed maxOrder.</summary>
    public static int SlabOrder(int size, int minObjects, int maxOrder, int fraction, SlabArch arch)
    {
        int minOrder = arch.MinOrder;
        if (OrderObjects(minOrder, size) > SlabArch.MaxObjsPerPage)
            return SlabArch.GetOrder((long)size * SlabArch.MaxObjsPerPage) - 1;
        int order;
        for (order = Math.Max(minOrder, SlabArch.GetOrder((long)minObjects * size)); order <= maxOrder; order++)
        {
            long slab = (long)SlabArch.PageSize << order;
            if (slab % size <= slab / fraction) break;
        }
        return order;
    }

    /// <summary><c>calculate_order()</c> (5.10): the order for <paramref name="size"/>, or -1.</summary>
    public static int CalculateOrder(int size, SlabArch arch)
    {
        int minObjects = arch.MinObjects > 0 ? arch.MinObjects : arch.AutoMinObjects;
        int maxObjects = OrderObjects(arch.MaxSlabOrder, size);
        minObjects = Math.Min(minObjects, maxObjects);
        while (minObjects > 1)
        {
            for (int fraction = 16; fraction >= 4; fraction /= 2)
            {
                int order = SlabOrder(size, minObjects, arch.MaxSlabOrder, fraction, arch);
                if (order <= arch.MaxSlabOrder) return order;
            }
            minObjects--;
        }
        int o = SlabOrder(size, 1, arch.MaxSlabOrder, 1, arch);
        if (o <= arch.MaxSlabOrder) return o;
        o = SlabOrder(size, 1, arch.MaxOrder, 1, arch);
        return o < arch.MaxOrder ? o : -1;
    }

    public static int AlignUp(int v, int a) => (v + a - 1) & ~(a - 1);
}
