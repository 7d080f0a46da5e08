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

    /// <summary>The value of a parameter Kmem keeps for later layers, or null.</summary>
    public string? this[string key] => _params.GetValueOrDefault(key);
}
