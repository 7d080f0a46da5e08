// Helpers over KernelLife for the layers above the slab: counting a call in without throwing (for an owner's
// Dispose, which does nothing once the machine is dead, and for background workers that stop then).
namespace Kmem;

internal static class KernelLifeScopes
{
    /// <summary>
    /// Counts the calling thread in as <see cref="KernelLife.Enter"/> does; false (and nothing counted) when the machine
    /// is dead. Dispose the scope when the call ends.
    /// </summary>
    public static bool TryEnter(this KernelLife life, out KernelLife.Scope scope)
    {
        scope = default;
        if (life.IsDead) return false;
        try
        {
            scope = life.Enter();
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }
}
