namespace Virtnet.Tests.Infrastructure;

/// <summary>The checkout the tests were built from: the directory holding virtnet.slnx, above the test binaries.</summary>
public static class Repo
{
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "virtnet.slnx")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException($"no virtnet.slnx above {AppContext.BaseDirectory}");
        }
    }
}
