// dotnet pack src/Virtnet.Core gives a real package: the library with its XML docs, the package readme, the license
// (expression and file), a symbols package, and no dependency it does not need; and the public API is a snapshot the
// build holds the library to (PublicAPI.*.txt, checked by Microsoft.CodeAnalysis.PublicApiAnalyzers on every build).
using System.IO.Compression;
using System.Xml.Linq;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Layout;

public class PackageTests
{
    [Fact]
    public void Pack_HasDocsReadmeLicenseAndSymbols()
    {
        string output = Directory.CreateTempSubdirectory("virtnet-pack-").FullName;
        try
        {
            string project = Path.Combine(Repo.Root, "src", "Virtnet.Core", "Virtnet.Core.csproj");
            var r = Run.Command(TimeSpan.FromMinutes(5), "dotnet", "pack", project, "-c", "Release", "-o", output, "-nologo", "-v", "quiet");
            Assert.True(r.ExitCode == 0, r.All);
            string package = Assert.Single(Directory.GetFiles(output, "Virtnet.Core.*.nupkg"), f => !f.EndsWith(".snupkg", StringComparison.Ordinal));
            Assert.Single(Directory.GetFiles(output, "Virtnet.Core.*.snupkg"));
            using var zip = ZipFile.OpenRead(package);
            var names = zip.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains("lib/net10.0/Virtnet.Core.dll", names);
            Assert.Contains("lib/net10.0/Virtnet.Core.xml", names);
            Assert.Contains("PACKAGE.md", names);
            Assert.Contains("LICENSE", names);

            using var nuspec = zip.Entries.Single(e => e.FullName == "Virtnet.Core.nuspec").Open();
            var doc = XDocument.Load(nuspec);
            string Meta(string name) => doc.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value ?? "";
            Assert.Equal("Virtnet.Core", Meta("id"));
            Assert.Equal("MIT", Meta("license"));
            Assert.Equal("PACKAGE.md", Meta("readme"));
            Assert.False(string.IsNullOrWhiteSpace(Meta("description")));
            Assert.Contains("ebpf", Meta("tags"), StringComparison.Ordinal);
            Assert.NotNull(doc.Descendants().FirstOrDefault(e => e.Name.LocalName == "repository")?.Attribute("commit"));
            Assert.DoesNotContain(doc.Descendants(), e => e.Name.LocalName == "dependency");
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public void PublicApi_IsASnapshot_ThatNamesTheSdk()
    {
        string unshipped = File.ReadAllText(Path.Combine(Repo.Root, "src", "Virtnet.Core", "PublicAPI.Unshipped.txt"));
        Assert.StartsWith("#nullable enable", unshipped, StringComparison.Ordinal);
        foreach (var api in new[] { "Virtnet.Datapaths.IFrameHandler.OnFrame(", "Virtnet.Datapaths.Frame.Emit(", "Virtnet.Attachment.RunAsync(", "Virtnet.Datapaths.InternetChecksum.UpdatePartial(" })
        {
            Assert.Contains(api, unshipped, StringComparison.Ordinal);
        }

        string project = File.ReadAllText(Path.Combine(Repo.Root, "src", "Virtnet.Core", "Virtnet.Core.csproj"));
        Assert.Contains("Microsoft.CodeAnalysis.PublicApiAnalyzers", project, StringComparison.Ordinal);
    }
}
