// The kernel command line of a profile or a boot: "param[=value]" words separated by spaces. The
// parameters Kmem models are checked here (a bad value is a ProfileException naming the parameter);
// the others are kept and listed in the log as the kernel does for parameters it does not know.
using System.Globalization;
using Kmem.Slab;

namespace Kmem.Boot;

/// <summary>The parsed kernel command line.</summary>
internal sealed class KernelCmdline
{
    private static readonly char[] s_spaces = [' ', '\t', '\n', '\v', '\f', '\r'];
    private readonly Dictionary<string, string?> _params = new(StringComparer.Ordinal);

    /// <summary>slub_debug, when given (null value: the option without '='), for a kernel with CONFIG_SLUB_DEBUG and without
    /// CONFIG_SLUB_DEBUG_ON; the machine resolves it against the config (<see cref="SlubDebugOptions.Resolve"/>).</summary>
    public SlubDebugOptions SlubDebug { get; private set; } = SlubDebugOptions.None;
    /// <summary>The slub_debug word as given, or null when the command line has none.</summary>
    public string? SlubDebugWord { get; private set; }
    /// <summary>The value after <c>slub_debug=</c> (null: the word without '=').</summary>
    public string? SlubDebugValue { get; private set; }
    public int SlubMinOrder { get; private set; }
    public int SlubMaxOrder { get; private set; } = 3;
    public int SlubMinObjects { get; private set; }
    /// <summary>slab_nomerge/slab_merge as last given, or null (the config's SLAB_MERGE_DEFAULT then decides).</summary>
    public bool? SlabMerge { get; private set; }
    /// <summary>slab_nomerge was the last of the two given.</summary>
    public bool SlabNoMerge => SlabMerge == false;
    /// <summary>dma_debug=on|off, or null when not given (the profile's <c>dma_debug</c> then decides).</summary>
    public bool? DmaDebug { get; private set; }
    /// <summary>cgroup.memory=nokmem: no kernel memory accounting, so no kmalloc-cg-* caches (5.14 on).</summary>
    public bool CgroupNoKmem { get; private set; }
    /// <summary>The values of every <c>rk_dma_heap_cma</c> word in order (null: the word without '='); read them with
    /// <see cref="RkDmaHeapCma"/> on a kernel with CONFIG_DMABUF_HEAPS_ROCKCHIP (elsewhere the word is an unknown one).</summary>
    public List<string?> RkDmaHeapCmaValues { get; } = [];
    /// <summary>The first <c>rk_dma_heap_cma</c> word as given, or null.</summary>
    public string? RkDmaHeapCmaWord { get; private set; }
    /// <summary>The values of every <c>cma</c> word in order (null: the word without '='); read them with <see cref="CmaParam"/>
    /// on a kernel with CONFIG_DMA_CMA.</summary>
    public List<string?> CmaValues { get; } = [];
    /// <summary>The first <c>cma</c> word as given, or null.</summary>
    public string? CmaWord { get; private set; }
    /// <summary>Words Kmem does not model.</summary>
    public List<string> Unknown { get; } = [];

    /// <summary>The words as given.</summary>
    public string Text { get; private set; } = "";

