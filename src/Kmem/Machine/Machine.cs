// The composition root (what start_kernel/mm_init are to Linux): reads a profile, lays out memory
// the way memblock would (kernel image, reservations, CMA areas, mem_map), creates physical memory
// and the page allocator, writes the boot log, and exposes the fixed entry points.
using Kmem.Boot;
using Kmem.Core;
using Kmem.Diagnostics;
using Kmem.Dma;
using Kmem.Kernel;
using Kmem.Paging;
using Kmem.Physical;
using Kmem.Slab;
using Kmem.Vmalloc;

namespace Kmem;

/// <summary>
/// A booted machine: one board's memory with every allocator layer on top of it. Its state is its own (the
/// few process-wide tables, such as the slab slot registry, are listed in docs/architecture.md); several
/// machines can live in one process. Dispose it to unmap its memory.
/// </summary>
public sealed partial class Machine : IDisposable
{
    private static int s_nextId;
    private readonly PhysicalMemory _phys;
    private readonly PageFrameTable _frames;
    internal readonly PageAllocator Pages;
    internal readonly SlabAllocator Slab;
    /// <summary>The slab allocator's small-request table (<see cref="SlabAllocator.SmallSlots"/>), one load away for the inlined kmalloc.</summary>
    private readonly unsafe int* _kmallocSmallSlots;
    private readonly KmemMetrics _metrics;
    /// <summary>The vmalloc window, or null where physical memory cannot be mapped twice.</summary>
    private readonly VmallocSpace? _vmalloc;
    /// <summary>The DMA API (coherent allocations, streaming mappings, dma-debug).</summary>
    internal readonly DmaMapper Dma;
    // Copies of hot constants so the page entry points need no chain of loads.
    private readonly ulong _basePfn;
    private readonly ulong _frameCount;
    // The two windows of the address fast paths (VirtToIndex, PageAddress): 0 from the start of the shutdown, so that
    // their one range test also refuses a dead machine and the slow paths, which check, report it.
    private ulong _linearBytes;
    private readonly uint _maxOrder;
    /// <summary>Frames below ZONE_HIGHMEM (all of them without HighMem): those page_address() finds in the linear map.</summary>
    private ulong _lowmemFrames;
    private readonly nint _linear;

