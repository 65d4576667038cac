"""The kernel table of schedules/README.md matches the registry: every registered kernel has a row with its
op, dtypes, layout, requires, priority and file, and every kernel in the table is registered."""
import pathlib
import re

from yuan.schedules import kernels

README = pathlib.Path(__file__).resolve().parents[2] / "schedules" / "README.md"
COLUMNS = ["kernel", "op", "dtypes", "layout", "requires", "prio", "file"]


def _table_rows():
    """{kernel name: {column: cell}} from the table whose header starts with "kernel"."""
    rows, in_table = {}, False
    for line in README.read_text().splitlines():
        if line.startswith("| kernel"):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cells[0]) <= set("-: "):
            continue
        assert cells[0] not in rows, f"kernel {cells[0]} has two rows"
        rows[cells[0]] = dict(zip(COLUMNS, cells))
    assert rows, "no kernel table in schedules/README.md"
    return rows


def _words(cell):
    return set() if cell in ("–", "-", "") else {w.strip() for w in cell.split(",")}


def test_every_registered_kernel_has_its_row():
    rows = _table_rows()
    wrong = []
    for op, ks in kernels().items():
        for k in ks:
            row = rows.get(k.name)
            if row is None:
                wrong.append(f"{k.name}: no row")
                continue
            expected = dict(op=op, dtypes=set(k.dtypes), layout=set(k.layouts), requires=set(k.requires),
                            prio=str(k.priority), file=k.builder.__module__.rsplit(".", 1)[-1])
            found = dict(op=row["op"], dtypes=_words(row["dtypes"]), layout=_words(row["layout"]),
                         requires=_words(row["requires"]), prio=row["prio"], file=row["file"])
            wrong += [f"{k.name}: {col} is {found[col]!r} in the README, {expected[col]!r} registered"
                      for col in expected if found[col] != expected[col]]
    assert not wrong, "\n".join(wrong)


def test_every_kernel_in_the_table_is_registered():
    registered = {k.name for ks in kernels().values() for k in ks}
    assert not set(_table_rows()) - registered


def test_readme_shows_the_current_api():
    text = README.read_text()
    assert "from yuan import schedules" in text and not re.search(r"^import schedules", text, re.M)
    assert "target=None" not in text
