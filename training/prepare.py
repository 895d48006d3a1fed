"""Stage 1: raw recordings -> sliced, resampled, loudness-matched pieces + file lists.

Input: ``dataset_raw/<speaker>/*.{wav,flac,ogg,aiff,aif,mp3}`` (one folder per speaker,
any names, non-ASCII included). Output under ``out_dir``::

    audio/<speaker>/<n>.wav      mono pieces at the model rate (16-bit PCM), n = 00000, 00001, ...
    filelists/train.txt          one path per line, relative to out_dir (UTF-8)
    filelists/val.txt
    speakers.json                {speaker name: id}
    prepare.json                 settings, per-piece provenance (source file + sample range), report

A file that cannot be read is listed in the report and skipped; it never stops the run.
``audio/`` is rebuilt in a temporary sibling and swapped in when complete.
"""
from __future__ import annotations

import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.fileops import replace_dir, write_atomic
from svc_dsp.errors import TrainingError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
MIN_PIECE_S = 0.5  # pieces shorter than this are too short to crop a training segment from


@dataclass
class PrepareReport:
    """What :func:`prepare` did. ``skipped``: [(file, reason)] for files that could not be used."""

    out_dir: str
    sample_rate: int
    speakers: dict[str, int]
    n_files: int = 0
    n_pieces: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_val: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"prepared {self.n_pieces} pieces from {self.n_files} files into '{self.out_dir}' "
                 f"({self.n_train} train, {self.n_val} val) at {self.sample_rate} Hz"]
        for spk, sec in self.seconds.items():
            lines.append(f"  speaker '{spk}' (id {self.speakers[spk]}): {sec / 60.0:.1f} min")
        for path, why in self.skipped:
            lines.append(f"  skipped '{path}': {why}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _find_sources(dataset_raw: Path) -> dict[str, list[Path]]:
    if not dataset_raw.is_dir():
        raise TrainingError(f"dataset folder '{dataset_raw}' does not exist; pass a folder holding one "
                            f"sub-folder of audio files per speaker (dataset_raw/<speaker>/*.wav)")
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in dataset_raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                       and not p.name.startswith("."))
        if files:
            out[d.name] = files
    if not out:
        raise TrainingError(f"'{dataset_raw}' has no speaker folders with audio files "
                            f"({', '.join(AUDIO_EXTENSIONS)}); expected dataset_raw/<speaker>/<file>.wav")
    return out


