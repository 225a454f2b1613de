// virtnet's log: Microsoft.Extensions.Logging with one small provider that writes a line a message to stderr,
// "virtnet: message". When stderr is the journal (systemd sets JOURNAL_STREAM for a unit's stdio), each line starts
// with its syslog priority, "<3>virtnet: ...", which journald reads as the entry's priority (sd-daemon(3)).
// -v shows debug messages, -q only warnings and errors. Lines are written synchronously: a message logged just before
// exit is never lost, and the per-frame path never logs.
using Microsoft.Extensions.Logging;

namespace Virtnet.Cli.Service;

internal static class Logging
{
    /// <summary>A factory for the command line's verbosity: -v (debug), -q (warnings and errors), else information.</summary>
    public static ILoggerFactory Create(bool verbose, bool quiet, TextWriter? error = null)
    {
        var level = verbose ? LogLevel.Debug : quiet ? LogLevel.Warning : LogLevel.Information;
        bool journal = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM"));
        return LoggerFactory.Create(builder => builder
            .SetMinimumLevel(level)
            .AddProvider(new StderrLoggerProvider(error ?? Console.Error, journal)));
    }

    /// <summary>The syslog priority journald gives a level (sd-daemon.h: SD_ERR 3 ... SD_DEBUG 7).</summary>
    public static int Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };
}

internal sealed class StderrLoggerProvider(TextWriter writer, bool journal) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new StderrLogger(writer, journal);

    public void Dispose()
    {
    }

    private sealed class StderrLogger(TextWriter writer, bool journal) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            string message = formatter(state, exception);
            string line = journal ? $"<{Logging.Priority(logLevel)}>virtnet: {message}" : $"virtnet: {message}";
            lock (writer)
            {
                writer.WriteLine(line);
                writer.Flush();
            }
        }
    }
}

/// <summary>virtnet's messages are whole sentences: one source-generated method a level.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(Level = LogLevel.Debug, Message = "{Message}")]
    public static partial void Debug(this ILogger log, string message);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Message}")]
    public static partial void Info(this ILogger log, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Message}")]
    public static partial void Warn(this ILogger log, string message);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Message}")]
    public static partial void Error(this ILogger log, string message);
}
