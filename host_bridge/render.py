"""The one renderer: files and folders of stems -> converted files.

``svc-host render``, :func:`render_file` and server render jobs share this code path:
read in chunks, stream through a chain (with automation), write atomically (temp file +
rename) in chunks, report.

Around it: :mod:`host_bridge.render_plan` plans a batch (refuses batches that would lose audio),
:mod:`host_bridge.render_batch` renders the pairs (processes, progress, summary table),
:mod:`host_bridge.render_stop` turns SIGTERM into a clean stop, :mod:`host_bridge.render_check`
is ``--dry-run`` and :mod:`host_bridge.report` is ``--report``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from host_bridge.automation import Automator, resolve_lanes
from host_bridge.chain import Chain
from host_bridge.effect import VoiceConversion
from host_bridge.render_plan import AUDIO_EXTENSIONS, BatchPlan, audio_files, plan_batch  # noqa: F401 (re-exported)
from svc_dsp.audio.block_reader import BlockReader as _BlockReader  # counts what the decoder delivers
from svc_dsp.audio.io import (AtomicAudioWriter, non_finite_warning, read_info, replace_non_finite, sanitize,
                              truncation_detail)
from svc_dsp.engine.converter import Converter
from svc_dsp.engine.processor import LatencyCompensator
from svc_dsp.errors import AudioError, SvcError

EXISTING_POLICIES = ("skip", "overwrite", "error")


@dataclass
class RenderResult:
    """Outcome of one file. status: 'ok', 'skipped' or 'failed'."""

    input: str
    output: str
    status: str
    message: str = ""
    seconds_audio: float = 0.0
    seconds_wall: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    clipped_samples: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.seconds_wall / self.seconds_audio if self.seconds_audio > 0 else 0.0


def plan_outputs(inputs: Iterable[str | os.PathLike], outdir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs; folders are walked and their tree kept under outdir.
    Raises :class:`svc_dsp.errors.RenderError` when the batch would lose audio (see
    :func:`host_bridge.render_plan.plan_batch`, which also returns the refusals as a list)."""
    plan = plan_batch(inputs, outdir)
    plan.check()
    return plan.pairs


DEFAULT_CHUNK_FRAMES = 1 << 16


def output_precheck(src: Path, dst: Path, existing: str) -> RenderResult | None:
    """The existing-output policy and the input-is-output guard for one file, before any audio is
    read: a finished (skipped or failed) result, or None when the file may be rendered."""
    res = RenderResult(str(src), str(dst), "failed")
    if existing not in EXISTING_POLICIES:
        res.message = f"existing-output policy {existing!r}; allowed: {', '.join(EXISTING_POLICIES)}"
        return res
    if dst.exists():
        if existing == "skip":
            res.status, res.message = "skipped", "output exists (use --overwrite to replace it)"
            return res
        if existing == "error":
            res.message = f"output '{dst}' exists; remove it or pass --overwrite / --skip-existing"
            return res
    try:
        if src.resolve() == dst.resolve():
            res.message = f"{src}: output '{dst}' is the input file itself; choose another output folder"
            return res
    except OSError as e:
        res.message = f"{src}: {e}"
        return res
    return None


