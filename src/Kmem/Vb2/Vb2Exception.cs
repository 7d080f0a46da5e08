// The error VB2 raises for misuse of a queue or its buffers.
using Kmem.Kernel;
using Kmem.Physical;

namespace Kmem;

/// <summary>What a <see cref="Vb2Exception"/> reports, with the errno the V4L2 ioctl returns.</summary>
public sealed class Vb2Exception : KmemException
{
    /// <summary>Creates the exception.</summary>
    public Vb2Exception(int errno, string message) : base(message) => Errno = errno;

    /// <summary>The negative errno (-EINVAL, -EBUSY, -EFAULT, -ENOMEM, -EAGAIN …).</summary>
    public int Errno { get; }
}
