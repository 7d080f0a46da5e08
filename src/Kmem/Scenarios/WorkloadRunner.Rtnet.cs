// The workload steps of RTnet: NICs, sockets with their pools, frames sent to a port (copied into rtskbs of
// the NIC's pool and handed over by compensation), reads that give the buffers back, pool resizing with
// RTnet's return values, and close (which may answer -EAGAIN while buffers are out).
namespace Kmem;

public sealed partial class WorkloadRunner
{
    private readonly Dictionary<string, RtSocket> _sockets = new(StringComparer.Ordinal);

    /// <summary>Runs an RTnet step; false when the step is not one.</summary>
    private bool ExecuteRtnet(WorkloadStep step)
    {
        if (!step.Op.StartsWith("rtnet_", StringComparison.Ordinal)) return false;
        var rt = _m.Rtnet;
        switch (step.Op)
        {
            case "rtnet_nic":
                rt.RegisterNic(Str(step, "name")!, step.Args.ContainsKey("rx_pool") ? Int(step, "rx_pool", 16) : null);
                break;
            case "rtnet_socket":
            {
                string name = Str(step, "socket")!;
                var s = rt.Socket(Int(step, "port", 0), step.Args.ContainsKey("pool") ? Int(step, "pool", 16) : null);
                if (s is null) _result.Problems.Add($"{step.Location}: socket '{name}' got no pool (-ENOMEM)");
                else _sockets[name] = s;
                break;
            }
            case "rtnet_send":
            {
                string nicName = Str(step, "nic") ?? "rtlo";
                var nic = rt.Nics.GetValueOrDefault(nicName) ?? throw new WorkloadException($"{step.Location}.nic", $"no RTnet NIC '{nicName}'");
                int size = (int)Size(step, "size");
                int port = Int(step, "port", 0);
                long count = Long(step, "count", 1);
                Span<byte> frame = size <= 4096 ? stackalloc byte[size] : new byte[size];
                frame.Fill((byte)(step.Args.ContainsKey("pattern") ? Pattern(step, "pattern") : 0x5a));
                for (long i = 0; i < count; i++) nic.Receive(frame, port);
                break;
            }
            case "rtnet_recv":
            {
                var s = SocketArg(step);
                long count = step.Args.TryGetValue("count", out var c) && c.ValueKind == System.Text.Json.JsonValueKind.String ? long.MaxValue : Long(step, "count", 1);
                Span<byte> buf = stackalloc byte[rt.DataBytes];
                for (long i = 0; i < count && s.Receive(buf) >= 0; i++) { }
                break;
            }
            case "rtnet_setsockopt":
            {
                var s = SocketArg(step);
                int option = Str(step, "option") == "RT_SO_SHRPOOL" ? RtSocket.RtSoShrPool : RtSocket.RtSoExtPool;
                int r = s.SetSockOpt(option, Int(step, "count", 0));
                if (step.Args.ContainsKey("expect") && r != Int(step, "expect", 0))
                    _result.Problems.Add($"{step.Location}: {Str(step, "option")} returned {r}, expected {Int(step, "expect", 0)}");
                break;
            }
            case "rtnet_close":
            {
                var s = SocketArg(step);
                int r = s.Close();
                string expect = Str(step, "expect") ?? "any";
                if ((expect == "success" && r != 0) || (expect == "eagain" && r != -11))
                    _result.Problems.Add($"{step.Location}: close of ':{s.Port}' returned {r}, expected {expect}");
                break;
            }
        }
        return true;
    }

    private RtSocket SocketArg(WorkloadStep step)
    {
        string name = Str(step, "socket")!;
        return _sockets.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.socket", $"no socket '{name}' (create it with rtnet_socket)");
    }

    private static void ValidateRtnet(WorkloadStep step)
    {
        switch (step.Op)
        {
            case "rtnet_nic":
                if (string.IsNullOrWhiteSpace(Str(step, "name"))) throw new WorkloadException($"{step.Location}.name", "is required");
                Int(step, "rx_pool", 16, 0, 1 << 20);
                break;
            case "rtnet_socket":
                if (string.IsNullOrWhiteSpace(Str(step, "socket"))) throw new WorkloadException($"{step.Location}.socket", "is required (a name for the socket)");
                if (!step.Args.ContainsKey("port")) throw new WorkloadException($"{step.Location}.port", "is required");
                Int(step, "port", 0, 0, 65535);
                Int(step, "pool", 16, 0, 1 << 20);
                break;
            case "rtnet_send":
                if (!step.Args.ContainsKey("size")) throw new WorkloadException($"{step.Location}.size", "is required");
                if (Size(step, "size") is 0 or > 65536) throw new WorkloadException($"{step.Location}.size", "must be 1 .. 65536 bytes");
                Int(step, "port", 0, 0, 65535);
                Long(step, "count", 1, 1, 100_000_000);
                if (step.Args.ContainsKey("pattern")) Pattern(step, "pattern");
                break;
            case "rtnet_recv":
                if (string.IsNullOrWhiteSpace(Str(step, "socket"))) throw new WorkloadException($"{step.Location}.socket", "is required");
                if (step.Args.TryGetValue("count", out var c) && !(c.ValueKind == System.Text.Json.JsonValueKind.String && c.GetString() == "all"))
                    Long(step, "count", 1, 0, long.MaxValue);
                break;
            case "rtnet_setsockopt":
                if (string.IsNullOrWhiteSpace(Str(step, "socket"))) throw new WorkloadException($"{step.Location}.socket", "is required");
                if (Str(step, "option") is not ("RT_SO_EXTPOOL" or "RT_SO_SHRPOOL")) throw new WorkloadException($"{step.Location}.option", "must be RT_SO_EXTPOOL or RT_SO_SHRPOOL");
                Int(step, "count", 0, 0, 1 << 20);
                Int(step, "expect", 0);
                break;
            case "rtnet_close":
                if (string.IsNullOrWhiteSpace(Str(step, "socket"))) throw new WorkloadException($"{step.Location}.socket", "is required");
                if (Str(step, "expect") is { } e && e is not ("success" or "eagain" or "any")) throw new WorkloadException($"{step.Location}.expect", "must be success, eagain or any");
                break;
        }
    }
}
