// The machine's slab layer (SLUB): the list of caches (newest first, as slab_caches), their
// creation with the kernel's checks and merging, the bootstrap caches kmem_cache and
// kmem_cache_node, the shrinker that gives cached slabs back under memory pressure, and lookups
// from an address to its slab and cache. The kmalloc family is in Kmalloc.cs.
// Locks (docs/architecture.md, "Lock order"): _lock (slab_mutex) → the slot registry (a new cache's slot) and a
// cache's thread list (an alias growing the object); _siteIds is a leaf, taken under a cache's node lock by
// debug tracks.
using System.Text;
using Kmem.Core;
using Kmem.Paging;
using Kmem.Physical;

namespace Kmem.Slab;

/// <summary>Settings the machine hands to the slab layer.</summary>
internal sealed record SlabSettings(SlabArch Arch, SlubDebugOptions Debug, bool NoMerge, int KmallocMinSize, bool HasZoneDma, int KmallocShiftMax)
{
    /// <summary>The release's kmalloc caches: kinds, names, creation order, GFP routing (default: Linux 5.10's).</summary>
    public KmallocScheme Kmalloc { get; init; } = KmallocScheme.Linux510;

    /// <summary>The release and CONFIG_ options the slab layer follows.</summary>
    public SlabKernel Kernel { get; init; } = SlabKernel.Default;
}

internal sealed unsafe partial class SlabAllocator : IDisposable
{
    private readonly Lock _lock = new();
    /// <summary>slab_caches: newest first.</summary>
    private readonly List<SlabCache> _caches = [];
    /// <summary>Every handle by name, aliases included.</summary>
    private readonly Dictionary<string, SlabCache> _byName = new(StringComparer.Ordinal);
    /// <summary>Caches by the id stored in their slabs' page descriptors (index 0 unused).</summary>
    private SlabCache?[] _byId = new SlabCache?[64];
    private readonly PageFrame* _frames;
    private readonly SlabShrinker _shrinker;
    private readonly Dictionary<(string, string, int), int> _siteIds = [];
    private readonly List<string> _siteNames = [""];
    private long _oomLastNs = long.MinValue;
    private readonly SlabCache _kmemCache, _kmemCacheNode;
    /// <summary>Each cache's struct kmem_cache and its kmem_cache_node per node (0 for a node outside slab_nodes).</summary>
    private readonly Dictionary<SlabCache, (nint Cache, nint[] Nodes)> _descriptors = [];

    /// <summary>True from 5.9, where kmalloc_order() checks GFP_SLAB_BUG_MASK as new_slab() does (read once at boot).</summary>
    private readonly bool _largeChecksFlags;

