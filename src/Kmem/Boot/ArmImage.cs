// The 32-bit arm kernel image's layout from the section sizes the "Memory:" line prints.
using Kmem.Core;

namespace Kmem.Boot;

/// <summary>
/// The 32-bit arm image as arch/arm/kernel/vmlinux.lds.S lays it out without XIP or STRICT_KERNEL_RWX: .text from _stext
/// (the .head.text before it stays inside the first reserved page), RO_DATA(PAGE_SIZE) page-aligned at both ends, then
/// __ex_table, the ARM unwind tables and the notes (<see cref="KernelImage.Tables"/>), __init_begin page-aligned, the init
/// sections up to __init_end (THREAD_SIZE-aligned; the printed init includes that), _sdata, RW_DATA to _edata, the BSS
/// (cache-line aligned) and _end.
/// </summary>
internal readonly record struct ArmImage(ulong Stext, ulong StartRodata, ulong InitBegin, ulong InitEnd, ulong End)
{
    private const ulong Page = 1UL << KernelFacts.PageShift;

    public static ArmImage Of(KernelImage k)
    {
        static ulong Up(ulong v, ulong a) => (v + a - 1) & ~(a - 1);
        ulong stext = k.Base;
        ulong startRodata = Up(stext + k.Code, Page);
        ulong endRodata = Up(startRodata + k.RoData, Page);
        ulong tables = k.Tables ?? Up(k.Code / 24, Page);
        ulong initBegin = Up(endRodata + tables, Page);
        ulong initEnd = Up(initBegin + k.Init, Page);
        ulong bssStart = Up(initEnd + k.RwData, 64);
        return new ArmImage(stext, startRodata, initBegin, initEnd, bssStart + k.Bss);
    }
}
