// The memory managers of KmemMemoryPool and the table that keeps them by kmalloc address, so that rent and
// return allocate nothing in steady state. The table is open-addressed, read without a lock (Rent's common
// case: one probe, one compare-and-swap) and changed only under a lock (the first rent of an address, a new
// size at an old address, growth, Trim). Any object that leaves the table has its managers retired first,
// so a reader that still sees it fails its compare-and-swap and takes the locked path.
using System.Buffers;
using System.Runtime.CompilerServices;

namespace Kmem;

public sealed partial class KmemMemoryPool
{
    private const int InitialTableSize = 64;

    /// <summary>Guards every change of <see cref="_table"/> and <see cref="_count"/>; readers take no lock.</summary>
    private readonly Lock _gate = new();
    /// <summary>
    /// The first manager of each address rented (its twin hangs off it), open-addressed by address, linear probing,
    /// at most half full. Slots only go from null to a manager or from a manager to a newer one of the same address;
    /// Trim and growth publish a new array.
    /// </summary>
    private Buffer?[] _table;
    private int _count;

    /// <summary>The slot an address hashes to (objects are 8-byte aligned at least).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(nint p, int mask) => (int)(((ulong)p >> 3) * 0x9E3779B97F4A7C15UL >> 33) & mask;

    /// <summary>
    /// A manager of <paramref name="p"/> for a new rent: the one of the address's pair not used by its last rent,
    /// without a lock or an allocation when the pair is there. The caller owns the object (kmalloc just gave it), so
    /// no other renter touches its pair meanwhile; only <see cref="TrimTable"/> may retire it under our feet.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Buffer Acquire(nint p, int length)
    {
        Buffer?[] t = Volatile.Read(ref _table);
        int mask = t.Length - 1;
        for (int i = Hash(p, mask); ; i = (i + 1) & mask)
        {
            Buffer? head = Volatile.Read(ref t[i]);
            if (head is null) break;
            if (head.Address != p) continue;
            if (head.Length == length && head.TryTakeTurn() is { } b) return b;
            break;
        }
        return AcquireLocked(p, length);
    }

    /// <summary>The locked path of <see cref="Acquire"/>: the pair of the address as found under the lock, or a new one.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Buffer AcquireLocked(nint p, int length)
    {
        lock (_gate)
        {
            Buffer?[] t = _table;
            int mask = t.Length - 1;
            int i = Hash(p, mask);
            for (; t[i] is { } head; i = (i + 1) & mask)
            {
                if (head.Address != p) continue;
                if (head.Length == length && head.TryTakeTurn() is { } b) return b;
                // Another size class at this address (its slab went back to the page allocator and the page came
                // back to another cache): retire the pair for good and replace it. (A pair whose turn is not free
                // cannot be here: the caller owns the object, and Trim takes pairs out of the table as it retires them.)
                head.Retire();
                var fresh = Buffer.NewPair(this, p, length);
                Volatile.Write(ref t[i], fresh);
                return fresh;
            }
            if ((_count + 1) * 2 > t.Length)
            {
                t = Rehash(t, t.Length * 2, keepIdle: true, out _);
                mask = t.Length - 1;
                for (i = Hash(p, mask); t[i] is not null; i = (i + 1) & mask) { }
            }
            var pair = Buffer.NewPair(this, p, length);
            Volatile.Write(ref t[i], pair);
            _count++;
            if (!ReferenceEquals(t, _table)) Volatile.Write(ref _table, t);
            return pair;
        }
    }

    /// <summary><see cref="Trim"/>: retires and drops every pair whose object is not rented now.</summary>
    private int TrimTable()
    {
        lock (_gate)
        {
            var t = Rehash(_table, _table.Length, keepIdle: false, out int dropped);
            // Shrink to what is left (at most half full).
            int kept = _count - dropped;
            int fit = InitialTableSize;
            while (fit < kept * 2) fit *= 2;
            if (fit < t.Length) t = Rehash(t, fit, keepIdle: true, out _);
            _count = kept;
            Volatile.Write(ref _table, t);
            return dropped;
        }
    }

    /// <summary>The managers of the table that are rented now (every rented manager of the default mode is in it).</summary>
    private long CountRented()
    {
        lock (_gate)
        {
            long n = 0;
            foreach (Buffer? head in _table)
            {
                if (head is null) continue;
                if (head.IsRented) n++;
                if (head.Twin is { IsRented: true }) n++;
            }
            return n;
        }
    }

    /// <summary>
    /// A new table of <paramref name="size"/> slots with the live pairs of <paramref name="from"/>; without
    /// <paramref name="keepIdle"/> the pairs whose object is not rented are retired and left out (counted in
    /// <paramref name="dropped"/>). Called under the lock; the caller publishes the result.
    /// </summary>
    private static Buffer?[] Rehash(Buffer?[] from, int size, bool keepIdle, out int dropped)
    {
        var t = new Buffer?[size];
        int mask = size - 1;
        dropped = 0;
        foreach (Buffer? head in from)
        {
            if (head is null) continue;
            if (!keepIdle && head.TryRetireIdle())
            {
                dropped++;
                continue;
            }
            int i = Hash(head.Address, mask);
            while (t[i] is not null) i = (i + 1) & mask;
            t[i] = head;
        }
        return t;
    }