def render_file(input_path: str | os.PathLike, output_path: str | os.PathLike, plugins: Any, *,
                chunk_frames: int = DEFAULT_CHUNK_FRAMES, automation: Any = None,
                existing: str = "skip", subtype: str | None = None, allow_truncated: bool = False,
                progress: Callable[[int, int], None] | None = None) -> RenderResult:
    """Render one file through ``plugins``, never raising for bad input: failures come back as
    a RenderResult with status 'failed' and a message that names the file, what was wrong and
    what to do.

    ``plugins``: a :class:`svc_dsp.Converter`, a :class:`host_bridge.effect.VoiceConversion`,
    a :class:`host_bridge.chain.Chain`, a native pedalboard plugin or a list mixing both.
    The file is streamed: read ``chunk_frames`` at a time (``pedalboard.io.AudioFile``;
    libsndfile for formats it cannot open), pushed through the chain with ``reset=False``, written
    chunk by chunk, so memory does not grow with the file's length. The chain's latency is
    compensated: the output is aligned with the input and has its length (the chain is
    flushed with silence). ``automation``: lanes ``{param: [(sample, value), ...]}``, an
    :class:`host_bridge.automation.AutomationFile` or a .json/.mid path (see
    ``host_bridge.automation`` for step semantics and timing). Renders are deterministic.
    Offline F0 trackers (harvest, dio) need the whole signal: a Converter or VoiceConversion
    using one is rendered in one piece (memory grows with length) and cannot be automated.

    The output keeps the input's sample rate, channel count, length and sample format
    (``subtype`` overrides the format), written by libsndfile through a temporary file that is
    renamed when complete; samples outside [-1, 1] are clipped for integer formats and
    counted in ``clipped_samples``; NaN/inf input samples are replaced by 0 and reported.

    A file holding fewer samples than its header declares (an interrupted copy: WAV/RF64/W64/AIFF
    by size, FLAC/MP3 when the decoder stops early) fails, naming the missing duration; with
    ``allow_truncated`` the part that is there is rendered (the output is that long) and a
    warning names the missing duration.

    ``progress(done, total)`` is called after each block with samples per channel processed and
    the total (file length plus the chain's latency flush); from the rendering thread.
    """
    src, dst = Path(input_path), Path(output_path)
    t0 = time.perf_counter()
    res = output_precheck(src, dst, existing)
    if res is not None:
        return res
    res = RenderResult(str(src), str(dst), "failed")
    try:
        if int(chunk_frames) < 1:
            raise SvcError(f"chunk_frames={chunk_frames}; allowed: a whole number >= 1")
        info = read_info(src, allow_truncated=allow_truncated)
        res.sample_rate, res.channels = info.sample_rate, info.channels
        res.seconds_audio = info.frames / info.sample_rate
        if info.missing_frames:
            _truncated(src, info, info.frames, info.missing_frames, True, res)
        chain, whole = _as_chain(plugins)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fmt = None if dst.suffix else info.format
        with AtomicAudioWriter(dst, info.sample_rate, info.channels, format=fmt,
                               subtype=subtype or info.subtype) as w:
            if whole is not None:
                if automation is not None:
                    raise SvcError(f"f0_method '{whole.get('f0_method')}' is an offline tracker and cannot be "
                                   f"automated; use -f0p yin for automated renders")
                _render_whole(src, info, whole, w, res, allow_truncated)
                if progress is not None:
                    progress(info.frames, info.frames)
            else:
                _render_stream(src, info, chain, automation, int(chunk_frames), w, res, allow_truncated, progress)
        res.clipped_samples = w.clipped_samples
        res.status = "ok"
        if w.clipped_samples:
            res.warnings.append(f"{w.clipped_samples} samples clipped to [-1, 1] in {w.subtype}; "
                                f"lower --output-gain-db or write float (--subtype FLOAT)")
    except SvcError as e:
        res.message = f"{src}: {e}"
    except MemoryError:
        res.message = f"{src}: out of memory; split the file or render fewer files at once (--jobs)"
    except Exception as e:  # one bad file never stops a batch; the message keeps the cause
        res.message = f"{src}: unexpected {type(e).__name__}: {e}"
    res.seconds_wall = time.perf_counter() - t0
    return res


def _as_chain(plugins: Any) -> tuple[Any, Any]:
    """-> (Chain, None) for streaming, or (None, effect) for an offline-F0 effect rendered whole."""
    if isinstance(plugins, Converter):
        plugins = VoiceConversion(plugins.model, **plugins.params)
    if isinstance(plugins, VoiceConversion):
        return (None, plugins) if not plugins.streams else (Chain([plugins]), None)
    if isinstance(plugins, Chain):
        return plugins, None
    if isinstance(plugins, (list, tuple)):
        return Chain(plugins), None
    return Chain([plugins]), None


