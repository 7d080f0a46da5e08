// The public types of a device-tree derivation: the options a tree does not decide, the notes saying which node
// gave which value, and the result (the profile, its commented JSON and the notes).
namespace Kmem;

/// <summary>A value derived from a device tree: the profile key it went to, the node it came from, and how.</summary>
public sealed record DerivationNote(string Key, string Node, string Text);

/// <summary>Choices a device tree does not make (all optional).</summary>
public sealed record DeviceTreeOptions
{
    /// <summary>The profile name; null: from the root's <c>compatible</c> (its first entry, after the vendor).</summary>
    public string? Name { get; init; }
    /// <summary>The kernel version to model; null: <see cref="KernelVersion.Default"/>.</summary>
    public KernelVersion? Version { get; init; }
    /// <summary>The architecture; null: from the CPU nodes' <c>compatible</c>.</summary>
    public Arch? Arch { get; init; }
}

/// <summary>The profile derived from a device tree, its JSON with the derivation as comments, and the notes.</summary>
public sealed record DeviceTreeProfile(MachineProfile Profile, string Json, IReadOnlyList<DerivationNote> Notes);
