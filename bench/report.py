#!/usr/bin/env python3
"""Summarise the results of bench/transfer.sh.

Usage: python3 bench/report.py [--markdown] OUT_DIR

Reads OUT_DIR/transfer.json (or OUT_DIR/transfer.csv when there is no JSON), prints one
table per file size (median MB/s, min-max MB/s, median seconds, and each method's median
time over p2pshare's), then the project's two targets as explicit time ratios:

    p2pshare / dd                  <= 1.15   (close to the disk's limit)
    p2pshare / dd-direct           (reported; the disk's direct-write speed, no target)
    p2pshare / (curl+sha1sum+sync) <= 0.6    (well ahead of a careful plain download)

and writes OUT_DIR/report.txt (the machine header and the tables) and OUT_DIR/transfer.svg
(a grouped bar chart of median MB/s by size and method, with min-max whiskers).

MB is 10^6 bytes throughout; sizes are binary (1M = 2^20 bytes). Standard library only.
"""

import argparse
import csv
import json
import math
import os
import re
import signal
import statistics
import sys
from html import escape

TARGETS = [
    # (label, the method p2pshare is compared with, target: the time ratio must be <= it)
    ("p2pshare / dd", "dd", 1.15),
    ("p2pshare / dd-direct", "dd-direct", None),
    ("p2pshare / (curl+sha1sum+sync)", "curl+sha1sum+sync", 0.6),
]

FIXED_ORDER = ["dd", "dd-direct", "curl", "curl+sha1sum+sync", "iperf3"]

DESCRIPTIONS = {
    "p2pshare": "p2pshare get, 1 source (SHA-1 verified, fsynced)",
    "dd": "dd bs=1M conv=fsync (local copy: the disk)",
    "dd-direct": "dd bs=1M oflag=direct conv=fsync (the disk, no cache)",
    "curl": "nginx sendfile -> curl (no verify, no fsync)",
    "curl+sha1sum+sync": "nginx -> curl, then sha1sum + sync",
    "iperf3": "iperf3 -n SIZE on loopback (the network)",
}

COLORS = {
    "p2pshare": "#1f77b4",
    "dd": "#7f7f7f",
    "dd-direct": "#c7c7c7",
    "curl": "#2ca02c",
    "curl+sha1sum+sync": "#98df8a",
    "iperf3": "#ff7f0e",
}
EXTRA_COLORS = ["#aec7e8", "#9467bd", "#c5b0d5", "#8c564b", "#e377c2", "#17becf"]


def sources_of(method):
    """2 for 'p2pshare-2src', 1 for 'p2pshare', None for anything else."""
    if method == "p2pshare":
        return 1
    m = re.fullmatch(r"p2pshare-(\d+)src", method)
    return int(m.group(1)) if m else None


def method_key(method):
    n = sources_of(method)
    if n is not None:
        return (0, n, method)
    if method in FIXED_ORDER:
        return (1, FIXED_ORDER.index(method), method)
    return (2, 0, method)


def describe(method):
    if method in DESCRIPTIONS:
        return DESCRIPTIONS[method]
    n = sources_of(method)
    if n is not None:
        return f"p2pshare get, {n} sources hold it, all used at once (SHA-1 verified, fsynced)"
    return method


def size_label(nbytes):
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= mult and nbytes % mult == 0:
            return f"{nbytes // mult} {unit}"
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= mult:
            return f"{nbytes / mult:.1f} {unit}"
    return f"{nbytes} B"


def load(out_dir):
    """Returns (meta, rows); rows are dicts with size_bytes, method, run, seconds, mb_per_s."""
    json_path = os.path.join(out_dir, "transfer.json")
    csv_path = os.path.join(out_dir, "transfer.csv")
    if os.path.exists(json_path):
        with open(json_path) as f:
            data = json.load(f)
        return data.get("meta", {}), data["rows"]
    if os.path.exists(csv_path):
        with open(csv_path, newline="") as f:
            rows = [
                {
                    "size_bytes": int(r["size_bytes"]),
                    "method": r["method"],
                    "run": int(r["run"]),
                    "seconds": float(r["seconds"]),
                    "mb_per_s": float(r["mb_per_s"]),
                    "cpu_get_s": float(r["cpu_get_s"]) if r.get("cpu_get_s") else None,
                    "cpu_peers_s": float(r["cpu_peers_s"]) if r.get("cpu_peers_s") else None,
                }
                for r in csv.DictReader(f)
            ]
        return {}, rows
    sys.exit(f"report.py: neither {json_path} nor {csv_path} exists")


