"""The loss curve of a run as an image file: PNG drawn with Pillow, or a hand-written SVG without it.

matplotlib is not installed here and plotly needs kaleido for PNG; Pillow comes with gradio, so a small
line chart is drawn directly. Train loss is blue, eval loss orange with dots.
"""

from __future__ import annotations

from pathlib import Path

Series = list[tuple[float, float]]  # (step, loss)

WIDTH, HEIGHT = 640, 400
MARGIN = {"left": 64, "right": 20, "top": 36, "bottom": 48}
COLORS = {"train": (31, 119, 180), "eval": (255, 127, 14)}


def _bounds(series: dict[str, Series]) -> tuple[float, float, float, float]:
    points = [p for s in series.values() for p in s]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    pad = (y1 - y0) * 0.05 or 0.5
    return x0, x1, y0 - pad, y1 + pad


def _scale(bounds: tuple[float, float, float, float]):
    x0, x1, y0, y1 = bounds
    w = WIDTH - MARGIN["left"] - MARGIN["right"]
    h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    return lambda x, y: (MARGIN["left"] + (x - x0) / (x1 - x0) * w, MARGIN["top"] + (y1 - y) / (y1 - y0) * h)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _step_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Whole-number step ticks within [lo, hi] (steps are integers)."""
    if hi - lo <= 10:
        return [float(x) for x in range(int(lo), int(hi) + 1)]
    return sorted({float(round(lo + (hi - lo) * i / (n - 1))) for i in range(n)})


def write_png(path: Path, series: dict[str, Series], title: str) -> Path:
    """Draw the curves with Pillow."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    bounds = _bounds(series)
    at = _scale(bounds)
    x0, x1, y0, y1 = bounds
    left, top = MARGIN["left"], MARGIN["top"]
    right, bottom = WIDTH - MARGIN["right"], HEIGHT - MARGIN["bottom"]
    draw.rectangle([left, top, right, bottom], outline=(160, 160, 160))
    for y in _ticks(y0, y1):
        py = at(x0, y)[1]
        draw.line([left - 4, py, left, py], fill=(120, 120, 120))
        draw.text((4, py - 6), f"{y:.3g}", fill="black")
    for x in _step_ticks(x0, x1):
        px = at(x, y0)[0]
        draw.line([px, bottom, px, bottom + 4], fill=(120, 120, 120))
        draw.text((px - 10, bottom + 8), f"{x:.0f}", fill="black")
    draw.text((left, 10), title, fill="black")
    draw.text(((left + right) // 2 - 12, HEIGHT - 20), "step", fill="black")
    legend_x = right - 110 * len(series)
    for i, (name, points) in enumerate(series.items()):
        color = COLORS.get(name, (80, 80, 80))
        xy = [at(x, y) for x, y in points]
        if len(xy) > 1:
            draw.line(xy, fill=color, width=2)
        for px, py in xy if name != "train" or len(xy) == 1 else []:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
        lx = legend_x + 110 * i  # legend in the top margin, clear of the curves
        draw.line([lx, 16, lx + 20, 16], fill=color, width=3)
        draw.text((lx + 26, 10), f"{name} loss", fill="black")
    img.save(path, format="PNG")
    return path


def svg(series: dict[str, Series], title: str) -> str:
    """The same chart as SVG text (no dependencies)."""
    from html import escape

    bounds = _bounds(series)
    at = _scale(bounds)
    x0, x1, y0, y1 = bounds
    left, top = MARGIN["left"], MARGIN["top"]
    right, bottom = WIDTH - MARGIN["right"], HEIGHT - MARGIN["bottom"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#a0a0a0"/>',
        f'<text x="{left}" y="20" font-size="13">{escape(title)}</text>',
        f'<text x="{(left + right) // 2}" y="{HEIGHT - 8}" text-anchor="middle">step</text>',
    ]
    for y in _ticks(y0, y1):
        parts.append(f'<text x="{left - 6}" y="{at(x0, y)[1] + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    for x in _step_ticks(x0, x1):
        parts.append(f'<text x="{at(x, y0)[0]:.1f}" y="{bottom + 16}" text-anchor="middle">{x:.0f}</text>')
    for i, (name, points) in enumerate(series.items()):
        color = "#{:02x}{:02x}{:02x}".format(*COLORS.get(name, (80, 80, 80)))
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in (at(x, y) for x, y in points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        lx = right - 110 * (len(series) - i)
        parts.append(f'<line x1="{lx}" y1="16" x2="{lx + 20}" y2="16" stroke="{color}" stroke-width="3"/>')
        parts.append(f'<text x="{lx + 26}" y="20">{escape(name)} loss</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_curve(run_dir: Path, series: dict[str, Series], title: str) -> Path | None:
    """``loss_curve.png`` (Pillow) or ``loss_curve.svg``; None when nothing was logged."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    try:
        import PIL  # noqa: F401
    except ImportError:
        path = Path(run_dir) / "loss_curve.svg"
        path.write_text(svg(series, title), encoding="utf-8")
        return path
    return write_png(Path(run_dir) / "loss_curve.png", series, title)
