r"""A :class:`~asma_bench.reports.compare.GridReport` as text: the displayed rows (and the
matrix of a grid of two numeric axes), Markdown, LaTeX and the CSV files.

The LaTeX tables need ``\usepackage{booktabs}`` and ``\usepackage{siunitx}``: booktabs
rules (``\toprule``, ``\midrule``, ``\bottomrule``); text columns ``l``; numeric
columns ``r`` with every number in ``\num{}``, so the document's siunitx settings
(decimal marker, digit grouping) apply. Not ``S`` columns: their cells mix numbers with
text (``75.80 ± 0.12``, ``(1 seed)``, ``[+0.5, +2.1]``, ``n/a``), which an ``S`` column
would need braced cell by cell. A column is numeric when each of its cells holds a
number with nothing but signs, brackets, ±, ``<``, ``/``, marks or "seed(s)" around it,
or a placeholder (``–``, ``n/a``, ``(baseline)``, ``no result``, ``failed (N units)``).
The grid's notes close the caption of its main table (the short caption in brackets is
what a list of tables shows), and the output is plain ASCII: symbols become LaTeX
commands (``±`` → ``$\pm$``, ``η`` → ``$\eta$``, ``ȳ`` → ``\={y}``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from asma_bench.reports.compare import GridReport, is_number, seed_test_na
from asma_bench.reports.factorial import effects_table, marginal_table

MATRIX_MARKS = "* / ** as in 'sig. (seeds)' (the test over seeds)"


def fmt_value(v: float, digits: int = 2, sign: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def label_frame(table: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """The leading text columns of a displayed table: the label axes, or the cell names."""
    out = pd.DataFrame(index=table.index)
    for a in axes:
        out[a] = table[a]
    if not axes:
        out["cell"] = table.index
    return out


def display_rows(report: GridReport) -> pd.DataFrame:
    """The table as text cells, in the order written to Markdown / LaTeX."""
    t = report.table
    out = label_frame(t, report.axes)
    value = []
    for _, r in t.iterrows():
        if r["seeds"] == 0:
            n_failed = int(r["failed"])
            units = "unit" if n_failed == 1 else "units"
            value.append(f"failed ({n_failed} {units})" if n_failed else "no result")
        elif r["seeds"] == 1:
            value.append(f"{fmt_value(r['mean'])} (1 seed)")
        else:
            value.append(f"{fmt_value(r['mean'])} ± {fmt_value(r['std'])}")
    out[report.metric] = value
    if report.knn:
        out[report.knn] = [_knn_text(r) for _, r in t.iterrows()]
    out["seeds"] = [
        f"{int(n)}/{int(e)}" if 0 <= n < e else str(int(n))
        for n, e in zip(t["seeds"], t["expected"].fillna(0), strict=True)
    ]
    out["failed"] = t["failed"].astype(int).astype(str)
    if report.baseline:
        out["Δ"] = [fmt_value(d, sign=True) for d in t["delta"]]
        out["CI"] = [
            f"[{fmt_value(lo, sign=True)}, {fmt_value(hi, sign=True)}]" if np.isfinite(lo) else "–"
            for lo, hi in zip(t["ci_low"], t["ci_high"], strict=True)
        ]
        out["p (seeds)"] = [
            "n/a" if na else fmt_p(p)
            for p, na in zip(t["p_seeds_adj"], seed_test_na(t), strict=True)
        ]
        out["p (samples)"] = [fmt_p(p) for p in t["p_samples_adj"]]
        out["sig. (seeds)"] = t["sig"]
        out["sig. (samples)"] = t["sig_samples"]
        sig_cols = ["CI", "p (seeds)", "p (samples)", "sig. (seeds)", "sig. (samples)"]
        out.loc[report.baseline, sig_cols] = ""
        out.loc[report.baseline, "Δ"] = "(baseline)"
    return out.reset_index(drop=True)


def _knn_text(r: pd.Series) -> str:
    """A cell's k-NN accuracy: mean ± std, with its seed count where it differs."""
    n = int(r["knn_seeds"])
    if n == 0:
        return "–"
    mean, std = fmt_value(r["knn_mean"]), fmt_value(r["knn_std"])
    text = f"{mean} ± {std}" if n > 1 else mean
    if n != int(r["seeds"]) or n == 1:
        text += f" ({n} seed{'s' if n > 1 else ''})"
    return text


