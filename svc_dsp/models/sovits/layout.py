"""so-vits-svc 4.x configuration defaults and the exact state-dict layout it implies.

:func:`normalize_config` turns a so-vits ``config.json`` (4.0, 4.1 or so-vits-svc-fork) into a
complete 4.1-style config (spec §1, §6.1, §7). :func:`sovits_state_shapes` lists every generator
tensor name and shape in registration order (spec §2.5; checked against the spec's listings), and
:func:`inference_shapes` the subset the engine keeps (no ``enc_q.*``, shared flow stored once).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from svc_dsp.errors import ModelFormatError

Shapes = dict[str, tuple[int, ...]]

MODEL_DEFAULTS: dict[str, Any] = {
    "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
    "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [8, 8, 2, 2, 2],
    "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 4, 4, 4], "n_layers_q": 3,
    "n_layers_trans_flow": 3, "n_flow_layer": 4, "use_spectral_norm": False, "gin_channels": 768,
    "ssl_dim": 768, "n_speakers": 1, "vocoder_name": "nsf-hifigan", "speech_encoder": None,
    "speaker_embedding": False, "vol_embedding": False, "use_depthwise_conv": False,
    "flow_share_parameter": False, "use_automatic_f0_prediction": True, "use_transformer_flow": False,
}
DATA_DEFAULTS: dict[str, Any] = {"sampling_rate": 44100, "hop_length": 512, "filter_length": 2048,
                                 "win_length": 2048, "max_wav_value": 32768.0}
#: speech_encoder id -> (catalog encoder name, unit dimension)
SPEECH_ENCODERS: dict[str, tuple[str, int]] = {
    "vec768l12": ("vec768l12", 768), "vec768l12-onnx": ("vec768l12", 768), "vec256l9": ("vec256l9", 256),
    "vec256l9-onnx": ("vec256l9", 256), "vec256l12-onnx": ("vec256l12", 256), "vec768l9-onnx": ("vec768l9", 768),
    "hubertsoft": ("hubertsoft", 256), "hubertsoft-onnx": ("hubertsoft", 256), "whisper-ppg": ("whisper-ppg", 1024),
    "whisper-ppg-large": ("whisper-ppg-large", 1280), "cnhubertlarge": ("cnhubertlarge", 1024),
    "dphubert": ("dphubert", 768), "wavlmbase+": ("wavlmbase+", 768),
}
F0_MIN, F0_MAX = 50.0, 1100.0


def normalize_config(raw: Mapping[str, Any], where: str = "config.json") -> dict[str, Any]:
    """Complete a so-vits config. Returns {"model", "data", "spk", "flavour", "speech_encoder",
    "unit_interpolate_mode", "warnings"}; raises ModelFormatError for what we cannot run."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model"), Mapping) or not isinstance(
            raw.get("data"), Mapping):
        raise ModelFormatError(f"{where}: not a so-vits-svc config (needs the objects 'model' and 'data'); pass "
                               f"the config.json that was trained with the G_*.pth file")
    m_raw, d_raw = dict(raw["model"]), dict(raw["data"])
    warnings: list[str] = []
    fork = "type_" in m_raw or "contentvec_final_proj" in d_raw
    if fork and m_raw.get("type_", "hifi-gan") != "hifi-gan":
        raise ModelFormatError(f"{where}: so-vits-svc-fork decoder type_ = {m_raw['type_']!r}; only 'hifi-gan' "
                               f"models can be imported (the iSTFT decoders have different weights)")
    model = {**MODEL_DEFAULTS, **{k: v for k, v in m_raw.items() if k in MODEL_DEFAULTS and v is not None}}
    data = {**DATA_DEFAULTS, **d_raw}
    if fork:
        final_proj = bool(d_raw.get("contentvec_final_proj", True))
        enc = "vec256l9" if final_proj else "vec768l12"
        model["ssl_dim"] = 256 if final_proj else 768
        for k in ("vol_embedding", "use_depthwise_conv", "flow_share_parameter", "use_transformer_flow"):
            model[k] = False
        model.update(vocoder_name="nsf-hifigan", use_automatic_f0_prediction=True, n_flow_layer=4)
        mode = "nearest"
        flavour = "so-vits-svc-fork"
    else:
        enc = m_raw.get("speech_encoder")
        if not enc:
            enc = "vec256l9" if int(model["ssl_dim"]) == 256 else "vec768l12"
            warnings.append(f"no model.speech_encoder (a 4.0 config): assuming '{enc}' from ssl_dim {model['ssl_dim']}")
        mode = d_raw.get("unit_interpolate_mode")
        flavour = "so-vits-svc 4.1" if mode else "so-vits-svc 4.0"
        if not mode:
            mode = "left"
    if enc not in SPEECH_ENCODERS:
        raise ModelFormatError(f"{where}: speech_encoder {enc!r} is unknown; known: {', '.join(SPEECH_ENCODERS)}")
    model["speech_encoder"] = enc
    if SPEECH_ENCODERS[enc][1] != int(model["ssl_dim"]):
        raise ModelFormatError(f"{where}: speech_encoder {enc!r} gives {SPEECH_ENCODERS[enc][1]}-dim units but "
                               f"model.ssl_dim is {model['ssl_dim']}; fix one of the two in config.json")
    if model["vocoder_name"] == "nsf-snake-hifigan":
        raise ModelFormatError(f"{where}: vocoder_name 'nsf-snake-hifigan' is not supported yet (its filter "
                               f"buffers are undocumented); only 'nsf-hifigan' models can be imported")
    if model["vocoder_name"] != "nsf-hifigan":
        warnings.append(f"unknown vocoder_name {model['vocoder_name']!r}: using nsf-hifigan (as so-vits-svc does)")
        model["vocoder_name"] = "nsf-hifigan"
    if mode not in ("left", "nearest", "linear"):
        raise ModelFormatError(f"{where}: unit_interpolate_mode {mode!r}; supported: nearest, left, linear")
    if str(model["resblock"]) not in ("1", "2"):
        raise ModelFormatError(f"{where}: model.resblock {model['resblock']!r}; allowed '1' or '2'")
    model["resblock"] = str(model["resblock"])
    hop = int(data["hop_length"])
    if math.prod(model["upsample_rates"]) != hop:
        raise ModelFormatError(f"{where}: product of upsample_rates {model['upsample_rates']} is "
                               f"{math.prod(model['upsample_rates'])}, data.hop_length is {hop}; they must agree")
    spk = raw.get("spk") or {}
    if not isinstance(spk, Mapping) or not all(isinstance(v, int) for v in spk.values()):
        raise ModelFormatError(f"{where}: 'spk' must map speaker names to integer ids, e.g. {{\"alto\": 0}}")
    n_spk = int(model["n_speakers"])
    bad = [f"{k}={v}" for k, v in spk.items() if not 0 <= v < n_spk]
    if bad:
        raise ModelFormatError(f"{where}: speaker ids {', '.join(bad)} are outside 0..{n_spk - 1} (model.n_speakers)")
    return {"model": model, "data": data, "spk": dict(spk), "flavour": flavour, "speech_encoder": enc,
            "unit_interpolate_mode": mode, "warnings": warnings}


