"""Generated sections of the README: text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.

`make bench` and `make reliability-report` copy their latest results there, so the README shows
measured figures without anyone editing them by hand.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_section(name: str, body: str, readme: Path = README) -> bool:
    """Put ``body`` between the markers of section ``name``; False if the README lacks them."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return False
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{body.strip()}\n{end}{tail}", encoding="utf-8")
    return True