def matrix_rows(report: GridReport) -> pd.DataFrame | None:
    """Row axis × column axis of mean ± std (with the significance mark), or None."""
    if report.matrix is None:
        return None
    r_ax, c_ax = report.matrix
    t = report.table[report.table[r_ax].map(is_number) & report.table[c_ax].map(is_number)]
    text = {}
    for cell, r in t.iterrows():
        entry = (
            ("failed" if r["failed"] else "no result")
            if r["seeds"] == 0
            else f"{fmt_value(r['mean'])} ± {fmt_value(r['std'])}"
            if r["seeds"] > 1
            else fmt_value(r["mean"])
        )
        if cell == report.baseline:
            entry += " †"
        elif r["sig"]:
            entry += f" {r['sig']}"
        text[(r[r_ax], r[c_ax])] = entry
    rows = sorted({k[0] for k in text}, key=float)
    cols = sorted({k[1] for k in text}, key=float)
    m = pd.DataFrame(
        [[text.get((a, b), "") for b in cols] for a in rows], columns=[f"{c_ax}={c}" for c in cols]
    )
    m.insert(0, f"{r_ax} \\ {c_ax}", rows)
    return m


def to_markdown(report: GridReport) -> str:
    lines = [f"**Table: {report.caption}**", ""]
    matrix = matrix_rows(report)
    if matrix is not None:
        lines += [markdown_table(matrix), "", f"† baseline; {MATRIX_MARKS}", ""]
    lines += [markdown_table(display_rows(report)), ""]
    if report.factorial is not None:
        a, b = report.factorial.factors
        lines += [f"**Two-way analysis of variance: {a} × {b}, seed as block.**", ""]
        lines += [markdown_table(effects_table(report.factorial)), ""]
        lines += [markdown_table(marginal_table(report.factorial)), ""]
    lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df``'s columns and rows (index left out)."""

    def esc(s: object) -> str:
        return str(s).replace("|", "\\|")

    head = "| " + " | ".join(esc(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",  # OT1 text fonts print ¡ ¿ and — for < > |
    ">": r"$>$",
    "|": r"$|$",
}
_LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": "$-$",
    "†": r"$^\dagger$",
    "–": "--",
    "—": "---",
    "×": r"$\times$",
    "·": r"$\cdot$",
    "…": r"\dots{}",
    "ϕ": r"$\phi$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "≈": r"$\approx$",
    "≠": r"$\neq$",
    "→": r"$\to$",
    "√": r"$\surd$",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "\u00a0": "~",
}
# Greek capitals that LaTeX writes as Latin letters
_GREEK_AS_LATIN = {"alpha": "A", "beta": "B", "epsilon": "E", "zeta": "Z", "eta": "H",
                   "iota": "I", "kappa": "K", "mu": "M", "nu": "N", "omicron": "O", "rho": "P",
                   "tau": "T", "chi": "X"}  # fmt: skip
_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=",
            "\u0306": "u", "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030c": "v",
            "\u0327": "c"}  # fmt: skip


def latex_escape(text: object) -> str:
    """``text`` as LaTeX source: specials escaped, symbols as commands, opening quotes as
    LaTeX's, line breaks as spaces (a blank line would end a caption or a cell); plain
    ASCII wherever the character is a known symbol, a Greek letter or an accented Latin
    letter."""
    text = re.sub(r"\s*\n\s*", " ", str(text))
    text = re.sub(r"(?<![\w'])'(?=\S)", "`", text)  # 'sig. (seeds)' -> `sig. (seeds)'
    text = re.sub(r'(?<![\w"])"(?=\S)', "``", text).replace('"', "''")
    return "".join(_latex_char(ch) for ch in text)


def _latex_char(ch: str) -> str:
    if ch in _LATEX_SPECIAL:
        return _LATEX_SPECIAL[ch]
    if ch.isascii():
        return ch
    if ch in _LATEX_SYMBOLS:
        return _LATEX_SYMBOLS[ch]
    name = unicodedata.name(ch, "")
    greek = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER ([A-Z]+)", name)
    if greek:
        letter = greek.group(2).lower()
        if greek.group(1) == "SMALL":
            return "o" if letter == "omicron" else rf"$\{letter}$"
        latin = _GREEK_AS_LATIN.get(letter)
        return latin if latin else rf"$\{letter.capitalize()}$"
    decomposition = unicodedata.decomposition(ch)
    plain = unicodedata.normalize("NFKD", ch)
    if decomposition.startswith(("<super>", "<sub>")) and plain.isascii():
        return f"$^{{{plain}}}$" if decomposition.startswith("<super>") else f"$_{{{plain}}}$"
    base, marks = plain[:1], plain[1:]
    if base.isascii() and marks in _ACCENTS:
        return rf"\{_ACCENTS[marks]}{{{base}}}"
    return plain if plain.isascii() else ch  # left for a Unicode-aware engine