def summarise(rows):
    """{size: {method: stats}} with median/min/max of MB/s and the median seconds."""
    groups = {}
    for r in rows:
        groups.setdefault(r["size_bytes"], {}).setdefault(r["method"], []).append(r)
    summary = {}
    for size, by_method in groups.items():
        summary[size] = {}
        for method, runs in by_method.items():
            mbps = [r["mb_per_s"] for r in runs]
            secs = [r["seconds"] for r in runs]
            # CPU seconds per GiB moved, downloader and holders, where measured.
            gib = size / 2**30
            cpu = [
                (r["cpu_get_s"] / gib, r["cpu_peers_s"] / gib)
                for r in runs
                if r.get("cpu_get_s") is not None and r.get("cpu_peers_s") is not None
            ]
            summary[size][method] = {
                "runs": len(runs),
                "median_mbps": statistics.median(mbps),
                "min_mbps": min(mbps),
                "max_mbps": max(mbps),
                "median_s": statistics.median(secs),
                "cpu_get_per_gib": statistics.median(c[0] for c in cpu) if cpu else None,
                "cpu_peers_per_gib": statistics.median(c[1] for c in cpu) if cpu else None,
            }
    return summary


def baseline_method(methods):
    p2p = sorted((m for m in methods if sources_of(m) is not None), key=method_key)
    return p2p[0] if p2p else None


