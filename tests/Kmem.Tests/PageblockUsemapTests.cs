// The machine-wide pageblock usemap the order-0 and order-1..3 free fast paths read: its indexing from an unaligned base,
// the blocks two zones share, and that it follows every type change the zones make (steals, CMA, isolation).
using Kmem.Paging;

namespace Kmem.Tests;

public unsafe class PageblockUsemapTests
{
    [Fact]
    public void Blocks_are_found_from_the_frame_index_when_the_base_pfn_is_not_block_aligned()
    {
        // Frame 0 is PFN 0x1003 in a machine of order-9 blocks: frames 0..508 are block 0x8, frame 509 starts block 0x9.
        var map = new PageblockUsemap(0x1003, 2000, 9);
        Assert.Equal(3, map.Bias);
        Assert.Equal(PageblockUsemap.Unclaimed, map.TypeOf(0));
        map.Claim(0, 1000, MigrateType.Movable);
        map.Set(508, MigrateType.Unmovable);
        Assert.Equal((byte)MigrateType.Unmovable, map.TypeOf(0));
        Assert.Equal((byte)MigrateType.Unmovable, map.TypeOf(508));
        Assert.Equal((byte)MigrateType.Movable, map.TypeOf(509));
        Assert.Equal(PageblockUsemap.Unclaimed, map.TypeOf(1999));
    }

    [Fact]
    public void A_type_change_reaches_every_frame_of_its_block_and_no_other()
    {
        // Order-4 blocks (16 frames) from PFN 0x1005: block 0x100 holds frames 0..10, the last block frames 1995..1999.
        var map = new PageblockUsemap(0x1005, 2000, 4);
        map.Claim(0, 2000, MigrateType.Movable);
        map.Set(3, MigrateType.Unmovable);
        Assert.Equal(Enumerable.Repeat((byte)MigrateType.Unmovable, 11), map.FramesOf(0, 11).ToArray());
        Assert.Equal((byte)MigrateType.Movable, map.TypeOf(11));
        map.Set(1999, MigrateType.Reclaimable);
        Assert.Equal(Enumerable.Repeat((byte)MigrateType.Reclaimable, 5), map.FramesOf(1995, 5).ToArray());
        Assert.Equal((byte)MigrateType.Movable, map.TypeOf(1994));
        map.Set(500, MigrateType.Isolate);                 // frames 491..506
        Assert.Equal(16, map.FramesOf(480, 40).ToArray().Count(t => t == (byte)MigrateType.Isolate));
        Assert.Equal((byte)MigrateType.Isolate, map.TypeOf(491));
        Assert.Equal((byte)MigrateType.Isolate, map.TypeOf(506));
    }

