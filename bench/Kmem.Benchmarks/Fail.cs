// Out-of-line throw helpers, so the measured loops keep only a predictable branch for failed allocations.
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Kmem.Benchmarks;

/// <summary>Throws for allocator failures inside benchmark loops.</summary>
internal static class Fail
{
    /// <summary>An allocator returned nothing.</summary>
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void NoMemory(string what) => throw new InvalidOperationException($"{what} failed: out of memory");
}
