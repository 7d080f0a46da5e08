// A socket's receive queue: a FIFO of rtskbs linked through their headers, under a spin lock.
namespace Kmem.Rtnet;

/// <summary>A FIFO of rtskbs linked through their headers, under a spin lock (a socket's receive queue).</summary>
internal sealed unsafe class RtskbQueue
{
    private nint _first, _last;
    private RtSpinLock _lock;
    private int _count;

    public int Count => Volatile.Read(ref _count);

    private void Lock() => _lock.Enter();

    public void Enqueue(Rtskb skb)
    {
        var h = skb.H;
        h->Next = 0;
        Lock();
        if (_last != 0) ((RtskbHeader*)_last)->Next = (nint)h; else _first = (nint)h;
        _last = (nint)h;
        _count++;
        _lock.Exit();
    }

    public Rtskb Dequeue()
    {
        Lock();
        var h = (RtskbHeader*)_first;
        if (h != null)
        {
            _first = h->Next;
            if (_first == 0) _last = 0;
            h->Next = 0;
            _count--;
        }
        _lock.Exit();
        return new Rtskb((nint)h);
    }
}