    [Fact]
    public unsafe void The_checker_finds_a_frame_whose_byte_disagrees_with_its_block()
    {
        using var m = Machine.Boot("x86_64");
        var z = m.Pages.Zones.First(z => z.Type == ZoneType.Normal);
        int idx = (int)Math.Max(z.PageblockStartIdx(3), z.StartIdx) + 7;  // inside the block, not its first frame
        byte* t = m.Pages.Usemap.Types;
        byte saved = t[idx];
        t[idx] = (byte)(saved == (byte)MigrateType.Movable ? MigrateType.Unmovable : MigrateType.Movable);
        try
        {
            var errors = m.VerifyIntegrity();
            Assert.Contains(errors, e => e.Contains($"pfn 0x{m.Pages.BasePfn + (ulong)idx:x}") && e.Contains("usemap"));
        }
        finally
        {
            t[idx] = saved;
        }
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public unsafe void The_checker_finds_a_thread_whose_fast_row_is_not_its_node()
    {
        using var m = Machine.Boot("x86_64-numa2");
        m.FreePage(m.AllocPage(Gfp.Kernel));                // the calling thread's block exists
        int* block = m.Pages.CallerBlock;
        TestSupport.AssertConsistent(m);
        foreach (int slot in new[] { 3, 4 })
        {
            int saved = block[slot];
            block[slot] = saved == 0 ? 1 : 0;                 // another row, or another row's first entry
            try
            {
                Assert.Contains(m.VerifyIntegrity(), e => e.Contains("per-CPU block of CPU") && e.Contains("fast"));
            }
            finally
            {
                block[slot] = saved;
            }
        }
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void A_block_two_zones_claim_is_shared_and_stays_shared()
    {
        var map = new PageblockUsemap(0, 4096, 10);
        map.Claim(0, 1500, MigrateType.Movable);    // blocks 0 and 1
        map.Claim(1500, 4096, MigrateType.Movable); // blocks 1..3
        Assert.Equal((byte)MigrateType.Movable, map.TypeOf(0));
        Assert.Equal(PageblockUsemap.Shared, map.TypeOf(1024));
        Assert.Equal(PageblockUsemap.Shared, map.TypeOf(2047));
        map.Set(1600, MigrateType.Unmovable);
        Assert.Equal(PageblockUsemap.Shared, map.TypeOf(1600));
        map.Set(3000, MigrateType.Reclaimable);
        Assert.Equal((byte)MigrateType.Reclaimable, map.TypeOf(2048));
        Assert.True(PageblockUsemap.Shared >= PageTypes.PcpTypes && PageblockUsemap.Unclaimed >= PageTypes.PcpTypes);
    }

    [Theory]
    [InlineData("x86_64")]
    [InlineData("x86_64-numa2")]
    [InlineData("rv1106")]
    [InlineData("rk3588")]
    public void Every_zone_block_has_the_zones_type_after_boot_and_after_work_that_steals_blocks(string profile)
    {
        using var m = Machine.Boot(profile);
        TestSupport.AssertConsistent(m); // the checker compares the usemap with every zone's own types
        var rng = new Random(7);
        Gfp[] kinds = [Gfp.Kernel, Gfp.Kernel | Gfp.Movable, Gfp.Kernel | Gfp.Reclaimable];
        var held = TestSupport.Churn(m, rng, 20000, kinds, r => r.Next(10) < 8 ? 0 : r.Next(1, 4));
        long stolen = m.Pages.Zones.Sum(z => z.FallbackCounts.Sum());
        Assert.True(stolen > 0, "the mix of migratetypes stole no block: the test would not see a type change");
        TestSupport.AssertConsistent(m);
        foreach (var (page, order) in held) m.FreePages(page, order);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Pages_of_a_block_two_zones_share_go_back_to_their_own_zone()
    {
        // The two-node machine with node 1 starting 1 MiB into a 2 MiB pageblock: the block at 0x280000000 belongs to
        // node 0's Normal zone below 0x280100000 and to node 1's above.
        var profile = MachineProfile.Embedded("x86_64-numa2") with
        {
            Dram =
            [
                new DramBank(0x1000, 0x9e000), new DramBank(0x100000, 0x7fedc000),
                new DramBank(0x100000000, 0x180100000),
                new DramBank(0x280100000, 0x1fff00000) { Node = 1 },
            ],
        };
        using var m = Machine.Boot(profile);
        var zones = m.Pages.Zones.Where(z => z.Type == ZoneType.Normal).ToArray();
        Assert.Equal(2, zones.Length);
        int boundary = zones[1].StartIdx;
        Assert.Equal(zones[0].EndIdx, boundary);
        Assert.NotEqual(0, boundary & ((1 << m.Pages.PageblockOrder) - 1));
        Assert.Equal(PageblockUsemap.Shared, m.Pages.Usemap.TypeOf(boundary - 1));
        Assert.Equal(PageblockUsemap.Shared, m.Pages.Usemap.TypeOf(boundary));
        TestSupport.AssertConsistent(m);

        m.Pages.DrainAllPages();
        long[] before = zones.Select(z => z.FreePages).ToArray();
        // Allocate every page of each node (__GFP_MEMALLOC: below the watermarks too), node 1's in order-3 blocks first
        // (its part of the shared block is aligned for them: they are freed through the per-CPU lists of orders 1..3),
        // then free them all: each block goes back to its own zone.
        var held = new List<(Page Page, int Order)>();
        foreach (var (nid, order) in new[] { (0, 0), (1, 3), (1, 0) })
            while (true)
            {
                Page p = m.AllocPagesNode(nid, Gfp.Kernel | Gfp.Memalloc | Gfp.ThisNode | Gfp.NoWarn, order);
                if (p.IsNull) break;
                held.Add((p, order));
            }
        int blockStart = boundary & ~((1 << m.Pages.PageblockOrder) - 1);
        int blockEnd = blockStart + (1 << m.Pages.PageblockOrder);
        var inBlock = held.SelectMany(h => Enumerable.Range((int)(h.Page.Pfn - m.Pages.BasePfn), 1 << h.Order)).Where(i => i >= blockStart && i < blockEnd).ToHashSet();
        Assert.Contains(held, h => h.Order == 3 && (int)(h.Page.Pfn - m.Pages.BasePfn) >= boundary && (int)(h.Page.Pfn - m.Pages.BasePfn) < blockEnd);
        // Node 1's part was all free; node 0's part is the top of its memory, where boot placed its own allocations:
        // each of those pages was either allocated here or is reserved.
        Assert.Equal(blockEnd - boundary, inBlock.Count(i => i >= boundary));
        for (int i = blockStart; i < boundary; i++)
            Assert.True(inBlock.Contains(i) || (m.Pages.Frames.Base[i].Flags & Kmem.Physical.PageFlags.Reserved) != 0, $"frame {i:x} neither allocated nor reserved");
        foreach (var (p, order) in held) m.FreePages(p, order);
        m.Pages.DrainAllPages();
        TestSupport.AssertConsistent(m);
        Assert.Equal(before, zones.Select(z => z.FreePages).ToArray());
    }
}
