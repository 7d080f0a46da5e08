// The objects a subsystem's steps keep between steps and runs of one runner (the DRM file and vb2 queues of the
// media steps, the RTnet sockets by name), found by type through StepContext.State and released with the
// runner's allocations.
namespace Kmem.Scenarios.Steps;

/// <summary>A step set's own objects within one runner.</summary>
internal abstract class StepState
{
    /// <summary>What a failed release is logged as ("the media objects").</summary>
    public abstract string What { get; }

    /// <summary>Gives back what the state holds, leaving it empty for later runs; the default holds nothing to give back.</summary>
    public virtual void Release()
    {
    }
}
