// CONTRACT STUB: the demo helper replaces this file.
using Virtnet.Datapaths;

namespace Virtnet.Lab;

public static class Demo
{
    /// <summary>Builds the lab, shows traffic crossing, tears down. Returns the process exit code.</summary>
    public static int Run(DatapathKind datapath, TextWriter output) => throw new NotImplementedException();
}
