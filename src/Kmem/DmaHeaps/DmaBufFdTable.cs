// A process's dma-buf file descriptors: install, get, close.
using System.Text;
using Kmem.Core;
using Kmem.Dma;
using Kmem.Paging;
using Kmem.Vmalloc;

namespace Kmem;

/// <summary>The descriptor table through which user space holds dma-bufs (the fds <c>DMA_HEAP_IOCTL_ALLOC</c> returns).</summary>
public sealed class DmaBufFdTable
{
    private readonly Dictionary<int, DmaBuf> _fds = [];
    private readonly Lock _lock = new();
    private readonly KernelLog _log;
    private readonly KernelLife _life;
    private int _next = 3;                       // 0, 1, 2 are the standard streams

    internal DmaBufFdTable(KernelLog log, KernelLife life)
    {
        _log = log;
        _life = life;
    }

    private DmaBufException Bad(int errno, string what)
    {
        _log.Err($"dma-buf: {what}");
        return new DmaBufException(errno, what);
    }

    /// <summary>dma_buf_fd(): installs a reference the caller owns; returns the lowest free descriptor.</summary>
    /// <exception cref="ObjectDisposedException">The machine has been disposed (the same for every member of the table).</exception>
    public int Install(DmaBuf buf)
    {
        _life.ThrowIfDead();
        ArgumentNullException.ThrowIfNull(buf);
        if (buf.Released) throw Bad(-22, $"dma_buf_fd: ino {buf.Ino} has been released");
        LockOrder.Enter(LockRank.DmaBufFds, _lock);
        lock (_lock)
        {
            int fd = 3;
            while (_fds.ContainsKey(fd)) fd++;
            _fds.Add(fd, buf);
            _next = Math.Max(_next, fd + 1);
            return fd;
        }
    }

    /// <summary>dma_buf_get(fd): the buffer with one more reference (-EBADF for a descriptor that is not open).</summary>
    public DmaBuf Get(int fd)
    {
        _life.ThrowIfDead();
        LockOrder.Enter(LockRank.DmaBufFds, _lock);
        lock (_lock)
        {
            if (!_fds.TryGetValue(fd, out var b)) throw Bad(-9, $"dma_buf_get: fd {fd} is not an open dma-buf descriptor");
            return b.Get();
        }
    }

    /// <summary>The buffer a descriptor refers to, without a reference (for views).</summary>
    public DmaBuf Peek(int fd)
    {
        _life.ThrowIfDead();
        LockOrder.Enter(LockRank.DmaBufFds, _lock);
        lock (_lock) return _fds.TryGetValue(fd, out var b) ? b : throw Bad(-9, $"fd {fd} is not an open dma-buf descriptor");
    }

    /// <summary>dup(): a second descriptor on the same buffer (one more reference).</summary>
    public int Dup(int fd)
    {
        _life.ThrowIfDead();
        DmaBuf b;
        LockOrder.Enter(LockRank.DmaBufFds, _lock);
        lock (_lock)
        {
            if (!_fds.TryGetValue(fd, out b!)) throw Bad(-9, $"dup: fd {fd} is not open");
            b.Get();
        }
        return Install(b);
    }

    /// <summary>close(): drops the descriptor's reference; the last one releases the buffer.</summary>
    public void Close(int fd)
    {
        using var life = _life.Enter();          // the last reference frees the buffer
        DmaBuf b;
        LockOrder.Enter(LockRank.DmaBufFds, _lock);
        lock (_lock)
        {
            if (!_fds.Remove(fd, out b!)) throw Bad(-9, $"close: fd {fd} is not open");
        }
        b.Put();
    }

    /// <summary>Open descriptors.</summary>
    public int Count
    {
        get
        {
            _life.ThrowIfDead();
            LockOrder.Enter(LockRank.DmaBufFds, _lock);
            lock (_lock) return _fds.Count;
        }
    }

    /// <summary>The open descriptors and their buffers.</summary>
    public IReadOnlyList<(int Fd, DmaBuf Buffer)> Open
    {
        get
        {
            _life.ThrowIfDead();
            LockOrder.Enter(LockRank.DmaBufFds, _lock);
            lock (_lock) return _fds.OrderBy(kv => kv.Key).Select(kv => (kv.Key, kv.Value)).ToArray();
        }
    }
}
