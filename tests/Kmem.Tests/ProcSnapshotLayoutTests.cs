// The layout an import builds, checked frame by frame: no free block has a free buddy of its order (so none would have
// merged), blocks below pageblock order lie on a pageblock of their own type, and larger ones cover pageblocks of their type.
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Tests;

public class ProcSnapshotLayoutTests
{
    [Theory]
    [InlineData("pagetypeinfo_arm32_4.14_2GB_cma_order12.txt", null)]
    [InlineData("zoneinfo_pagetypeinfo_x86_64_6.6-rc1_16G_numa2_lkml.txt", "pagetypeinfo")]
    public void No_free_block_has_a_free_buddy_and_each_lies_on_its_type(string fixture, string? section)
    {
        string pti = section is null ? TestSupport.Fixture(fixture) : ProcSnapshotTests.Section(fixture, section);
        var s = ProcSnapshot.Parse(new Dictionary<string, string> { ["pagetypeinfo"] = pti });
        var (m, import) = s.Boot();
        using (m)
        {
            Assert.Empty(import.Notes);   // every block found room on its own type
            var pa = m.Pages;
            long blocks = 0;
            foreach (var z in pa.Zones.Where(z => z.Populated))
                lock (z.Lock)
                    for (int o = 0; o < pa.MaxOrder; o++)
                        for (int mt = 0; mt < PageTypes.MigrateTypes; mt++)
                            for (int idx = z.FirstOnList(o, mt); idx >= 0; idx = pa.Frame(idx).Next)
                            {
                                blocks++;
                                ulong pfn = pa.BasePfn + (ulong)idx;
                                Assert.Equal(0UL, pfn & ((1UL << o) - 1));                       // aligned to its order
                                if (o < pa.MaxOrder - 1)
                                {
                                    int buddy = (int)((long)(pfn ^ (1UL << o)) - (long)pa.BasePfn);
                                    bool free = z.Contains(buddy) && (pa.Frame(buddy).Flags & PageFlags.Buddy) != 0 && pa.Frame(buddy).Order == o;
                                    Assert.False(free, $"node {z.Node} {z.Name}: pfn {pfn:x} order {o} has a free buddy");
                                }
                                for (long p = idx; p < idx + (1L << o); p += 1L << pa.PageblockOrder)
                                    Assert.Equal((MigrateType)mt, z.PageblockType((int)p));
                            }
            Assert.Equal(s.FreeState().Sum(z => z.Free.Cast<long>().Sum()), blocks);
        }
    }
}
