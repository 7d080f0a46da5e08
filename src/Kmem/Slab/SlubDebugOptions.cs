// The slub_debug= boot parameter (Linux 5.10 setup_slub_debug(), parse_slub_debug_flags(),
// kmem_cache_flags()): blocks "<letters>[,<cache>[,<cache>...]]" separated by ';'. A block without a
// cache list sets the flags of every cache; a cache named in a block gets that block's flags only.
// The flags of caches no block names start from the config: all of FZPU with CONFIG_SLUB_DEBUG_ON, else
// none; without CONFIG_SLUB_DEBUG there is no slub_debug at all (see Resolve).
namespace Kmem.Slab;

/// <summary>A parsed <c>slub_debug=</c> value.</summary>
internal sealed class SlubDebugOptions
{
    /// <summary>DEBUG_DEFAULT_FLAGS: what <c>slub_debug</c> without letters selects (FZPU).</summary>
    public const SlabFlags DefaultFlags = SlabFlags.ConsistencyChecks | SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser;

    private readonly List<(SlabFlags Flags, string[] Names)> _blocks = [];

    /// <summary>Flags for caches no block names.</summary>
    public SlabFlags Global { get; private set; }

    /// <summary>slub_debug=O: drop debugging for caches whose minimum order it would raise.</summary>
    public bool DisableHigherOrderDebug { get; private set; }

    /// <summary>Problems found while parsing (the kernel's "slub_debug option 'x' unknown. skipped").</summary>
    public List<string> Warnings { get; } = [];

    public static SlubDebugOptions None { get; } = new();

    /// <summary>
    /// The debugging in force at boot: none without CONFIG_SLUB_DEBUG (the parameter is only registered with it); else
    /// the parameter when given (<paramref name="value"/> as <see cref="Parse"/> takes it), over CONFIG_SLUB_DEBUG_ON's
    /// FZPU for every cache.
    /// </summary>
    public static SlubDebugOptions Resolve(bool built, bool onByDefault, bool given, string? value)
    {
        if (!built) return None;
        if (given) return Parse(value, onByDefault ? DefaultFlags : 0);
        return onByDefault ? new SlubDebugOptions { Global = DefaultFlags } : None;
    }

    /// <summary>Parses the value after <c>slub_debug</c> (null or empty: the option without a value, i.e. FZPU for all);
    /// <paramref name="configDefault"/> is what caches no block names get when no block sets it (CONFIG_SLUB_DEBUG_ON's).</summary>
    public static SlubDebugOptions Parse(string? value, SlabFlags configDefault = 0)
    {
        var o = new SlubDebugOptions();
        if (string.IsNullOrEmpty(value))
        {
            o.Global = DefaultFlags;
            return o;
        }
        bool globalChanged = false;
        foreach (string block in value.Split(';'))
        {
            int comma = block.IndexOf(',');
            string letters = comma < 0 ? block : block[..comma];
            SlabFlags flags = letters.Length == 0 ? DefaultFlags : 0;
            foreach (char ch in letters)
            {
                switch (char.ToLowerInvariant(ch))
                {
                    case '-': flags = 0; break;
                    case 'f': flags |= SlabFlags.ConsistencyChecks; break;
                    case 'z': flags |= SlabFlags.RedZone; break;
                    case 'p': flags |= SlabFlags.Poison; break;
                    case 'u': flags |= SlabFlags.StoreUser; break;
                    case 't': flags |= SlabFlags.Trace; break;
                    case 'o': o.DisableHigherOrderDebug = true; break;
                    case 'a': o.Warnings.Add("slub_debug option 'a' (failslab) is not modelled. skipped"); break;
                    default: o.Warnings.Add($"slub_debug option '{ch}' unknown. skipped"); break;
                }
            }
            if (comma < 0)
            {
                o.Global = flags;
                globalChanged = true;
            }
            else
            {
                var names = block[(comma + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                o._blocks.Add((flags, names));
            }
        }
        if (!globalChanged) o.Global = configDefault;
        return o;
    }

    /// <summary>kmem_cache_flags(): the debug flags a cache named <paramref name="name"/> gets.</summary>
    public SlabFlags For(string name)
    {
        foreach (var (flags, names) in _blocks)
            foreach (string pattern in names)
            {
                int star = pattern.IndexOf('*');
                bool match = star >= 0 ? name.StartsWith(pattern[..star], StringComparison.Ordinal) : name == pattern;
                if (match) return flags;
            }
        return Global;
    }
}
