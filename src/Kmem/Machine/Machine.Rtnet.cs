// The machine's RTnet stack, loaded on first use (modprobe rtnet) with the module parameters of the
// kernel command line: rtnet.socket_rtskbs, rtnet.global_rtskbs, rtnet.device_rtskbs, rtnet.rtskb_size,
// rt_8139too.rx_pool_size, rtmac.vnic_rtskbs, rtnetproxy.proxy_rtskbs.
using System.Globalization;
using Kmem.Boot;
using Kmem.Core;

namespace Kmem;

public sealed partial class Machine
{
    private RtnetStack? _rtnet;
    private readonly Lock _rtnetLock = new();
    private RtnetParams _rtnetParams = new();

    /// <summary>The RTnet stack (created on first use, with the command line's module parameters).</summary>
    public RtnetStack Rtnet
    {
        get
        {
            ThrowIfDisposed();
            if (_rtnet is { } r) return r;
            using var life = Life.Enter();
            LockOrder.Enter(LockRank.MachineSetup, _rtnetLock);
            lock (_rtnetLock) return _rtnet ??= new RtnetStack(Kernel, _rtnetParams);
        }
    }

    /// <summary>True once the RTnet stack has been loaded.</summary>
    public bool RtnetLoaded
    {
        get
        {
            ThrowIfDisposed();
            return _rtnet is not null;
        }
    }

    /// <summary>Machine shutdown: the RTnet stack (if loaded) closes its pools to the real-time paths and forgets its linear map.</summary>
    private void ShutdownRtnet()
    {
        RtnetStack? r;
        LockOrder.Enter(LockRank.MachineSetup, _rtnetLock);
        lock (_rtnetLock) r = _rtnet;
        r?.Shutdown();
    }

    /// <summary>RTnet's parameters from the command line (checked at boot: a bad value is a <see cref="ProfileException"/>).</summary>
    private static RtnetParams RtnetParamsFor(KernelCmdline cmd)
    {
        int P(string key, int dflt, int min, int max)
        {
            string? v = cmd[key];
            if (v is null) return dflt;
            if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < min || n > max)
                throw new ProfileException("cmdline", $"{key}={v} must be a whole number in {min}..{max}");
            return n;
        }
        return new RtnetParams
        {
            RtskbSize = P("rtnet.rtskb_size", 1544, 64, 65536),
            SocketRtskbs = P("rtnet.socket_rtskbs", 16, 0, 1 << 20),
            GlobalRtskbs = P("rtnet.global_rtskbs", 0, 0, 1 << 20),
            DeviceRtskbs = P("rtnet.device_rtskbs", 16, 0, 1 << 20),
            RxPoolSize = P("rt_8139too.rx_pool_size", 16, 0, 1 << 20),
            VnicRtskbs = P("rtmac.vnic_rtskbs", 32, 0, 1 << 20),
            ProxyRtskbs = P("rtnetproxy.proxy_rtskbs", 32, 0, 1 << 20),
        };
    }
}
