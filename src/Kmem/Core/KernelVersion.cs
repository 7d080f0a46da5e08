// The version of the kernel being modelled (a profile's "version"): Kmem follows each behaviour and /proc
// format from the release that introduced it, so every layer compares against this one value.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Kmem;

/// <summary>
/// A Linux kernel release: <c>major.minor</c>, the stable patch level and an optional local suffix, as
/// <c>uname -r</c> prints it (<c>5.10.110</c>, <c>5.15.0-91-generic</c>). Comparisons use major, minor and patch;
/// the suffix is only printed. Kmem models 3.10 to 6.12 (<see cref="Oldest"/>, <see cref="Newest"/>).
/// </summary>
public readonly partial record struct KernelVersion : IComparable<KernelVersion>
{
    /// <summary>Creates a version.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative number.</exception>
    public KernelVersion(int major, int minor, int patch = 0, string suffix = "")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(major);
        ArgumentOutOfRangeException.ThrowIfNegative(minor);
        ArgumentOutOfRangeException.ThrowIfNegative(patch);
        ArgumentNullException.ThrowIfNull(suffix);
        Major = major;
        Minor = minor;
        Patch = patch;
        _suffix = suffix;
    }

    /// <summary>The major number (5 in 5.10.110).</summary>
    public int Major { get; }
    /// <summary>The minor number (10 in 5.10.110).</summary>
    public int Minor { get; }
    /// <summary>The stable patch level (110 in 5.10.110; 0 for a mainline release).</summary>
    public int Patch { get; }
    /// <summary>The local version after the numbers, with its leading '-' or '+' (<c>-91-generic</c>), or empty.</summary>
    public string Suffix => _suffix ?? "";
    private readonly string? _suffix;

    /// <summary>The version a profile without <c>"version"</c> models: 5.10.</summary>
    public static KernelVersion Default { get; } = new(5, 10);
    /// <summary>The oldest version Kmem models: 3.10.</summary>
    public static KernelVersion Oldest { get; } = new(3, 10);
    /// <summary>The newest version Kmem models: 6.12.</summary>
    public static KernelVersion Newest { get; } = new(6, 12, int.MaxValue);

    /// <summary>True when this release is <paramref name="major"/>.<paramref name="minor"/> or later (the kernel's
    /// <c>LINUX_VERSION_CODE &gt;= KERNEL_VERSION(major, minor, 0)</c>).</summary>
    public bool IsAtLeast(int major, int minor) => Major > major || (Major == major && Minor >= minor);

    /// <summary>True when this release lies in the range Kmem models.</summary>
    public bool IsSupported => IsAtLeast(3, 10) && !IsAtLeast(6, 13);

    /// <summary>The release as <c>uname -r</c> prints it: always three numbers (<c>5.10.0</c>), then the suffix.</summary>
    public string Release => string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}.{Patch}{Suffix}");

    /// <summary><c>major.minor</c>, or <c>major.minor.patch</c> when the patch level is not 0, then the suffix.</summary>
    public override string ToString() => Patch == 0
        ? string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}{Suffix}")
        : string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}.{Patch}{Suffix}");

    /// <inheritdoc/>
    public int CompareTo(KernelVersion other)
    {
        int c = Major.CompareTo(other.Major);
        if (c == 0) c = Minor.CompareTo(other.Minor);
        return c != 0 ? c : Patch.CompareTo(other.Patch);
    }

    /// <summary>Equal in major, minor and patch (the suffix is only printed).</summary>
    public bool Equals(KernelVersion other) => Major == other.Major && Minor == other.Minor && Patch == other.Patch;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Major, Minor, Patch);

    /// <summary>Orders two versions.</summary>
    public static bool operator <(KernelVersion a, KernelVersion b) => a.CompareTo(b) < 0;
    /// <summary>Orders two versions.</summary>
    public static bool operator >(KernelVersion a, KernelVersion b) => a.CompareTo(b) > 0;
    /// <summary>Orders two versions.</summary>
    public static bool operator <=(KernelVersion a, KernelVersion b) => a.CompareTo(b) <= 0;
    /// <summary>Orders two versions.</summary>
    public static bool operator >=(KernelVersion a, KernelVersion b) => a.CompareTo(b) >= 0;

    [GeneratedRegex(@"^v?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?([-+][A-Za-z0-9._+-]*)?$")]
    private static partial Regex VersionRegex();

    /// <summary>Reads <c>5.10</c>, <c>5.10.110</c>, <c>v6.6</c> or a <c>uname -r</c> string such as <c>5.15.0-91-generic</c>.</summary>
    public static bool TryParse(string? text, out KernelVersion version)
    {
        version = default;
        if (text is null) return false;
        var m = VersionRegex().Match(text.Trim());
        if (!m.Success) return false;
        version = new KernelVersion(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
            int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            m.Groups[3].Success ? int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture) : 0,
            m.Groups[4].Success ? m.Groups[4].Value : "");
        return true;
    }

    /// <summary>Reads a version as <see cref="TryParse"/> does.</summary>
    /// <exception cref="FormatException">The text is not a kernel version.</exception>
    public static KernelVersion Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var v) ? v : throw new FormatException($"'{text}' is not a kernel version (expected major.minor, e.g. 5.10 or 6.6.30)");
    }
}