    private Machine(MachineProfile profile)
    {
        GC.SuppressFinalize(this);   // only a machine that booted has anything for the finalizer (see the end)
        var cmdline = KernelCmdline.Parse(profile.Cmdline, "cmdline");
        CheckChangedProfile(profile);       // a profile changed with "with" is checked again here (ProfileException)
        Profile = profile;
        Id = Interlocked.Increment(ref s_nextId);
        Log = new KernelLog();
        Life = new KernelLife { Owner = this };
        var layout = MemoryLayout.Plan(profile);
        Layout = layout;
        _phys = new PhysicalMemory(layout.SpanStart, layout.SpanEnd - layout.SpanStart, profile.Name);
        try
        {
            _frames = new PageFrameTable((int)((layout.SpanEnd - layout.SpanStart) >> PhysicalMemory.PageShift));
            PrintEarlyBootLines(layout);
            Pages = new PageAllocator(new PageAllocatorSettings
            {
                MachineId = Id,
                BasePfn = layout.SpanStart >> PhysicalMemory.PageShift,
                FrameCount = _frames.Count,
                MaxOrder = profile.MaxOrder,
                Release = ReleaseOf(profile),
                Version = profile.Version,
                TransparentHugepage = profile.Config.IsEnabled("TRANSPARENT_HUGEPAGE"),
                PageblockOrder = profile.EffectivePageblockOrder,
                Cpus = profile.Cpus,
                Zones = layout.Zones,
                Numa = profile.Config.IsEnabled("NUMA"),
                Is64Bit = profile.Is64Bit,
                CpuNodes = Enumerable.Range(0, profile.Cpus).Select(profile.NodeOfCpu).ToArray(),
                Distances = profile.NodeCount == 1 ? null
                    : Enumerable.Range(0, profile.NodeCount).Select(a => Enumerable.Range(0, profile.NodeCount).Select(b => profile.Distance(a, b)).ToArray()).ToArray(),
                Memory = layout.Memory,
                Reserved = layout.Reserved,
                Cma = layout.CmaAreas.Select(c => new PfnRange(c.BasePfn, c.BasePfn + c.Count, c.Name, c.Inactive)).ToArray(),
                MinFreeKbytes = profile.MinFreeKbytes,
            }, _frames, _phys.LinearBase, Log, Life)
            {
                HardwareName = profile.Description.Length > 0 ? profile.Description : profile.Name,
            };
            Pages.Booting = true;
            _basePfn = Pages.BasePfn;
            _frameCount = (ulong)_frames.Count;
            _linearBytes = Pages.LinearBytes;
            _maxOrder = (uint)Pages.MaxOrder;
            _lowmemFrames = Math.Min(_frameCount, (ulong)Pages.HighStartIdx);
            _linear = _phys.LinearBase;
            _kmaps = CreateKmaps(profile);
            _cma = layout.CmaAreas.ToDictionary(c => c.Name);
            foreach (var c in layout.CmaAreas) c.Activate(Pages);
            _devices = profile.Devices.ToDictionary(d => d.Name, d => MakeDevice(d));
            _proc = new ProcRegistry(Life);
            _procFs = new ProcFs(_proc);
            PageViews.Register(ProcFs, Pages, ViewConfigFor(profile, layout));
            HighmemViews.Register(ProcFs, _kmaps);
            PrintMemInitLines(layout);
            Slab = new SlabAllocator(Pages, SlabSettingsFor(profile, cmdline));
            unsafe { _kmallocSmallSlots = Slab.SmallSlots; }
            SlabViews.Register(ProcFs, Slab, profile.Config.IsEnabled("SLUB_DEBUG"));
            if (profile.Config.IsEnabled("CMA_DEBUGFS") && profile.Version.IsAtLeast(4, 0)) CmaViews.Register(ProcFs, layout.CmaAreas);
            if (_phys.IsFileBacked)
            {
                _vmalloc = new VmallocSpace(Pages, Slab, _phys.FileDescriptor,
                    Math.Min(VmallocWindowBytes(profile, layout), MachineProfile.MaxVmallocReserve),
                    profile.Is64Bit ? 8 : 4, profile.Cpus);
                VmallocViews.Register(ProcFs, _vmalloc, VmallocViewConfigFor(profile, layout));
            }
            else VmallocViews.RegisterEmpty(ProcFs);
            SetBootInterleave();
            PrintLateBootLines(layout, cmdline);
            Dma = new DmaMapper(Pages, _vmalloc, new DmaSettings(profile.Arch, profile.DmaLimit, profile.Dma32Limit,
                profile.LowmemLimit, cmdline.DmaDebug ?? profile.DmaDebug,
                Cma.GetValueOrDefault("reserved")) { Version = profile.Version, NodeCma = profile.Config.IsEnabled("DMA_NUMA_CMA") ? Cma : null });
            CreateAtomicPools(profile);
            IoremapRegisterWindows(profile);
            DmaViews.Register(ProcFs, Dma, Devices.Values);
            InitDmaBuf(profile);
            _sysctl = new Sysctl(Pages, (long)(profile.TotalRam / 4 / 1024), layout.CmaAreas, _deferredFree, _dmaBufs, _kmaps.Pool);
            Kernel = new KernelContext(FactsOf(profile), Log, Life, _proc, Pages, Slab, Dma, _vmalloc, _dmaBufs);
            _rtnetParams = RtnetParamsFor(cmdline);
            _metrics = new KmemMetrics(Pages, Slab, profile.Name, Id);
            RegisterMetrics();
            InitFaultInjection(cmdline);
            FreeInitmem(layout);
            EndBootInterleave();
            Pages.Booting = false;
            GC.ReRegisterForFinalize(this);
        }
        catch
        {
            _kmaps?.Dispose();
            _deferredFree?.Dispose();
            _vmalloc?.Dispose();
            _frames?.Dispose();
            _phys.Dispose();
            throw;
        }
    }

    /// <summary>Boots an embedded profile by name (<c>rv1106</c>, <c>rk3588</c>, <c>x86_64</c>).</summary>
    /// <exception cref="ProfileException">No embedded profile has that name.</exception>
    public static Machine Boot(string profileName) => Boot(MachineProfile.Embedded(profileName));

    /// <summary>Boots a profile (for example one read with <see cref="MachineProfile.Load"/>).</summary>
    public static Machine Boot(MachineProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        return new Machine(profile);
    }

