"""Tables the command line prints, with every name and number whole at any terminal width.

Rich shrinks a table that is wider than the terminal by cutting cells (``heldout-line…``) or
folding them mid-word, and both break ``offrl-bench list algorithms | grep NAME``. A
:class:`Listing` is printed as a table when it fits with its cells unbroken (only ``prose``
columns wrap, and only between words); otherwise each row becomes a block of ``column: value``
lines, which may run past the edge but are never cut. Titles wrap between words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass
class Listing:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    #: Columns of running text that may wrap between words (e.g. a suite's description).
    prose: frozenset[str] = frozenset()
    #: Right-aligned columns (numbers).
    numeric: frozenset[str] = frozenset()
    caption: str | None = None

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of '{self.title}' needs {len(self.columns)} cells, got {len(cells)}")
        self.rows.append([str(cell) for cell in cells])

    def width_unbroken(self) -> int:
        """Columns needed to show every cell whole: prose columns need their longest word, the
        others their longest cell; each column adds two spaces of padding and one rule."""
        widths = []
        for i, column in enumerate(self.columns):
            cells = [column, *(row[i] for row in self.rows)]
            pieces = [word for cell in cells for word in cell.split()] if column in self.prose else cells
            widths.append(max(Text(piece).cell_len for piece in pieces))
        return sum(widths) + 3 * len(widths) + 1

    def table(self) -> Table:
        table = Table(caption=self.caption, caption_justify="left")  # the title is printed above it (see show)
        for column in self.columns:
            table.add_column(column, justify="right" if column in self.numeric else "left",
                             no_wrap=column not in self.prose, overflow="fold")
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))  # Text: brackets in names are not markup
        return table

    def blocks(self) -> str:
        """Each row as its first cell, then one indented ``column: value`` line per other column (the
        caption is not included: :func:`show` prints it wrapped)."""
        lines = [self.title]
        for row in self.rows:
            lines.append(row[0])
            lines += [f"  {column}: {cell}" for column, cell in zip(self.columns[1:], row[1:]) if cell]
        return "\n".join(lines)


def show(listing: Listing, console: Console) -> None:
    """Print ``listing`` as a table if it fits ``console`` unbroken, else as blocks."""
    if listing.width_unbroken() <= console.width:
        console.print(Text(listing.title), overflow="fold")  # wraps between words, like the prose columns
        console.print(listing.table())
    else:
        console.print(listing.blocks(), markup=False, highlight=False, soft_wrap=True)
        if listing.caption:  # running text: wrapped between words at the console's width
            console.print(Text(listing.caption))
