// KmemMemoryPool's reused managers: no managed allocation per rent, the use-after-return and double-Dispose
// guarantees (and their documented limit), size classes, the Rented counter, Trim, and the strict mode.
using System.Buffers;
using System.Runtime.InteropServices;

namespace Kmem.Tests;

public unsafe class KmemMemoryPoolReuseTests
{
    /// <summary>The address of a rented buffer.</summary>
    private static nint Address(IMemoryOwner<byte> owner)
    {
        using var h = owner.Memory.Pin();
        return (nint)h.Pointer;
    }

    /// <summary>
    /// Runs <paramref name="loop"/> (warm already) up to three times and asserts that one run allocated no managed
    /// byte on this thread. A one-off event of the runtime or of the allocator below (a tier-up compilation, a slab
    /// that comes back on a page never seen, whose address needs its pair of managers) may allocate once; an
    /// allocation per rent would show in every run.
    /// </summary>
    private static void AssertSomeRunAllocatesNothing(Action loop)
    {
        var runs = new List<long>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            loop();
            runs.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (runs[^1] == 0) return;
        }
        Assert.Fail($"every run allocated managed bytes: {string.Join(", ", runs)}");
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(100)]
    [InlineData(2000)]
    public void Rent_and_dispose_allocate_no_managed_bytes_in_steady_state(int size)
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        long sum = 0;
        void Loop(int n)
        {
            for (int i = 0; i < n; i++)
            {
                var owner = pool.Rent(size);
                var span = owner.Memory.Span;
                span[0] = (byte)i;
                sum += span[0];
                using (owner.Memory.Pin()) { }
                owner.Dispose();
            }
        }
        Loop(1000); // warm-up: the pair of each address, the size class, the JIT
        AssertSomeRunAllocatesNothing(() => Loop(10_000));
        Assert.True(sum > 0);
        Assert.Equal(0, pool.Rented);
    }

    [Fact]
    public void Several_buffers_out_at_once_allocate_nothing_once_their_addresses_were_seen()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var owners = new IMemoryOwner<byte>[64];
        void Round()
        {
            for (int i = 0; i < owners.Length; i++) owners[i] = pool.Rent(4096);
            for (int i = 0; i < owners.Length; i++) owners[i].Memory.Span.Fill((byte)i);
            for (int i = 0; i < owners.Length; i++) owners[i].Dispose();
        }
        for (int r = 0; r < 40; r++) Round();
        AssertSomeRunAllocatesNothing(() =>
        {
            for (int r = 0; r < 200; r++) Round();
        });
        Assert.Equal(0, pool.Rented);
    }

    [Fact]
    public void Strict_mode_allocates_one_manager_per_rent()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m) { Strict = true };
        Assert.True(pool.Strict);
        for (int i = 0; i < 100; i++) pool.Rent(4096).Dispose();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) pool.Rent(4096).Dispose();
        long perRent = (GC.GetAllocatedBytesForCurrentThread() - before) / 1000;
        Assert.InRange(perRent, 24, 128); // one small object each
    }

    [Fact]
    public void Every_use_after_return_throws_while_the_object_is_free()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var owner = pool.Rent(4096);
        var memory = owner.Memory;
        var slice = memory.Slice(100, 50);
        Assert.True(MemoryMarshal.TryGetMemoryManager<byte, MemoryManager<byte>>(memory, out var manager));
        memory.Span.Fill(7);
        owner.Dispose();
        Assert.Throws<ObjectDisposedException>(() => owner.Memory);
        Assert.Throws<ObjectDisposedException>(() => memory.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => slice.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => memory.Pin());
        Assert.Throws<ObjectDisposedException>(() => manager!.GetSpan());
        Assert.Throws<ObjectDisposedException>(() => manager!.Pin(0));
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, m.FindSlabCache("kmalloc-4k")!.ObjectsInUse);
    }

    [Fact]
    public void The_next_renter_of_the_same_object_gets_the_other_manager_so_a_stale_one_is_still_caught_and_its_dispose_frees_nothing()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var k4 = m.FindSlabCache("kmalloc-4k")!;
        var first = pool.Rent(4096);
        nint address = Address(first);
        var stale = first.Memory;
        first.Dispose();

        var second = pool.Rent(4096);
        Assert.Equal(address, Address(second));             // the slab's free list is LIFO: the same object again
        Assert.NotSame(first, second);
        second.Memory.Span.Fill(0x5a);
        Assert.Throws<ObjectDisposedException>(() => stale.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => first.Memory);
        first.Dispose();                                    // the first renter's second Dispose: nothing is freed
        first.Dispose();
        Assert.Equal(1, pool.Rented);
        Assert.Equal(1, k4.ObjectsInUse);
        Assert.True(second.Memory.Span.IndexOfAnyExcept((byte)0x5a) < 0);
        second.Dispose();
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, k4.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void The_documented_limit_after_two_re_rents_a_stale_owner_is_the_current_renters_manager()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var first = pool.Rent(4096);
        nint address = Address(first);
        var stale = first.Memory;
        first.Dispose();
        pool.Rent(4096).Dispose();
        var third = pool.Rent(4096);
        Assert.Equal(address, Address(third));
        // The pool keeps two managers per object: the third rent takes the first one again. A stale reference then
        // reaches the same bytes (the third renter's), never anything else; its Dispose would free the third rent.
        Assert.Same(first, third);
        Assert.Equal(4096, stale.Span.Length);
        third.Dispose();
        Assert.Throws<ObjectDisposedException>(() => stale.Span.Length);
        Assert.Equal(0, pool.Rented);
    }

    [Fact]
    public void Strict_mode_catches_every_use_after_return_and_every_second_dispose_whatever_was_rented_since()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m) { Strict = true };
        var first = pool.Rent(4096);
        nint address = Address(first);
        var stale = first.Memory;
        first.Dispose();
        var renters = new List<IMemoryOwner<byte>>();
        for (int i = 0; i < 5; i++)
        {
            var next = pool.Rent(4096);
            Assert.Equal(address, Address(next));
            Assert.Throws<ObjectDisposedException>(() => stale.Span.Length);
            Assert.Throws<ObjectDisposedException>(() => stale.Pin());
            first.Dispose();
            Assert.Equal(1, pool.Rented);
            next.Memory.Span[0] = 1;
            next.Dispose();
            renters.Add(next);
        }
        foreach (var r in renters) Assert.Throws<ObjectDisposedException>(() => r.Memory);
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, m.FindSlabCache("kmalloc-4k")!.ObjectsInUse);
    }

    [Fact]
    public void Each_size_gets_its_kmalloc_size_class_the_same_on_every_rent()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        int[] sizes = [0, 1, 8, 9, 16, 17, 64, 65, 96, 97, 128, 129, 192, 193, 256, 300, 512, 513, 1024, 2047, 2048, 4095, 4096, 4097, 8192, 8193, 16384, 100_000];
        var out_ = new List<IMemoryOwner<byte>>();
        foreach (int size in sizes)
        {
            for (int round = 0; round < 3; round++)
            {
                var owner = pool.Rent(size);
                nint p = Address(owner);
                Assert.Equal((int)m.Ksize(p), owner.Memory.Length);
                Assert.True(owner.Memory.Length >= size);
                owner.Memory.Span.Fill(0xee);                     // the whole size class is usable
                if (round == 2) out_.Add(owner);
                else owner.Dispose();
            }
        }
        Assert.Equal(8, out_[0].Memory.Length);                   // Rent(0): the smallest class
        Assert.Equal(96, out_[Array.IndexOf(sizes, 65)].Memory.Length);
        Assert.Equal(192, out_[Array.IndexOf(sizes, 129)].Memory.Length);
        Assert.Equal(512, out_[Array.IndexOf(sizes, 300)].Memory.Length);
        Assert.Equal(8192, out_[Array.IndexOf(sizes, 4097)].Memory.Length);
        Assert.Equal(16384, out_[Array.IndexOf(sizes, 8193)].Memory.Length); // large kmalloc: order 2
        Assert.Equal(131072, out_[^1].Memory.Length);
        Assert.Equal(sizes.Length, pool.Rented);
        foreach (var o in out_) o.Dispose();
        Assert.Equal(0, pool.Rented);
        Assert.Equal(4096, pool.Rent().Memory.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(-2));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(pool.MaxBufferSize + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KmemMemoryPool(m, defaultBufferSize: 0));
        Assert.Equal(1, pool.Rented);
    }

    [Fact]
    public void The_rented_counter_follows_rents_and_first_disposes_only()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var rng = new Random(25);
        var live = new List<IMemoryOwner<byte>>();
        var returned = new List<IMemoryOwner<byte>>();
        int sharedWithLive = 0;
        for (int step = 0; step < 5000; step++)
        {
            int action = rng.Next(10);
            if (action < 5 || live.Count == 0) live.Add(pool.Rent(rng.Next(1, 6000)));
            else if (action < 9)
            {
                int i = rng.Next(live.Count);
                live[i].Dispose();
                returned.Add(live[i]);
                live.RemoveAt(i);
            }
            else if (returned.Count > 0)
            {
                // A stale Dispose. When the stale owner is some live renter's manager again (its object was rented
                // twice since: the documented limit of the default mode) it would free that buffer; leave it out.
                var stale = returned[rng.Next(returned.Count)];
                if (live.Contains(stale)) sharedWithLive++;
                else stale.Dispose();
            }
            Assert.Equal(live.Count, pool.Rented);
        }
        // Every live buffer is still whole and its own.
        for (int i = 0; i < live.Count; i++) live[i].Memory.Span.Fill((byte)i);
        for (int i = 0; i < live.Count; i++) Assert.True(live[i].Memory.Span.IndexOfAnyExcept((byte)i) < 0);
        foreach (var o in live) o.Dispose();
        Assert.Equal(0, pool.Rented);
        Assert.True(sharedWithLive > 0, "the walk never met the documented window: the test lost its point");
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Trim_drops_the_managers_of_free_objects_only_and_they_throw_for_good()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var owners = Enumerable.Range(0, 100).Select(_ => pool.Rent(1024)).ToList();
        var kept = owners[^1];
        kept.Memory.Span.Fill(9);
        var stale = owners.Take(99).Select(o => o.Memory).ToList();
        foreach (var o in owners.Take(99)) o.Dispose();
        Assert.Equal(99, pool.Trim());
        Assert.Equal(0, pool.Trim());
        Assert.True(kept.Memory.Span.IndexOfAnyExcept((byte)9) < 0);   // a rented buffer is not touched
        // The objects come back with new managers; the old ones stay dead whatever is rented at their address.
        var again = Enumerable.Range(0, 99).Select(_ => pool.Rent(1024)).ToList();
        foreach (var mem in stale) Assert.Throws<ObjectDisposedException>(() => mem.Span.Length);
        Assert.DoesNotContain(again, o => owners.Contains(o));
        foreach (var o in owners) o.Dispose();                            // stale Disposes: only 'kept' is freed
        Assert.Equal(99, pool.Rented);
        foreach (var o in again) o.Dispose();
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, m.FindSlabCache("kmalloc-1k")!.ObjectsInUse);
        Assert.Equal(100, pool.Trim());
    }

    [Fact]
    public void An_address_that_comes_back_with_another_size_class_gets_new_managers_and_the_old_ones_throw()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        // Fill and empty kmalloc-4k so that its slabs hold the addresses, then shrink them back to the page allocator.
        var big = Enumerable.Range(0, 64).Select(_ => pool.Rent(4096)).ToList();
        var addresses = big.Select(Address).ToHashSet();
        var staleBig = big.Select(o => o.Memory).ToList();
        foreach (var o in big) o.Dispose();
        m.ShrinkSlabs();
        // kmalloc-512 takes pages again: some of its objects start where a 4 KiB buffer did.
        var small = new List<IMemoryOwner<byte>>();
        IMemoryOwner<byte>? reused = null;
        for (int i = 0; i < 4096 && reused is null; i++)
        {
            var o = pool.Rent(512);
            small.Add(o);
            if (addresses.Contains(Address(o))) reused = o;
        }
        Assert.NotNull(reused);
        Assert.Equal(512, reused!.Memory.Length);
        reused.Memory.Span.Fill(1);
        int index = big.FindIndex(o => ReferenceEquals(o, reused));
        Assert.Equal(-1, index);                                          // not one of the 4 KiB managers
        foreach (var mem in staleBig) Assert.Throws<ObjectDisposedException>(() => mem.Span.Length);
        foreach (var o in big) o.Dispose();                               // stale: frees nothing
        Assert.Equal(small.Count, pool.Rented);
        foreach (var o in small) o.Dispose();
        Assert.Equal(0, pool.Rented);
        TestSupport.AssertConsistent(m);
    }
}
