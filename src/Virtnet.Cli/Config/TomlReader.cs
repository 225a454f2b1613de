// The TOML that a virtnet config file may hold (ConfigFile.cs gives it meaning): comments, [[binding]] headers,
// and key = value lines whose values are strings (basic, with escapes, or literal), integers (decimal, 0x, 0o,
// 0b, with '_' between digits), floats, booleans, and arrays of strings on one line (handler = ["a.dll", "b.dll"]).
// What else TOML allows (other arrays, inline tables, [table] headers, dotted keys, multi-line strings, dates) has
// no use in a binding and is refused by name, as are real
// TOML errors; every error is one sentence that starts with FILE:LINE. Hand-written, with no package: AOT-clean.
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Virtnet.Cli.Config;

/// <summary>The type of a TOML value.</summary>
internal enum TomlKind
{
    String,
    Integer,
    Float,
    Boolean,
    Array,
}

/// <summary>A value and its text in the file.</summary>
/// <param name="Kind">Which of the other members holds it.</param>
/// <param name="Raw">The value as written, quotes and escapes included, for the messages.</param>
/// <param name="Text">A string's value, escapes resolved.</param>
/// <param name="Integer">An integer's value.</param>
/// <param name="Float">A float's value.</param>
/// <param name="Boolean">A boolean's value.</param>
/// <param name="Items">An array's strings.</param>
internal sealed record TomlValue(TomlKind Kind, string Raw, string Text = "", long Integer = 0, double Float = 0, bool Boolean = false, IReadOnlyList<string>? Items = null);

/// <summary>One key = value line of a table.</summary>
/// <param name="Key">The key, quotes and escapes resolved.</param>
/// <param name="KeyText">The key as written.</param>
/// <param name="Value">Its value.</param>
/// <param name="Line">Its line, 1-based.</param>
internal sealed record TomlEntry(string Key, string KeyText, TomlValue Value, int Line);

/// <summary>One [[binding]] table: its header's line, its number in the file (1-based), its entries in file order.</summary>
internal sealed record TomlTable(int Line, int Number, IReadOnlyList<TomlEntry> Entries);

/// <summary>Reads the [[binding]] tables of a config file, one line at a time.</summary>
internal sealed partial class TomlReader
{
    /// <summary>The only table name a config file has.</summary>
    public const string TableName = "binding";

    private const string NotSupported = "not supported in a virtnet config";

    private readonly string _file;
    private readonly List<TomlTable> _tables = [];
    private readonly List<TomlEntry> _top = [];
    private List<TomlEntry>? _entries;
    private string _line = "";
    private int _lineNumber;
    private int _pos;

    private TomlReader(string file) => _file = file;

    /// <summary>The tables of <paramref name="text"/>, in file order; throws <see cref="ConfigException"/> at the first error.</summary>
    /// <param name="text">The file's text (LF or CRLF line endings).</param>
    /// <param name="file">The file's name, for the messages.</param>
    public static List<TomlTable> Read(string text, string file) => ReadDocument(text, file).Tables;

    /// <summary>The settings above the first table (key = value lines at the top of the file), and the tables.</summary>
    public static (List<TomlEntry> Top, List<TomlTable> Tables) ReadDocument(string text, string file)
    {
        var reader = new TomlReader(file);
        string[] lines = (text.StartsWith('\uFEFF') ? text[1..] : text).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            reader._line = line.EndsWith('\r') ? line[..^1] : line;
            reader._lineNumber = i + 1;
            reader._pos = 0;
            reader.ReadLine();
        }