def fmt_num(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_secs(x):
    return f"{x:.3f}" if x >= 1 else f"{x:.4f}"


def ratio(stats, num, den):
    if num not in stats or den not in stats or stats[den]["median_s"] <= 0:
        return None
    return stats[num]["median_s"] / stats[den]["median_s"]


def tables(summary, markdown=False):
    lines = []
    for size in sorted(summary):
        stats = summary[size]
        methods = sorted(stats, key=method_key)
        base = baseline_method(methods)
        nruns = max(s["runs"] for s in stats.values())
        title = f"{size_label(size)} ({size} bytes), {nruns} run{'s' if nruns != 1 else ''} per method"
        head = [
            "method",
            "median MB/s",
            "min–max MB/s",
            "median s",
            f"time / {base}" if base else "time / p2pshare",
            "CPU s/GiB get + holders",
            "what it measures",
        ]
        body = []
        for m in methods:
            s = stats[m]
            r = ratio(stats, m, base) if base else None
            body.append(
                [
                    m,
                    fmt_num(s["median_mbps"]),
                    f"{fmt_num(s['min_mbps'])}–{fmt_num(s['max_mbps'])}",
                    fmt_secs(s["median_s"]),
                    f"{r:.2f}" if r is not None else "n/a",
                    (
                        f"{s['cpu_get_per_gib']:.2f} + {s['cpu_peers_per_gib']:.2f}"
                        if s["cpu_get_per_gib"] is not None
                        else ""
                    ),
                    describe(m),
                ]
            )
        targets = []
        for label, den, target in TARGETS:
            r = ratio(stats, base, den) if base else None
            if r is None:
                missing = den if base else "p2pshare"
                goal = f"; target ≤ {target}" if target is not None else ""
                targets.append(f"{label} time ratio: n/a ({missing} not measured{goal})")
            elif target is None:
                targets.append(f"{label} time ratio: {r:.3f}")
            else:
                verdict = "met" if r <= target else "NOT met"
                targets.append(f"{label} time ratio: {r:.3f} (target ≤ {target}: {verdict})")
        if markdown:
            lines.append(f"#### {title} (MB = 10^6 bytes)")
            lines.append("")
            lines.append("| " + " | ".join(head) + " |")
            lines.append("| " + " | ".join(["---"] + ["---:"] * 5 + ["---"]) + " |")
            for row in body:
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
            for t in targets:
                lines.append(f"- {t}")
        else:
            lines.append(f"== {title}; MB = 10^6 bytes ==")
            widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
            align = ["<", ">", ">", ">", ">", ">", "<"]
            for row in [head] + body:
                cells = [f"{str(c):{a}{w}}" for c, a, w in zip(row, align, widths)]
                lines.append("  ".join(cells).rstrip())
            for t in targets:
                lines.append(t)
        lines.append("")
    return "\n".join(lines)


def nice_ceiling(x):
    """A round axis maximum and tick step for values up to x."""
    if x <= 0:
        return 1.0, 0.2
    raw_step = x / 5
    mag = 10 ** math.floor(math.log10(raw_step))
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if step >= raw_step:
            break
    return step * math.ceil(x / step - 1e-9), step


def svg_chart(summary, meta):
    sizes = sorted(summary)
    methods = sorted({m for s in summary.values() for m in s}, key=method_key)
    colors = {}
    extra = iter(EXTRA_COLORS * 4)
    for m in methods:
        colors[m] = COLORS.get(m) or next(extra)

    width, height = 1000, 540
    ml, mr, mt, mb = 80, 310, 70, 70
    pw, ph = width - ml - mr, height - mt - mb
    top = max(
        [s["max_mbps"] for st in summary.values() for s in st.values()] + [1.0]
    )
    ymax, step = nice_ceiling(top * 1.08)

    def y(v):
        return mt + ph - ph * min(v, ymax) / ymax

    out = []
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
    )
    out.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    runs = meta.get("runs")
    title = "p2pshare transfer throughput: median MB/s by file size and method"
    out.append(
        f'<text x="{width / 2:.0f}" y="28" text-anchor="middle" font-size="18" '
        f'font-weight="bold">{escape(title)}</text>'
    )
    sub = []
    if runs:
        sub.append(f"median of {runs} run{'s' if runs != 1 else ''}, whiskers min–max")
    sub.append("MB = 10^6 bytes")
    machine = ", ".join(
        str(x)
        for x in [
            f"nproc {meta['nproc']}" if "nproc" in meta else None,
            meta.get("cpu"),
            f"kernel {meta['kernel']}" if "kernel" in meta else None,
            (meta.get("filesystem") or "").split(" ")[0] or None,
            meta.get("date"),
        ]
        if x
    )
    if machine:
        sub.append(machine)
    out.append(
        f'<text x="{width / 2:.0f}" y="50" text-anchor="middle" font-size="12" '
        f'fill="#444">{escape("; ".join(sub))}</text>'
    )

    # Grid and y axis.
    v = 0.0
    while v <= ymax + step / 2:
        yy = y(v)
        out.append(
            f'<line x1="{ml}" y1="{yy:.1f}" x2="{ml + pw}" y2="{yy:.1f}" '
            f'stroke="{"#000" if v == 0 else "#ddd"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{ml - 8}" y="{yy + 4:.1f}" text-anchor="end" font-size="12">{v:g}</text>'
        )
        v += step
    out.append(f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="#000"/>')
    out.append(
        f'<text transform="translate({ml - 58},{mt + ph / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" font-size="13">throughput, MB/s (10^6 bytes per second)</text>'
    )
    out.append(
        f'<text x="{ml + pw / 2:.0f}" y="{height - 18}" text-anchor="middle" '
        f'font-size="13">file size</text>'
    )

    # Bars.
    group_w = pw / max(len(sizes), 1)
    inner = group_w * 0.8
    bar_w = inner / max(len(methods), 1)
    rotate_labels = bar_w < 34
    for gi, size in enumerate(sizes):
        gx = ml + gi * group_w + (group_w - inner) / 2
        out.append(
            f'<text x="{ml + gi * group_w + group_w / 2:.1f}" y="{mt + ph + 22}" '
            f'text-anchor="middle" font-size="13">{escape(size_label(size))}</text>'
        )
        for mi, m in enumerate(methods):
            s = summary[size].get(m)
            if not s:
                continue
            x = gx + mi * bar_w
            y0 = y(s["median_mbps"])
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y0:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                f'height="{mt + ph - y0:.1f}" fill="{colors[m]}">'
                f"<title>{escape(m)}, {escape(size_label(size))}: median "
                f"{s['median_mbps']:.1f} MB/s (min {s['min_mbps']:.1f}, max {s['max_mbps']:.1f})</title></rect>"
            )
            cx = x + bar_w / 2
            if s["max_mbps"] > s["min_mbps"]:
                y1, y2 = y(s["min_mbps"]), y(s["max_mbps"])
                cap = min(bar_w / 4, 6)
                out.append(
                    f'<path d="M{cx:.1f},{y1:.1f}V{y2:.1f}M{cx - cap:.1f},{y1:.1f}H{cx + cap:.1f}'
                    f'M{cx - cap:.1f},{y2:.1f}H{cx + cap:.1f}" stroke="#222" stroke-width="1" fill="none"/>'
                )
            label = fmt_num(s["median_mbps"])
            ly = min(y0, y(s["max_mbps"])) - 4
            if rotate_labels:
                out.append(
                    f'<text transform="translate({cx + 3:.1f},{ly:.1f}) rotate(-90)" '
                    f'font-size="10" fill="#222">{label}</text>'
                )
            else:
                out.append(
                    f'<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="middle" font-size="10" '
                    f'fill="#222">{label}</text>'
                )

    # Legend.
    lx, ly = ml + pw + 20, mt + 4
    out.append(f'<text x="{lx}" y="{ly + 4}" font-size="13" font-weight="bold">method</text>')
    for i, m in enumerate(methods):
        yy = ly + 18 + i * 36
        out.append(f'<rect x="{lx}" y="{yy}" width="14" height="14" fill="{colors[m]}"/>')
        out.append(f'<text x="{lx + 20}" y="{yy + 11}" font-size="12">{escape(m)}</text>')
        out.append(
            f'<text x="{lx + 20}" y="{yy + 25}" font-size="10" fill="#555">{escape(describe(m))}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    parser = argparse.ArgumentParser(description="Summarise bench/transfer.sh results.")
    parser.add_argument("out_dir", help="the results folder transfer.sh wrote")
    parser.add_argument(
        "--markdown", action="store_true", help="print Markdown tables (for bench/BENCHMARKS.md)"
    )
    args = parser.parse_args()

    meta, rows = load(args.out_dir)
    if not rows:
        sys.exit(f"report.py: no rows in {args.out_dir}")
    summary = summarise(rows)
    text = tables(summary, markdown=args.markdown)
    print(text, end="")

    report_path = os.path.join(args.out_dir, "report.txt")
    with open(report_path, "w") as f:
        if meta.get("header"):
            f.write(meta["header"].rstrip("\n") + "\n\n")
        f.write(tables(summary) if args.markdown else text)
    svg_path = os.path.join(args.out_dir, "transfer.svg")
    with open(svg_path, "w") as f:
        f.write(svg_chart(summary, meta))
    print(f"wrote {report_path} and {svg_path}")


if __name__ == "__main__":
    main()