# -- tensor layout -------------------------------------------------------------------------
def _conv(d: Shapes, name: str, cout: int, cin: int, k: int, *, wn: bool = False, bias: bool = True) -> None:
    if wn:
        if bias:
            d[f"{name}.bias"] = (cout,)
        d[f"{name}.weight_g"] = (cout, 1, 1)
        d[f"{name}.weight_v"] = (cout, cin, k)
    else:
        d[f"{name}.weight"] = (cout, cin, k)
        if bias:
            d[f"{name}.bias"] = (cout,)


def _wn(d: Shapes, p: str, h: int, k: int, n: int, gin: int, depthwise: bool) -> None:
    for i in range(n):
        if depthwise:
            _conv(d, f"{p}.in_layers.{i}.depth_conv", h, 1, k, wn=True)
            _conv(d, f"{p}.in_layers.{i}.point_conv", 2 * h, h, 1, wn=True)
        else:
            _conv(d, f"{p}.in_layers.{i}", 2 * h, h, k, wn=True)
    for i in range(n):
        _conv(d, f"{p}.res_skip_layers.{i}", 2 * h if i < n - 1 else h, h, 1, wn=True)
    if gin:
        _conv(d, f"{p}.cond_layer", 2 * h * n, gin, 1, wn=True)


def _ln(d: Shapes, name: str, h: int) -> None:
    d[f"{name}.gamma"] = (h,)
    d[f"{name}.beta"] = (h,)


