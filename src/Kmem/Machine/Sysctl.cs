// A machine's tunables in one place, as /proc/sys is to Linux: the kernel's own sysctls (Vm, mirroring
// /proc/sys/vm) apart from the knobs Kmem adds (Kmem: waits and switches where the kernel hard-codes a
// value or shares a counter with the rest of the system). A bad value is reported in the log and refused.
using Kmem.Core;
using Kmem.DmaHeaps;
using Kmem.Paging;

namespace Kmem;

/// <summary>
/// A sysctl write that the machine refuses (the value is outside the knob's range): the kernel's answer is
/// EINVAL; Kmem also writes the reason to the machine's log. The knob keeps its value.
/// </summary>
public sealed class SysctlException : KmemException
{
    /// <summary>Creates the exception for the knob <paramref name="key"/> (e.g. <c>vm.min_free_kbytes</c>).</summary>
    public SysctlException(string key, string problem)
        : base(OneLine($"sysctl: setting key \"{key}\": Invalid argument ({problem})"))
    {
        Key = key;
        Problem = problem;
    }

    /// <summary>The knob, written as <c>sysctl</c> names it (<c>vm.min_free_kbytes</c>, <c>kmem.reclaim_retry_wait</c>).</summary>
    public string Key { get; }

    /// <summary>Why the value was refused.</summary>
    public string Problem { get; }
}

/// <summary>
/// The tunables of a machine (<see cref="Machine.Sysctl"/>), grouped as <c>sysctl</c> groups them:
/// <see cref="Vm"/> holds the kernel's /proc/sys/vm knobs (the same values the machine's <see cref="ProcFs"/>
/// shows under <c>/proc/sys/vm/</c>), <see cref="Kmem"/> the knobs that only Kmem has.
/// Every member throws <see cref="ObjectDisposedException"/> once the machine is disposed.
/// </summary>
public sealed class Sysctl
{
    private readonly KernelLife _life;
    private readonly VmSysctl _vm;
    private readonly KmemSysctl _kmem;

    internal Sysctl(PageAllocator pages, long maxMinFreeKbytes, IEnumerable<CmaArea> cma, DeferredFree deferredFree, DmaBufCore dmaBufs,
        Highmem.PkmapPool pkmap)
    {
        _life = pages.Life;
        _vm = new VmSysctl(pages, maxMinFreeKbytes);
        _kmem = new KmemSysctl(pages, cma, deferredFree, dmaBufs, pkmap);
    }

    /// <summary>The kernel's virtual-memory sysctls (<c>/proc/sys/vm</c>): <c>vm.min_free_kbytes</c> and the ones Kmem shows read-only.</summary>
    public VmSysctl Vm => _life.Live(_vm);

    /// <summary>Kmem's own knobs (no file under the kernel's /proc/sys): retry waits, the deferred-free worker, dma-buf inode numbers.</summary>
    public KmemSysctl Kmem => _life.Live(_kmem);

    /// <summary>Reports a refused write in the machine's log and throws <see cref="SysctlException"/>.</summary>
    internal static SysctlException Refuse(KernelLog log, string key, string problem)
    {
        var e = new SysctlException(key, problem);
        log.Err(e.Message);
        return e;
    }
}
