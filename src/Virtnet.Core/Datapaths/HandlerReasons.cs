// The handlers' own drop reasons (Frame.DropReason), counted per forwarder and direction without allocating or
// locking: a fixed table of the first distinct reasons seen (compared by reference first, as reasons are usually
// literals, then by value), and one count for every reason beyond them. Only the forwarder's thread writes; readers
// (stats) take a snapshot that may lag by a frame.
namespace Virtnet.Datapaths;

internal sealed class HandlerReasons
{
    /// <summary>How many distinct reasons are counted apart; the rest are counted together as <see cref="Others"/>.</summary>
    public const int Slots = 16;

    /// <summary>The name the reasons beyond <see cref="Slots"/> are counted under.</summary>
    public const string Others = "(other reasons)";

    private readonly string?[] _reasons = new string?[Slots];
    private readonly long[] _counts = new long[Slots + 1];

    /// <summary>One more frame dropped for <paramref name="reason"/>.</summary>
    public void Count(string reason)
    {
        for (int i = 0; i < Slots; i++)
        {
            var known = _reasons[i];
            if (known is null)
            {
                Volatile.Write(ref _counts[i], 1);
                Volatile.Write(ref _reasons[i], reason);
                return;
            }

            if (ReferenceEquals(known, reason) || string.Equals(known, reason, StringComparison.Ordinal))
            {
                Volatile.Write(ref _counts[i], _counts[i] + 1);
                return;
            }
        }

        Volatile.Write(ref _counts[Slots], _counts[Slots] + 1);
    }

    /// <summary>Adds this table's counts to <paramref name="totals"/>.</summary>
    public void AddTo(Dictionary<string, ulong> totals)
    {
        for (int i = 0; i < Slots; i++)
        {
            var reason = Volatile.Read(ref _reasons[i]);
            if (reason is null)
            {
                break;
            }

            totals[reason] = totals.GetValueOrDefault(reason) + (ulong)Volatile.Read(ref _counts[i]);
        }

        long others = Volatile.Read(ref _counts[Slots]);
        if (others > 0)
        {
            totals[Others] = totals.GetValueOrDefault(Others) + (ulong)others;
        }
    }
}
