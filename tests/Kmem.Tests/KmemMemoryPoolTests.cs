// KmemMemoryPool: kmalloc-backed buffers behind MemoryPool<byte>, exercised by a real Pipe.
using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;

namespace Kmem.Tests;

public class KmemMemoryPoolTests
{
    [Fact]
    public void Rent_gives_a_kmalloc_size_class_and_double_dispose_frees_once()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var k512 = m.FindSlabCache("kmalloc-512")!;
        var owner = pool.Rent(300);
        Assert.Equal(512, owner.Memory.Length);
        Assert.Equal(1, k512.ObjectsInUse);
        owner.Memory.Span.Fill(3);
        owner.Dispose();
        owner.Dispose();
        Assert.Equal(0, k512.ObjectsInUse);
        Assert.Equal(0, pool.Rented);
        Assert.Throws<ObjectDisposedException>(() => owner.Memory.Span.Length);
        Assert.Equal(4096, pool.Rent().Memory.Length);
        Assert.Equal(16384, pool.Rent(10000).Memory.Length); // large kmalloc: order 2
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(pool.MaxBufferSize + 1));
    }

    [Fact]
    public async Task A_pipe_moves_data_through_kmalloc_buffers()
    {
        using var m = Machine.Boot("x86_64");
        using var pool = new KmemMemoryPool(m);
        var pipe = new Pipe(new PipeOptions(pool, minimumSegmentSize: 2048, pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024, useSynchronizationContext: false));
        var data = RandomNumberGenerator.GetBytes(1 << 20);
        var writer = Task.Run(async () =>
        {
            for (int off = 0; off < data.Length;)
            {
                int n = Math.Min(3000, data.Length - off);
                var mem = pipe.Writer.GetMemory(n);
                data.AsSpan(off, n).CopyTo(mem.Span);
                pipe.Writer.Advance(n);
                off += n;
                await pipe.Writer.FlushAsync();
            }
            await pipe.Writer.CompleteAsync();
        });
        var received = new MemoryStream();
        long peakRented = 0;
        while (true)
        {
            var result = await pipe.Reader.ReadAsync();
            foreach (var seg in result.Buffer) received.Write(seg.Span);
            peakRented = Math.Max(peakRented, pool.Rented);
            pipe.Reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) break;
        }
        await pipe.Reader.CompleteAsync();
        await writer;
        Assert.Equal(data, received.ToArray());
        Assert.True(peakRented > 0);
        Assert.Equal(0, pool.Rented);
        Assert.Equal(0, m.FindSlabCache("kmalloc-2k")!.ObjectsInUse + m.FindSlabCache("kmalloc-4k")!.ObjectsInUse);
        Assert.Empty(m.VerifyIntegrity());
    }
}
