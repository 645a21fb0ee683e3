"""Customer lists (CSV): the one that puts names and other details into scripts,
and the ones supervisors upload as campaigns (ivr/dialer/campaigns.py) are read
by the same rules (``read_customers``):

Header `number,name,...` (`,` or `;` between columns, as spreadsheets save;
header names are case-blind, spaces and dashes read as `_`). The number column
may also be called phone, phone_number, msisdn, tel or telephone. `name`
becomes {customer_name}; every other column becomes a variable of the same
name, e.g. `plan` -> {plan}, for scripts that declare it under `fields:`. A
column may not take a built-in variable's name ({company} is *our* company;
call the customer's one `customer_company`). A row that is not a phone number
or has another number of columns than the header is skipped and reported.

Numbers are compared normalised (ivr/calls/numbers.py), so +36 20 123 4567,
0036201234567 and 36201234567 are the same customer. Caller IDs often come in
national format (06201234567), so when there is no exact match, the last 9
digits decide, if exactly one customer has them.

A missing or broken file must not stop the service: `CustomerDirectory.load`
logs the problem and serves an empty list; `ivr check` reports it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..calls.numbers import normalise
from ..yamlfile import Problem, YamlError
from .model import BUILTIN_VARIABLES

log = logging.getLogger(__name__)

SUFFIX_DIGITS = 9
NUMBER_COLUMNS = ("number", "phone", "phone_number", "msisdn", "tel", "telephone")
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


class CustomerFileError(YamlError):
    """The customer list cannot be used at all (missing, unreadable, no number column)."""


@dataclass(frozen=True)
class Customer:
    number: str  # as written in the file
    name: str = ""
    fields: dict[str, str] = field(default_factory=dict, hash=False)  # other columns

    def to_dict(self) -> dict:
        return {"number": self.number, "name": self.name or None, **self.fields}


class CustomerDirectory:
    def __init__(
        self,
        customers: list[Customer] | tuple[Customer, ...] = (),
        source: str | None = None,
        problems: list[Problem] | None = None,
    ):
        self.source = source
        self.problems: list[Problem] = list(problems or [])
        self._by_number: dict[str, Customer] = {}
        self._by_suffix: dict[str, list[Customer]] = {}
        for c in customers:
            key = normalise(c.number)
            if key and key not in self._by_number:
                self._by_number[key] = c
                self._by_suffix.setdefault(key[-SUFFIX_DIGITS:], []).append(c)

    def __len__(self) -> int:
        return len(self._by_number)

    def lookup(self, number: str) -> Customer | None:
        key = normalise(number)
        if not key:
            return None
        if key in self._by_number:
            return self._by_number[key]
        if len(key) >= SUFFIX_DIGITS:
            hits = self._by_suffix.get(key[-SUFFIX_DIGITS:], [])
            if len(hits) == 1:
                return hits[0]
        return None

    @classmethod
    def from_csv(cls, path: str | Path) -> "CustomerDirectory":
        """Read the list; CustomerFileError if unusable. Bad rows are skipped and
        listed in `.problems` (the rest of the list is still worth serving); of
        two rows with one number, the first counts."""
        file = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # Excel writes a BOM
        except OSError as exc:
            raise CustomerFileError(
                [Problem(file, None, "", f"cannot read the customer list: {exc.strerror}")]
            ) from None
        except UnicodeDecodeError as exc:
            raise CustomerFileError(
                [Problem(file, None, "", f"not UTF-8 text: {exc.reason}")]
            ) from None
        rows, problems = read_customers(text, file)
        customers: list[Customer] = []
        seen: dict[str, int] = {}
        for row in rows:
            key = normalise(row.customer.number)
            if key in seen:
                problems.append(
                    Problem(
                        file,
                        row.line,
                        "number",
                        f"{row.customer.number} is already on line {seen[key]}; row skipped",
                    )
                )
                continue
            seen[key] = row.line
            customers.append(row.customer)
        return cls(customers, file, sorted(problems, key=lambda p: p.line or 0))

    @classmethod
    def load(cls, path: str | Path | None) -> "CustomerDirectory":
        """Like from_csv, but never raises: the service goes on with an empty list."""
        if not path:
            return cls()
        try:
            directory = cls.from_csv(path)
        except CustomerFileError as exc:
            for p in exc.problems:
                log.error("customer list: %s (scripts are filled without it)", p)
            return cls(source=str(path), problems=exc.problems)
        for p in directory.problems:
            log.warning("customer list: %s", p)
        return directory


@dataclass(frozen=True)
class Row:
    line: int
    customer: Customer


def read_customers(
    text: str, file: str, max_rows: int | None = None
) -> tuple[list[Row], list[Problem]]:
    """A customer list's rows (numbers as written, valid) and its problems; see the
    module docstring for the rules. CustomerFileError when there is no header or no
    number column (nothing in the file can be used)."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise CustomerFileError([Problem(file, 1, "", "no header line: expected number,name,...")])
    # Spreadsheets in many locales save with ';' between columns.
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower().replace(" ", "_").replace("-", "_") for h in next(reader)]
    number_col = next((header.index(a) for a in NUMBER_COLUMNS if a in header), None)
    if number_col is None:
        raise CustomerFileError(
            [
                Problem(
                    file,
                    1,
                    "",
                    f"no number column in the header "
                    f"({delimiter.join(header)}): call it "
                    f"{' or '.join(NUMBER_COLUMNS[:2])}",
                )
            ]
        )
    problems: list[Problem] = []
    columns: dict[int, str] = {number_col: "number"}
    for i, name in enumerate(header):
        if i == number_col:
            continue
        if name == "name":
            columns[i] = name
        elif not _COLUMN.match(name):
            problems.append(
                Problem(
                    file,
                    1,
                    name or f"column {i + 1}",
                    "not usable as a variable name (letters, digits, _); column ignored",
                )
            )
        elif name in BUILTIN_VARIABLES:
            problems.append(
                Problem(
                    file,
                    1,
                    name,
                    f"is a built-in variable; rename the column (e.g. customer_{name}); ignored",
                )
            )
        elif name in columns.values():
            problems.append(Problem(file, 1, name, "duplicate column; ignored"))
        else:
            columns[i] = name
    rows: list[Row] = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if max_rows is not None and len(rows) >= max_rows:
            problems.append(
                Problem(file, line, "", f"more than {max_rows} customers; the rest ignored")
            )
            break
        if len(cells) != len(header):
            problems.append(
                Problem(
                    file,
                    line,
                    "",
                    f"{len(cells)} columns, the header has {len(header)}; row skipped",
                )
            )
            continue
        values = {columns[i]: cell.strip() for i, cell in enumerate(cells) if i in columns}
        number = values.pop("number", "")
        if not normalise(number):
            problems.append(
                Problem(file, line, "number", f"{number[:40]!r} is not a phone number; row skipped")
            )
            continue
        name = values.pop("name", "")
        rows.append(Row(line, Customer(number, name, values)))
    return rows, problems


def check_customers(path: str | Path) -> list[Problem]:
    """Problems of a customer list, for `ivr check`."""
    try:
        return CustomerDirectory.from_csv(path).problems
    except CustomerFileError as exc:
        return exc.problems
