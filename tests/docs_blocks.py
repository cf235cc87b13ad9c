"""The code blocks of README.md and docs/*.md, as the docs tests run them.

Every fenced block has a language: `sh` and `python` blocks run, `json` blocks must parse, `text` blocks
are not code (a tree, an output). A runnable block that cannot run here says so on its first line, visibly:
`# not run by the docs tests: <why>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}
CHECKED = {"json"}
NOT_CODE = {"text"}
NOT_RUN = re.compile(r"^#\s*not run by the docs tests:\s*(\S.*)$")
FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    language: str  # as written; "" when none
    code: str

    @property
    def kind(self) -> str:
        if self.language in RUNNABLE:
            return RUNNABLE[self.language]
        if self.language in CHECKED or self.language in NOT_CODE:
            return self.language
        return "unknown"

    @property
    def not_run_reason(self) -> str | None:
        first = self.code.lstrip("\n").splitlines()[0] if self.code.strip() else ""
        match = NOT_RUN.match(first.strip())
        return match.group(1) if match else None

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    found, lines, i = [], doc.read_text(encoding="utf-8").splitlines(), 0
    indented = [n + 1 for n, text in enumerate(lines) if re.match(r"^ {4}\S", text)
                and (n == 0 or not lines[n - 1].strip()) and not _in_fence(lines, n)]
    # An indented code block has no language, so it could not be run or skipped on purpose: refuse it.
    for n in indented:
        if not _in_list(lines, n - 1):
            found.append(Block(doc, n, "indented", lines[n - 1]))
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match:
            fence, language, start = match.group(1), match.group(2), i
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith(fence):
                body.append(lines[i])
                i += 1
            found.append(Block(doc, start + 1, language, "\n".join(body) + "\n"))
        i += 1
    return sorted(found, key=lambda b: b.line)


def _in_fence(lines: list[str], n: int) -> bool:
    return sum(1 for text in lines[:n] if text.startswith("```")) % 2 == 1


def _in_list(lines: list[str], n: int) -> bool:
    """An indented line continuing a list item is prose, not code."""
    for text in reversed(lines[:n]):
        if not text.strip():
            continue
        return bool(re.match(r"^\s*([-*+]|\d+\.)\s", text)) or text.startswith("    ")
    return False


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks(doc)]
