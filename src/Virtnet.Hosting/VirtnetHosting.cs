// virtnet in a Microsoft.Extensions.Hosting application: each AddVirtnet registers one binding as a hosted service.
// The host's start makes the binding (a failure fails the start, with virtnet's sentence), runs it on a thread of its
// own (Attachment.RunAsync), logs what it follows through the host's ILogger, and stops the application when the
// binding cannot go on (its real device removed); the host's stop undoes it. VirtnetBindings lists the live ones,
// for a health check or a metrics page.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Virtnet.Hosting;

/// <summary>The <c>AddVirtnet</c> extensions.</summary>
public static class VirtnetServiceCollectionExtensions
{
    /// <summary>Adds a binding made with <paramref name="options"/> when the host starts, undone when it stops.</summary>
    /// <param name="services">The application's services.</param>
    /// <param name="options">The binding, as <see cref="Attachment.Create"/> takes it.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddVirtnet(this IServiceCollection services, AttachOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return services.AddVirtnet(_ => options);
    }

    /// <summary>Adds a binding whose options come from the application's services (configuration, handlers) when the host starts.</summary>
    /// <param name="services">The application's services.</param>
    /// <param name="options">Makes the binding's options.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddVirtnet(this IServiceCollection services, Func<IServiceProvider, AttachOptions> options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.AddSingleton<VirtnetBindings>();
        services.AddSingleton<IHostedService>(provider => new VirtnetBindingService(
            options(provider),
            provider.GetRequiredService<VirtnetBindings>(),
            provider.GetService<ILoggerFactory>()?.CreateLogger("Virtnet"),
            provider.GetService<IHostApplicationLifetime>()));
        return services;
    }
}

/// <summary>The bindings the host runs now.</summary>
public sealed class VirtnetBindings
{
    private readonly Lock _gate = new();
    private readonly List<Attachment> _live = [];

    /// <summary>A snapshot of the live bindings.</summary>
    public IReadOnlyList<Attachment> Live
    {
        get
        {
            lock (_gate)
            {
                return [.. _live];
            }
        }
    }

    internal void Add(Attachment binding)
    {
        lock (_gate)
        {
            _live.Add(binding);
        }
    }

    internal void Remove(Attachment binding)
    {
        lock (_gate)
        {
            _live.Remove(binding);
        }
    }
}

/// <summary>What the hosted bindings log.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "{Name} ready: bound to {Real}")]
    public static partial void Ready(ILogger log, string name, string real);

    [LoggerMessage(2, LogLevel.Information, "{Line}")]
    public static partial void Line(ILogger log, string line);

    [LoggerMessage(3, LogLevel.Error, "{Name} ended: {Why}")]
    public static partial void Ended(ILogger log, string name, string why);
}

/// <summary>One binding's life as a hosted service.</summary>
internal sealed class VirtnetBindingService(AttachOptions options, VirtnetBindings bindings, ILogger? log, IHostApplicationLifetime? lifetime) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Attachment? _binding;
    private Task<string?>? _run;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Made on the caller's thread, in its network namespace, where the real device is.
        _binding = Attachment.Create(options);
        bindings.Add(_binding);
        if (log is not null)
        {
            Log.Ready(log, _binding.VirtualName, _binding.RealName);
        }

        _run = _binding.RunAsync(_stop.Token, line =>
        {
            if (log is not null)
            {
                Log.Line(log, line);
            }
        });
        _ = _run.ContinueWith(
            ended =>
            {
                if (ended.IsCompletedSuccessfully && ended.Result is { } why)
                {
                    if (log is not null)
                    {
                        Log.Ended(log, options.Name, why);
                    }

                    lifetime?.StopApplication();
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            await _run.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        Dispose();
    }

    public void Dispose()
    {
        if (_binding is { } binding)
        {
            _binding = null;
            bindings.Remove(binding);
            binding.Dispose();
        }

        _stop.Dispose();
    }
}