    /// <summary>
    /// One rented buffer: a memory manager over a kmalloc object. Its state goes Free → Rented on a rent and back on
    /// the first Dispose (the only Dispose that frees); Retired is for good (strict-mode managers after their Dispose,
    /// pairs dropped from the table).
    /// </summary>
    private sealed unsafe class Buffer : MemoryManager<byte>
    {
        public const int Free = 0, Rented = 1, Retired = 2;

        private readonly KmemMemoryPool _pool;
        /// <summary>The state Dispose moves to: Free for a pair of the table, Retired in strict mode.</summary>
        private readonly int _returnedState;
        private int _state;
        /// <summary>On the first manager of a pair: the second one (null in strict mode, and on the second one).</summary>
        private Buffer? _twin;
        /// <summary>On the first manager of a pair: true when the next rent takes the twin. Written by the object's owner only.</summary>
        private bool _twinNext;

        public Buffer(KmemMemoryPool pool, nint address, int length, int returnedState)
        {
            _pool = pool;
            Address = address;
            Length = length;
            _returnedState = returnedState;
            _state = Rented;
        }

        /// <summary>The kmalloc object.</summary>
        public nint Address { get; }

        /// <summary>Its usable size (its size class), fixed for the manager's life.</summary>
        public int Length { get; }

        /// <summary>True while rented (between a rent and the first Dispose).</summary>
        public bool IsRented => Volatile.Read(ref _state) == Rented;

        /// <summary>On the first manager of a pair: the second one.</summary>
        public Buffer? Twin => _twin;

        /// <summary>A pair for a new address, the first manager rented now.</summary>
        public static Buffer NewPair(KmemMemoryPool pool, nint address, int length)
        {
            var head = new Buffer(pool, address, length, Free);
            head._twin = new Buffer(pool, address, length, Free) { _state = Free };
            head._twinNext = true;
            return head;
        }

        /// <summary>On the first manager of a pair: rents the manager whose turn it is, or null if Trim retired it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Buffer? TryTakeTurn()
        {
            Buffer b = _twinNext ? _twin! : this;
            if (Interlocked.CompareExchange(ref b._state, Rented, Free) != Free) return null;
            _twinNext = !_twinNext;
            return b;
        }

        /// <summary>On the first manager of a pair: retires both for good (their object is owned by the caller, or gone).</summary>
        public void Retire()
        {
            Volatile.Write(ref _state, Retired);
            if (_twin is { } twin) Volatile.Write(ref twin._state, Retired);
        }

        /// <summary>On the first manager of a pair: retires both if neither is rented; false (the pair kept) otherwise.</summary>
        public bool TryRetireIdle()
        {
            Buffer twin = _twin!;
            if (Volatile.Read(ref _state) == Rented || Volatile.Read(ref twin._state) == Rented) return false;
            // The object's next renter may race us for the manager whose turn it is; whoever wins decides.
            Buffer first = _twinNext ? twin : this, second = _twinNext ? this : twin;
            if (Interlocked.CompareExchange(ref first._state, Retired, Free) == Rented) return false;
            Interlocked.CompareExchange(ref second._state, Retired, Free); // never rented: its turn is after first's
            return true;
        }

        public override Span<byte> GetSpan()
        {
            if (Volatile.Read(ref _state) != Rented) ThrowReturned();
            _pool._machine.ThrowIfDisposed();
            return new Span<byte>((void*)Address, Length);
        }

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            if (Volatile.Read(ref _state) != Rented) ThrowReturned();
            _pool._machine.ThrowIfDisposed();
            ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)Length, nameof(elementIndex));
            return new MemoryHandle((void*)(Address + elementIndex)); // native memory never moves
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            // Only the Dispose that moves Rented on frees: a second one, or a stale one of a retired or free manager,
            // does nothing.
            if (Interlocked.CompareExchange(ref _state, _returnedState, Rented) != Rented) return;
            var pool = _pool;
            if (pool._machine.IsDead) return; // the machine took the buffer with it (.NET's rule: Dispose never throws)
            try
            {
                pool._machine.Kfree(Address, "KmemMemoryPool.Return");
            }
            catch (ObjectDisposedException) when (pool._machine.IsDead)
            {
                return; // the machine went down meanwhile
            }
            if (_returnedState == Retired) Interlocked.Decrement(ref pool._strictRented);
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void ThrowReturned() => throw new ObjectDisposedException(nameof(KmemMemoryPool) + " buffer",
            "the buffer was returned to the pool (its IMemoryOwner was disposed)");
    }
}
