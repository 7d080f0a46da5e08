// The kernel configuration being modelled (a profile's "config"): CONFIG_ switches by their names without the
// prefix, starting from what the architecture's defconfig of the profile's version has. Kmem acts on the options
// listed in KernelConfigOptions; any other well-formed option is kept (and printed by ToDotConfig) but has no effect.
using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Kmem.Core;

namespace Kmem;

/// <summary>
/// A kernel configuration: <c>CONFIG_*</c> values by name without the prefix (<c>HIGHMEM</c>, <c>NUMA</c>,
/// <c>FORCE_MAX_ZONEORDER</c>). A value is <c>"y"</c>, <c>"n"</c>, a decimal number or a string, as in a
/// <c>.config</c>; an option that is not set reads as <c>"n"</c>. Get the defaults with <see cref="Defconfig"/> and
/// change them with <see cref="With(IEnumerable{KeyValuePair{string, object}})"/>. The options Kmem acts on, with their meaning, are in
/// <see cref="ModelledOptions"/>; docs/profiles.md lists them.
/// </summary>
public sealed partial class KernelConfig : IReadOnlyDictionary<string, string>
{
    private readonly SortedDictionary<string, string> _values;

    private KernelConfig(SortedDictionary<string, string> values, Arch arch, KernelVersion version)
    {
        _values = values;
        Arch = arch;
        Version = version;
    }

    /// <summary>The architecture this configuration is for.</summary>
    public Arch Arch { get; }

    /// <summary>The kernel version this configuration is for.</summary>
    public KernelVersion Version { get; }

    /// <summary>The names of the options Kmem acts on (without the <c>CONFIG_</c> prefix), in alphabetical order.</summary>
    public static IReadOnlyList<string> ModelledOptions { get; } = KernelConfigOptions.All.Select(o => o.Name).Order(StringComparer.Ordinal).ToArray();

    /// <summary>What a modelled option means to Kmem, or null for an option Kmem does not act on.</summary>
    public static string? Describe(string name) => KernelConfigOptions.Find(name)?.Description;

    /// <summary>
    /// The configuration of the architecture's defconfig (<c>x86_64_defconfig</c>, <c>i386_defconfig</c>,
    /// arm64 <c>defconfig</c>, arm <c>multi_v7_defconfig</c>, riscv <c>defconfig</c> / <c>rv32_defconfig</c>) at
    /// <paramref name="version"/>, with each option Kmem models that exists there, as that release's Kconfig resolves it.
    /// </summary>
    public static KernelConfig Defconfig(Arch arch, KernelVersion version)
    {
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var o in KernelConfigOptions.All)
            if (o.Exists(arch, version)) values[o.Name] = o.Default(arch, version);
        return new KernelConfig(values, arch, version);
    }

    /// <summary>
    /// This configuration with the options given set (<c>true</c>/<c>false</c>, a number, or a string). Options that
    /// depend on a changed one follow it as Kconfig would (turning off <c>MEMCG</c> turns off <c>MEMCG_KMEM</c>,
    /// <c>CMA</c> off turns off <c>DMA_CMA</c>).
    /// </summary>
    /// <exception cref="ArgumentException">A name that is not a CONFIG_ name, a value of the wrong kind for a
    /// modelled option, or an option the architecture or version does not have turned on (the message says which).</exception>
    public KernelConfig With(IEnumerable<KeyValuePair<string, object>> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var values = new SortedDictionary<string, string>(_values, StringComparer.Ordinal);
        var given = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (rawName, rawValue) in options)
        {
            string name = Normalize(rawName);
            string value = ValueText(name, rawValue);
            var option = KernelConfigOptions.Find(name, Arch, Version);
            if (option is not null)
            {
                option.Check(name, value, Arch, Version);
                name = option.Name;                     // an alias (FORCE_MAX_ZONEORDER) lands on the option's name
            }
            if (!given.Add(name)) throw new ArgumentException($"CONFIG_{name} is given twice", nameof(options));
            values[name] = value;
        }
        KernelConfigOptions.ApplyDependencies(values, given, Arch, Version);
        return new KernelConfig(values, Arch, Version);
    }

    /// <summary>This configuration with one option set; see <see cref="With(IEnumerable{KeyValuePair{string, object}})"/>.</summary>
    public KernelConfig With(string name, object value) => With([new KeyValuePair<string, object>(name, value)]);

    /// <summary>True when the option is <c>y</c> (or <c>m</c>).</summary>
    public bool IsEnabled(string name) => _values.TryGetValue(Normalize(name), out var v) && v is "y" or "m";

    /// <summary>The option's numeric value, or null when it is not set or not a number.</summary>
    public long? Number(string name) =>
        _values.TryGetValue(Normalize(name), out var v) && long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) ? n : null;

    /// <summary>The option's value as a <c>.config</c> holds it, or <c>"n"</c> when it is not set.</summary>
    public string this[string key] => _values.TryGetValue(Normalize(key), out var v) ? v : "n";

    /// <summary>The configuration as a <c>.config</c> fragment: <c>CONFIG_X=y</c>, <c>CONFIG_N=9</c>, <c># CONFIG_Y is not set</c>.</summary>
    public string ToDotConfig()
    {
        var sb = new StringBuilder();
        foreach (var (k, v) in _values)
            sb.Append(v == "n" ? $"# CONFIG_{k} is not set\n" : v is "y" or "m" || IsNumber(v) ? $"CONFIG_{k}={v}\n" : $"CONFIG_{k}=\"{v}\"\n");
        return sb.ToString();
    }

    /// <inheritdoc/>
    public IEnumerable<string> Keys => _values.Keys;
    /// <inheritdoc/>
    public IEnumerable<string> Values => _values.Values;
    /// <inheritdoc/>
    public int Count => _values.Count;
    /// <inheritdoc/>
    public bool ContainsKey(string key) => _values.ContainsKey(Normalize(key));
    /// <inheritdoc/>
    public bool TryGetValue(string key, out string value)
    {
        bool found = _values.TryGetValue(Normalize(key), out var v);
        value = v ?? "n";
        return found;
    }
    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _values.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    [GeneratedRegex("^[A-Z0-9_]+$")]
    private static partial Regex NameRegex();

    /// <summary>Strips a <c>CONFIG_</c> prefix and checks the name.</summary>
    private static string Normalize(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.StartsWith("CONFIG_", StringComparison.Ordinal)) name = name[7..];
        if (name.Length == 0 || !NameRegex().IsMatch(name))
            throw new ArgumentException($"'{name}' is not a CONFIG_ option name (capital letters, digits and '_')", nameof(name));
        return name;
    }

    private static bool IsNumber(string v) => long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
        || (v.StartsWith("0x", StringComparison.Ordinal) && v.Length > 2 && v.Skip(2).All(char.IsAsciiHexDigit));

    /// <summary>A value as a .config holds it: booleans become y/n, numbers their decimal text.</summary>
    private static string ValueText(string name, object value) => value switch
    {
        bool b => b ? "y" : "n",
        int or long or short or byte or uint or ulong => Convert.ToString(value, CultureInfo.InvariantCulture)!,
        string s when s.Any(c => c == '"' || c == '\\' || char.IsControl(c)) =>
            throw new ArgumentException($"CONFIG_{name}: a string value may not hold quotes, backslashes or control characters", nameof(value)),
        string s => s,
        null => throw new ArgumentException($"CONFIG_{name} has no value", nameof(value)),
        _ => throw new ArgumentException($"CONFIG_{name}: a value must be true/false, a whole number or a string, not {value.GetType().Name}", nameof(value)),
    };
}
