// Fault injection on a machine: fail_page_alloc and failslab (the kernel's fault_attr), armed at boot with
// fail_page_alloc=/failslab=interval,probability,space,times or at run time through the attributes, and shown
// in /sys/kernel/debug/fail_page_alloc/ and /sys/kernel/debug/failslab/.
using Kmem.Boot;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>fail_page_alloc: forced page allocation failures (see <see cref="FaultAttr"/>).</summary>
    public FaultAttr FailPageAlloc
    {
        get
        {
            ThrowIfDisposed();
            return Pages.FailPageAlloc;
        }
    }

    /// <summary>failslab: forced slab and kmalloc failures (see <see cref="FaultAttr"/>).</summary>
    public FaultAttr Failslab
    {
        get
        {
            ThrowIfDisposed();
            return Slab.Failslab;
        }
    }

    private void InitFaultInjection(KernelCmdline cmdline)
    {
        foreach (var (attr, pages) in new[] { (Pages.FailPageAlloc, true), (Slab.Failslab, false) })
        {
            foreach (var (file, read) in attr.Files(pages)) ProcFs.Register($"/sys/kernel/debug/{attr.Name}/{file}", read);
            if (cmdline[attr.Name] is { } v) attr.Setup("cmdline", v);
        }
    }
}
