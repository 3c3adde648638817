"""Paper-style tables from one or more `iptbench eval` folders: rows = methods, columns = datasets.

One block per task (SR x2/x3/x4, denoising sigma 30/50, deraining); each cell is PSNR (dB) / SSIM.
Published rows (package data, iptbench.report.published) sit above the measured ones, marked
"(published)", with the scoring channel in the label whenever it differs from ours. Every measured model of
the IPT architecture, whatever its label, gets a "Δ ... vs <published row>" row: measured minus the
published IPT number scored the same way (channel, crop, and IPT's grey-image convention).
A measured row's label carries its restorer settings when they differ from the defaults, e.g.
"ours (official tiling, x8)". Under every table: the metric profile(s) used and the sources of the
published rows.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from iptbench.errors import IptbenchError
from iptbench.report.loading import Measured, load_results
from iptbench.report.published import PublishedRow, published_for
from iptbench.tasks import get_task, tasks_in_table_order

FORMATS = ("md", "csv", "latex")
DAGGER = "†"


@dataclass
class Row:
    label: str
    kind: str  # "published", "measured" or "delta"
    cells: dict[str, str] = field(default_factory=dict)
    profile: str = ""


@dataclass
class Block:
    task: str
    title: str
    datasets: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _datasets(task: str, present: set[str]) -> list[str]:
    order = get_task(task).spec.datasets
    return [d for d in order if d in present] + sorted(present - set(order))


def _cell(psnr: float, ssim: float | str | None, mark: str = "") -> str:
    if psnr is None or math.isnan(psnr):
        return "–"
    text = f"{psnr:.2f}"
    if isinstance(ssim, str):  # a published value, kept with the digits it was printed with
        text += f" / {ssim}" if ssim else ""
    elif ssim is not None and not math.isnan(ssim):
        text += f" / {ssim:.4f}"
    return text + mark


def task_title(task: str) -> str:
    t = get_task(task)
    return t.spec.title_for(t)


def _published_rows(task: str, datasets: list[str], channel: str) -> tuple[list[Row], list[str], bool]:
    groups: dict[tuple[str, str], list[PublishedRow]] = {}
    for p in published_for(task, datasets):
        groups.setdefault((p.method, p.channel), []).append(p)
    rows, any_unconfirmed = [], False
    sources: dict[tuple[str, str, str], list[str]] = {}
    for (method, ch), items in groups.items():
        suffix = f", {ch.upper() if ch == 'y' else 'RGB'}" if ch != channel else ""
        row = Row(f"{method} (published{suffix})", "published", profile=f"published, {ch}")
        for p in items:
            mark = "" if p.confirmed else DAGGER
            any_unconfirmed |= not p.confirmed
            row.cells[p.dataset] = _cell(p.psnr, p.ssim_text, mark)
        rows.append(row)
        first = items[0]
        methods = sources.setdefault((first.source, first.table, first.protocol), [])
        if method not in methods:
            methods.append(method)
    notes = [f"{', '.join(m)}: {src}, {table} [{protocol}]" for (src, table, protocol), m in sources.items()]
    return rows, notes, any_unconfirmed


def _ipt_reference(task: str, dataset: str, channel: str, crop: int) -> PublishedRow | None:
    candidates = [
        p
        for p in published_for(task, [dataset])
        if p.is_ipt() and p.channel == channel and p.crop_pixels() == crop
    ]
    confirmed = [p for p in candidates if p.confirmed]
    return (confirmed or candidates or [None])[0]


@dataclass
class _DeltaNotes:
    references: list[str] = field(default_factory=list)
    grey: list[str] = field(default_factory=list)  # datasets whose Δ used IPT's grey-image convention
    unconfirmed: bool = False


def _measured_text(m: Measured) -> str:
    text = _cell(m.psnr, m.ssim)
    if m.expected_images and m.images < m.expected_images:  # an --allow-partial cell says what it holds
        text += f" ({m.images}/{m.expected_images} images)"
    return text


def _delta_rows(label: str, profile: str, items: list[Measured], task: str, notes: _DeltaNotes) -> list[Row]:
    """One Δ row per published IPT row subtracted, named after it ("Δ ours vs IPT (MindSpore)")."""
    rows: dict[str, Row] = {}
    for m in items:
        ref = _ipt_reference(task, m.dataset, m.channel, m.crop)
        if ref is None or math.isnan(m.psnr):
            continue
        value = m.psnr
        if m.psnr_replicated is not None:  # IPT replicates grey images to RGB: compare like with like
            value = m.psnr_replicated
            notes.grey.append(m.dataset)
        mark = "" if ref.confirmed else DAGGER
        notes.unconfirmed |= not ref.confirmed
        row = rows.setdefault(ref.method, Row(f"Δ {label} vs {ref.method}", "delta", profile=profile))
        row.cells[m.dataset] = f"{value - ref.psnr:+.2f}{mark}"
        notes.references.append(f"{ref.method} {m.dataset} {ref.psnr:.2f} ({ref.channel.upper()})")
    return list(rows.values())


def _measured_rows(
    items_for_task: list[Measured], task: str, published: bool, notes: _DeltaNotes
) -> list[Row]:
    profiles_per_model: dict[str, set[str]] = {}
    for m in items_for_task:
        profiles_per_model.setdefault(m.model, set()).add(m.profile)
    groups: dict[tuple[str, str, str], list[Measured]] = {}
    for m in items_for_task:
        groups.setdefault((m.model, m.profile, m.settings), []).append(m)
    rows: list[Row] = []
    for (model, profile, settings), items in groups.items():
        label = model + (f" ({settings})" if settings else "")
        if len(profiles_per_model[model]) > 1:
            label += f" [{profile}]"
        rows.append(Row(label, "measured", {m.dataset: _measured_text(m) for m in items}, profile))
        if published and all(m.is_ipt for m in items):
            rows.extend(_delta_rows(label, profile, items, task, notes))
    return rows


def _profile_notes(items: list[Measured]) -> list[str]:
    notes: list[str] = []
    seen: set[tuple[str, str]] = set()
    for m in items:
        if (m.profile, m.profile_description) not in seen:
            seen.add((m.profile, m.profile_description))
            desc = m.profile_description or "no description recorded"
            # describe() lines already start with "profile NAME:"; don't say it twice
            prefix = (
                "Metric " if desc.startswith(f"profile {m.profile}") else f"Metric profile `{m.profile}`: "
            )
            notes.append(prefix + desc)
    return notes


def _delta_notes(notes: _DeltaNotes) -> list[str]:
    lines = []
    if notes.references:
        lines.append("Δ against: " + "; ".join(dict.fromkeys(notes.references)))
    if notes.grey:
        sets = ", ".join(dict.fromkeys(notes.grey))
        lines.append(
            f"Δ on {sets} uses IPT's convention for grey images (replicated to RGB, then scored), as the "
            "published IPT rows do; the measured row scores them on their grey values."
        )
    return lines


def build_blocks(measured: list[Measured], published: bool = False) -> list[Block]:
    blocks = []
    for task in tasks_in_table_order():
        rows_for_task = [m for m in measured if m.task == task]
        if not rows_for_task:
            continue
        datasets = _datasets(task, {m.dataset for m in rows_for_task})
        block = Block(task, task_title(task), datasets)
        channels = sorted({m.channel for m in rows_for_task})
        notes = _DeltaNotes()
        pub_notes: list[str] = []
        if published:
            pub_rows, pub_notes, notes.unconfirmed = _published_rows(
                task, datasets, channels[0] if len(channels) == 1 else ""
            )
            block.rows.extend(pub_rows)
        block.rows.extend(_measured_rows(rows_for_task, task, published, notes))
        block.notes.extend(_profile_notes(rows_for_task))
        if published:
            block.notes.extend(f"Published: {n}" for n in pub_notes)
            block.notes.extend(_delta_notes(notes))
            if notes.unconfirmed:
                block.notes.append(f"{DAGGER} not confirmed from a primary source.")
        blocks.append(block)
    return blocks


def render_markdown(
    blocks: list[Block], missing: list | None = None, warnings: list[str] | None = None
) -> str:
    lines = [
        "# iptbench results",
        "",
        "PSNR (dB) / SSIM; measured rows are iptbench runs, means over images.",
        "",
    ]
    for block in blocks:
        lines += [
            f"## {block.title}",
            "",
            "| Method | " + " | ".join(block.datasets) + " |",
            "|---|" + "---|" * len(block.datasets),
        ]
        for row in block.rows:
            cells = [row.cells.get(d, "–") for d in block.datasets]
            label = f"*{row.label}*" if row.kind == "published" else row.label
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"{note}  " for note in block.notes[:-1]] + block.notes[-1:]
        lines.append("")
    if missing:
        lines += ["## Missing datasets", ""]
        for m in missing:
            fetch = f": `{m.fetch_command}`" if m.fetch_command else ""
            detail = f" ({m.detail})" if m.detail else ""
            lines.append(f"- {m.name} ({m.state}){detail}{fetch}")
        lines.append("")
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(lines)


def render_csv(blocks: list[Block]) -> str:
    datasets = list(dict.fromkeys(d for b in blocks for d in b.datasets))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["task", "method", "kind", "profile", *[f"{d} {m}" for d in datasets for m in ("psnr", "ssim")]]
    )
    for block in blocks:
        for row in block.rows:
            values: list[str] = []
            for d in datasets:
                text = row.cells.get(d, "").replace("–", "")
                psnr, _, ssim = text.partition(" / ")
                values += [psnr, ssim]
            writer.writerow([block.task, row.label, row.kind, row.profile, *values])
    return buffer.getvalue()


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "†": r"$^\dagger$",
    "Δ": r"$\Delta$",
    "−": "$-$",
    "×": r"$\times$",
    "σ": r"$\sigma$",
    "–": "--",
    "`": "",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def render_latex(blocks: list[Block]) -> str:
    out = ["% iptbench results; needs \\usepackage{booktabs}", ""]
    for block in blocks:
        out += [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(block.title)}: PSNR (dB) / SSIM.}}",
            r"\begin{tabular}{l" + "c" * len(block.datasets) + "}",
            r"\toprule",
            "Method & " + " & ".join(latex_escape(d) for d in block.datasets) + r" \\",
            r"\midrule",
        ]
        previous = None
        for row in block.rows:
            if previous == "published" and row.kind != "published":
                out.append(r"\midrule")
            previous = row.kind
            label = (
                rf"\textit{{{latex_escape(row.label)}}}"
                if row.kind == "published"
                else latex_escape(row.label)
            )
            cells = [latex_escape(row.cells.get(d, "–")) for d in block.datasets]
            out.append(f"{label} & " + " & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
        out += [latex_escape(n) + r"\\" for n in block.notes]
        out += [r"\end{table}", ""]
    return "\n".join(out)


def write_eval_report(out: Path, missing: list | None = None) -> Path:
    """`report.md` of one eval results folder (markdown, with the published rows); returns its path."""
    from iptbench.io import atomic_write_text

    path = Path(out) / "report.md"
    atomic_write_text(path, render_report([Path(out)], fmt="md", published=True, missing=missing))
    return path


def render_report(
    folders: list[Path],
    fmt: str = "md",
    published: bool = False,
    missing: list | None = None,
    prefer_later: bool = False,
) -> str:
    if fmt not in FORMATS:
        raise IptbenchError(f"unknown report format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    measured, warnings = load_results([Path(f) for f in folders], prefer_later=prefer_later)
    if not measured and not missing:
        raise IptbenchError(
            f"no results in {', '.join(str(f) for f in folders)}: summary.csv has no rows yet"
        )
    blocks = build_blocks(measured, published)
    if fmt == "csv":
        return render_csv(blocks)
    if fmt == "latex":
        return render_latex(blocks)
    return render_markdown(blocks, missing, warnings)
