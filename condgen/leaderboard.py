"""One leaderboard: every scored run or folder under one protocol, beside the numbers the papers reported.

`leaderboard(files, out)` reads metrics files (`condgen eval RUN` or `condgen eval --images DIR`), checks that
they share one protocol (the fields that change a number: dataset, image count, resolution, real-image
resize, every feature network with its weights digest and resize, KID subsets, segmenter and its protocol,
k and sigma of the k-NN and MMD metrics; not how the images were made), and writes `leaderboard.md` and
`leaderboard.html`. Rows with the papers' own numbers (`REPORTED`) follow, marked "reported, own protocol":
each paper measured with its own code, images and resizing, so they sit beside the re-scored numbers for
orientation, never in the same ranking. A table mixing protocols is refused unless `allow_mixed`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condgen.rundir import check_output_dir, mark_output_dir


@dataclass(frozen=True)
class Reported:
    """A paper's own numbers on one dataset (FID, and mIoU in %)."""

    method: str
    dataset: str  # condgen's dataset class name
    values: dict[str, float] = field(default_factory=dict)  # metrics keys: fid, miou (as a fraction)
    source: str = ""


def _reported() -> list[Reported]:
    """The papers' numbers of the released models (`condgen.infer.pretrained.MODELS`, where they are stated
    once, with their tables); mIoU stored as a fraction, as metrics files hold it."""
    from condgen.infer.pretrained import MODELS

    return [
        Reported(
            f"{m.method} (reported)", m.dataset, {"fid": m.reported["FID"], "miou": m.reported["mIoU"] / 100},
            m.source,
        )
        for m in MODELS.values()
        if m.method and {"FID", "mIoU"} <= m.reported.keys()
    ]


# Open to additions: contender work appends its paper's rows (`REPORTED += [...]`), or registers its released
# models with their reported numbers (`condgen.infer.register_pretrained`) before this module is imported.
REPORTED: list[Reported] = _reported()


def protocol_key(p: dict) -> dict[str, Any]:
    """The protocol fields of a metrics file that change its numbers (not how the images were made)."""

    def none_if_unscaled(text: Any) -> Any:
        # "none (rendered at the output size)" and "none (files at the generated size)" resize nothing
        return "none" if str(text).startswith("none") else text

    def extractor(f: dict | None) -> Any:
        return None if not f else {k: f.get(k) for k in ("name", "weights_sha256", "input_size", "resize")}

    seg = p.get("segmenter") or {}
    key: dict[str, Any] = {
        "dataset": p.get("dataset"),
        "split": "val" if p.get("split") in ("val", "given") else p.get("split"),
        "images": p.get("images"),
        "resolution": p.get("resolution"),
        "real_resize": none_if_unscaled(p.get("real_resize_filter")),
        "fid_features": extractor(p.get("features")),
        "kid": [p.get("kid_subsets"), p.get("kid_subset_size")] if p.get("features") else None,
        "segmenter": {k: seg.get(k) for k in ("name", "weights_sha256", "input_size", "protocol_name")}
        if seg
        else None,
    }
    for name in ("fd_dinov2", "cmmd", "precision_recall", "density_coverage"):
        m = p.get(name)
        if m:
            key[name] = {
                "features": extractor(m["features"]),
                **{k: m.get(k) for k in ("k", "sigma", "scale")},
            }
    return key


def _differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _name(path: Path, record: dict) -> str:
    src = record["protocol"].get("source") or {}
    if src.get("kind") == "images folder":
        gen = Path(src["generated"])
        # results/<name>/test_latest/images/synthesized_image -> <name>
        return gen.parents[2].name if gen.name == "synthesized_image" and len(gen.parents) > 2 else gen.name
    run = src.get("source") or src.get("checkpoint") or ""
    return Path(run).name or path.stem