def _process_file(path: str, sample_rate: int, target_lufs: float, skip_loudnorm: bool,
                  min_s: float, max_s: float) -> dict[str, Any]:
    """Load, mix down, resample, normalise and slice one file (runs in a worker process)."""
    from svc_dsp.audio.io import load_audio, sanitize
    from svc_dsp.audio.levels import normalize_loudness, true_peak_db
    from svc_dsp.audio.resample import resample
    from svc_dsp.audio.slicing import silence_slices, split_long

    warns: list[str] = []
    try:
        audio, sr, _ = load_audio(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported, never fatal
        return {"error": f"{type(e).__name__}: {e}"}
    audio, w = sanitize(audio)
    warns += [f"'{path}': {x}" for x in w]
    mono = audio.mean(axis=0).astype(np.float32)
    if not np.any(mono):
        return {"error": "the file is silent throughout"}
    x = resample(mono, sr, sample_rate)
    if skip_loudnorm:
        tp = true_peak_db(x, sample_rate)
        if tp > 0.0:
            warns.append(f"'{path}': true peak {tp:.1f} dBTP; pieces are written as 16-bit PCM and clip — "
                         f"drop --skip-loudnorm to use the limiter")
    else:
        x, rep = normalize_loudness(x, sample_rate, target_lufs=target_lufs)
        if rep["limited_db_max"] > 6.0:
            warns.append(f"'{path}': the limiter reduced peaks by up to {rep['limited_db_max']:.1f} dB "
                         f"to reach {target_lufs} LUFS; consider a lower --target-lufs")
    ranges = silence_slices(x, sample_rate, min_length_s=min_s)
    ranges = split_long(x, sample_rate, ranges, max_length_s=max_s, min_length_s=min_s) if ranges else []
    pieces = [(a, b) for a, b in ranges if b - a >= MIN_PIECE_S * sample_rate]
    if not pieces:
        return {"error": "no voiced piece of at least 0.5 s above -40 dBFS", "warnings": warns}
    return {"pieces": [(a, b, x[a:b]) for a, b in pieces], "warnings": warns}


def _split_val(n: int, val_per_speaker: int, rng: np.random.Generator) -> set[int]:
    """Indices of validation pieces: never more than half of a speaker's pieces."""
    k = min(val_per_speaker, n // 2)
    return set(int(i) for i in rng.choice(n, size=k, replace=False)) if k > 0 else set()


def prepare(dataset_raw: Path, out_dir: Path, *, sample_rate: int = 24000, target_lufs: float = -18.0,
            skip_loudnorm: bool = False, min_s: float = 5, max_s: float = 15,
            val_per_speaker: int | Mapping[str, int] = 2, jobs: int = 1, seed: int = 0) -> PrepareReport:
    """Slice, resample, mix down and loudness-normalise ``dataset_raw/<speaker>/*`` into ``out_dir``.

    Pieces are cut at silences (-40 dBFS, 0.3 s) to ``min_s``..``max_s`` seconds; longer
    voiced runs are cut at energy minima, shorter pieces merged with a neighbour where
    possible. Loudness is matched per source file to ``target_lufs`` with a true-peak
    limiter at -1 dBTP (``skip_loudnorm`` keeps levels). ``val_per_speaker``: validation pieces
    of every speaker, or a {speaker: count} mapping (speakers it does not name get none); never
    more than half of a speaker's pieces. ``jobs`` > 1 uses a process pool. Unreadable files
    are skipped and listed in the report. Returns a :class:`PrepareReport`.
    """
    from svc_dsp.audio.io import save_audio

    dataset_raw, out_dir = Path(dataset_raw), Path(out_dir)
    if not 8000 <= int(sample_rate) <= 192000:
        raise TrainingError(f"sample_rate={sample_rate}; allowed 8000..192000 Hz (the demo uses 24000)")
    if not 0 < min_s <= max_s:
        raise TrainingError(f"min_s={min_s}, max_s={max_s}; need 0 < min_s <= max_s (usual: 5 and 15)")
    sources = _find_sources(dataset_raw)
    speakers = {name: i for i, name in enumerate(sources)}
    report = PrepareReport(out_dir=str(out_dir), sample_rate=int(sample_rate), speakers=speakers)
    jobs_list = [(spk, p) for spk, files in sources.items() for p in files]
    args = [(str(p), int(sample_rate), float(target_lufs), bool(skip_loudnorm), float(min_s), float(max_s))
            for _, p in jobs_list]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_process_file, *zip(*args)))
    else:
        results = [_process_file(*a) for a in args]

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".audio.", suffix=".partial", dir=out_dir))
    provenance: list[dict[str, Any]] = []
    per_speaker: dict[str, list[str]] = {s: [] for s in speakers}
    try:
        counters = {s: 0 for s in speakers}
        for (spk, src), res in zip(jobs_list, results):
            report.warnings.extend(res.get("warnings", []))
            if "error" in res:
                report.skipped.append((str(src), res["error"]))
                continue
            report.n_files += 1
            (tmp / spk).mkdir(exist_ok=True)
            for a, b, piece in res["pieces"]:
                rel = f"audio/{spk}/{counters[spk]:05d}.wav"
                counters[spk] += 1
                save_audio(tmp / spk / Path(rel).name, piece, sample_rate, subtype="PCM_16")
                per_speaker[spk].append(rel)
                report.seconds[spk] = report.seconds.get(spk, 0.0) + (b - a) / sample_rate
                provenance.append({"piece": rel, "source": str(src.relative_to(dataset_raw)),
                                   "start": int(a), "end": int(b)})
        final = out_dir / "audio"
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    empty = [s for s, files in per_speaker.items() if not files]
    for s in empty:
        report.warnings.append(f"speaker '{s}' has no usable audio; it keeps id {speakers[s]} but cannot be trained")

    rng = np.random.default_rng(seed)
    train: list[str] = []
    val: list[str] = []
    for spk, files in per_speaker.items():
        want = val_per_speaker.get(spk, 0) if isinstance(val_per_speaker, Mapping) else val_per_speaker
        v = _split_val(len(files), int(want), rng)
        for i, rel in enumerate(files):
            (val if i in v else train).append(rel)
    report.n_pieces, report.n_train, report.n_val = len(train) + len(val), len(train), len(val)
    if not train:
        raise TrainingError(f"no usable audio in '{dataset_raw}'; skipped: "
                            + "; ".join(f"{p} ({w})" for p, w in report.skipped))
    (out_dir / "filelists").mkdir(exist_ok=True)
    write_atomic(out_dir / "filelists" / "train.txt", "".join(f"{r}\n" for r in train))
    write_atomic(out_dir / "filelists" / "val.txt", "".join(f"{r}\n" for r in val))
    write_atomic(out_dir / "speakers.json", json.dumps(speakers, ensure_ascii=False, indent=2) + "\n")
    meta = {"format": "svc-host-prepared", "version": 1, "sample_rate": int(sample_rate),
            "target_lufs": None if skip_loudnorm else float(target_lufs), "min_s": min_s, "max_s": max_s,
            "speakers": speakers, "pieces": provenance, "report": asdict(report)}
    write_atomic(out_dir / "prepare.json", json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
    return report


def read_prepared(prep_dir: Path) -> dict[str, Any]:
    """prepare.json of a prepared folder, with a helpful error when it is missing."""
    p = Path(prep_dir) / "prepare.json"
    if not p.is_file():
        raise TrainingError(f"'{prep_dir}' is not a prepared dataset (no prepare.json); run "
                            f"'svc-host train prepare DATASET_RAW {prep_dir}' first")
    return json.loads(p.read_text(encoding="utf-8"))


def read_filelist(prep_dir: Path, split: str) -> list[str]:
    """Relative audio paths of ``filelists/<split>.txt`` (empty lines ignored)."""
    p = Path(prep_dir) / "filelists" / f"{split}.txt"
    if not p.is_file():
        raise TrainingError(f"'{p}' is missing; re-run 'svc-host train prepare'")
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]