    /// <summary>Boots a profile with extra kernel command-line words (e.g. <c>slub_debug=FZPU</c>), added after the profile's own.</summary>
    /// <exception cref="ProfileException">A parameter Kmem models has a bad value.</exception>
    public static Machine Boot(MachineProfile profile, string cmdline)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(cmdline);
        return new Machine(profile with { Cmdline = (profile.Cmdline + " " + cmdline).Trim() });
    }

    /// <summary>Boots an embedded profile by name with extra kernel command-line words.</summary>
    public static Machine Boot(string profileName, string cmdline) => Boot(MachineProfile.Embedded(profileName), cmdline);

    /// <summary>Boots the default profile (<c>rv1106</c>).</summary>
    public static Machine Boot() => Boot(MachineProfile.DefaultName);

    /// <summary>The profile this machine was booted from.</summary>
    public MachineProfile Profile { get; }

    /// <summary>A process-unique number for this machine.</summary>
    public int Id { get; }

    /// <summary>The log ring (printk buffer).</summary>
    public KernelLog Log { get; }

    /// <summary>The <c>/proc</c> and <c>/sys</c> views, by their kernel paths.</summary>
    public ProcFs ProcFs { get => Life.Live(_procFs); }
    private readonly ProcFs _procFs;
    private readonly ProcRegistry _proc;

    /// <summary>CMA areas by name.</summary>
    public IReadOnlyDictionary<string, CmaArea> Cma { get => Life.Live(_cma); }
    private readonly IReadOnlyDictionary<string, CmaArea> _cma;

    /// <summary>Devices by name.</summary>
    public IReadOnlyDictionary<string, Device> Devices { get => Life.Live(_devices); }
    private readonly IReadOnlyDictionary<string, Device> _devices;

    internal MemoryLayout Layout { get; }

    /// <summary>The machine's live/dead state, shared with every layer and every object it hands out.</summary>
    internal KernelLife Life { get; }

    /// <summary>The kernel as the driver layers see it (built once at boot and handed to every driver the machine creates).</summary>
    internal KernelContext Kernel { get; }

    /// <summary>True when the physical memory is a memfd that can be mapped again (Linux).</summary>
    public bool IsFileBacked => Life.Live(_phys.IsFileBacked);

    /// <summary>The log ring as <c>dmesg</c> prints it.</summary>
    public string Dmesg() => Log.Dmesg();

    /// <summary>The zones of the machine, in kernel order (empty ones included).</summary>
    public IReadOnlyList<ZoneInfo> Zones => Life.Live(Pages.Zones).Select(z => new ZoneInfo(this, z)).ToArray();

    /// <summary>
    /// The machine's tunables, as /proc/sys is to Linux: the kernel's sysctls (<see cref="Sysctl.Vm"/>, e.g.
    /// <c>Sysctl.Vm.MinFreeKbytes</c> for /proc/sys/vm/min_free_kbytes) and Kmem's own knobs (<see cref="Sysctl.Kmem"/>).
    /// </summary>
    public Sysctl Sysctl { get => Life.Live(_sysctl); }
    private readonly Sysctl _sysctl;

    /// <summary>Checks every allocator invariant; returns the problems found (empty when consistent).
    /// Call it while no other thread is allocating on this machine.</summary>
    public IReadOnlyList<string> VerifyIntegrity()
    {
        ThrowIfDisposed();
        var errors = new List<string>(Pages.CheckInvariants().Errors);
        errors.AddRange(Slab.CheckInvariants());
        if (_vmalloc is not null) errors.AddRange(_vmalloc.CheckInvariants());
        foreach (var c in Cma.Values) errors.AddRange(c.CheckInvariants());
        errors.AddRange(Dma.CheckInvariants(Devices.Values));
        if (_rtnet is not null) errors.AddRange(_rtnet.CheckInvariants());
        return errors;
    }

    /// <summary>
    /// What the reader checks of a profile that a change with <c>with</c> can undo: the release is one Kmem models, the
    /// config resolves for it, a zone limit the profile gave belongs to a zone this release and config have, and the
    /// NUMA description (nodes, CPUs, distances, devices' and CMA areas' nodes) holds together.
    /// </summary>
    /// <exception cref="ProfileException">The first problem found.</exception>
    private static void CheckChangedProfile(MachineProfile p)
    {
        if (!p.Version.IsSupported)
            throw new ProfileException("version", $"Linux {p.Version} is outside the releases Kmem models ({KernelVersion.Oldest} to 6.12)");
        var config = p.Config;
        foreach (var (given, option, field) in new[] { (p.GivenZones.Dma, "ZONE_DMA", "zones.dma_limit"),
                     (p.GivenZones.Dma32, "ZONE_DMA32", "zones.dma32_limit"), (p.GivenZones.Lowmem, "HIGHMEM", "zones.lowmem_limit") })
            if (given is not null && !config.IsEnabled(option))
                throw new ProfileException(field, $"Linux {p.Version} on {p.Arch.ToString().ToLowerInvariant()} with this config has no {(option == "HIGHMEM" ? "HighMem zone" : option)}");
        ProfileReader.ValidateNodes(p);
    }

    /// <summary>The facts of the modelled kernel that the layers below read instead of the profile.</summary>
    private static KernelFacts FactsOf(MachineProfile p) => new()
    {
        Arch = p.Arch,
        Is64Bit = p.Is64Bit,
        Cpus = p.Cpus,
        CacheLineSize = p.CacheLineSize,
        KmallocMinAlign = p.KmallocMinAlign,
        Version = p.Version,
        Config = p.Config,
    };

    /// <summary>utsname's release: the profile's version with Kmem's local suffix (its own suffix when it has one).</summary>
    internal static string ReleaseOf(MachineProfile p) => p.Version.Suffix.Length > 0 ? p.Version.Release : p.Version.Release + "-kmem";

    /// <summary>
    /// The slab layer's settings: the architecture's figures, the release and config (struct layouts, debug layouts,
    /// SLUB_DEBUG, SLUB_DEBUG_ON, SLAB_MERGE_DEFAULT) and the command line's slub_ options.
    /// </summary>
    private static SlabSettings SlabSettingsFor(MachineProfile p, KernelCmdline cmd)
    {
        var k = SlabKernel.For(p.Version, p.Config, p.Is64Bit, p.NodeCount); // nr_node_ids sizes struct kmem_cache's node[]
        var debug = SlubDebugOptions.Resolve(k.SlubDebug, k.SlubDebugOn, cmd.SlubDebugWord is not null, cmd.SlubDebugValue);
        return new SlabSettings(
            new SlabArch(k.PointerSize, p.CacheLineSize, 8, k.TrackSize, p.Cpus, p.MaxOrder,
                cmd.SlubMinOrder, cmd.SlubMaxOrder, cmd.SlubMinObjects),
            debug, !(cmd.SlabMerge ?? k.MergeDefault), Math.Max(8, p.KmallocMinAlign), p.ZoneTypes.Contains(ZoneType.Dma),
            Math.Min(p.MaxOrder + Physical.PhysicalMemory.PageShift - 1, 25))
        {
            Kernel = k,
            // "mm: memcg/slab: don't create kmalloc-cg caches with cgroup.memory=nokmem": the kmalloc-cg slots alias kmalloc-*.
            // kernel memory accounting is CONFIG_MEMCG_KMEM until 6.10 and part of CONFIG_MEMCG from then on
            Kmalloc = KmallocScheme.For(p.Version, p.Config.IsEnabled(p.Version.IsAtLeast(6, 10) ? "MEMCG" : "MEMCG_KMEM") && !cmd.CgroupNoKmem),
        };
    }

    /// <summary>
    /// The command-line words this kernel has no parameter for, as far as Kmem knows: slub_debug without
    /// CONFIG_SLUB_DEBUG (its __setup is inside #ifdef CONFIG_SLUB_DEBUG), rk_dma_heap_cma= without
    /// CONFIG_DMABUF_HEAPS_ROCKCHIP, cma= without CONFIG_DMA_CMA. Words without '=' come first, as the kernel
    /// passes them to init as arguments and the others as environment.
    /// </summary>
    internal static List<string> UnknownParameters(MachineProfile p, KernelCmdline cmd)
    {
        var words = new List<string>();
        if (cmd.SlubDebugWord is { } w && !p.Config.IsEnabled("SLUB_DEBUG")) words.Add(w);
        // rk_dma_heap_cma= is an early_param of drivers/dma-buf/rk_heaps/rk-dma-cma.c, built only with CONFIG_DMABUF_HEAPS_ROCKCHIP.
        if (!p.Config.IsEnabled("DMABUF_HEAPS_ROCKCHIP"))
            words.AddRange(cmd.RkDmaHeapCmaValues.Select(v => v is null ? "rk_dma_heap_cma" : "rk_dma_heap_cma=" + v));
        // cma= is an early_param of kernel/dma/contiguous.c, built only with CONFIG_DMA_CMA.
        if (!p.Config.IsEnabled("DMA_CMA")) words.AddRange(cmd.CmaValues.Select(v => v is null ? "cma" : "cma=" + v));
        return words.OrderBy(x => x.Contains('=') ? 1 : 0).ToList();
    }

    /// <summary>The kernel configuration the views follow (which /proc lines exist) for this profile.</summary>
    private ViewConfig ViewConfigFor(MachineProfile p, MemoryLayout layout)
    {
        long vmallocKb = (long)(VmallocWindowBytes(p, layout) >> 10);
        bool pae = p.Config.IsEnabled("X86_PAE");
        return new ViewConfig
        {
            MemInfo = MemInfoFields.For(p.Version, p.Config),
            // HPAGE_SIZE: a PMD, 4 MiB on i386 without PAE
            HugePageSizeKb = p.Arch == Arch.I386 && !pae ? 4096 : 2048,
            DirectMap = p.Arch switch
            {
                Arch.X86_64 => DirectMapSplit(p),
                Arch.I386 => DirectMapSplitI386(p, pae ? 2UL << 20 : 4UL << 20),
                _ => null,
            },
            DirectMapLarge = p.Arch == Arch.I386 && !pae ? "4M" : "2M",
            VmallocTotalKb = vmallocKb,
            Cpus = p.Cpus,
            VmallocAreas = () => _vmalloc is { } v ? (v.Start, v.Areas()) : null,
            Swap = p.Config.IsEnabled("SWAP"),
            Numa = p.Config.IsEnabled("NUMA"),
            CmaUsedPages = () => layout.CmaAreas.Sum(c => (long)c.Used),
            PercpuKb = (long)(layout.Early.PerCpuChunkBytes >> 10),
        };
    }

    /// <summary>
    /// A profile's device. One whose CMA area was not reserved (its reservation failed at boot and the kernel went on
    /// without it) is made without it: it remembers the name, and its coherent allocations are refused with that reason.
    /// </summary>
    private Device MakeDevice(DeviceSpec d)
    {
        CmaArea? area = d.Cma is null ? null : _cma.GetValueOrDefault(d.Cma);
        string driver = d.Driver ?? DefaultDriver(d.Name);
        if (d.Cma is not null && area is null)
            Log.Err($"{driver} {d.Name}: CMA area '{d.Cma}' was not reserved at boot; coherent allocations of the device will fail");
        return new Device(d.Name, driver, d.Iommu, d.DmaMaskBits, d.Coherent, area) { MachineId = Id, MissingCmaArea = area is null ? d.Cma : null, Node = d.Node };
    }

    /// <summary>dev_driver_string() when the profile names none: the device name after its unit address ("ffa50000.rkvenc" → "rkvenc").</summary>
    private static string DefaultDriver(string name)
    {
        int dot = name.IndexOf('.');
        return dot >= 0 && dot < name.Length - 1 && !name.Contains(':') ? name[(dot + 1)..] : name;
    }

    /// <summary>VMALLOC_END - VMALLOC_START: the profile's size, else the architecture's.</summary>
    private static ulong VmallocWindowBytes(MachineProfile p, MemoryLayout layout) => p.VmallocSize ?? p.Arch switch
    {
        Arch.X86_64 => (32UL << 40) - 1,                 // 32 TiB - 1 (4-level paging, VMALLOC_END inclusive)
        Arch.Arm64 => 263061440UL << 10,                 // 39-bit VA
        Arch.Riscv64 => 64UL << 30,                      // Sv39: VMALLOC_SIZE = KERN_VIRT_SIZE >> 1
        Arch.Riscv32 => 512UL << 20,                     // VMALLOC_SIZE = KERN_VIRT_SIZE >> 1, below PAGE_OFFSET (0xc0000000)
        // i386: VMALLOC_END (below the PKMAP and fixmap area, 0xff7fe000) minus VMALLOC_START (high_memory + 8 MiB)
        Arch.I386 => 0xff7fe000UL - (0xc0000000UL + Math.Min(layout.SpanEnd, p.LowmemLimit ?? layout.SpanEnd) + (8UL << 20)),
        // VMALLOC_END 0xff800000 minus VMALLOC_START (end of lowmem + 8 MiB, 8 MiB aligned)
        _ => 0xff800000UL - (((p.PageOffset + Math.Min(layout.SpanEnd, p.LowmemLimit ?? layout.SpanEnd) - layout.SpanStart + (8UL << 20)) + ((8UL << 20) - 1)) & ~((8UL << 20) - 1)),
    };

    /// <summary>How the x86_64 direct map covers RAM with 4 KiB, 2 MiB and 1 GiB pages (in KiB).</summary>
    private static (long, long, long) DirectMapSplit(MachineProfile p)
    {
        const ulong M2 = 2UL << 20, G1 = 1UL << 30;
        long k4 = 0, m2 = 0, g1 = 0;
        foreach (var b in p.Dram)
        {
            ulong s = b.Base, e = b.End;
            ulong s2 = Math.Min((s + M2 - 1) & ~(M2 - 1), e), e2 = Math.Max(e & ~(M2 - 1), s2);
            ulong s1 = Math.Min((s2 + G1 - 1) & ~(G1 - 1), e2), e1 = Math.Max(e2 & ~(G1 - 1), s1);
            k4 += (long)((s2 - s) + (e - e2)) >> 10;
            m2 += (long)((s1 - s2) + (e2 - e1)) >> 10;
            g1 += (long)(e1 - s1) >> 10;
        }
        return (k4, m2, g1);
    }

    /// <summary>
    /// How i386 maps lowmem (in KiB): init_mem_mapping() maps the ISA range and split_mem_range() keeps the first large
    /// page (PMD_SIZE: 4 MiB, 2 MiB with PAE) on 4 KiB pages because of the fixed-size MTRRs there; above it each RAM
    /// range takes large pages but for its unaligned head and tail. HighMem is not in the direct map.
    /// </summary>
    private static (long, long, long) DirectMapSplitI386(MachineProfile p, ulong large)
    {
        ulong lowEnd = p.LowmemLimit ?? MachineProfile.I386LowmemEnd;
        ulong first = Math.Min(large, Math.Min(lowEnd, p.Dram[^1].End));
        long k4 = (long)(first >> 10), big = 0;
        foreach (var b in p.Dram)
        {
            ulong s = Math.Max(b.Base, first), e = Math.Min(b.End, lowEnd);
            if (e <= s) continue;
            ulong sL = Math.Min((s + large - 1) & ~(large - 1), e), eL = Math.Max(e & ~(large - 1), sL);
            k4 += (long)((sL - s) + (e - eL)) >> 10;
            big += (long)(eL - sL) >> 10;
        }
        return (k4, big, 0);
    }

    internal void ThrowIfDisposed() => Life.ThrowIfDead();

    /// <summary>True once the machine has been disposed (or finalized).</summary>
    internal bool IsDead => Life.IsDead;


    /// <summary>
    /// Shuts the machine down: every member of the machine and of everything it handed out throws
    /// <see cref="ObjectDisposedException"/> from now on; calls in flight on other threads finish or fail so; its
    /// memory goes back to the host. Spans still held over its memory read zeros instead of faulting (the mappings
    /// are replaced by harmless ones and quarantined before their addresses are reused). A second call does nothing.
    /// </summary>
    public void Dispose()
    {
        Shutdown(finalizing: false);
        GC.SuppressFinalize(this);
    }

    /// <summary>A machine nobody disposed, once nothing of it is reachable: its memory, mappings and worker go.</summary>
    ~Machine()
    {
        try
        {
            Shutdown(finalizing: true);
        }
        catch (Exception e)
        {
            // A finalizer must not take the process down; what could not be released stays with the process.
            System.Diagnostics.Trace.TraceError($"Kmem: finalizing machine {Id}: {e}");
        }
    }

    private void Shutdown(bool finalizing)
    {
        if (!Life.BeginShutdown()) return;
        Volatile.Write(ref _linearBytes, 0);
        Volatile.Write(ref _lowmemFrames, 0);
        // 1. No new call gets in: the page entry points throw, the slab fast paths miss (every slot is dead) and every
        //    thread's structures are released under the owner/drainer handshake, so no thread is inside one.
        Pages.BeginShutdown();
        _kmaps.BeginShutdown();
        Slab.Dispose();
        // 2. Calls already inside a slow path finish (or fail) before anything is torn down.
        Life.WaitUntilQuiet();
        _metrics.Dispose();
        ShutdownDmaBuf();
        Pages.Dispose();
        // 3. The memory goes. Safe code may still hold spans over it: those mappings become harmless (unless nothing
        //    can reach them any more, as when the finalizer runs).
        if (finalizing)
        {
            _vmalloc?.Dispose();
            _kmaps.Dispose();
            _frames.Dispose();
            _phys.Dispose();
        }
        else
        {
            _kmaps.Retire();
            _vmalloc?.Retire();
            _frames.Retire();
            _phys.Retire();
        }
    }
}
