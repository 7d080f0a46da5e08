// One row of a trace replay's page-order table: allocations of one order recorded, replayed and failed in Kmem.
namespace Kmem;

/// <summary>Page allocations of one order: recorded, replayed, failed in Kmem.</summary>
public sealed record TracePageOrderRow(int Order, long Recorded, long Replayed, long Failed);
