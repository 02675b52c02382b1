"""The one exception type for mistakes a user can fix.

A ``UserError`` is caught by the command line, printed as one clear message on
stderr and turned into exit code 2. Anything else that escapes is a bug (exit 1).
Messages name the file, the key or ONNX node, what was expected and what was found.
"""


class UserError(Exception):
    """Bad input: a file, a key, an option or a model the user can correct."""


def did_you_mean(word: str, choices) -> str:
    """A ' (did you mean 'x'?)' suffix when a close match exists, else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def yaml_syntax_error(exc) -> str:
    """'a syntax error at line 3, column 1: found character '\\t' …' of a PyYAML error: where
    and what, not PyYAML's multi-line dump."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"a syntax error{where}: {problem}"
