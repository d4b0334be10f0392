"""The non-blank lines of a text annotation file, with 1-based line numbers."""


def numbered_lines(path):
    """Yield (1-based line number, stripped text) for each non-blank line of a file.

    Windows line endings and a UTF-8 byte order mark are accepted.
    """
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text:
                yield number, text
