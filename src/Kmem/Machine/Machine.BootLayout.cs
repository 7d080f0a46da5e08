// The "Virtual kernel memory layout:" block 32-bit arm's mem_init() prints right after the Memory: line
// (arch/arm/mm/init.c), in the releases that print it: every one Kmem models up to 5.0; "ARM: 8820/1: mm: Stop
// printing the virtual memory layout" (5.1) removed it. The vector page, the fixmap, the vmalloc window, lowmem up
// to high_memory, the pkmap pool (CONFIG_HIGHMEM), the modules area and the image's sections, with the addresses
// the modelled kernel has (not the host's). i386 printed its own block until 5.7; Kmem does not print that one (its
// fixmap and cpu_entry sizes come from the build's fixmap enum, which Kmem does not model).
using Kmem.Boot;

namespace Kmem;

public sealed partial class Machine
{
    /// <summary>arm's TEXT_OFFSET (arch/arm/Makefile textofs-y): _text is PAGE_OFFSET + 0x8000.</summary>
    private const ulong ArmTextOffset = 0x8000;

    /// <summary>Prints the block when the release and architecture print one.</summary>
    private void PrintVirtualLayout(MemoryLayout layout)
    {
        var p = Profile;
        if (p.Arch != Arch.Arm || p.Version.IsAtLeast(5, 1)) return;
        foreach (var line in ArmVirtualLayout(p, layout)) Log.Printk(LogLevel.Notice, line);
    }

    /// <summary>
    /// The lines of arm's block (MLK: kB, MLM: MB, both truncated; the sections MLK_ROUNDUP: kB rounded up). The section
    /// addresses print as %p: from 4.15 hashed, and this early in boot "(ptrval)" ("printk: hash addresses printed with
    /// %p"); before, the raw pointer.
    /// </summary>
    internal static IEnumerable<string> ArmVirtualLayout(MachineProfile p, MemoryLayout layout)
    {
        ulong pageOffset = p.PageOffset;
        ulong physOffset = layout.SpanStart;
        ulong VA(ulong phys) => phys - physOffset + pageOffset;
        // high_memory: the end of lowmem (arm_lowmem_limit) in the linear map.
        ulong highMemory = VA(Math.Min(layout.SpanEnd, p.LowmemLimit ?? layout.SpanEnd));
        // VMALLOC_END 0xff800000 (arch/arm/include/asm/pgtable.h); VMALLOC_START high_memory + 8 MiB, 8 MiB aligned.
        const ulong vmallocEnd = 0xff800000UL;
        ulong vmallocStart = vmallocEnd - VmallocWindowBytes(p, layout);
        // FIXADDR_START..FIXADDR_END 0xffc00000..0xfff00000 since the fixmap grew for the kmap_atomic slots in 3.19;
        // before, FIXADDR_START 0xfff00000 to FIXADDR_TOP 0xfffe0000 (arch/arm/include/asm/fixmap.h).
        (ulong fixStart, ulong fixEnd) = p.Version.IsAtLeast(3, 19) ? (0xffc00000UL, 0xfff00000UL) : (0xfff00000UL, 0xfffe0000UL);
        bool highmem = p.Config.IsEnabled("HIGHMEM");
        // PKMAP_BASE = PAGE_OFFSET - PMD_SIZE, LAST_PKMAP = PTRS_PER_PTE (512) pages (arch/arm/include/asm/highmem.h).
        ulong pkmapBase = pageOffset - (2UL << 20);
        ulong pkmapEnd = pkmapBase + (512UL << 12);
        // MODULES_VADDR = PAGE_OFFSET - 16 MiB, 8 MiB with THUMB2_KERNEL (the reach of its relocations);
        // MODULES_END = PAGE_OFFSET - PMD_SIZE with HIGHMEM, else PAGE_OFFSET (arch/arm/include/asm/memory.h).
        ulong modulesVaddr = pageOffset - (p.Config.IsEnabled("THUMB2_KERNEL") ? 8UL << 20 : 16UL << 20);
        ulong modulesEnd = highmem ? pkmapBase : pageOffset;

        static string Mlk(string name, ulong b, ulong t) => $"    {name,-8}: 0x{b:x8} - 0x{t:x8}   ({(t - b) >> 10,4} kB)";
        static string Mlm(string name, ulong b, ulong t) => $"    {name,-8}: 0x{b:x8} - 0x{t:x8}   ({(t - b) >> 20,4} MB)";
        bool hashed = p.Version.IsAtLeast(4, 15);
        string Section(string name, ulong b, ulong t) =>
            $"{name,11} : {(hashed ? "0x(ptrval)" : $"0x{b:x8}")} - {(hashed ? "0x(ptrval)" : $"0x{t:x8}")}   ({(t - b + 1023) / 1024,4} kB)";

        yield return "Virtual kernel memory layout:";
        yield return Mlk("vector", 0xffff0000UL, 0xffff1000UL);   // CONFIG_VECTORS_BASE .. + PAGE_SIZE
        yield return Mlk("fixmap", fixStart, fixEnd);
        yield return Mlm("vmalloc", vmallocStart, vmallocEnd);
        yield return Mlm("lowmem", pageOffset, highMemory);
        if (highmem) yield return Mlm("pkmap", pkmapBase, pkmapEnd);
        yield return Mlm("modules", modulesVaddr, modulesEnd);

        // The image (ArmImage lays it out from the profile's section sizes): _text at PAGE_OFFSET + TEXT_OFFSET, _etext
        // after the code, __init_begin..__init_end, _sdata (= __init_end) .. _edata, __bss_start (cache-line aligned) ..
        // __bss_stop.
        var k = p.Kernel ?? new KernelImage(physOffset + ArmTextOffset, 0, 0, 0, 0, 0);
        var img = ArmImage.Of(k);
        ulong text = Math.Min(physOffset + ArmTextOffset, k.Base);
        ulong etext = k.Base + k.Code;
        ulong bssStart = (img.InitEnd + k.RwData + 63) & ~63UL;
        yield return Section(".text", VA(text), VA(etext));
        yield return Section(".init", VA(img.InitBegin), VA(img.InitEnd));
        yield return Section(".data", VA(img.InitEnd), VA(img.InitEnd + k.RwData));
        yield return Section(".bss", VA(bssStart), VA(bssStart + k.Bss));
    }
}