def _render_whole(src: Path, info: Any, effect: Any, w: Any, res: RenderResult,
                  allow_truncated: bool = False) -> None:
    with _BlockReader(src, info.channels, info.frames) as reader:
        audio = reader.read(info.frames)
    if reader.ended_early:
        _truncated(src, info, reader.frames_read, reader.missing_frames, allow_truncated, res)
    audio, warns = sanitize(audio)
    res.warnings.extend(warns)
    w.write(effect.process_planar(audio, info.sample_rate, 8192, True))  # (C, N) already: no layout guess


def _render_stream(src: Path, info: Any, chain: Any, automation: Any, chunk: int, w: Any,
                   res: RenderResult, allow_truncated: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> None:
    sr, C = info.sample_rate, info.channels
    lanes = resolve_lanes(automation, sr)
    saved = [(e, e.raw_state) for e in chain.effects() if hasattr(e, "raw_state")]
    reader = _BlockReader(src, C, info.frames)
    try:
        chain.reset()
        L = chain.latency_at(sr, C)
        auto = Automator(lanes, chain, sr)
        auto.apply_initial()
        # the file, then L samples of silence; the first L output samples (the latency) are dropped
        comp = LatencyCompensator(lambda x: chain.process_planar(x, sr, chunk, False), L, chunk)
        n, total, pos = reader.frames, reader.frames + L, 0
        n_nan = n_inf = 0
        while pos < total:
            m = min(chunk, total - pos)
            have = max(0, min(m, n - pos))
            blk = reader.read(have) if have else np.zeros((C, 0), np.float32)
            if blk.shape[1] < have:  # the file ends before its header says: the rest is missing
                _truncated(src, info, reader.frames_read, reader.frames - reader.frames_read, allow_truncated, res)
                n = reader.frames_read
                total = n + L
                m = min(m, total - pos)
                have = blk.shape[1]
            if have < m:
                blk = np.concatenate([blk, np.zeros((C, m - have), np.float32)], axis=1)
            blk, k_nan, k_inf = replace_non_finite(blk)
            n_nan, n_inf = n_nan + k_nan, n_inf + k_inf
            s = 0
            while s < m:  # split at automation points: each lands on its exact sample
                auto.apply_until(pos + s)
                nxt = auto.next_after(pos + s)
                e = m if nxt is None else min(m, nxt - pos)
                y = comp.push(blk[:, s:e])
                if y.shape[1]:
                    w.write(y)
                s = e
            pos += m
            if progress is not None:
                progress(min(pos, total), total)
        res.warnings += non_finite_warning(n_nan, n_inf)
    finally:
        reader.close()
        for e, state in saved:
            e.raw_state = state  # automation does not leave the caller's effect changed
        chain.reset()


def _truncated(src: Path, info: Any, present: int, missing: int, allow: bool, res: RenderResult) -> None:
    """A file shorter than its header: fail (AudioError), or with ``allow`` warn and go on."""
    if not allow:
        raise AudioError(truncation_detail(info.sample_rate, present, missing))
    res.warnings.append(f"truncated file: {missing / info.sample_rate:.3f} s ({missing} samples) missing at "
                        f"the end; rendered the {present / info.sample_rate:.3f} s present")
    res.seconds_audio = present / info.sample_rate


# -- batches: host_bridge.render_batch (re-exported here, lazily: it imports this module) ------------
_BATCH_NAMES = ("render_batch", "summary_table")


def __getattr__(name: str) -> Any:
    if name in _BATCH_NAMES:
        from host_bridge import render_batch as _rb

        return getattr(_rb, name)
    raise AttributeError(f"module 'host_bridge.render' has no attribute {name!r}")
