namespace Virtnet;

/// <summary>
/// Undo list for multi-step setup: everything added is disposed in reverse order unless <see cref="Commit"/>
/// was called, so a failure halfway leaves nothing half-made behind.
/// </summary>
internal sealed class Cleanup : IDisposable
{
    private readonly Stack<IDisposable> _items = new();
    private bool _committed;

    public T Add<T>(T item)
        where T : IDisposable
    {
        _items.Push(item);
        return item;
    }

    public void Add(Action undo) => _items.Push(new ActionDisposable(undo));

    public void Commit() => _committed = true;

    public void Dispose()
    {
        if (_committed)
        {
            return;
        }

        while (_items.Count > 0)
        {
            try
            {
                _items.Pop().Dispose();
            }
            catch (Exception)
            {
                // Undo is best effort: the original failure is the one the user must see.
            }
        }
    }

    private sealed class ActionDisposable(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