    /// <summary>Parses and checks; <paramref name="field"/> names the source in errors.</summary>
    public static KernelCmdline Parse(string text, string field)
    {
        var c = new KernelCmdline { Text = text.Trim(s_spaces) };
        // Words are separated by white space as the kernel's next_arg() sees it (isspace: blank, \t \n \v \f \r).
        foreach (string word in text.Split(s_spaces, StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = word.IndexOf('=');
            string key = eq < 0 ? word : word[..eq];
            string? value = eq < 0 ? null : word[(eq + 1)..];
            c._params[key] = value;
            switch (key)
            {
                case "slub_debug":
                    c.SlubDebug = SlubDebugOptions.Parse(value);
                    c.SlubDebugWord = word;
                    c.SlubDebugValue = value;
                    break;
                case "slub_min_order": c.SlubMinOrder = Int(field, key, value, 0, 10); break;
                case "slub_max_order": c.SlubMaxOrder = Int(field, key, value, 0, 10); break;
                case "slub_min_objects": c.SlubMinObjects = Int(field, key, value, 0, 32767); break;
                case "slab_nomerge" or "slub_nomerge": c.SlabMerge = false; break;
                case "slab_merge" or "slub_merge": c.SlabMerge = true; break;
                case "dma_debug":
                    c.DmaDebug = value switch
                    {
                        "on" => true,
                        "off" => false,
                        _ => throw new ProfileException(field, $"dma_debug={value} must be on or off"),
                    };
                    break;
                case "cgroup.memory": // cgroup_memory(): comma-separated words; nokmem is the one Kmem acts on
                    if ((value ?? "").Split(',').Contains("nokmem")) c.CgroupNoKmem = true;
                    break;
                case "rk_dma_heap_cma":                                  // early_param of Rockchip's rk-dma-cma.c, checked on use
                    c.RkDmaHeapCmaValues.Add(value);
                    c.RkDmaHeapCmaWord ??= word;
                    break;
                case "cma":                                              // early_param of kernel/dma/contiguous.c, checked on use
                    c.CmaValues.Add(value);
                    c.CmaWord ??= word;
                    break;
                case "fail_page_alloc" or "failslab": break;           // read by the machine (FaultAttr.Setup)
                default: c.Unknown.Add(word); break;
            }
        }
        if (c.SlubMinOrder > c.SlubMaxOrder) c.SlubMaxOrder = c.SlubMinOrder; // the kernel raises max to min
        return c;
    }

    private static int Int(string field, string key, string? value, int min, int max)
    {
        if (value is null || !int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new ProfileException(field, $"{key}={value} must be a whole number in {min}..{max}");
        return v;
    }

    /// <summary>
    /// early_dma_heap_cma() (drivers/dma-buf/rk_heaps/rk-dma-cma.c, Rockchip's 5.10 tree) run over every
    /// <c>rk_dma_heap_cma=SIZE[@BASE]</c> in order, as parse_early_param() does: each one sets the size, and the base
    /// only when it has '@', so a later word without '@' keeps an earlier base. Returns (0, 0) when none was given
    /// (rk_dma_heap_cma_setup() then takes its 32 MiB default); a size of 0 also means the default, a base of 0 no
    /// fixed base. The kernel ignores what memparse() leaves behind; Kmem refuses it.
    /// </summary>
    /// <exception cref="ProfileException">A word without a value (the driver's "Config string not provided"), an empty
    /// value, or one that is not SIZE[@BASE].</exception>
    public (ulong Size, ulong Base) RkDmaHeapCma(string field)
    {
        ulong size = 0, @base = 0;
        foreach (string? v in RkDmaHeapCmaValues)
        {
            if (v is null) throw new ProfileException(field, "rk_dma_heap_cma: Config string not provided");
            int pos = 0;
            if (!TryMemparse(v, ref pos, out size) || (pos < v.Length && v[pos] != '@'))
                throw new ProfileException(field, $"rk_dma_heap_cma={v} is not SIZE[@BASE] (e.g. 32M or 32M@0x2800000)");
            if (pos == v.Length) continue;
            pos++;
            if (!TryMemparse(v, ref pos, out @base) || pos != v.Length)
                throw new ProfileException(field, $"rk_dma_heap_cma={v}: the base after '@' is not an address (e.g. 0x2800000)");
        }
        return (size, @base);
    }

    /// <summary>
    /// early_cma() (kernel/dma/contiguous.c, 5.10) run over every <c>cma=nn[KMG][@start[KMG][-end[KMG]]]</c> in order: the
    /// size, and with '@' the base and (with '-') the limit; a base without a limit makes the limit base + size, which
    /// dma_contiguous_reserve() takes as "fixed". Null when none was given (size_cmdline stays -1).
    /// </summary>
    /// <exception cref="ProfileException">A word without a value (the kernel's "Config string not provided") or a value that
    /// is not of that form.</exception>
    public (ulong Size, ulong Base, ulong Limit)? CmaParam(string field)
    {
        (ulong Size, ulong Base, ulong Limit)? r = null;
        foreach (string? v in CmaValues)
        {
            if (v is null) throw new ProfileException(field, "cma: Config string not provided");
            int pos = 0;
            ulong @base = r?.Base ?? 0, limit = r?.Limit ?? 0;
            if (!TryMemparse(v, ref pos, out ulong size) || (pos < v.Length && v[pos] != '@'))
                throw new ProfileException(field, $"cma={v} is not nn[KMG][@start[KMG][-end[KMG]]]");
            if (pos < v.Length)
            {
                pos++;
                if (!TryMemparse(v, ref pos, out @base) || (pos < v.Length && v[pos] != '-'))
                    throw new ProfileException(field, $"cma={v}: the start after '@' is not an address");
                if (pos == v.Length) limit = @base + size;
                else
                {
                    pos++;
                    if (!TryMemparse(v, ref pos, out limit) || pos != v.Length)
                        throw new ProfileException(field, $"cma={v}: the end after '-' is not an address");
                }
            }
            r = (size, @base, limit);
        }
        return r;
    }

    /// <summary>
    /// memparse() (lib/cmdline.c): a number as simple_strtoull() reads it with base 0 (0x… hex, a leading 0 octal, else
    /// decimal), then one optional K, M, G, T, P or E (either case) that multiplies by 1024 per step. False when there
    /// are no digits or the value overflows 64 bits (the kernel would wrap; Kmem refuses).
    /// </summary>
    internal static bool TryMemparse(string s, ref int pos, out ulong value)
    {
        value = 0;
        int radix = 10, start = pos;
        if (pos + 1 < s.Length && s[pos] == '0' && (s[pos + 1] is 'x' or 'X') && pos + 2 < s.Length && Uri.IsHexDigit(s[pos + 2])) { radix = 16; pos += 2; }
        else if (pos < s.Length && s[pos] == '0') radix = 8;
        int digits = 0;
        while (pos < s.Length)
        {
            int d = s[pos] switch
            {
                >= '0' and <= '9' => s[pos] - '0',
                >= 'a' and <= 'f' => s[pos] - 'a' + 10,
                >= 'A' and <= 'F' => s[pos] - 'A' + 10,
                _ => 99,
            };
            if (d >= radix) break;
            if (value > (ulong.MaxValue - (ulong)d) / (ulong)radix) return false;
            value = value * (ulong)radix + (ulong)d;
            pos++;
            digits++;
        }
        if (digits == 0) { pos = start; return false; }
        int shift = pos < s.Length ? char.ToUpperInvariant(s[pos]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, 'P' => 50, 'E' => 60, _ => 0 } : 0;
        if (shift > 0)
        {
            if (value > ulong.MaxValue >> shift) return false;
            value <<= shift;
            pos++;
        }
        return true;
    }

    /// <summary>The value of a parameter Kmem keeps for later layers, or null.</summary>
    public string? this[string key] => _params.GetValueOrDefault(key);

    /// <summary>True when the command line has the parameter, with or without a value.</summary>
    public bool Has(string key) => _params.ContainsKey(key);
}
