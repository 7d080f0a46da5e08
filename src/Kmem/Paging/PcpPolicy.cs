// What the page allocator's per-CPU lists and order limits look like in a given kernel release:
// which orders the lists hold and how they are indexed, how pcp->high and pcp->batch are computed,
// and how MAX_ORDER is named and bounded. Chosen once at boot; the fast paths read plain fields.

namespace Kmem.Paging;

/// <summary>How a release computes <c>pcp->high</c> (and, from 6.7, <c>high_min</c>/<c>high_max</c>).</summary>
internal enum PcpHighFormula
{
    /// <summary>Up to 5.13: <c>pageset_set_batch()</c>, high = 6 × zone_batchsize() (0 for a tiny zone), batch = max(1, zone_batchsize()).</summary>
    SixTimesBatch,
    /// <summary>
    /// 5.14 to 6.6: <c>zone_highsize()</c>, high = max(low watermark / CPUs of the node, 4 × batch)
    /// ("mm/page_alloc: calculate pcp->high based on zone sizes and active CPUs", "mm/page_alloc: disassociate the
    /// pcp->high from pcp->batch").
    /// </summary>
    LowWatermark,
    /// <summary>
    /// From 6.7: high_min as 5.14's high, high_max = max(managed / 8 / CPUs, 4 × batch)
    /// (MIN_PERCPU_PAGELIST_HIGH_FRACTION; "mm: tune PCP high automatically").
    /// </summary>
    AutoTune,
}

/// <summary>The per-release shape of the per-CPU lists and the order bounds.</summary>
internal sealed record PcpPolicy
{
    /// <summary>PAGE_ALLOC_COSTLY_ORDER.</summary>
    public const int CostlyOrder = 3;
    /// <summary>The most lists a zone's per-CPU block can hold (5.14's NR_PCP_LISTS with THP: 3 × 5).</summary>
    public const int MaxLists = 15;

    /// <summary>Highest order below the THP order kept on the lists: 0 before 5.14, PAGE_ALLOC_COSTLY_ORDER from 5.14.</summary>
    public int HighestOrder { get; init; }
    /// <summary>The THP order also kept on the lists (pageblock order with CONFIG_TRANSPARENT_HUGEPAGE from 5.14), or -1.</summary>
    public int ThpOrder { get; init; } = -1;
    /// <summary>Lists for the THP order: one per migratetype (5.14), one (6.0), movable and the rest (6.10).</summary>
    public int ThpLists { get; init; }
    /// <summary>NR_PCP_LISTS.</summary>
    public int Lists => PageTypes.PcpTypes * (HighestOrder + 1) + ThpLists;
    public PcpHighFormula Formula { get; init; } = PcpHighFormula.SixTimesBatch;
    /// <summary>
    /// nr_pcp_free() from 5.14: a full list frees min(batch, high − batch) pages (1 when high &lt; batch); before, batch.
    /// The free_factor doubling of successive frees is not modelled.
    /// </summary>
    public bool ScaledFree => Formula != PcpHighFormula.SixTimesBatch;
    /// <summary>MAX_ORDER counts the orders before 6.4; from 6.4 it is the largest order ("mm, treewide: redefine MAX_ORDER sanely").</summary>
    public bool MaxOrderInclusive { get; init; }
    /// <summary>The macro's name: MAX_ORDER, MAX_PAGE_ORDER from 6.8 ("mm, treewide: rename MAX_ORDER to MAX_PAGE_ORDER").</summary>
    public string MaxOrderName { get; init; } = "MAX_ORDER";
    /// <summary>
    /// The allocator's entry point as warnings name it: __alloc_pages_nodemask before 5.13, __alloc_pages from 5.13
    /// ("mm/page_alloc: combine __alloc_pages and __alloc_pages_nodemask").
    /// </summary>
    public string AllocFunction { get; init; } = "__alloc_pages_nodemask";

    /// <summary>The rules of a release (<paramref name="thp"/>: CONFIG_TRANSPARENT_HUGEPAGE).</summary>
    public static PcpPolicy For(KernelVersion v, bool thp, int pageblockOrder)
    {
        bool highOrder = v.IsAtLeast(5, 14); // "mm/page_alloc: allow high-order pages to be stored on the per-cpu lists"
        bool withThp = highOrder && thp && pageblockOrder > CostlyOrder;
        return new PcpPolicy
        {
            HighestOrder = highOrder ? CostlyOrder : 0,
            ThpOrder = withThp ? pageblockOrder : -1,
            // 6.0: "mm/page_alloc: use only one PCP list for THP-sized allocations";
            // 6.10: "mm/page_alloc: Separate THP PCP into movable and non-movable categories".
            ThpLists = !withThp ? 0 : v.IsAtLeast(6, 10) ? 2 : v.IsAtLeast(6, 0) ? 1 : PageTypes.PcpTypes,
            Formula = v.IsAtLeast(6, 7) ? PcpHighFormula.AutoTune : highOrder ? PcpHighFormula.LowWatermark : PcpHighFormula.SixTimesBatch,
            MaxOrderInclusive = v.IsAtLeast(6, 4),
            MaxOrderName = v.IsAtLeast(6, 8) ? "MAX_PAGE_ORDER" : "MAX_ORDER",
            AllocFunction = v.IsAtLeast(5, 13) ? "__alloc_pages" : "__alloc_pages_nodemask",
        };
    }

    /// <summary>pcp_allowed_order(): whether blocks of <paramref name="order"/> go through the per-CPU lists.</summary>
    public bool Allowed(int order) => order <= HighestOrder || order == ThpOrder;

    /// <summary>order_to_pindex(): the list of a migratetype and order.</summary>
    public int Index(int mt, int order)
    {
        if (order <= HighestOrder) return PageTypes.PcpTypes * order + mt;
        int low = PageTypes.PcpTypes * (HighestOrder + 1);
        return ThpLists switch
        {
            1 => low,
            2 => low + (mt == (int)MigrateType.Movable ? 1 : 0),
            _ => low + mt,
        };
    }

    /// <summary>pindex_to_order().</summary>
    public int OrderOf(int pindex) => pindex < PageTypes.PcpTypes * (HighestOrder + 1) ? pindex / PageTypes.PcpTypes : ThpOrder;

    /// <summary>MAX_ORDER (or MAX_PAGE_ORDER) as the release defines it, for a machine with <paramref name="orders"/> orders.</summary>
    public int MaxOrderValue(int orders) => MaxOrderInclusive ? orders - 1 : orders;

    /// <summary>The check a release makes on a requested order, as its source spells it (<c>order &gt;= MAX_ORDER</c>, <c>order &gt; MAX_PAGE_ORDER</c>).</summary>
    public string OrderCheck(int order, int orders) =>
        $"order {order} {(MaxOrderInclusive ? ">" : ">=")} {MaxOrderName} {MaxOrderValue(orders)}";
}
