// Placeholder until the config-file branch lands.
namespace Virtnet.Cli.Config;

public sealed record ConfigBinding(AttachOptions Options, double StatsSeconds, int Line, string Fingerprint)
{
    public string Identity => Options.Name;
}

public sealed class ConfigException(string message) : Exception(message);

public static class ConfigFile
{
    public static IReadOnlyList<ConfigBinding> Load(string path) => throw new ConfigException($"{path}: not yet");
}
