// The workload steps of RTnet: NICs, sockets with their pools, frames sent to a port (copied into rtskbs of
// the NIC's pool and handed over by compensation), reads that give the buffers back, pool resizing with
// RTnet's return values, and close (which may answer -EAGAIN while buffers are out).
using System.Text.Json;
using static Kmem.Scenarios.Steps.StepArgs;

namespace Kmem.Scenarios.Steps;

/// <summary>The RTnet operations.</summary>
internal static class RtnetSteps
{
    /// <summary>The sockets the steps made, by the name a workload gave them (they stay with the machine's stack).</summary>
    internal sealed class Sockets : StepState
    {
        /// <summary>The sockets by name.</summary>
        public Dictionary<string, RtSocket> ByName { get; } = new(StringComparer.Ordinal);

        /// <inheritdoc/>
        public override string What => "the RTnet sockets";
    }

    /// <summary>The operations, in the format's order.</summary>
    public static IEnumerable<WorkloadOp> Ops =>
    [
        new("rtnet_nic", ["name", "rx_pool"],
            step =>
            {
                if (string.IsNullOrWhiteSpace(Str(step, "name"))) throw new WorkloadException($"{step.Location}.name", "is required");
                Int(step, "rx_pool", 16, 0, 1 << 20);
            },
            OnStack((_, rt, step) => rt.RegisterNic(Str(step, "name")!, step.Args.ContainsKey("rx_pool") ? Int(step, "rx_pool", 16) : null))),
        new("rtnet_socket", ["socket", "port", "pool"],
            step =>
            {
                if (string.IsNullOrWhiteSpace(Str(step, "socket"))) throw new WorkloadException($"{step.Location}.socket", "is required (a name for the socket)");
                Required(step, "port");
                Int(step, "port", 0, 0, 65535);
                Int(step, "pool", 16, 0, 1 << 20);
            },
            OnStack((ctx, rt, step) =>
            {
                string name = Str(step, "socket")!;
                var s = rt.Socket(Int(step, "port", 0), step.Args.ContainsKey("pool") ? Int(step, "pool", 16) : null);
                if (s is null) ctx.Result.Problems.Add($"{step.Location}: socket '{name}' got no pool (-ENOMEM)");
                else ctx.State<Sockets>().ByName[name] = s;
            })),
        new("rtnet_send", ["nic", "port", "size", "count", "pattern"],
            step =>
            {
                SizeUpTo(step, 65536, "must be 1 .. 65536 bytes");
                Int(step, "port", 0, 0, 65535);
                Long(step, "count", 1, 1, 100_000_000);
                if (step.Args.ContainsKey("pattern")) Pattern(step, "pattern");
            },
            OnStack((ctx, rt, step) =>
            {
                string nicName = Str(step, "nic") ?? "rtlo";
                var nic = rt.Nics.GetValueOrDefault(nicName) ?? throw new WorkloadException($"{step.Location}.nic", $"no RTnet NIC '{nicName}'");
                int size = (int)Size(step, "size");
                int port = Int(step, "port", 0);
                long count = Long(step, "count", 1);
                Span<byte> frame = size <= 4096 ? stackalloc byte[size] : new byte[size];
                frame.Fill((byte)(step.Args.ContainsKey("pattern") ? Pattern(step, "pattern") : 0x5a));
                for (long i = 0; i < count; i++) nic.Receive(frame, port);
            })),
        new("rtnet_recv", ["socket", "count"],
            step =>
            {
                SocketName(step);
                if (step.Args.TryGetValue("count", out var c) && !(c.ValueKind == JsonValueKind.String && c.GetString() == "all"))
                    Long(step, "count", 1, 0, long.MaxValue);
            },
            OnStack((ctx, rt, step) =>
            {
                var s = SocketArg(ctx, step);
                long count = step.Args.TryGetValue("count", out var c) && c.ValueKind == JsonValueKind.String ? long.MaxValue : Long(step, "count", 1);
                Span<byte> buf = stackalloc byte[rt.DataBytes];
                for (long i = 0; i < count && s.Receive(buf) >= 0; i++) { }
            })),
        new("rtnet_setsockopt", ["socket", "option", "count", "expect"],
            step =>
            {
                SocketName(step);
                if (Str(step, "option") is not ("RT_SO_EXTPOOL" or "RT_SO_SHRPOOL")) throw new WorkloadException($"{step.Location}.option", "must be RT_SO_EXTPOOL or RT_SO_SHRPOOL");
                Int(step, "count", 0, 0, 1 << 20);
                Int(step, "expect", 0);
            },
            OnStack((ctx, rt, step) =>
            {
                var s = SocketArg(ctx, step);
                int option = Str(step, "option") == "RT_SO_SHRPOOL" ? RtSocket.RtSoShrPool : RtSocket.RtSoExtPool;
                int r = s.SetSockOpt(option, Int(step, "count", 0));
                if (step.Args.ContainsKey("expect") && r != Int(step, "expect", 0))
                    ctx.Result.Problems.Add($"{step.Location}: {Str(step, "option")} returned {r}, expected {Int(step, "expect", 0)}");
            })),
        new("rtnet_close", ["socket", "expect"],
            step =>
            {
                SocketName(step);
                if (Str(step, "expect") is { } e && e is not ("success" or "eagain" or "any")) throw new WorkloadException($"{step.Location}.expect", "must be success, eagain or any");
            },
            OnStack((ctx, rt, step) =>
            {
                var s = SocketArg(ctx, step);
                int r = s.Close();
                string expect = Str(step, "expect") ?? "any";
                if ((expect == "success" && r != 0) || (expect == "eagain" && r != -11))
                    ctx.Result.Problems.Add($"{step.Location}: close of ':{s.Port}' returned {r}, expected {expect}");
            })),
    ];

    /// <summary>An RTnet step's run: the stack is loaded (on first use) before anything else, whatever the step.</summary>
    private static Action<StepContext, WorkloadStep> OnStack(Action<StepContext, RtnetStack, WorkloadStep> run) =>
        (ctx, step) => run(ctx, ctx.Machine.Rtnet, step);

    /// <summary>The <c>socket</c> argument of the steps that use a socket: required.</summary>
    private static void SocketName(WorkloadStep step)
    {
        if (string.IsNullOrWhiteSpace(Str(step, "socket"))) throw new WorkloadException($"{step.Location}.socket", "is required");
    }

    private static RtSocket SocketArg(StepContext ctx, WorkloadStep step)
    {
        string name = Str(step, "socket")!;
        return ctx.State<Sockets>().ByName.GetValueOrDefault(name) ?? throw new WorkloadException($"{step.Location}.socket", $"no socket '{name}' (create it with rtnet_socket)");
    }
}