    public SlabAllocator(PageAllocator pa, SlabSettings settings)
    {
        Pages = pa;
        Settings = settings;
        Arch = settings.Arch;
        _frames = pa.Frames.Base;
        Linear = pa.IdxToVirt(0);
        // Slab objects live in the linear map, which ends at high_memory: an address past it is no object of this machine.
        LinearBytes = (nuint)pa.LinearBytes;
        _largeChecksFlags = pa.Version.IsAtLeast(5, 9);
        foreach (string w in settings.Debug.Warnings) pa.Log.Err(w);
        InitNodes(pa);
        // kmem_cache_init(): the two bootstrap caches, sized from the structs of this release and config
        // (SlabStructLayout), then the kmalloc caches.
        var k = settings.Kernel;
        _kmemCacheNode = CreateCore("kmem_cache_node", SlabStructLayout.KmemCacheNodeSize(k), BootCacheAlign(SlabStructLayout.KmemCacheNodeSize(k)),
            SlabFlags.HwcacheAlign, null, 0, kmalloc: false)!;
        _kmemCache = CreateCore("kmem_cache", SlabStructLayout.KmemCacheSize(k), BootCacheAlign(SlabStructLayout.KmemCacheSize(k)),
            SlabFlags.HwcacheAlign, null, 0, kmalloc: false)!;
        AllocDescriptor(_kmemCacheNode);
        AllocDescriptor(_kmemCache);
        // bootstrap() puts kmem_cache on slab_caches first and kmem_cache_node after it, at the head, so that
        // /proc/slabinfo (newest first) ends with kmem_cache_node, kmem_cache (every release since 3.x).
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock) { _caches.Remove(_kmemCacheNode); _caches.Insert(0, _kmemCacheNode); }
        CreateKmallocCaches();
        // kmem_cache_init(): "Nodes=%u" is nr_node_ids (every possible node, memoryless ones included).
        pa.Log.Info($"SLUB: HWalign={Arch.CacheLineSize}, Order={Arch.MinOrder}-{Arch.MaxSlabOrder}, MinObjects={Arch.MinObjects}, CPUs={Arch.Cpus}, Nodes={NodeCount}");
        _shrinker = new SlabShrinker(this);
        pa.RegisterShrinker(_shrinker);
    }

    public PageAllocator Pages { get; }
    public SlabSettings Settings { get; }
    public SlabArch Arch { get; }
    public nint Linear { get; }
    public nuint LinearBytes { get; }

    /// <summary>Raised after a cache (not an alias) is created or destroyed, for the views.</summary>
    public event Action<SlabCache>? Created, Destroyed;

    /// <summary>failslab: forced kmem_cache_alloc/kmalloc failures (lib/fault-inject.c; ignore-gfp-wait on by default).</summary>
    public FaultAttr Failslab => Volatile.Read(ref _failslab) ?? CreateFailslab();
    private FaultAttr? _failslab;

    /// <summary>Made once: two first callers at once get the same object (a second one would never be consulted).</summary>
    private FaultAttr CreateFailslab()
    {
        var f = new FaultAttr("failslab", Pages.Log, ignoreGfpReclaim: true, minOrder: 0);
        f.Changed = FailslabChanged;
        return Interlocked.CompareExchange(ref _failslab, f, null) ?? f;
    }

    /// <summary>
    /// Every cache, each alias merged into one, and kmalloc's fast-path slots follow failslab's armed state. The state is
    /// read under the cache list's lock, which creating a cache or an alias also holds while it copies the state: two
    /// changes at once, or a change during a creation, end with every handle as the last state says.
    /// </summary>
    private void FailslabChanged()
    {
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock)
        {
            bool armed = _failslab!.Armed;
            foreach (var c in _caches) c.SetFailArmed(armed);
            ArmSmallSlots(armed);
        }
    }


    /// <summary>__should_failslab(): __GFP_NOFAIL, may-reclaim calls (ignore-gfp-wait) and filtered caches are spared.</summary>
    internal bool ShouldFailslab(SlabCache s, Gfp gfp)
    {
        var f = Failslab;
        if ((gfp & Gfp.NoFail) != 0) return false;
        if (f.IgnoreGfpReclaim && (gfp & Gfp.DirectReclaim) != 0) return false;
        if (f.CacheFilter && (s.Flags & SlabFlags.FailSlab) == 0) return false;
        return f.ShouldFail(s.ObjectSize);
    }

    /// <summary>The caches, newest first (aliases excluded), as /proc/slabinfo lists them.</summary>
    public SlabCache[] Caches { get { LockOrder.Enter(LockRank.SlabAllocator, _lock); lock (_lock) return _caches.ToArray(); } }

    public SlabCache? Find(string name) { LockOrder.Enter(LockRank.SlabAllocator, _lock); lock (_lock) return _byName.GetValueOrDefault(name); }

    public SlabCache? CacheById(int id) => (uint)id < (uint)_byId.Length ? Volatile.Read(ref _byId[id]) : null;

    /// <summary>jiffies at HZ=100, from the machine's clock.</summary>
    public long Jiffies => Pages.Log.NowNs / 10_000_000;

    // ================================================================== create

    /// <summary>kmem_cache_create(): validates, merges when allowed, else builds a new cache.</summary>
    public SlabCache Create(string name, int size, int align, SlabFlags flags, Action<nint>? ctor, int sheafCapacity = 0)
    {
        string? problem = null;
        if (string.IsNullOrWhiteSpace(name)) problem = "a cache needs a name";
        else if (name.Contains('/') || name.Any(char.IsWhiteSpace)) problem = $"'{name}' may not contain '/' or white space";
        else if (size <= 0) problem = $"size {size} is not positive";
        else if ((long)size > KmallocMaxSize) problem = $"size {size} is above the slab maximum KMALLOC_MAX_SIZE ({KmallocMaxSize})";
        else if (align < 0 || (align & (align - 1)) != 0) problem = $"alignment {align} is not a power of two";
        else if (align > PhysicalMemory.PageSize) problem = $"alignment {align} is above the page size";
        else if ((flags & ~AllowedFlags) != 0) problem = $"flags 0x{(uint)(flags & ~AllowedFlags):x} are not SLAB_ flags Kmem accepts";
        else if (sheafCapacity < 0 || sheafCapacity > SlabCache.MaxSheafCapacity) problem = $"sheaf capacity {sheafCapacity} is outside 0..{SlabCache.MaxSheafCapacity}";
        if (problem is null) { LockOrder.Enter(LockRank.SlabAllocator, _lock); lock (_lock) if (_byName.ContainsKey(name)) problem = $"a cache named '{name}' already exists"; }
        if (problem is not null) throw CreateFailed(name, flags, problem);
        if (!Settings.Kernel.SlubDebug) flags &= ~SlabFlags.DebugFlags;  // CACHE_CREATE_MASK, before merging is considered

        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock)
        {
            // A cache with sheaves is never merged, nor merged into (slab_unmergeable()).
            var target = sheafCapacity != 0 ? null : FindMergeable(size, align, flags, name, ctor);
            if (target is not null)
            {
                // __kmem_cache_alias()
                target.RefCount++;
                target.GrowObjectSize(size);
                var alias = new SlabCache(target, name);
                target.AddAlias(alias);
                _byName[name] = alias;
                return alias;
            }
        }
        var s = CreateCore(name, size, align, flags, ctor, 0, kmalloc: false, sheafCapacity);
        if (s is null) throw CreateFailed(name, flags, $"no slab order up to MAX_ORDER holds a {size}-byte object");
        AllocDescriptor(s);
        return s;
    }

    /// <summary>SLAB_FLAGS_PERMITTED for the flags Kmem models.</summary>
    private const SlabFlags AllowedFlags = SlabFlags.ConsistencyChecks | SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.HwcacheAlign |
        SlabFlags.CacheDma | SlabFlags.CacheDma32 | SlabFlags.StoreUser | SlabFlags.Panic | SlabFlags.TypesafeByRcu | SlabFlags.Trace |
        SlabFlags.NoLeakTrace | SlabFlags.NoMerge | SlabFlags.ReclaimAccount | SlabFlags.Account | SlabFlags.FailSlab;

    private const SlabFlags NeverMerge = SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser | SlabFlags.Trace |
        SlabFlags.TypesafeByRcu | SlabFlags.NoLeakTrace | SlabFlags.NoMerge;
    private const SlabFlags MergeSame = SlabFlags.ReclaimAccount | SlabFlags.CacheDma | SlabFlags.CacheDma32 | SlabFlags.Account;

    private KmemException CreateFailed(string name, SlabFlags flags, string problem)
    {
        Pages.Log.Err($"kmem_cache_create({name}) failed with error -22");
        var ex = new SlabException(SlabError.Misuse, name ?? "", 0, $"kmem_cache_create({name}): {problem}");
        if ((flags & SlabFlags.Panic) != 0) Pages.Log.Printk(LogLevel.Emerg, $"Kernel panic - not syncing: kmem_cache_create: Failed to create slab '{name}'. Error -22");
        return ex;
    }

    /// <summary>find_mergeable() (5.10): the oldest compatible cache, or null.</summary>
    private SlabCache? FindMergeable(int size, int align, SlabFlags flags, string name, Action<nint>? ctor)
    {
        if (Settings.NoMerge || ctor is not null) return null;
        int ptr = Arch.PointerSize;
        size = SlabGeometry.AlignUp(size, ptr);
        align = SlabGeometry.CalculateAlignment(flags, align, size, Arch);
        size = SlabGeometry.AlignUp(size, align);
        flags |= Settings.Debug.For(name);
        if ((flags & NeverMerge) != 0) return null;
        for (int i = _caches.Count - 1; i >= 0; i--)
        {
            var s = _caches[i];
            if ((s.Flags & NeverMerge) != 0 || s.HasCtor || s.Usersize != 0 || s.SheafCapacity != 0) continue;
            if (size > s.Size) continue;
            if ((flags & MergeSame) != (s.Flags & MergeSame)) continue;
            if ((s.Size & ~(align - 1)) != s.Size) continue;
            if (s.Size - size >= ptr) continue;
            return s;
        }
        return null;
    }

    /// <summary>
    /// create_boot_cache()'s alignment for the bootstrap and kmalloc caches: ARCH_KMALLOC_MINALIGN, and from 5.4 the size
    /// itself when it is a power of two ("mm, sl[aou]b: guarantee natural alignment for kmalloc(power-of-two)").
    /// </summary>
    private int BootCacheAlign(int size)
    {
        int align = Math.Max(Settings.KmallocMinSize, 8);
        if (Settings.Kernel.NaturalKmallocAlign && (size & (size - 1)) == 0) align = Math.Max(align, size);
        return align;
    }

    /// <summary>__kmem_cache_create(): geometry, registration; null when no order fits.</summary>
    private SlabCache? CreateCore(string name, int size, int align, SlabFlags flags, Action<nint>? ctor, int usersize, bool kmalloc, int sheafCapacity = 0)
    {
        // Without CONFIG_SLUB_DEBUG the debug flags are not in CACHE_CREATE_MASK: kmem_cache_create() drops them.
        if (!Settings.Kernel.SlubDebug) flags &= ~SlabFlags.DebugFlags;
        var debug = Settings.Debug.For(name);
        if (Settings.Debug.DisableHigherOrderDebug && debug != 0) debug |= SlabGeometry.DebugOnlyIfOrderUnchanged;
        flags |= debug;
        if (kmalloc) align = BootCacheAlign(size);                // kmalloc caches are made by create_boot_cache() too
        int a = SlabGeometry.CalculateAlignment(flags, align, size, Arch);
        var g = SlabGeometry.Compute(size, a, flags, ctor is not null, Arch, origSize: kmalloc && Settings.Kernel.KmallocOrigSize);
        if (g is null || g.Value.SlabBytes > SlabWord.MaxSlabBytes) return null;
        if (!Settings.Kernel.CpuPartial) g = g.Value with { NoCpuPartialLists = true };
        SlabCache s;
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock)
        {
            int id = SlabThread.AllocSlot(); // the cache's id is its slot in the threads' tables (process-wide; freed by SlabCache.Release)
            if (id >= _byId.Length) Array.Resize(ref _byId, Math.Max(_byId.Length * 2, id + 1));
            s = new SlabCache(this, id, name, g.Value, flags, ctor, usersize, kmalloc, sheafCapacity);
            Volatile.Write(ref _byId[id], s);
            _caches.Insert(0, s);
            _byName[name] = s;
        }
        Created?.Invoke(s);
        return s;
    }

    /// <summary>
    /// Every cache's own struct kmem_cache and kmem_cache_node come from the two bootstrap caches: one kmem_cache_node
    /// per node of slab_nodes, each from that node's memory (init_kmem_cache_nodes(): kmem_cache_alloc_node(kmem_cache_node,
    /// GFP_KERNEL, node)), so /proc/slabinfo's kmem_cache_node counts caches × memory nodes.
    /// </summary>
    private void AllocDescriptor(SlabCache s)
    {
        nint c = _kmemCache.Alloc(Gfp.Kernel | Gfp.Zero | Gfp.NoFail, "kmem_cache_create");
        var nodes = new nint[NodeCount];
        for (int node = 0; node < NodeCount; node++)
            if (SlabNodes[node]) nodes[node] = _kmemCacheNode.AllocNode(Gfp.Kernel | Gfp.Zero | Gfp.NoFail, node, "kmem_cache_create");
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock) _descriptors[s] = (c, nodes);
    }

    // ================================================================== destroy

    /// <summary>kmem_cache_destroy(): drops a reference; the last one frees the cache, which must be empty.</summary>
    public void Destroy(SlabCache handle)
    {
        var s = handle.Root;
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock)
        {
            if (!_byName.TryGetValue(handle.Name, out var h) || !ReferenceEquals(h, handle))
                throw new ObjectDisposedException(nameof(SlabCache), $"the slab cache '{handle.Name}' has been destroyed");
            if (s.RefCount > 1)
            {
                s.RefCount--;
                _byName.Remove(handle.Name);
                // An alias handle stops working; the root keeps the slabs (and its name in slabinfo) for the others.
                if (!ReferenceEquals(handle, s)) handle.MarkAliasDestroyed();
                return;
            }
        }
        string? report = s.ShutdownCheck();
        if (report is not null)
        {
            var sb = new StringBuilder(report);
            sb.Append($"kmem_cache_destroy {s.Name}: Slab cache still has objects\n");
            Pages.DumpStack(sb);
            Pages.Log.Err(sb.ToString().TrimEnd('\n'));
            throw new SlabException(SlabError.CacheInUse, s.Name, 0,
                $"kmem_cache_destroy {s.Name}: Slab cache still has objects ({s.ObjectsInUse} in use); the cache stays usable");
        }
        (nint Cache, nint[] Nodes) desc;
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock)
        {
            s.RefCount = 0;
            _byName.Remove(handle.Name);
            _caches.Remove(s);
            Volatile.Write(ref _byId[s.Id], null);
            _descriptors.Remove(s, out desc);
        }
        s.Release();
        if (desc.Cache != 0)
        {
            _kmemCache.Free(desc.Cache, "kmem_cache_destroy");
            foreach (nint n in desc.Nodes) if (n != 0) _kmemCacheNode.Free(n, "kmem_cache_destroy");
        }
        Destroyed?.Invoke(s);
    }

    // ================================================================== lookups

    /// <summary>The frame indices of every slab of cache <paramref name="id"/> (a scan of the mem_map).</summary>
    public List<int> SlabsOf(int id)
    {
        var list = new List<int>();
        int n = Pages.Frames.Count;
        for (int i = 0; i < n; i++)
        {
            ref PageFrame f = ref _frames[i];
            if ((f.Flags & PageFlags.Slab) != 0 && f.SlabCacheSlot == id) list.Add(i);
        }
        return list;
    }

    /// <summary>
    /// Resolves an address to its slab and cache for a free, or reports and throws: outside the machine's
    /// memory, not a slab page, or (for kmem_cache_free) a slab of another cache than <paramref name="expected"/>.
    /// </summary>
    public int CheckSlabObject(nint obj, SlabCache? expected, CallSite site, out SlabCache cache)
    {
        string fn = expected is null ? "kfree" : "kmem_cache_free";
        nuint off = (nuint)(obj - Linear);
        if (off >= LinearBytes)
        {
            var sb = new StringBuilder();
            sb.Append($"{fn}: 0x{obj:x16} is not an address of this machine's memory (called from {site})\n");
            Pages.DumpStack(sb);
            Pages.Log.Err(sb.ToString().TrimEnd('\n'));
            throw new InvalidAddressException($"{fn}: 0x{obj:x} is not an address of this machine's memory");
        }
        int idx = (int)(off >> PhysicalMemory.PageShift);
        if ((_frames[idx].Flags & PageFlags.Tail) != 0) idx = _frames[idx].CompoundHead;
        ref PageFrame f = ref _frames[idx];
        var c = (f.Flags & PageFlags.Slab) != 0 ? CacheById(f.SlabCacheSlot) : null;
        if (c is null)
        {
            Pages.WarnOnce($"virt_to_cache:{obj}", $"WARNING: CPU: {Pages.CurrentCpu()} PID: {Environment.CurrentManagedThreadId} at mm/slab.h:436 cache_from_obj\n" +
                $"virt_to_cache: Object is not a Slab page! ({fn} 0x{obj:x16} from {site})");
            throw new SlabException(SlabError.InvalidPointer, expected?.Name ?? "", obj, $"{fn}: 0x{obj:x} is not in a slab (called from {site}); nothing was freed");
        }
        if (expected is not null && !ReferenceEquals(c, expected.Root))
        {
            Pages.WarnOnce($"cache_from_obj:{expected.Name}:{c.Name}", $"WARNING: CPU: {Pages.CurrentCpu()} PID: {Environment.CurrentManagedThreadId} at mm/slab.h:436 cache_from_obj\n" +
                $"cache_from_obj: Wrong slab cache. {expected.Name} but object is from {c.Name}");
            throw new SlabException(SlabError.WrongCache, expected.Name, obj,
                $"kmem_cache_free: 0x{obj:x} belongs to {c.Name}, not {expected.Name} (called from {site}); nothing was freed");
        }
        cache = c;
        return idx;
    }

    // ================================================================== owner tracking

    public int InternCallSite(CallSite site)
    {
        LockOrder.Enter(LockRank.SlabSites, _siteIds);
        lock (_siteIds)
        {
            var key = (site.Member, site.File, site.Line);
            if (_siteIds.TryGetValue(key, out int id)) return id;
            id = _siteNames.Count;
            _siteNames.Add(site.ToString());
            _siteIds[key] = id;
            return id;
        }
    }

    public string CallSiteName(int id) { LockOrder.Enter(LockRank.SlabSites, _siteIds); lock (_siteIds) return (uint)id < (uint)_siteNames.Count ? _siteNames[id] : "?"; }

    /// <summary>The SLUB out-of-memory report's rate limit (DEFAULT_RATELIMIT_INTERVAL 5 s, burst 1 here).</summary>
    public bool OomRateLimit()
    {
        long now = Pages.Log.NowNs;
        LockOrder.Enter(LockRank.SlabAllocator, _lock);
        lock (_lock)
        {
            if (_oomLastNs != long.MinValue && now - _oomLastNs < 5_000_000_000L) return false;
            _oomLastNs = now;
            return true;
        }
    }

    // ================================================================== reclaim, checks, shutdown

    /// <summary>Shrinks every cache; returns the objects the freed slabs held.</summary>
    public long ShrinkAll()
    {
        long objects = 0;
        foreach (var s in Caches)
        {
            long before = s.TotalObjects;
            s.ShrinkCore();
            objects += before - s.TotalObjects;
        }
        return objects;
    }

    public long ReclaimableObjects() => Caches.Sum(s => s.Reclaimable());

    /// <summary>Checks every cache's slabs and lists; the machine must be quiet. Returns the problems.</summary>
    public List<string> CheckInvariants()
    {
        var errors = new List<string>();
        foreach (var s in Caches) s.CheckInvariants(errors);
        int n = Pages.Frames.Count;
        for (int i = 0; i < n; i++)
        {
            ref PageFrame f = ref _frames[i];
            if ((f.Flags & PageFlags.Slab) != 0 && CacheById(f.SlabCacheSlot) is null)
                errors.Add($"slab page pfn {Pages.BasePfn + (ulong)i} belongs to no cache (id {f.SlabCacheSlot})");
        }
        return errors;
    }

    /// <summary>
    /// At the machine's shutdown: the inlined kmalloc's table points at the dead slot first (no call can reach a slot
    /// that another machine's cache may take next), then every cache releases its threads' structures with the
    /// handshake and gives its slot back.
    /// </summary>
    public void Dispose()
    {
        _dead = true;
        FillSmallSlots(armed: true);
        for (int i = 0; i < _kmallocSlots.Length; i++) Volatile.Write(ref _kmallocSlots[i], SlabThread.DeadSlot);
        Pages.UnregisterShrinker(_shrinker);
        foreach (var s in Caches) s.Release(flush: false);
    }

    /// <summary>Set at the machine's shutdown.</summary>
    private volatile bool _dead;

    /// <summary>The shrinker that gives back empty slabs and threads' cached slabs under memory pressure.</summary>
    private sealed class SlabShrinker(SlabAllocator sa) : Shrinker("slub")
    {
        public override long CountObjects(ShrinkControl sc) => sa.ReclaimableObjects() is var n && n > 0 ? n : ShrinkEmpty;

        public override long ScanObjects(ShrinkControl sc) => sa.ShrinkAll();

        // Whole slabs' worth of reclaimable objects, in pages: a few loose objects free no page.
        internal override long CountPages(ShrinkControl sc) =>
            sa.Caches.Sum(s => s.Reclaimable() * (1L << s.Order) / Math.Max(1, s.ObjectsPerSlab));
    }
}
