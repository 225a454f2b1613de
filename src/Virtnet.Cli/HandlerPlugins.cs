// --handler PATH.dll[:TypeName] [--handler-arg KEY=VALUE ...]: C# handlers from the command line. Each assembly is
// loaded into an AssemblyLoadContext of its own, with its own dependencies (its .deps.json, through an
// AssemblyDependencyResolver), except Virtnet.Core, which it shares with virtnet so that its IFrameHandler is
// virtnet's. A handler is a public, non-abstract class implementing IFrameHandler, made with a constructor that
// takes the --handler-arg pairs (IReadOnlyDictionary<string, string>) or with a parameterless one. The pairs are the
// whole pipeline's: each handler that takes them gets them all.
//
// Everything is checked, and every handler made, before any device is: a bad path, a file that is not an assembly,
// a missing type or one that is not a handler is one sentence, exit 1, nothing created. A Native AOT build cannot
// load assemblies at run time and says so.
//
// The contexts are collectible: Unload lets a plugin's assemblies go once its handlers are (a binding undone, a
// reload that re-created it or found it unchanged and dropped the handlers it made to compare), so a long-running
// `run` reloaded again and again keeps one copy of each plugin, not one per reload.
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.Loader;
using Virtnet.Datapaths;

namespace Virtnet.Cli;

/// <summary>A handler that could not be loaded: the sentence says what to do.</summary>
internal sealed class HandlerLoadException(string message) : Exception(message);

internal static class HandlerPlugins
{
    /// <summary>Makes the handlers of <paramref name="specs"/> (PATH or PATH:TYPE), in order, each given <paramref name="args"/>.</summary>
    public static IFrameHandler[] Load(IReadOnlyList<string> specs, IReadOnlyDictionary<string, string> args)
    {
        if (specs.Count == 0)
        {
            return [];
        }

        if (!System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported)
        {
            throw new HandlerLoadException("this virtnet is a Native AOT build, which cannot load handler assemblies; run the JIT build (./virtnet, or dotnet virtnet.dll) to use --handler");
        }

        // The pairs are the pipeline's: every handler with a constructor that takes them gets them all (a chain of
        // plugins shares one set of keys); a handler without one is made without them. Pairs no handler takes are refused.
        var made = new List<(IFrameHandler Handler, bool TookArgs)>(specs.Count);
        try
        {
            foreach (var spec in specs)
            {
                made.Add(LoadOne(spec, args));
            }

            if (args.Count > 0 && !made.Any(m => m.TookArgs))
            {
                string which = specs.Count == 1
                    ? $"{made[0].Handler.GetType().FullName} takes no arguments (it has no constructor with IReadOnlyDictionary<string, string>)"
                    : "none of the handlers takes arguments (none has a constructor with IReadOnlyDictionary<string, string>)";
                throw new HandlerLoadException($"--handler-arg {args.Keys.First()}=...: {which}; leave --handler-arg out");
            }
        }
        catch
        {
            Unload(made.Select(m => m.Handler));
            throw;
        }

        return made.Select(m => m.Handler).ToArray();
    }

    // Which context made each handler (weakly: the table keeps neither alive), and the contexts already unloaded.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IFrameHandler, PluginContext> s_contexts = [];

    /// <summary>
    /// Ends the plugin handlers among <paramref name="handlers"/> (handlers not loaded from a plugin are left alone,
    /// they are their caller's): each that is IDisposable is disposed (virtnet made it), then its context is unloaded.
    /// True when a context was unloaded; <see cref="Collect"/> then frees it now.
    /// </summary>
    public static bool Unload(IEnumerable<IFrameHandler> handlers)
    {
        bool any = false;
        foreach (var handler in handlers)
        {
            if (!s_contexts.TryGetValue(handler, out var context))
            {
                continue;
            }

            if (handler is IDisposable disposable)
            {
                try
                {
                    disposable.Dispose();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // Its binding is already undone; a handler that fails to clean up after itself changes nothing here.
                }
            }

            if (context.TryUnload())
            {
                any = true;
            }
        }

        return any;
    }

    /// <summary>Runs the collections that free unloaded contexts (their assemblies' memory and mappings); seconds at most.</summary>
    public static void Collect()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    /// <summary>KEY=VALUE pairs of --handler-arg; a later KEY wins.</summary>
    public static Dictionary<string, string> ParseArgs(IEnumerable<string> pairs)
    {
        var args = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0)
            {
                throw new UsageException($"--handler-arg '{pair}': give KEY=VALUE, e.g. --handler-arg rate=1000");
            }

