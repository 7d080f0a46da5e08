// The machine's log ring (the kernel's printk buffer): kernel-style lines with a level and a
// "[seconds.micros]" timestamp since boot, bounded by a byte budget like log_buf_len.
using System.Diagnostics;
using System.Text;
using Kmem.Core;

namespace Kmem;

/// <summary>printk levels (<c>KERN_EMERG</c> … <c>KERN_DEBUG</c>).</summary>
public enum LogLevel
{
    /// <summary>KERN_EMERG: the system is unusable.</summary>
    Emerg = 0,
    /// <summary>KERN_ALERT: action must be taken immediately.</summary>
    Alert = 1,
    /// <summary>KERN_CRIT: critical conditions.</summary>
    Crit = 2,
    /// <summary>KERN_ERR: error conditions (bad page state, slab corruption).</summary>
    Err = 3,
    /// <summary>KERN_WARNING: warnings (allocation failures).</summary>
    Warning = 4,
    /// <summary>KERN_NOTICE: normal but significant.</summary>
    Notice = 5,
    /// <summary>KERN_INFO: informational (boot layout lines).</summary>
    Info = 6,
    /// <summary>KERN_DEBUG: debug-level messages.</summary>
    Debug = 7,
}

/// <summary>One record of the log ring.</summary>
/// <param name="Sequence">Monotonic record number since boot.</param>
/// <param name="TimestampNs">Nanoseconds since the machine booted.</param>
/// <param name="Level">The printk level.</param>
/// <param name="Text">The line, without its trailing newline.</param>
public readonly record struct LogRecord(long Sequence, long TimestampNs, LogLevel Level, string Text)
{
    /// <summary>The record as <c>dmesg</c> prints it: <c>[%5lu.%06lu] text</c>.</summary>
    public override string ToString()
    {
        long sec = TimestampNs / 1_000_000_000;
        long usec = TimestampNs % 1_000_000_000 / 1000;
        return $"[{sec,5}.{usec:D6}] {Text}";
    }
}

/// <summary>
/// The log ring buffer. Thread-safe; oldest records are dropped once the text exceeds the byte budget.
/// Logging is a slow-path operation (boot, warnings, reports): it takes a lock.
/// </summary>
public sealed class KernelLog
{
    private readonly Lock _lock = new();
    private readonly Queue<LogRecord> _records = new();
    private readonly long _capacityBytes;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _bytes;
    private long _sequence;
    private long _dropped;

    /// <summary>Creates a ring of <paramref name="capacityBytes"/> bytes of text (the kernel's default is 128 KiB).</summary>
    public KernelLog(long capacityBytes = 1 << 17)
    {
        if (capacityBytes < 1024) throw new ArgumentOutOfRangeException(nameof(capacityBytes), "the log ring needs at least 1 KiB");
        _capacityBytes = capacityBytes;
    }

    /// <summary>
    /// Raised after each record is stored (for live consoles); called outside the ring's lock. A handler that throws
    /// is removed (the exception goes no further, since a report may be written in the middle of any call) and the
    /// ring records that it was.
    /// </summary>
    public event Action<LogRecord>? Logged;

    /// <summary>Records dropped because the ring was full.</summary>
    public long Dropped { get { LockOrder.Enter(LockRank.KernelLog, _lock); lock (_lock) return _dropped; } }

    /// <summary>Nanoseconds since boot, the clock of the timestamps.</summary>
    public long NowNs => (long)(_clock.ElapsedTicks * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>Writes one message; a message with several lines becomes one record per line.</summary>
    public void Printk(LogLevel level, string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (KmemEventSource.Log.IsEnabled(System.Diagnostics.Tracing.EventLevel.Verbose, KmemEventSource.Keywords.Printk))
            KmemEventSource.Log.Printk((int)level, message);
        long now = NowNs;
        var lines = message.Split('\n');
        int count = lines.Length;
        if (count > 1 && lines[^1].Length == 0) count--; // a trailing newline ends the message
        LogRecord[]? stored = Logged is null ? null : new LogRecord[count];
        LockOrder.Enter(LockRank.KernelLog, _lock);
        lock (_lock)
        {
            for (int i = 0; i < count; i++)
            {
                var rec = new LogRecord(_sequence++, now, level, lines[i]);
                _records.Enqueue(rec);
                _bytes += rec.Text.Length + 16;
                if (stored is not null) stored[i] = rec;
            }
            while (_bytes > _capacityBytes && _records.Count > 1)
            {
                var old = _records.Dequeue();
                _bytes -= old.Text.Length + 16;
                _dropped++;
            }
        }
        if (stored is not null) Notify(stored);
    }

    private void Notify(LogRecord[] stored)
    {
        var handlers = Logged;
        if (handlers is null) return;
        foreach (var d in handlers.GetInvocationList())
        {
            var h = (Action<LogRecord>)d;
            try
            {
                foreach (var rec in stored) h(rec);
            }
            catch (Exception e)
            {
                Logged -= h;
                Printk(LogLevel.Warning, $"printk: a Logged handler ({h.Method.DeclaringType?.Name}.{h.Method.Name}) threw {e.GetType().Name}: {e.Message}; it was removed");
            }
        }
    }

    /// <summary>Info-level message (<c>pr_info</c>).</summary>
    public void Info(string message) => Printk(LogLevel.Info, message);

    /// <summary>Warning-level message (<c>pr_warn</c>).</summary>
    public void Warn(string message) => Printk(LogLevel.Warning, message);

    /// <summary>Error-level message (<c>pr_err</c>).</summary>
    public void Err(string message) => Printk(LogLevel.Err, message);

    /// <summary>A snapshot of the records in the ring, oldest first.</summary>
    public LogRecord[] Snapshot()
    {
        LockOrder.Enter(LockRank.KernelLog, _lock);
        lock (_lock) return _records.ToArray();
    }

    /// <summary>The ring as <c>dmesg</c> prints it, optionally only records at or above a level.</summary>
    public string Dmesg(LogLevel maxLevel = LogLevel.Debug)
    {
        var sb = new StringBuilder();
        foreach (var rec in Snapshot())
            if (rec.Level <= maxLevel) sb.Append(rec.ToString()).Append('\n');
        return sb.ToString();
    }

    /// <summary>Empties the ring (<c>dmesg -C</c>).</summary>
    public void Clear()
    {
        LockOrder.Enter(LockRank.KernelLog, _lock);
        lock (_lock) { _records.Clear(); _bytes = 0; }
    }
}
