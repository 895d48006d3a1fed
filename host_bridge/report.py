"""``svc-host render --report DIR``: one picture per rendered file and an index page.

Each PNG shows, on one time axis: input and output pitch on a note grid (note names on the y
axis, the input shifted by ``transpose`` dashed as the target), loudness envelopes in and out
(dBFS, with the gate threshold), spectrograms before and after; regions where the input is below
the gate are shaded grey and clipped output samples marked red in every panel. ``index.html``
lists every file of the batch with relative links, so the folder can be moved or zipped.
"""
from __future__ import annotations

import html
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from host_bridge.render import RenderResult
from host_bridge.render_plan import BatchPlan
from svc_dsp.errors import RenderError

__all__ = ["write_report", "plot_file", "check_report_dir", "GENERATOR"]

GENERATOR = "svc-host render --report"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
HOP_S = 0.01  # analysis hop: 10 ms
MAX_ANALYSIS_SR = 16000  # pitch and spectrogram need no more; long stems stay quick


def check_report_dir(folder: str | os.PathLike[str], plan: BatchPlan) -> None:
    """Refuse a report folder that is an input or output file, or that holds an index.html that
    svc-host did not write (it would be replaced)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RenderError("--report draws with matplotlib, which is not installed: pip install 'svc-host[report]' "
                          "(or pip install matplotlib)") from None
    d = Path(folder)
    real = os.path.realpath(d)
    for s, o in plan.pairs:
        if real in (os.path.realpath(s), os.path.realpath(o)):
            raise RenderError(f"--report '{d}' is the file '{s if real == os.path.realpath(s) else o}' of this "
                              f"batch; --report takes a folder for the pictures, e.g. --report report")
    if d.exists() and not d.is_dir():
        raise RenderError(f"--report '{d}' is a file; --report takes a folder (created if missing)")
    index = d / "index.html"
    if index.exists() and GENERATOR not in index.read_text(encoding="utf-8", errors="replace")[:2000]:
        raise RenderError(f"--report '{d}' holds an index.html that svc-host did not write; pick an empty or new "
                          f"folder")


def _mono(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    from svc_dsp.audio.resample import resample

    x, sr = sf.read(os.fsencode(path), dtype="float32", always_2d=True)
    m = x.mean(axis=1)
    if sr > MAX_ANALYSIS_SR:
        m = np.asarray(resample(m, sr, MAX_ANALYSIS_SR), dtype=np.float32).reshape(-1)
        sr = MAX_ANALYSIS_SR
    return np.nan_to_num(m), sr


def _pitch(x: np.ndarray, sr: int) -> np.ndarray:
    """MIDI note number per 10 ms frame, NaN where unvoiced."""
    from svc_dsp.features import get_f0_tracker  # registers the built-in trackers

    hop = max(1, int(round(sr * HOP_S)))
    n = -(-len(x) // hop)
    f0 = get_f0_tracker("yin").track(x.astype(np.float32), sr, hop, n, 50.0, 1100.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        midi = 69.0 + 12.0 * np.log2(np.where(f0 > 0, f0, np.nan) / 440.0)
    if len(midi) >= 5:  # a 5-frame median hides single-frame octave slips of the tracker
        win = np.lib.stride_tricks.sliding_window_view(np.pad(midi, 2, constant_values=np.nan), 5)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
            med = np.nanmedian(win, axis=1)
        midi = np.where(np.isfinite(midi), med, np.nan)
    return midi


def _level_db(x: np.ndarray, sr: int) -> np.ndarray:
    hop = max(1, int(round(sr * HOP_S)))
    n = -(-len(x) // hop)
    pad = np.zeros(n * hop, np.float32)
    pad[: len(x)] = x
    rms = np.sqrt(np.mean(pad.reshape(n, hop) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms)


def _note_axis(ax: Any, lo: float, hi: float) -> None:
    lo, hi = int(np.floor(lo)) - 1, int(np.ceil(hi)) + 1
    ax.set_ylim(lo, hi)
    ticks = [m for m in range(lo, hi + 1) if NOTE_NAMES[m % 12] in ("C", "E", "G", "A") or hi - lo <= 14]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{NOTE_NAMES[m % 12]}{m // 12 - 1}" for m in ticks])
    ax.set_yticks(range(lo, hi + 1), minor=True)
    ax.grid(True, which="minor", axis="y", color="#dddddd", linewidth=0.5)
    ax.grid(True, which="major", axis="y", color="#999999", linewidth=0.8)


def plot_file(result: RenderResult, params: dict[str, Any]) -> bytes:
    """The PNG (bytes) for one rendered file: pitch, loudness, spectrograms, gate and clipping."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    x, sr = _mono(result.input)
    y, sry = _mono(result.output)
    out_full = sf.read(os.fsencode(result.output), dtype="float32", always_2d=True)[0]
    out_sr = sf.info(os.fsencode(result.output)).samplerate
    transpose = float(params.get("transpose", 0.0) or 0.0)
    gate_db = float(params.get("gate_db", -60.0) if params.get("gate_db") is not None else -60.0)
    px, py = _pitch(x, sr), _pitch(y, sry)
    lx, ly = _level_db(x, sr), _level_db(y, sry)
    t = np.arange(len(px)) * HOP_S
    ty = np.arange(len(py)) * HOP_S
    clip_t = np.flatnonzero(np.abs(out_full).max(axis=1) >= 0.9999) / out_sr
    gated = lx < gate_db

    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.6, 1.8, 1.8]})
    fig.suptitle(f"{Path(result.input).name}  ->  {Path(result.output).name}", fontsize=12, fontweight="bold")
    ax = axes[0]
    ax.plot(t, px, color="#888888", linewidth=1.2, label="input pitch")
    if transpose:
        ax.plot(t, px + transpose, color="#1f77b4", linestyle="--", linewidth=0.8,
                label=f"input {transpose:+g} st (target)")
    ax.plot(ty, py, color="#d62728", linewidth=1.2, label="output pitch")
    voiced = np.concatenate([px[np.isfinite(px)] + min(0.0, transpose), px[np.isfinite(px)] + max(0.0, transpose),
                             py[np.isfinite(py)]])
    _note_axis(ax, *(np.percentile(voiced, [1, 99]) if voiced.size else (57.0, 69.0)))
    ax.set_ylabel("note")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(t, lx, color="#888888", linewidth=1, label="input")
    ax.plot(ty, ly, color="#d62728", linewidth=1, label="output")
    ax.axhline(gate_db, color="#444444", linestyle=":", linewidth=1, label=f"gate {gate_db:g} dB")
    floor = min([gate_db] + [float(np.percentile(v, 2)) for v in (lx, ly) if v.size])
    ax.set_ylim(max(-100.0, floor - 6), 3)
    ax.set_ylabel("level dBFS")
    ax.legend(loc="upper right", fontsize=8)
    for ax, sig, rate, name in ((axes[2], x, sr, "input"), (axes[3], y, sry, "output")):
        nfft = 1024 if rate >= 16000 else 512
        with np.errstate(divide="ignore"):
            ax.specgram(sig + 1e-9, NFFT=nfft, Fs=rate, noverlap=nfft * 3 // 4, cmap="magma", vmin=-120,
                        vmax=-20)
        ax.set_ylim(0, min(8000, rate / 2))
        ax.set_ylabel(f"{name}\nHz")
    for ax in axes:
        _shade(ax, t, gated)
        for c in _runs_start(clip_t):
            ax.axvline(c, color="red", alpha=0.6, linewidth=0.8)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_xlim(0, max(t[-1] if len(t) else 0.0, ty[-1] if len(ty) else 0.0, HOP_S))
    note = (f"grey: input below the gate ({gate_db:g} dB); red lines: clipped output ({len(clip_t)} sample "
            f"positions at full scale)")
    fig.text(0.01, 0.005, note, fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, 0.015, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _shade(ax: Any, t: np.ndarray, mask: np.ndarray) -> None:
    if not mask.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        ax.axvspan(t[a], t[min(b, len(t) - 1)] + HOP_S, color="#bbbbbb", alpha=0.35, linewidth=0)


def _runs_start(times: np.ndarray, gap: float = 0.05) -> list[float]:
    """One marker per run of clipped samples (closer than ``gap`` s), at most 200."""
    if times.size == 0:
        return []
    starts = times[np.concatenate([[True], np.diff(times) > gap])]
    return [float(s) for s in starts[:200]]


def _png_name(i: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:80] or "file"
    return f"{i:03d}-{stem}.png"


def write_report(folder: str | os.PathLike[str], results: list[RenderResult], params: dict[str, Any]) -> Path:
    """Write one PNG per rendered ('ok') file and ``index.html`` (relative links) into ``folder``
    (created if missing; each file written atomically). Returns the index path."""
    from svc_dsp.fileops import write_atomic

    from host_bridge.render_batch import result_note

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    rows = []
    parents = [os.path.dirname(os.path.abspath(r.input)) for r in results]
    root = os.path.dirname(os.path.commonpath(parents)) if parents else ""
    for i, r in enumerate(results, 1):
        shown = os.path.relpath(os.path.abspath(r.input), root) if root else r.input
        name = html.escape(os.fsencode(shown).decode("utf-8", "replace"))
        if r.status != "ok":
            rows.append(f"<section><h2>{name}</h2><p class='{r.status}'>{html.escape(r.status)}: "
                        f"{html.escape(result_note(r) or 'output exists')}</p></section>")
            continue
        try:
            png = plot_file(r, params)
        except Exception as e:  # noqa: BLE001 - a picture that cannot be made must not lose the others
            rows.append(f"<section><h2>{name}</h2><p class='failed'>no picture: {html.escape(str(e))}</p></section>")
            continue
        fn = _png_name(i, r.input)
        write_atomic(d / fn, png)
        warn = "".join(f"<li>{html.escape(w.replace(f'file {r.input!r}: ', ''))}</li>" for w in r.warnings)
        rows.append(f"<section><h2>{name}</h2><p>{r.seconds_audio:.1f} s, {r.sample_rate} Hz, {r.channels} ch"
                    f" &rarr; {html.escape(Path(r.output).name)}</p>{'<ul>' + warn + '</ul>' if warn else ''}"
                    f"<a href='{fn}'><img src='{fn}' alt='{name}'></a></section>")
    page = _PAGE.format(generator=GENERATOR, n=len(results), body="\n".join(rows),
                        params=html.escape(", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"))
    return write_atomic(d / "index.html", page)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{generator}">
<title>svc-host render report</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1000px}} img{{width:100%;border:1px solid #ccc}}
h2{{font-size:1.05em;margin-bottom:.2em}} .failed{{color:#b00}} .skipped{{color:#666}}
#img-check{{font-size:.8em;color:#666}}</style></head>
<body><h1>svc-host render report</h1><p>{n} file(s); parameters: {params}</p>
{body}
<p id="img-check">checking images...</p>
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.getElementById("img-check").textContent =
    (ok === imgs.length ? "images: all " : "images: only ") + ok + " of " + imgs.length + " loaded";
}});
</script></body></html>
"""