# a number in a cell: optional sign, digits, decimals, exponent; not part of a word
_NUMBER = re.compile(r"(?<![\w.])([+-]?)(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])")
_PLACEHOLDER = re.compile(r"(–|n/a|\(baseline\)|no result|failed( \(\d+ units?\))?)?")
_AROUND_NUMBERS = set(" ±[],()<>/*†+-−")


def _numeric_cell(text: str) -> bool:
    """A number (or numbers) with nothing but signs, brackets, marks or "seed(s)" around."""
    if not _NUMBER.search(text):
        return False
    rest = re.sub(r"\bseeds?\b", "", _NUMBER.sub("", text))
    return set(rest) <= _AROUND_NUMBERS


def _numeric_columns(df: pd.DataFrame) -> list[bool]:
    """Per column: whether it is numeric (right-aligned, numbers in ``\\num{}``): no cell
    holds text other than a placeholder, and not every cell is empty."""
    out = []
    for col in df.columns:
        cells = [str(v).strip() for v in df[col]]
        real = [c for c in cells if not _PLACEHOLDER.fullmatch(c)]
        out.append(any(cells) and all(_numeric_cell(c) for c in real))
    return out


def _latex_cell(value: object, numeric: bool) -> str:
    text = str(value)
    if not numeric or _PLACEHOLDER.fullmatch(text.strip()):
        return latex_escape(text)
    parts, pos = [], 0
    for m in _NUMBER.finditer(text):
        sign, number = m.groups()
        parts.append(latex_escape(text[pos : m.start()]))
        # siunitx drops an explicit plus by default: a Δ's sign stays outside \num
        parts.append(("+" if sign == "+" else "") + rf"\num{{{sign.strip('+')}{number}}}")
        pos = m.end()
    parts.append(latex_escape(text[pos:]))
    return "".join(parts)


def latex_table(df: pd.DataFrame, caption: str, label: str, notes: Sequence[str] = ()) -> str:
    numeric = _numeric_columns(df)
    cols = "".join("r" if n else "l" for n in numeric)
    full = caption + ("" if not notes else " Notes: " + " ".join(_sentence(n) for n in notes))
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption[{{{latex_escape(caption)}}}]{{{latex_escape(full)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(_latex_cell(v, n) for v, n in zip(row, numeric, strict=True)) + r" \\"
        for row in df.itertuples(index=False)
    ]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def _sentence(note: str) -> str:
    note = note.strip()
    return note if note.endswith((".", "!", "?")) else note + "."


def to_latex(report: GridReport) -> str:
    """booktabs tables with siunitx numbers (needs ``\\usepackage{booktabs,siunitx}``);
    the notes close the main table's caption."""
    parts = []
    matrix = matrix_rows(report)
    if matrix is not None:
        parts.append(
            latex_table(
                matrix,
                f"{report.caption} († baseline; {MATRIX_MARKS})",
                f"tab:{report.grid}-matrix",
            )
        )
    parts.append(
        latex_table(display_rows(report), report.caption, f"tab:{report.grid}", report.notes)
    )
    if report.factorial is not None:
        a, b = report.factorial.factors
        caption = f"Two-way analysis of variance of {report.grid}: {a} × {b}, seed as block"
        parts.append(
            latex_table(effects_table(report.factorial), caption, f"tab:{report.grid}-anova")
        )
        parts.append(latex_table(marginal_table(report.factorial),
                                  f"Marginal means of {report.grid} with 95% intervals",
                                  f"tab:{report.grid}-marginal"))  # fmt: skip
    return "\n\n".join(parts) + "\n"


def write_grid_report(report: GridReport, out_dir: Path) -> dict[str, Path]:
    """``<grid>.md``, ``<grid>.tex``, ``<grid>.csv`` (one row per cell, raw numbers) and
    ``<grid>_seeds.csv`` (one row per unit) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        k: out_dir / f"{report.grid}{suffix}"
        for k, suffix in (
            ("markdown", ".md"),
            ("latex", ".tex"),
            ("csv", ".csv"),
            ("seeds", "_seeds.csv"),
        )
    }
    paths["markdown"].write_text(to_markdown(report), encoding="utf-8")
    paths["latex"].write_text(to_latex(report), encoding="utf-8")
    extra = {"knn_metric": report.knn} if report.knn else {}
    report.table.assign(metric=report.metric, **extra).to_csv(paths["csv"])
    report.per_seed.assign(metric=report.metric, **extra).to_csv(paths["seeds"], index=False)
    return paths