            args[pair[..eq]] = pair[(eq + 1)..];
        }

        return args;
    }

    /// <summary>PATH:TYPE split at the last ':' after the file's extension (so a path with ':' in a folder still works).</summary>
    internal static (string Path, string? Type) Split(string spec)
    {
        int dll = spec.LastIndexOf(".dll", StringComparison.OrdinalIgnoreCase);
        int colon = spec.LastIndexOf(':');
        return colon > dll && dll >= 0 ? (spec[..colon], spec[(colon + 1)..]) : (spec, null);
    }

    private static (IFrameHandler Handler, bool TookArgs) LoadOne(string spec, IReadOnlyDictionary<string, string> args)
    {
        var (path, typeName) = Split(spec);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new HandlerLoadException($"--handler {spec}: {full}: no such file; give the path of a .NET assembly (.dll) with a class that implements Virtnet.Datapaths.IFrameHandler");
        }

        var context = new PluginContext(full);
        try
        {
            var made = MakeOne(spec, args, full, path, typeName, context);
            s_contexts.AddOrUpdate(made.Handler, context);
            return made;
        }
        catch
        {
            context.TryUnload();
            throw;
        }
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Loaded only where dynamic code is supported (the JIT build, checked in Load); a plugin's types are its assembly's, loaded whole.")]
    [UnconditionalSuppressMessage("Trimming", "IL2067", Justification = "As above: the handler's constructor is found in the plugin's own, untrimmed assembly.")]
    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = "As above.")]
    [UnconditionalSuppressMessage("Trimming", "IL2072", Justification = "As above.")]
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "As above.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "Never reached in a Native AOT build (checked in Load).")]
    private static (IFrameHandler Handler, bool TookArgs) MakeOne(string spec, IReadOnlyDictionary<string, string> args, string full, string path, string? typeName, PluginContext context)
    {
        Assembly assembly;
        try
        {
            assembly = context.LoadFromAssemblyPath(full);
        }
        catch (BadImageFormatException)
        {
            throw new HandlerLoadException($"--handler {spec}: {full} is not a .NET assembly; give the .dll that 'dotnet build' makes of your handler project");
        }
        catch (Exception e) when (e is FileLoadException or IOException)
        {
            throw new HandlerLoadException($"--handler {spec}: {full} could not be loaded ({e.Message.TrimEnd('.')})");
        }

        Type[] exported;
        try
        {
            exported = assembly.GetExportedTypes();
        }
        catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or FileLoadException)
        {
            throw new HandlerLoadException($"--handler {spec}: its types could not be loaded ({e.Message.TrimEnd('.')}); is a dependency missing beside it?");
        }

        var handlers = exported.Where(t => t.IsClass && !t.IsAbstract && typeof(IFrameHandler).IsAssignableFrom(t)).ToList();
        Type type;
        if (typeName is not null)
        {
            type = exported.FirstOrDefault(t => t.FullName == typeName) ?? exported.FirstOrDefault(t => t.Name == typeName)
                ?? throw new HandlerLoadException($"--handler {spec}: {Path.GetFileName(full)} has no public type {typeName}{Offer(handlers)}");
            if (!handlers.Contains(type))
            {
                throw new HandlerLoadException($"--handler {spec}: {type.FullName} is not a handler (a public, non-abstract class that implements Virtnet.Datapaths.IFrameHandler){Offer(handlers)}");
            }
        }
        else
        {
            type = handlers.Count switch
            {
                1 => handlers[0],
                0 => throw new HandlerLoadException($"--handler {spec}: {Path.GetFileName(full)} has no public class that implements Virtnet.Datapaths.IFrameHandler"),
                _ => throw new HandlerLoadException($"--handler {spec}: {Path.GetFileName(full)} has {handlers.Count} handlers ({string.Join(", ", handlers.Select(h => h.FullName))}); name one as {path}:TYPE"),
            };
        }

        try
        {
            var withArgs = type.GetConstructor([typeof(IReadOnlyDictionary<string, string>)]);
            if (withArgs is not null)
            {
                return ((IFrameHandler)withArgs.Invoke([args]), true);
            }

            if (type.GetConstructor(Type.EmptyTypes) is { } plain)
            {
                return ((IFrameHandler)plain.Invoke([]), false);
            }

            throw new HandlerLoadException($"--handler {spec}: {type.FullName} has no public constructor virtnet can call: give it one with no parameters, or one that takes IReadOnlyDictionary<string, string> (the --handler-arg pairs)");
        }
        catch (TargetInvocationException e) when (e.InnerException is { } inner)
        {
            throw new HandlerLoadException($"--handler {spec}: {type.FullName}'s constructor threw {inner.GetType().Name}: {inner.Message.TrimEnd('.')}");
        }
    }

    private static string Offer(List<Type> handlers)
        => handlers.Count == 0 ? "" : $"; its handlers: {string.Join(", ", handlers.Select(h => h.FullName))}";

    /// <summary>One plugin's assemblies; Virtnet.Core (and what the host has loaded) comes from virtnet's own context.</summary>
    private sealed class PluginContext(string path) : AssemblyLoadContext($"virtnet handler {Path.GetFileName(path)}", isCollectible: true)
    {
        private readonly AssemblyDependencyResolver _resolver = new(path);
        private int _unloaded;

        /// <summary>Unloads it once; false when it was already.</summary>
        public bool TryUnload()
        {
            if (Interlocked.Exchange(ref _unloaded, 1) != 0)
            {
                return false;
            }

            Unload();
            return true;
        }

        [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "A plugin's own dependencies, loaded whole where dynamic code is supported (checked in Load).")]
        protected override Assembly? Load(AssemblyName name)
        {
            // Shared with virtnet: the handler interface must be virtnet's own type.
            if (name.Name == typeof(IFrameHandler).Assembly.GetName().Name)
            {
                return null;
            }

            return _resolver.ResolveAssemblyToPath(name) is { } file ? LoadFromAssemblyPath(file) : null;
        }

        protected override nint LoadUnmanagedDll(string unmanagedDllName)
            => _resolver.ResolveUnmanagedDllToPath(unmanagedDllName) is { } file ? LoadUnmanagedDllFromPath(file) : 0;
    }
}
