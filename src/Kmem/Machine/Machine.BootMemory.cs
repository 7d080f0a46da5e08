// What start_kernel() does with memory after mem_init(): pid_max's line, vfs_caches_init()'s mount hash tables (pages
// from the page allocator, kept for good), and at the end of boot free_initmem() giving the init sections back.
using Kmem.Boot;
using Kmem.Physical;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>The pages the boot's late hash tables hold (never freed, as in the kernel).</summary>
    private readonly List<(Page Page, int Order)> _bootHashPages = [];
    private readonly List<nint> _bootHashVmalloc = [];

    /// <summary>
    /// kernel/pid.c pid_idr_init() (pidmap_init() before 4.15): pid_max = min(PID_MAX_LIMIT, max(PID_MAX_DEFAULT,
    /// PIDS_PER_CPU_DEFAULT 1024 × possible CPUs)), PID_MAX_DEFAULT 4096 with CONFIG_BASE_SMALL (BASE_FULL off) else 32768
    /// (include/linux/threads.h), PID_MAX_LIMIT PAGE_SIZE × 8 with BASE_SMALL, 4 Mi on 64-bit, else PID_MAX_DEFAULT;
    /// minimum max(RESERVED_PIDS + 1 = 301, PIDS_PER_CPU_MIN 8 × CPUs). Then fs/namespace.c mnt_init() (in
    /// vfs_caches_init()): "Mount-cache" and "Mountpoint-cache" (hlist heads, scale 19, mhash_entries=/mphash_entries=)
    /// from the page allocator, alloc_pages_exact(); before 3.13 one page of list heads and its own line. With hashdist the
    /// dentry and inode tables come here too, vmalloc'ed.
    /// </summary>
    private void PrintLateBootLines(MemoryLayout layout, KernelCmdline cmd)
    {
        var p = Profile;
        bool small = !p.Config.IsEnabled("BASE_FULL");
        long def = small ? 0x1000 : 0x8000;
        long limit = small ? 4096 * 8 : p.Is64Bit ? 4L * 1024 * 1024 : def;
        long pidMax = Math.Min(limit, Math.Max(def, 1024L * p.Cpus));
        long pidMin = Math.Max(301, 8L * p.Cpus);
        Log.Info($"pid_max: default: {pidMax} minimum: {pidMin}");

        var e = layout.Early;
        foreach (var h in e.DeferredHashes)
        {
            bool huge = false;
            if (_vmalloc is not null) _bootHashVmalloc.Add(HashVmalloc(h.Bytes, cmd, out huge));
            Log.Info((h with { Huge = huge }).Line(p.Version));
            if (_vmalloc is null) NoHashVmalloc(h);
        }
        ulong bucket = p.Is64Bit ? 8UL : 4UL;
        if (!p.Version.IsAtLeast(3, 13))
        {
            // HASH_SIZE = PAGE_SIZE / sizeof(struct list_head) in a __get_free_page()
            _bootHashPages.Add((AllocPages(Gfp.Atomic, 0), 0));
            Log.Info($"Mount-cache hash table entries: {PhysicalMemory.PageSize / (2 * (int)bucket)}");
            return;
        }
        foreach (var (name, param) in new[] { ("Mount-cache", "mhash_entries"), ("Mountpoint-cache", "mphash_entries") })
        {
            var h = LargeSystemHash.Compute(name, bucket, EarlyAllocations.Entries(cmd, param), 19, 0, e.NrKernelPages, e.NrAllPages,
                p.Is64Bit, p.Version, p.MaxOrder, hashdist: EarlyAllocations.Hashdist(p, cmd));
            bool huge = false;
            if (h.Virt) { if (_vmalloc is not null) _bootHashVmalloc.Add(HashVmalloc(h.Bytes, cmd, out huge)); }
            else _bootHashPages.Add((AllocPages(Gfp.Atomic | Gfp.Zero, h.AllocOrder), h.AllocOrder));
            Log.Info((h with { Huge = huge }).Line(p.Version));
            if (h.Virt && _vmalloc is null) NoHashVmalloc(h);
        }
    }

    /// <summary>A hash table the kernel vmallocs, on a machine whose memory cannot be remapped: its pages are not taken.</summary>
    private void NoHashVmalloc(LargeSystemHash h) =>
        Log.Info($"kmem: {h.Name} hash table not allocated: it is vmalloc'ed ({h.Bytes} bytes) and this machine has no vmalloc window (no memfd)");

    /// <summary>
    /// __vmalloc(size, GFP_ATOMIC | __GFP_ZERO) on behalf of alloc_large_system_hash(), as /proc/vmallocinfo names it. It
    /// runs under the boot's interleave policy (<see cref="SetBootInterleave"/>), so on a NUMA machine the table's pages are
    /// spread over the memory nodes (<c>N0=… N1=…</c>).
    /// </summary>
    /// <remarks>
    /// From 5.18 the table is vmalloc_huge()'d ("page_alloc: use vmalloc_huge for large system hash"): PMD-sized blocks
    /// where the architecture maps huge vmalloc (HAVE_ARCH_HUGE_VMALLOC: x86_64 from 5.18, "x86/Kconfig: select
    /// HAVE_ARCH_HUGE_VMALLOC with HAVE_ARCH_HUGE_VMAP"; arm64 from 6.1, "arm64: support huge vmalloc mappings"; both
    /// present in 6.6's Kconfig) unless <c>nohugevmalloc</c> is given; its line then says <c>vmalloc hugepage</c>.
    /// </remarks>
    private nint HashVmalloc(ulong bytes, KernelCmdline cmd, out bool huge)
    {
        var p = Profile;
        bool allowed = (p.Arch == Arch.X86_64 && p.Version.IsAtLeast(5, 18) || p.Arch == Arch.Arm64 && p.Version.IsAtLeast(6, 1))
            && !cmd.Has("nohugevmalloc");
        return _vmalloc!.VmallocHuge(bytes, Gfp.Atomic | Gfp.Zero, new Core.CallSite("alloc_large_system_hash", "mm/page_alloc.c", 0), allowed, out huge);
    }

    /// <summary>Pages the boot's late hash tables hold (order-0 pages and vmalloc'ed areas are not counted here).</summary>
    internal long BootHashPages => _bootHashPages.Sum(p => 1L << p.Order);

    /// <summary>
    /// free_initmem() at the end of kernel_init(): free_reserved_area() over [__init_begin, __init_end), printed "Freeing
    /// %s memory: %ldK". 32-bit arm and riscv use free_initmem_default(): "unused kernel", from 5.14 "unused kernel image
    /// (initmem)" ("mm: Add the details for figuring out which parts of the kernel image is being freed"); arm64 says
    /// "unused kernel"; x86 "unused kernel" before 4.18, "unused kernel image" in 4.18-4.20 and "unused kernel image
    /// (initmem)" from 5.0 (free_kernel_image_pages()).
    /// </summary>
    private void FreeInitmem(MemoryLayout layout)
    {
        var (start, end) = layout.Early.Init;
        if (end <= start) return;
        var p = Profile;
        long pages = Pages.FreeReservedArea(start >> PhysicalMemory.PageShift, end >> PhysicalMemory.PageShift);
        string what = p.Arch switch
        {
            Arch.Arm64 => "unused kernel",
            Arch.X86_64 or Arch.I386 => p.Version.IsAtLeast(5, 0) ? "unused kernel image (initmem)" : p.Version.IsAtLeast(4, 18) ? "unused kernel image" : "unused kernel",
            _ => p.Version.IsAtLeast(5, 14) ? "unused kernel image (initmem)" : "unused kernel",
        };
        Log.Info($"Freeing {what} memory: {pages * 4}K");
    }
}
