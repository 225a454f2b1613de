// The name a person knows a network namespace by: `ip netns` keeps names as files under /run/netns, each a bind
// mount of the namespace's nsfs inode, so the name of a namespace is the file whose inode ("net:[N]") is the same.
using Virtnet.Namespaces;

namespace Virtnet.Cli.Service;

internal static class NetnsNames
{
    private const string NamedDirectory = "/run/netns";

    /// <summary>
    /// A binding's namespace as show reports it: its identity ("net:[inode]"), and its name: the `ip netns` name
    /// or the path as given for <paramref name="path"/>; for null (the process's own namespace) null when it is
    /// the host's (pid 1's), else the name under /run/netns if this process can see one, else the identity.
    /// </summary>
    public static (string? Name, string Id) Identify(string? path)
    {
        if (path is not null)
        {
            string id = IdentityOf(path) ?? "";
            return (path.StartsWith(NamedDirectory + "/", StringComparison.Ordinal) ? path[(NamedDirectory.Length + 1)..] : NameOf(id) ?? path, id);
        }

        string self = NamespaceByPath.Current();
        if (self.Length == 0 || self == IdentityOf("/proc/1/ns/net"))
        {
            return (null, self);
        }

        return (NameOf(self) ?? self, self);
    }

    /// <summary>
    /// The `ip netns` name of a namespace a process reported by identity. A process started by `ip netns exec` lives
    /// in a mount namespace of its own where /run/netns looks empty, so the client, not the server, finds names.
    /// </summary>
    public static string? NameFor(string? reported, string id)
        => reported is not null && reported.StartsWith("net:[", StringComparison.Ordinal) ? NameOf(id) ?? reported : reported;

    /// <summary>
    /// A path that opens the namespace whose identity is <paramref name="id"/>: <paramref name="first"/> if it is
    /// that one, else its `ip netns` file, else /proc/PID/ns/net of any process inside it; null when none is found.
    /// </summary>
    public static string? PathOf(string id, string first)
    {
        if (IdentityOf(first) == id)
        {
            return first;
        }

        if (NameOf(id) is { } name)
        {
            return $"{NamedDirectory}/{name}";
        }

        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            string candidate = dir + "/ns/net";
            if (int.TryParse(Path.GetFileName(dir), out _) && new FileInfo(candidate) is { } link && SafeLinkTarget(link) == id)
            {
                return candidate;
            }
        }

        return null;

        static string? SafeLinkTarget(FileInfo link)
        {
            try
            {
                return link.LinkTarget;
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
        }
    }

    private static string? NameOf(string? identity)
    {
        if (string.IsNullOrEmpty(identity) || !Directory.Exists(NamedDirectory))
        {
            return null;
        }

        foreach (var file in Directory.EnumerateFiles(NamedDirectory).Order(StringComparer.Ordinal))
        {
            if (IdentityOf(file) == identity)
            {
                return Path.GetFileName(file);
            }
        }

        return null;
    }

    private static string? IdentityOf(string path)
    {
        try
        {
            using var ns = NetNamespace.Open(path);
            return NamespaceByPath.Identity(ns);
        }
        catch (VirtnetException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