def leaderboard(
    files: list[str | Path],
    out: str | Path,
    *,
    names: list[str] | None = None,
    title: str = "condgen leaderboard",
    allow_mixed: bool = False,
    reported: bool = True,
) -> Path:
    """Write `leaderboard.md` and `leaderboard.html` into `out`; returns the markdown path.

    Args:
        files: metrics JSON files.
        names: row names (default: the run or results folder name).
        allow_mixed: write a table of several protocols (a column names each row's protocol).
        reported: add the papers' reported rows for the datasets in the table.
    """
    paths = [Path(f) for f in files]
    for f in paths:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: metrics file not found (write one with `condgen eval`)")
    if names is not None and len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} metrics files")
    records = [json.loads(f.read_text()) for f in paths]
    for f, r in zip(paths, records, strict=True):
        if not {"metrics", "protocol", "protocol_line"} <= set(r):
            raise ValueError(f"{f}: not a condgen metrics file (no metrics / protocol / protocol_line)")
    out = Path(out)
    check_output_dir(out)
    keys = [protocol_key(r["protocol"]) for r in records]
    groups: list[dict] = []
    for k in keys:
        if k not in groups:
            groups.append(k)
    if len(groups) > 1 and not allow_mixed:
        first = next(i for i, k in enumerate(keys) if k != keys[0])
        diff = "; ".join(_differences(keys[0], keys[first]))
        raise ValueError(
            f"the metrics files were scored under {len(groups)} protocols ({paths[0]} and {paths[first]} "
            f"differ in {diff}); re-score them under one protocol, or pass --allow_mixed to mix them"
        )
    # columns: every column any file declares, in first-seen order
    columns: list[dict] = []
    for r in records:
        for c in r.get("columns", []):
            if c["key"] not in [x["key"] for x in columns]:
                columns.append(c)
    header = ["", "kind", *(f"{c['header']} {'↓' if c['better'] == 'lower' else '↑'}" for c in columns)]
    if len(groups) > 1:
        header.append("protocol")
    rows: list[list[str]] = []
    for i, (f, r) in enumerate(zip(paths, records, strict=True)):
        src = r["protocol"].get("source") or {}
        kind = (
            "re-scored (images made elsewhere)" if src.get("kind") == "images folder" else "re-scored (run)"
        )
        if r["protocol"].get("meaningless"):
            kind += ", MEANINGLESS: random weights"
        row = [names[i] if names else _name(f, r), kind]
        row += [_fmt(r["metrics"].get(c["key"]), c.get("scale", 1.0)) for c in columns]
        if len(groups) > 1:
            row.append(f"P{groups.index(keys[i]) + 1}")
        rows.append(row)
    datasets = {r["protocol"].get("dataset") for r in records}
    extra = [e for e in REPORTED if e.dataset in datasets] if reported else []
    for e in extra:
        row = [f"{e.method} ({e.dataset})", f"reported, own protocol: {e.source}"]
        row += [_fmt(e.values.get(c["key"]), c.get("scale", 1.0)) for c in columns]
        rows.append(row + ([""] if len(groups) > 1 else []))
    lines = [r["protocol_line"] for r in records]
    protocols = [lines[keys.index(g)] for g in groups]
    notes = []
    if not extra and reported:
        notes.append(f"No paper reports numbers on {', '.join(sorted(map(str, datasets)))}.")
    if extra:
        notes.append(
            "Rows marked 'reported, own protocol' are the papers' own numbers, measured with their code, "
            "image sets and resizing: shown for orientation beside the re-scored rows, not ranked with them."
        )
    if len(groups) > 1:
        notes.append(
            "**Several protocols (--allow_mixed): numbers of different protocols are not comparable.**"
        )
    mark_output_dir(out)
    md = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""] + [
        f"Protocol P{i + 1}: {line}" if len(groups) > 1 else f"Protocol: {line}"
        for i, line in enumerate(protocols)
    ]
    md += [""] + [n + "\n" for n in notes]
    (out / "leaderboard.md").write_text("\n".join(md))
    _write_html(out / "leaderboard.html", title, header, rows, protocols, notes)
    return out / "leaderboard.md"


def _fmt(value: Any, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float | int):
        return f"{value * scale:.3f}" if abs(value * scale) < 10 else f"{value * scale:.1f}"
    return str(value)


def _write_html(
    path: Path, title: str, header: list[str], rows: list[list[str]], protocols: list[str], notes: list[str]
) -> None:
    e = html.escape
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,td:nth-child(2)"
        "{text-align:left}tr.reported{color:#666;font-style:italic}</style>",
        f"<h1>{e(title)}</h1>",
        "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>",
    ]
    for r in rows:
        cls = " class='reported'" if r[1].startswith("reported") else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
    parts.append("</table>")
    for i, line in enumerate(protocols):
        label = f"Protocol P{i + 1}" if len(protocols) > 1 else "Protocol"
        parts.append(f"<p><b>{label}:</b> {e(line)}</p>")
    parts += [f"<p>{e(n.replace('**', ''))}</p>" for n in notes]
    path.write_text("\n".join(parts) + "\n")
