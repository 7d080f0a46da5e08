// KmemMemoryPool across threads: buffers rented on one thread and returned on another (with Trim racing them),
// racing Disposes of one owner, a real System.IO.Pipelines.Pipe over the pool, and the machine disposed while
// buffers are out or threads are renting.
using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Security.Cryptography;

namespace Kmem.Tests;

public class KmemMemoryPoolConcurrencyTests
{
    private static readonly int[] Sizes = [64, 512, 4096, 3000, 8192];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Buffers_rented_on_one_thread_and_returned_on_another_keep_their_data_while_trim_runs(bool strict)
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m) { Strict = strict };
        const int PerThread = 20_000;
        var errors = new ConcurrentQueue<string>();
        using var aToB = new BlockingCollection<(IMemoryOwner<byte> Owner, long Seq)>(64);
        using var bToA = new BlockingCollection<(IMemoryOwner<byte> Owner, long Seq)>(64);
        int running = 2;
        long trims = 0;

        void Side(int id, BlockingCollection<(IMemoryOwner<byte>, long)> outbox, BlockingCollection<(IMemoryOwner<byte>, long)> inbox)
        {
            try
            {
                long received = 0;
                for (long seq = 0; seq < PerThread; seq++)
                {
                    var owner = pool.Rent(Sizes[seq % Sizes.Length]);
                    var span = owner.Memory.Span;
                    BinaryPrimitives.WriteInt64LittleEndian(span, seq * 2 + id);
                    span[8..].Fill((byte)(seq * 2 + id));
                    outbox.Add((owner, seq));
                    while (inbox.TryTake(out var got)) Check(got.Item1, got.Item2, 1 - id, ref received);
                }
                outbox.CompleteAdding();
                foreach (var got in inbox.GetConsumingEnumerable()) Check(got.Item1, got.Item2, 1 - id, ref received);
                if (received != PerThread) errors.Enqueue($"side {id} received {received} buffers");
            }
            catch (Exception e)
            {
                errors.Enqueue(e.ToString());
                outbox.CompleteAdding();
            }
            finally
            {
                Interlocked.Decrement(ref running);
            }
        }

        void Check(IMemoryOwner<byte> owner, long seq, int from, ref long received)
        {
            var span = owner.Memory.Span;
            long tag = seq * 2 + from;
            if (BinaryPrimitives.ReadInt64LittleEndian(span) != tag || span[8..].IndexOfAnyExcept((byte)tag) >= 0)
                errors.Enqueue($"buffer {seq} from side {from} was overwritten");
            if (span.Length < Sizes[seq % Sizes.Length]) errors.Enqueue($"buffer {seq}: {span.Length} bytes");
            owner.Dispose();
            owner.Dispose(); // a second Dispose on the returning thread changes nothing
            received++;
        }

        var a = new Thread(() => Side(0, aToB, bToA));
        var b = new Thread(() => Side(1, bToA, aToB));
        var trimmer = new Thread(() =>
        {
            while (Volatile.Read(ref running) > 0)
            {
                pool.Trim();
                trims++;
                Thread.Sleep(1);
            }
        });
        a.Start();
        b.Start();
        trimmer.Start();
        Assert.True(a.Join(TimeSpan.FromMinutes(2)) && b.Join(TimeSpan.FromMinutes(2)) && trimmer.Join(TimeSpan.FromMinutes(1)), "the exchange hung");
        Assert.True(errors.IsEmpty, string.Join("\n", errors.Take(5)));
        Assert.True(trims > 0);
        Assert.Equal(0, pool.Rented);
        foreach (int size in new[] { "kmalloc-64", "kmalloc-512", "kmalloc-4k", "kmalloc-8k" }.Select(n => m.FindSlabCache(n)!.ObjectsInUse))
            Assert.Equal(0, size);
        TestSupport.AssertConsistent(m);
    }

    [Fact]
    public void Two_threads_disposing_one_owner_at_once_free_it_once()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var k4 = m.FindSlabCache("kmalloc-4k")!;
        IMemoryOwner<byte>? shared = null;
        const int Rounds = 2000;
        using var barrier = new Barrier(2, _ => shared = pool.Rent(4096));
        var errors = new ConcurrentQueue<Exception>();
        void Disposer()
        {
            try
            {
                for (int i = 0; i < Rounds; i++)
                {
                    barrier.SignalAndWait();   // the post-phase action rents the next owner
                    shared!.Dispose();
                }
            }
            catch (Exception e)
            {
                errors.Enqueue(e);
                barrier.RemoveParticipant();
            }
        }
        var t1 = new Thread(Disposer);
        var t2 = new Thread(Disposer);
        t1.Start();
        t2.Start();
        Assert.True(t1.Join(TimeSpan.FromMinutes(2)) && t2.Join(TimeSpan.FromMinutes(2)), "hung");
        Assert.Empty(errors);
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, k4.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_pipe_over_the_pool_moves_megabytes_and_returns_every_buffer(bool strict)
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m) { Strict = strict };
        // Default segment size (4096): the pipe rents from the pool because MaxBufferSize covers it.
        var pipe = new Pipe(new PipeOptions(pool, useSynchronizationContext: false));
        var data = RandomNumberGenerator.GetBytes(4 << 20);
        long peak = 0;
        var writer = Task.Run(async () =>
        {
            var rng = new Random(7);
            for (int off = 0; off < data.Length;)
            {
                int n = Math.Min(rng.Next(1, 9000), data.Length - off);
                var mem = pipe.Writer.GetMemory(Math.Min(n, 4096));
                n = Math.Min(n, mem.Length);
                data.AsSpan(off, n).CopyTo(mem.Span);
                pipe.Writer.Advance(n);
                off += n;
                if (rng.Next(4) == 0) await pipe.Writer.FlushAsync();
            }
            await pipe.Writer.CompleteAsync();
        });
        var received = new byte[data.Length];
        int at = 0;
        var rngRead = new Random(8);
        while (true)
        {
            var result = await pipe.Reader.ReadAsync();
            var buffer = result.Buffer;
            // Consume a part now and then, so that segments stay out across reads.
            long take = result.IsCompleted || rngRead.Next(3) > 0 ? buffer.Length : buffer.Length / 2;
            var consumed = buffer.Slice(0, take);
            foreach (var seg in consumed)
            {
                seg.Span.CopyTo(received.AsSpan(at));
                at += seg.Length;
            }
            Interlocked.Exchange(ref peak, Math.Max(Interlocked.Read(ref peak), pool.Rented));
            pipe.Reader.AdvanceTo(consumed.End, buffer.End);
            if (result.IsCompleted && take == buffer.Length) break;
        }
        await pipe.Reader.CompleteAsync();
        await writer;
        Assert.Equal(data.Length, at);
        Assert.True(data.AsSpan().SequenceEqual(received), "the bytes read differ from the bytes written");
        Assert.True(peak > 0, "the pipe never rented from the pool");
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, m.FindSlabCache("kmalloc-4k")!.ObjectsInUse);
        TestSupport.AssertConsistent(m);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Disposing_the_machine_while_buffers_are_out_leaves_owners_harmless(bool strict)
    {
        var m = Machine.Boot("x86_64");
        var pool = new KmemMemoryPool(m) { Strict = strict };
        var returned = pool.Rent(4096);
        var staleMemory = returned.Memory;
        returned.Dispose();
        var owners = Enumerable.Range(0, 20).Select(i => pool.Rent(i * 300)).ToList();
        var memories = owners.Select(o => o.Memory).ToList();
        foreach (var mem in memories) mem.Span.Fill(1);
        m.Dispose();
        foreach (var mem in memories)
        {
            Assert.Throws<ObjectDisposedException>(() => mem.Span.Length);
            Assert.Throws<ObjectDisposedException>(() => mem.Pin());
        }
        Assert.Throws<ObjectDisposedException>(() => staleMemory.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => pool.Rent(10));
        Assert.Throws<ObjectDisposedException>(() => pool.Rented);
        Assert.Throws<ObjectDisposedException>(() => pool.Trim());
        Assert.Throws<ObjectDisposedException>(() => pool.MaxBufferSize);
        foreach (var o in owners)
        {
            o.Dispose();                                   // nothing, no exception: the machine took the memory
            o.Dispose();
        }
        returned.Dispose();
        pool.Dispose();
    }

    [Fact]
    public void Disposing_the_machine_while_threads_rent_and_return_throws_only_object_disposed()
    {
        for (int round = 0; round < 10; round++)
        {
            var m = Machine.Boot("x86_64");
            var pool = new KmemMemoryPool(m);
            var unexpected = new ConcurrentQueue<Exception>();
            var queue = new ConcurrentQueue<IMemoryOwner<byte>>();
            using var started = new CountdownEvent(2);
            var threads = Enumerable.Range(0, 2).Select(id => new Thread(() =>
            {
                started.Signal();
                try
                {
                    for (int i = 0; ; i++)
                    {
                        var o = pool.Rent(id == 0 ? 4096 : 200);
                        o.Memory.Span[0] = 1;
                        queue.Enqueue(o);
                        if (queue.TryDequeue(out var other)) other.Dispose();   // often the other thread's buffer
                        if (i % 64 == 0) pool.Trim();
                    }
                }
                catch (ObjectDisposedException) { }
                catch (Exception e) { unexpected.Enqueue(e); }
            })).ToList();
            threads.ForEach(t => t.Start());
            started.Wait();
            Thread.Sleep(5 + round);
            m.Dispose();
            threads.ForEach(t => Assert.True(t.Join(TimeSpan.FromSeconds(30))));
            Assert.True(unexpected.IsEmpty, string.Join("\n", unexpected.Take(3)));
            while (queue.TryDequeue(out var o))
            {
                o.Dispose();                                // harmless after the machine went
                Assert.Throws<ObjectDisposedException>(() => o.Memory);
            }
        }
    }
}
