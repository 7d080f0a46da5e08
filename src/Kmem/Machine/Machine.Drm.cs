// The machine's DRM device (rockchip-drm's card0 on the display controller), made over the machine's kernel
// context.
namespace Kmem;

public sealed partial class Machine
{
    private DrmDevice? _drm;

    /// <summary>
    /// The DRM device bound to the board's display controller (the first device named <c>*.vop</c>), created on first use.
    /// </summary>
    /// <exception cref="InvalidOperationException">The board declares no display controller.</exception>
    public DrmDevice Drm
    {
        get
        {
            ThrowIfDisposed();
            if (_drm is not null) return _drm;
            lock (Devices)
            {
                if (_drm is not null) return _drm;
                var vop = Devices.Values.FirstOrDefault(d => d.Name.EndsWith(".vop", StringComparison.Ordinal))
                          ?? throw new InvalidOperationException($"{Profile.Name} declares no display controller (*.vop): no DRM device");
                return _drm = new DrmDevice(Kernel, vop);
            }
        }
    }
}