def _mha(d: Shapes, p: str, h: int, heads: int, window: int | None) -> None:
    if window:
        d[f"{p}.emb_rel_k"] = (1, 2 * window + 1, h // heads)
        d[f"{p}.emb_rel_v"] = (1, 2 * window + 1, h // heads)
    for c in "qkvo":
        _conv(d, f"{p}.conv_{c}", h, h, 1)


def _ffn(d: Shapes, p: str, h: int, f: int, k: int) -> None:
    _conv(d, f"{p}.conv_1", f, h, k)
    _conv(d, f"{p}.conv_2", h, f, k)


def _encoder(d: Shapes, p: str, h: int, f: int, heads: int, n: int, k: int) -> None:
    for i in range(n):
        _mha(d, f"{p}.attn_layers.{i}", h, heads, 4)
    for i in range(n):
        _ln(d, f"{p}.norm_layers_1.{i}", h)
    for i in range(n):
        _ffn(d, f"{p}.ffn_layers.{i}", h, f, k)
    for i in range(n):
        _ln(d, f"{p}.norm_layers_2.{i}", h)


def _fft(d: Shapes, p: str, h: int, f: int, heads: int, n: int, k: int, gin: int = 0) -> None:
    if gin:
        _conv(d, f"{p}.cond_pre", 2 * h, h, 1)
        _conv(d, f"{p}.cond_layer", 2 * h * n, gin, 1, wn=True)
    for i in range(n):
        _mha(d, f"{p}.self_attn_layers.{i}", h, heads, None)
    for i in range(n):
        _ln(d, f"{p}.norm_layers_0.{i}", h)
    for i in range(n):
        _ffn(d, f"{p}.ffn_layers.{i}", h, f, k)
    for i in range(n):
        _ln(d, f"{p}.norm_layers_1.{i}", h)


def decoder_channels(m: Mapping[str, Any]) -> list[int]:
    """[U, U/2, U/4, ...]: channels before and after each upsampling stage."""
    u = int(m["upsample_initial_channel"])
    return [u // 2 ** i for i in range(len(m["upsample_rates"]) + 1)]


def noise_conv_stride(m: Mapping[str, Any], i: int) -> int:
    """Stride of noise_convs[i] (0 for the last stage, which is a 1x1 conv)."""
    rates = m["upsample_rates"]
    return math.prod(rates[i + 1:]) if i + 1 < len(rates) else 0


def _decoder(d: Shapes, m: Mapping[str, Any]) -> None:
    ch = decoder_channels(m)
    d["dec.m_source.l_linear.weight"] = (1, 9)
    d["dec.m_source.l_linear.bias"] = (1,)
    for i in range(len(m["upsample_rates"])):
        s = noise_conv_stride(m, i)
        _conv(d, f"dec.noise_convs.{i}", ch[i + 1], 1, 2 * s if s else 1)
    _conv(d, "dec.conv_pre", ch[0], int(m["inter_channels"]), 7, wn=True)
    for i, k in enumerate(m["upsample_kernel_sizes"]):
        d[f"dec.ups.{i}.bias"] = (ch[i + 1],)
        d[f"dec.ups.{i}.weight_g"] = (ch[i], 1, 1)
        d[f"dec.ups.{i}.weight_v"] = (ch[i], ch[i + 1], int(k))
    n = 0
    for i in range(len(m["upsample_rates"])):
        for k, dil in zip(m["resblock_kernel_sizes"], m["resblock_dilation_sizes"]):
            if m["resblock"] == "1":
                for which in ("convs1", "convs2"):
                    for j in range(len(dil)):
                        _conv(d, f"dec.resblocks.{n}.{which}.{j}", ch[i + 1], ch[i + 1], int(k), wn=True)
            else:
                for j in range(len(dil)):
                    _conv(d, f"dec.resblocks.{n}.convs.{j}", ch[i + 1], ch[i + 1], int(k), wn=True)
            n += 1
    _conv(d, "dec.conv_post", 1, ch[-1], 7, wn=True)
    _conv(d, "dec.cond", ch[0], int(m["gin_channels"]), 1)


def sovits_state_shapes(m: Mapping[str, Any], spec_channels: int = 1025, *, training: bool = True) -> Shapes:
    """Every generator tensor of a so-vits 4.1 SynthesizerTrn built from model config ``m``, in
    state_dict order (shared flow parameters listed under every alias, as torch saves them)."""
    h, inter, gin = int(m["hidden_channels"]), int(m["inter_channels"]), int(m["gin_channels"])
    f, heads, nl, k = int(m["filter_channels"]), int(m["n_heads"]), int(m["n_layers"]), int(m["kernel_size"])
    dw, share = bool(m["use_depthwise_conv"]), bool(m["flow_share_parameter"])
    d: Shapes = {}
    d["emb_g.weight"] = (int(m["n_speakers"]), gin)
    if m["vol_embedding"]:
        d["emb_vol.weight"] = (h, 1)
        d["emb_vol.bias"] = (h,)
    _conv(d, "pre", h, int(m["ssl_dim"]), 5)
    _conv(d, "enc_p.proj", 2 * inter, h, 1)
    d["enc_p.f0_emb.weight"] = (256, h)
    _encoder(d, "enc_p.enc_", h, f, heads, nl, k)
    _decoder(d, m)
    if training:
        _conv(d, "enc_q.pre", h, spec_channels, 1)
        _wn(d, "enc_q.enc", h, 5, 16, gin, dw)
        _conv(d, "enc_q.proj", 2 * inter, h, 1)
    if m["use_transformer_flow"]:
        ntf = int(m["n_layers_trans_flow"])
        for i in range(int(m["n_flow_layer"])):
            _conv(d, f"flow.flows.{2 * i}.pre", h, inter // 2, 1)
            _fft(d, f"flow.flows.{2 * i}.enc", h, f, heads, ntf, 5, gin)
            _conv(d, f"flow.flows.{2 * i}.post", inter // 2, h, 1)
        if share:
            _fft(d, "flow.wn", h, f, heads, ntf, 5, gin)
    else:
        nfl = int(m["n_flow_layer"])
        for i in range(4):
            _conv(d, f"flow.flows.{2 * i}.pre", h, inter // 2, 1)
            _wn(d, f"flow.flows.{2 * i}.enc", h, 5, nfl, gin, dw)
            _conv(d, f"flow.flows.{2 * i}.post", inter // 2, h, 1)
        if share:
            _wn(d, "flow.wn", h, 5, nfl, gin, dw)
    if m["use_automatic_f0_prediction"]:
        _conv(d, "f0_decoder.prenet", h, h, 3)
        _fft(d, "f0_decoder.decoder", h, f, heads, nl, k)
        _conv(d, "f0_decoder.proj", 1, h, 1)
        _conv(d, "f0_decoder.f0_prenet", h, 1, 3)
        _conv(d, "f0_decoder.cond", h, gin, 1)
    d["emb_uv.weight"] = (2, h)
    return d


def is_shared_alias(name: str, m: Mapping[str, Any]) -> bool:
    """True for ``flow.flows.{i}.enc.*`` when the flow shares one module (stored as ``flow.wn.*``)."""
    return bool(m["flow_share_parameter"]) and name.startswith("flow.flows.") and ".enc." in name


def inference_shapes(m: Mapping[str, Any]) -> Shapes:
    """The tensors a model folder keeps: no enc_q, shared flow parameters once (as flow.wn.*)."""
    return {k: v for k, v in sovits_state_shapes(m, training=False).items() if not is_shared_alias(k, m)}


def speakers_by_id(spk: Mapping[str, int], n_speakers: int) -> tuple[list[str], list[int]]:
    """Speaker names ordered by id (rows of emb_g), and their ids; unnamed models get 'speaker0'."""
    if not spk:
        return ["speaker0"], [0]
    items = sorted(spk.items(), key=lambda kv: kv[1])
    return [k for k, _ in items], [v for _, v in items]