        return (reader._top, reader._tables);
    }

    private bool AtEnd => _pos >= _line.Length;

    private char Current => _pos < _line.Length ? _line[_pos] : '\0';

    private string Where(string keyText) => _entries is null ? keyText : $"{keyText} in binding {_tables.Count}";

    private ConfigException Fail(string sentence) => new($"{_file}:{_lineNumber}: {sentence}");

    private void SkipSpace()
    {
        while (_pos < _line.Length && _line[_pos] is ' ' or '\t')
        {
            _pos++;
        }
    }

    /// <summary>Only white space and a comment may follow; a comment runs to the end of the line.</summary>
    private bool AtEndOrComment()
    {
        SkipSpace();
        return AtEnd || Current == '#';
    }

    private void ReadLine()
    {
        if (AtEndOrComment())
        {
            return;
        }

        if (Current == '[')
        {
            ReadHeader();
            return;
        }

        ReadKeyValue();
    }

    private void ReadHeader()
    {
        int start = _pos;
        if (!_line.AsSpan(_pos).StartsWith("[["))
        {
            int close = _line.IndexOf(']', _pos);
            string shown = close < 0 ? _line[start..].TrimEnd() : _line[start..(close + 1)];
            throw Fail($"{shown}: a [table] header is {NotSupported}; start each binding with [[binding]], in double brackets");
        }

        _pos += 2;
        SkipSpace();
        var (key, keyText) = ReadKey();
        SkipSpace();
        if (Current == '.')
        {
            throw Fail($"[[{keyText}.…]]: a dotted table name is {NotSupported}; start each binding with [[binding]]");
        }

        if (!_line.AsSpan(_pos).StartsWith("]]"))
        {
            throw Fail($"{_line[start..].TrimEnd()}: the header does not end with ]]; write [[binding]]");
        }

        _pos += 2;
        string header = _line[start.._pos];
        if (key != TableName)
        {
            throw Fail($"{header}: a table other than [[binding]] is {NotSupported}; start each binding with [[binding]]");
        }

        if (!AtEndOrComment())
        {
            throw Fail($"{header}: unexpected '{_line[_pos..].TrimEnd()}' after the header; put a comment after a #");
        }

        _entries = [];
        _tables.Add(new TomlTable(_lineNumber, _tables.Count + 1, _entries));
    }

    private void ReadKeyValue()
    {
        var (key, keyText) = ReadKey();
        SkipSpace();
        if (Current == '.')
        {
            throw Fail($"{Where(keyText + ".…")}: a dotted key is {NotSupported}; write each setting as KEY = VALUE under its [[binding]]");
        }

        if (Current != '=')
        {
            throw Fail(AtEnd || Current == '#'
                ? $"{Where(keyText)}: the key has no = and no value; write {keyText} = VALUE"
                : $"{Where(keyText)}: expected = after the key, not '{Current}'; write {keyText} = VALUE");
        }

        _pos++;
        SkipSpace();
        int start = _pos;
        var value = ReadValue(keyText);
        value = value with { Raw = _line[start.._pos] };
        if (!AtEndOrComment())
        {
            throw Fail($"{Where(keyText)}: unexpected '{_line[_pos..].TrimEnd()}' after the value {value.Raw}; write one value a line, and put a comment after a #");
        }

        if (_entries is null)
        {
            // A setting of the whole file (ConfigFile says which keys it takes).
            if (_top.Find(e => e.Key == key) is { } set)
            {
                throw Fail($"{keyText} = {value.Raw}: {key} is already set on line {set.Line}; keep one of them");
            }

            _top.Add(new TomlEntry(key, keyText, value, _lineNumber));
            return;
        }

        if (_entries.Find(e => e.Key == key) is { } first)
        {
            throw Fail($"{keyText} = {value.Raw} in binding {_tables.Count}: {key} is already set on line {first.Line}; keep one of them");
        }

        _entries.Add(new TomlEntry(key, keyText, value, _lineNumber));
    }

    /// <summary>A bare key (A-Za-z0-9_-) or a quoted one: the key and its text as written.</summary>
    private (string Key, string KeyText) ReadKey()
    {
        int start = _pos;
        string key;
        switch (Current)
        {
            case '"':
                key = ReadBasicString("");
                break;
            case '\'':
                key = ReadLiteralString("");
                break;
            case var c when IsBare(c):
                while (IsBare(Current))
                {
                    _pos++;
                }

                key = _line[start.._pos];
                break;
            case '=':
                throw Fail("a key is missing before the =; write KEY = VALUE");
            case var c:
                throw Fail($"'{c}' cannot start a key; a key is letters, digits, '-' and '_', or a string in quotes");
        }

        return (key, _line[start.._pos]);
    }

    private static bool IsBare(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '-';

    private TomlValue ReadValue(string keyText)
    {
        string where = Where(keyText);
        switch (Current)
        {
            case '"' when _line.AsSpan(_pos).StartsWith("\"\"\""):
            case '\'' when _line.AsSpan(_pos).StartsWith("'''"):
                throw Fail($"{where}: a multi-line string is {NotSupported}; write the value on one line, in \"...\" or '...'");
            case '"':
                return new TomlValue(TomlKind.String, "", ReadBasicString($"{where}: "));
            case '\'':
                return new TomlValue(TomlKind.String, "", ReadLiteralString($"{where}: "));
            case '[':
                return new TomlValue(TomlKind.Array, "", Items: ReadArray(where));
            case '{':
                throw Fail($"{where}: an inline table is {NotSupported}; give one value");
        }

        int start = _pos;
        while (!AtEnd && Current is not (' ' or '\t' or '#'))
        {
            _pos++;
        }

        string word = _line[start.._pos];
        if (word.Length == 0)
        {
            throw Fail($"{where}: the value is missing; write {keyText} = VALUE");
        }

        if (word is "true" or "false")
        {
            return new TomlValue(TomlKind.Boolean, "", Boolean: word == "true");
        }

        if (DateOrTime().IsMatch(word))
        {
            throw Fail($"{where}: a date or time is {NotSupported}; give a number or a string in quotes");
        }

        if (Integer().IsMatch(word))
        {
            return new TomlValue(TomlKind.Integer, "", Integer: ParseInteger(word, where));
        }

        if (Float().IsMatch(word))
        {
            string digits = word.Replace("_", "", StringComparison.Ordinal);
            double value = digits.TrimStart('+', '-') switch
            {
                "inf" => digits[0] == '-' ? double.NegativeInfinity : double.PositiveInfinity,
                "nan" => double.NaN,
                _ => double.Parse(digits, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            return new TomlValue(TomlKind.Float, "", Float: value);
        }

        if (word.Equals("true", StringComparison.OrdinalIgnoreCase) || word.Equals("false", StringComparison.OrdinalIgnoreCase))
        {
            throw Fail($"{where}: {word} is not a TOML boolean; write true or false, in lower case");
        }

        if (char.IsAsciiDigit(word[0]) || word[0] is '+' or '-' or '.' || (word[0] == '_' && word.Length > 1 && char.IsAsciiDigit(word[1])))
        {
            throw Fail($"{where}: {word} is not a TOML number; write it like 100, 0x64, 1_000 or 1.5 (no leading zeros, '_' only between digits)");
        }

        throw Fail($"{where}: {word} needs quotes to be a string; write {keyText} = \"{word}\"");
    }

    /// <summary>A decimal, 0x, 0o or 0b integer that <see cref="Integer"/> matched; it must fit in 64 bits.</summary>
    private long ParseInteger(string word, string where)
    {
        string digits = word.Replace("_", "", StringComparison.Ordinal);
        int radix = digits.Length > 1 && digits[0] == '0' ? digits[1] switch { 'x' => 16, 'o' => 8, 'b' => 2, _ => 10 } : 10;
        if (radix == 10)
        {
            if (long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
            {
                return value;
            }
        }
        else
        {
            ulong value = 0;
            bool fits = true;
            foreach (char c in digits.AsSpan(2))
            {
                int digit = char.IsAsciiDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
                fits &= value <= (long.MaxValue - (ulong)digit) / (ulong)radix;
                value = unchecked((value * (ulong)radix) + (ulong)digit);
            }

            if (fits)
            {
                return (long)value;
            }
        }

        throw Fail($"{where}: {word} does not fit in a 64-bit integer; give a smaller number");
    }

    /// <summary>A "basic string" on one line, escapes resolved; <paramref name="where"/> starts the sentence of an error in it.</summary>
    /// <summary>["a", 'b', ] on one line: strings only.</summary>
    private List<string> ReadArray(string where)
    {
        var items = new List<string>();
        _pos++; // [
        while (true)
        {
            SkipSpace();
            switch (Current)
            {
                case ']':
                    _pos++;
                    return items;
                case '"':
                    items.Add(ReadBasicString($"{where}: "));
                    break;
                case '\'':
                    items.Add(ReadLiteralString($"{where}: "));
                    break;
                case '\0' or '#':
                    throw Fail($"{where}: the array has no closing ]; write it on one line, like [\"a\", \"b\"]");
                default:
                    throw Fail($"{where}: an array here holds strings in quotes only, like [\"a\", \"b\"]");
            }

            SkipSpace();
            if (Current == ',')
            {
                _pos++;
            }
            else if (Current is '\0' or '#')
            {
                throw Fail($"{where}: the array has no closing ]; write it on one line, like [\"a\", \"b\"]");
            }
            else if (Current != ']')
            {
                throw Fail($"{where}: expected , or ] after an item of the array");
            }
        }
    }

    private string ReadBasicString(string where)
    {
        var text = new StringBuilder();
        _pos++;
        while (true)
        {
            if (AtEnd)
            {
                throw Fail($"{where}the string has no closing \"; end it on the same line (a multi-line string is {NotSupported})");
            }

            char c = _line[_pos++];
            if (c == '"')
            {
                return text.ToString();
            }

            if (c != '\\')
            {
                CheckControl(c, where);
                text.Append(c);
                continue;
            }

            char escape = Current;
            _pos++;
            switch (escape)
            {
                case '"' or '\\':
                    text.Append(escape);
                    break;
                case 'n':
                    text.Append('\n');
                    break;
                case 't':
                    text.Append('\t');
                    break;
                case 'r':
                    text.Append('\r');
                    break;
                case 'b':
                    text.Append('\b');
                    break;
                case 'f':
                    text.Append('\f');
                    break;
                case 'u' or 'U':
                    text.Append(ReadCodePoint(escape == 'u' ? 4 : 8, where));
                    break;
                case '\0' when _pos > _line.Length:
                    throw Fail($"{where}the string has no closing \"; end it on the same line (a multi-line string is {NotSupported})");
                default:
                    throw Fail($"{where}\\{escape} is not a TOML escape; write \\\\ for a backslash, or use a literal string in '...'");
            }
        }
    }

    /// <summary>The code point of \uXXXX or \UXXXXXXXX, the hex digits at the current position.</summary>
    private string ReadCodePoint(int digits, string where)
    {
        string hex = _line.Length - _pos >= digits ? _line.Substring(_pos, digits) : _line[_pos..];
        char u = digits == 4 ? 'u' : 'U';
        if (hex.Length < digits || !int.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code))
        {
            throw Fail($"{where}\\{u} needs {digits} hex digits, like \\{u}{(digits == 4 ? "00e9" : "0001f600")}");
        }

        if (code is >= 0xD800 and <= 0xDFFF or > 0x10FFFF or < 0)
        {
            throw Fail($"{where}\\{u}{hex} is not a Unicode scalar value; give a code point from 0 to 10FFFF, outside D800-DFFF");
        }

        _pos += digits;
        return char.ConvertFromUtf32(code);
    }

    /// <summary>A 'literal string' on one line: no escapes.</summary>
    private string ReadLiteralString(string where)
    {
        int start = ++_pos;
        int end = _line.IndexOf('\'', start);
        if (end < 0)
        {
            throw Fail($"{where}the string has no closing '; end it on the same line (a multi-line string is {NotSupported})");
        }

        foreach (char c in _line.AsSpan(start, end - start))
        {
            CheckControl(c, where);
        }

        _pos = end + 1;
        return _line[start..end];
    }

    /// <summary>TOML strings hold no control characters but tab: they must be escapes.</summary>
    private void CheckControl(char c, string where)
    {
        if (c is < ' ' and not '\t' or '\u007f')
        {
            throw Fail($"{where}the string holds the control character U+{(int)c:X4}; write it as an escape, like \\u{(int)c:x4}, in a \"...\" string");
        }
    }

    [GeneratedRegex("^[+-]?(?:0|[1-9](?:_?[0-9])*)$|^0x[0-9A-Fa-f](?:_?[0-9A-Fa-f])*$|^0o[0-7](?:_?[0-7])*$|^0b[01](?:_?[01])*$")]
    private static partial Regex Integer();

    [GeneratedRegex("^[+-]?(?:(?:0|[1-9](?:_?[0-9])*)(?:\\.[0-9](?:_?[0-9])*(?:[eE][+-]?[0-9](?:_?[0-9])*)?|[eE][+-]?[0-9](?:_?[0-9])*)|inf|nan)$")]
    private static partial Regex Float();

    [GeneratedRegex("^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}:[0-9]{2})")]
    private static partial Regex DateOrTime();
}
