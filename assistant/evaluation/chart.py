"""`metrics.png`: a horizontal bar chart of the run's 0–1 metrics, drawn with Pillow.

Only shares are drawn (seconds and token counts have other scales and are
in the report's table). Each bar is labelled with its value and n; a metric
with n = 0 is drawn as an empty row marked "n/a n=0", never left out.
"""

from __future__ import annotations

from pathlib import Path

from . import metrics as m

WIDTH = 900
ROW = 30
LABEL_W = 210
RIGHT_W = 130
TOP = 46


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def draw_chart(metrics: dict[str, m.Metric], path: Path, title: str = "") -> Path:
    """Write the chart to `path` (PNG) and return the path."""
    from PIL import Image, ImageDraw

    rows = [(name, v) for name, v in metrics.items() if m.metric_info(name)[2] == "rate"]
    height = TOP + ROW * max(1, len(rows)) + 24
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(12)
    draw.text((10, 12), title, fill="black", font=font)
    bar_w = WIDTH - LABEL_W - RIGHT_W
    for i, (name, metric) in enumerate(rows):
        y = TOP + i * ROW
        draw.text((10, y + 6), name, fill="black", font=font)
        x0 = LABEL_W
        draw.rectangle([x0, y + 4, x0 + bar_w, y + ROW - 6], outline="#cccccc", fill="#f4f4f4")
        value = metric["value"]
        if value is not None:
            good = m.metric_info(name)[1]
            colour = "#3b7dd8" if good else "#d8823b"  # orange: lower is better
            draw.rectangle(
                [x0, y + 4, x0 + round(bar_w * max(0.0, min(1.0, value))), y + ROW - 6], fill=colour
            )
        text = f"{value:.3f}  n={metric['n']}" if value is not None else f"n/a  n={metric['n']}"
        draw.text((x0 + bar_w + 8, y + 7), text, fill="black", font=small)
    for tick in (0.0, 0.5, 1.0):
        x = LABEL_W + round(bar_w * tick)
        draw.text((x - 8, height - 20), f"{tick:g}", fill="#666666", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
