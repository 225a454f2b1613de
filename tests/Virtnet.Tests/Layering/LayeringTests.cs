// The library's folders are its layers, and each uses only the ones below it (README, "Layers"). This reads the
// sources as text, so it needs no build tooling: a file's namespace imports and qualified names say which folders
// it reaches, and the public types of the root namespace (declared by the binding layer) are looked up by name.
using System.Text.RegularExpressions;
using Xunit;

namespace Virtnet.Tests.Layering;

public sealed partial class LayeringTests
{
    /// <summary>Folder (relative to src/Virtnet.Core, '/' separated) and its layer; siblings share a number and may not use each other.</summary>
    private static readonly Dictionary<string, int> s_layers = new()
    {
        [""] = 0, // VirtnetException, FailureKind, Cleanup: shared by every layer, using only Native
        ["Native"] = 0,
        ["Namespaces"] = 1,
        ["Netlink"] = 2,
        ["Bpf"] = 2,
        ["Devices"] = 3,
        ["Filters"] = 3,
        ["Capture"] = 3,
        ["Datapaths"] = 4,
        ["Datapaths/Kernel"] = 5,
        ["Datapaths/User"] = 5,
        ["Bindings"] = 6,
    };

    private static string CoreDirectory() => Path.Combine(Virtnet.Tests.Infrastructure.Repo.Root, "src", "Virtnet.Core");

    private sealed record Source(string Folder, string Path, string Code);

    private static List<Source> Sources()
    {
        string core = CoreDirectory();
        return Directory.EnumerateFiles(core, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{System.IO.Path.DirectorySeparatorChar}obj{System.IO.Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{System.IO.Path.DirectorySeparatorChar}bin{System.IO.Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(f => new Source(
                System.IO.Path.GetDirectoryName(System.IO.Path.GetRelativePath(core, f))!.Replace('\\', '/'),
                System.IO.Path.GetRelativePath(core, f),
                StripCommentsAndStrings(File.ReadAllText(f))))
            .ToList();
    }

    /// <summary>Comments and string literals removed: only code can make a dependency.</summary>
    private static string StripCommentsAndStrings(string text)
        => CommentsOrStrings().Replace(text, m => m.Value.StartsWith("//", StringComparison.Ordinal) ? "" : m.Value.StartsWith("/*", StringComparison.Ordinal) ? "" : "\"\"");

    [GeneratedRegex("""//[^\n]*|/\*.*?\*/|\$?@?"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)'""", RegexOptions.Singleline)]
    private static partial Regex CommentsOrStrings();

    [GeneratedRegex(@"\bVirtnet\.((?:[A-Z][A-Za-z]*)(?:\.[A-Z][A-Za-z]*)?)")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"^namespace\s+([\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex NamespaceDeclaration();

    [GeneratedRegex(@"\b(?:class|struct|record|interface|enum)\s+(?:struct\s+|class\s+)?([A-Z]\w*)")]
    private static partial Regex TypeDeclaration();

    /// <summary>"Datapaths.User" (a namespace under Virtnet) to its folder "Datapaths/User", if it is one.</summary>
    private static string? FolderOf(string subNamespace)
    {
        string folder = subNamespace.Replace('.', '/');
        while (folder.Length > 0 && !s_layers.ContainsKey(folder))
        {
            int cut = folder.LastIndexOf('/');
            folder = cut < 0 ? "" : folder[..cut];
        }

        return folder.Length == 0 ? null : folder;
    }

    // The root files (the exception type) and Native are one layer: Native throws VirtnetException, which carries an Errno.
    private static bool MayUse(string from, string to) => from == to || s_layers[to] < s_layers[from] || (from, to) is ("", "Native") or ("Native", "");

    [Fact]
    public void EveryFolder_IsALayer()
    {
        foreach (var source in Sources())
        {
            Assert.True(s_layers.ContainsKey(source.Folder), $"{source.Path}: folder '{source.Folder}' is not in the layer table; add it with its place");
        }
    }

    [Fact]
    public void Namespaces_EachFolderUsesOnlyTheLayersBelowIt()
    {
        var violations = new List<string>();
        foreach (var source in Sources())
        {
            foreach (Match m in QualifiedName().Matches(source.Code))
            {
                if (FolderOf(m.Groups[1].Value) is { } target && !MayUse(source.Folder, target))
                {
                    violations.Add($"{source.Path} uses Virtnet.{m.Groups[1].Value} ({target}, layer {s_layers[target]}) from layer {s_layers[source.Folder]}");
                }
            }
        }

        Assert.True(violations.Count == 0, string.Join("\n", violations.Distinct()));
    }

    [Fact]
    public void RootNamespaceTypes_UsedOnlyFromTheirLayerUp()
    {
        // Types in namespace Virtnet itself are reachable without a using: look them up by name.
        var sources = Sources();
        var rootTypes = sources
            .Where(s => NamespaceDeclaration().Match(s.Code) is { Success: true } ns && ns.Groups[1].Value == "Virtnet")
            .SelectMany(s => TypeDeclaration().Matches(s.Code).Select(m => (Name: m.Groups[1].Value, s.Folder)))
            .ToList();
        Assert.Contains(rootTypes, t => t.Name == "Attachment"); // the test sees what it guards

        var violations = new List<string>();
        foreach (var source in sources)
        {
            foreach (var (name, folder) in rootTypes)
            {
                if (!MayUse(source.Folder, folder) && Regex.IsMatch(source.Code, $@"\b{name}\b"))
                {
                    violations.Add($"{source.Path} (layer {s_layers[source.Folder]}) uses {name} of {folder} (layer {s_layers[folder]})");
                }
            }
        }

        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void Library_KnowsNothingOfTheLabOrTheDemo()
    {
        string core = CoreDirectory();
        var mentions = Directory.EnumerateFiles(core, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetRelativePath(core, f), Line: i + 1, Text: line)))
            .Where(l => Regex.IsMatch(l.Text, @"\b(Lab|lab|LabTopology|Demo|demo)\b"))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}")
            .ToList();
        Assert.True(mentions.Count == 0, string.Join("\n", mentions));
    }

    [Fact]
    public void MayUse_RejectsUpwardsAndSideways()
    {
        // The rule itself, so a table edit cannot quietly turn the check off.
        Assert.True(MayUse("Devices", "Netlink"));
        Assert.False(MayUse("Netlink", "Devices"));
        Assert.False(MayUse("Netlink", "Bpf"));
        Assert.False(MayUse("Datapaths/User", "Datapaths/Kernel"));
        Assert.False(MayUse("Datapaths", "Datapaths/User"));
        Assert.True(MayUse("Bindings", "Datapaths/User"));
        Assert.Equal("Datapaths/User", FolderOf("Datapaths.User"));
        Assert.Null(FolderOf("Tests"));
    }
}
