using BenchmarkDotNet.Running;

namespace Virtnet.Benchmarks;

public static class Program
{
    /// <summary>Every benchmark in this assembly; pick with --filter, e.g. --filter '*EthernetView*'.</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
