"""One offline HTML page per report folder.

Each report written into a folder (a grid's tables and figures, the latency table) leaves a
``manifest.json`` in its own sub-folder; :func:`build_index` gathers every manifest of the
folder into ``index.html`` with relative links to the figures and files, so the folder can
be copied, zipped or opened from disk without a server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from asma_bench.errors import ConfigError, DataFormatError

MANIFEST = "manifest.json"
INDEX = "index.html"
#: marks an index page this package wrote: a report replaces such a page, no other
GENERATOR = "<meta name='generator' content='asma-bench'>"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2.5rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.caption{font-style:italic;margin:.4rem 0}.notes{font-size:.8rem;color:#444}
figure{margin:1.2rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;margin-top:.3rem}.files{font-size:.8rem}
"""


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> Path:
    """Write a report's ``manifest.json``: title, tables, figures, notes, files.

    Paths inside are relative to ``folder``. Tables are
    ``{"caption", "html", "files": {label: path}}``; figures ``{"caption", "png", "svg"}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **manifest}
    path = folder / MANIFEST
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path


def read_manifests(out_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(out_dir.glob(f"*/{MANIFEST}")):
        try:
            found.append((path.parent, json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    return found


def is_own_index(path: Path) -> bool:
    """Whether ``path`` is an index page a report wrote (and may rewrite)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    earlier = "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
    return GENERATOR in head or head.startswith(earlier)  # (pages from before the mark)


def check_report_folder(out_dir: Path, reports: Sequence[str]) -> None:
    """Refuse, before anything is written, a report folder whose ``index.html`` or whose
    ``<report>/`` subfolders hold something a report did not write: a report replaces its
    own pages and nothing of the user's."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ConfigError(f"report folder {out_dir} is a file, not a folder; choose another --out")
    index = out_dir / INDEX
    if (index.exists() or index.is_symlink()) and (index.is_symlink() or not is_own_index(index)):
        raise ConfigError(
            f"{index} was not written by asma-bench report; a report would replace it: choose "
            "another --out (or move that file)"
        )
    for name in reports:
        folder = out_dir / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ConfigError(f"{folder} is not a report folder; choose another --out")
        if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
            raise ConfigError(
                f"{folder} holds files no report wrote; a report would write into it: "
                "choose another --out (or move that folder)"
            )


def build_index(out_dir: Path, title: str = "asma-bench report") -> Path:
    """(Re)write ``out_dir/index.html`` from every ``*/manifest.json`` in ``out_dir``."""
    reports = read_manifests(out_dir)
    e = html.escape
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>{GENERATOR}<title>{e(title)}"
        f"</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
    ]
    if not reports:
        parts.append("<p>No reports in this folder yet.</p>")
    else:
        parts.append("<ul>")
        for folder, m in reports:
            parts.append(
                f"<li><a href='#{e(folder.name)}'>{e(m.get('title', folder.name))}</a></li>"
            )
        parts.append("</ul>")
    for folder, m in reports:
        parts.append(_section(folder.name, m))
    parts.append("</body></html>")
    path = out_dir / INDEX
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _section(name: str, m: Mapping[str, Any]) -> str:
    e = html.escape
    out = [f"<h2 id='{e(name)}'>{e(m.get('title', name))}</h2>"]
    if m.get("created"):
        out.append(f"<p class='files'>written {e(str(m['created']))}</p>")
    for t in m.get("tables", []):
        out.append(f"<p class='caption'>{e(t.get('caption', ''))}</p>")
        out.append(t.get("html", ""))  # produced by pandas.DataFrame.to_html (escaped)
        files = t.get("files", {})
        if files:
            links = " · ".join(
                f"<a href='{e(_rel(name, p))}'>{e(label)}</a>" for label, p in files.items()
            )
            out.append(f"<p class='files'>{links}</p>")
    notes = m.get("notes", [])
    if notes:
        out.append("<ul class='notes'>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    for f in m.get("figures", []):
        png, svg = _rel(name, f["png"]), _rel(name, f.get("svg", f["png"]))
        out.append(
            f"<figure><a href='{e(svg)}'><img src='{e(png)}' alt='{e(f['caption'])}'>"
            f"</a><figcaption>{e(f['caption'])} (<a href='{e(png)}'>PNG</a>, "
            f"<a href='{e(svg)}'>SVG</a>)</figcaption></figure>"
        )
    return "\n".join(out)


def _rel(folder: str, path: str) -> str:
    return f"{folder}/{Path(path).as_posix()}"
