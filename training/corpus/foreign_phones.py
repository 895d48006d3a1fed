"""Festival voices of other languages as extra speakers for the content encoder.

Debian packages festival voices of Italian, Finnish, Czech, Russian and Catalan speakers.
Given English text, each reads it through its own language's letter-to-sound rules (Finnish
``suo_fi_lj_diphone`` says "the quick brown fox" as ``T e k v i k b r o v n f o k s``) and
``utt.save.segs`` gives the phone end times in its own phone set. The maps below name, for
every phone of each set, the nearest of the 40 English classes of
:data:`training.corpus.synth_speech.PHONES`, so these clips are labelled with what the voice
actually said, at the synthesiser's own timings, without forced alignment.

A map value is a tuple: one class; two classes for a sound English spells as two (an
affricate ``ts`` -> ``t s``, palatal ``ɲ`` -> ``n y``; the segment is split at its midpoint);
or empty for a sound with no English neighbour (Finnish ``y`` [y], Czech ``ř``), whose
frames are left out of the loss. Long vowels and consonants map as their short forms;
palatalised Russian consonants as their plain forms.
"""
from __future__ import annotations

Classes = tuple[str, ...]
SIL: Classes = ("sil",)


def _same(*phones: str) -> dict[str, Classes]:
    return {p: (p,) for p in phones}


def _long(m: dict[str, Classes], suffix: str = ":") -> dict[str, Classes]:
    """Add the long form ``p<suffix>`` of every phone in ``m``, mapped like ``p``."""
    return {**m, **{p + suffix: c for p, c in m.items() if p not in ("#", "##", "_", "pau")}}


# Italian (festival italian_phoneset: lp_diphone, pc_diphone); '1' marks stress.
_ITALIAN_BASE: dict[str, Classes] = {
    "#": SIL, "i": ("iy",), "e": ("ey",), "E": ("eh",), "a": ("aa",), "o": ("ow",), "O": ("ao",),
    "u": ("uw",), "j": ("y",), "w": ("w",), **_same("p", "t", "k", "b", "d", "g", "f", "s", "v", "z",
                                                      "m", "n", "ng", "l", "r"),
    "S": ("sh",), "Z": ("zh",), "ts": ("t", "s"), "tS": ("ch",), "dz": ("d", "z"), "dZ": ("jh",),
    "J": ("n", "y"), "nf": ("m",), "L": ("l", "y"),
}
ITALIAN: dict[str, Classes] = {**_ITALIAN_BASE, **{v + "1": _ITALIAN_BASE[v] for v in "ieEaoOu"}}

# Finnish (suopuhe finnish_phones: suo_fi_lj_diphone, hy_fi_mv_diphone); ':' marks length.
# '@' is ä [æ]; '7' (ö) and '&', 'y' [y] have no English neighbour.
FINNISH: dict[str, Classes] = _long({
    "#": SIL, "##": SIL, "a": ("aa",), "e": ("eh",), "i": ("ih",), "o": ("ao",), "u": ("uh",),
    "y": (), "@": ("ae",), "7": (), "&": (),
    **_same("p", "t", "k", "b", "d", "g", "f", "s", "v", "m", "n", "l", "r", "w", "z"),
    "T": ("th",), "D": ("dh",), "S": ("sh",), "Z": ("zh",), "h": ("hh",), "N": ("ng",), "L": ("l",),
    "j": ("y",),
})

# Czech (festival-czech czech.scm: czech_dita, czech_ph); '~' palatal/post-alveolar,
# 'ch' is [x], 'h' is voiced [ɦ], 'n*' is [ŋ], 'r~' (ř) has no English neighbour.
CZECH: dict[str, Classes] = {
    "#": SIL, "_": SIL, "a": ("ah",), "a:": ("aa",), "e": ("eh",), "e:": ("eh",), "i": ("ih",),
    "i:": ("iy",), "o": ("ao",), "o:": ("ow",), "u": ("uh",), "u:": ("uw",),
    **_same("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"),
    "c": ("t", "s"), "c~": ("ch",), "ch": ("hh",), "d~": ("d", "y"), "dz": ("d", "z"),
    "dz~": ("jh",), "h": ("hh",), "j": ("y",), "n*": ("ng",), "n~": ("n", "y"), "r~": (),
    "r~*": (), "s~": ("sh",), "t~": ("t", "y"), "z~": ("zh",),
}

# Russian (msu_ru_nsh_phoneset); doubled consonants are the palatalised ones.
RUSSIAN: dict[str, Classes] = {
    "pau": SIL, "ii": ("iy",), "yy": ("ih",), "uu": ("uw",), "ee": ("eh",), "oo": ("ao",),
    "aa": ("aa",), "a": ("ah",), "e": ("ih",), "i": ("ih",), "y": ("ih",), "u": ("uh",),
    "ae": ("ah",), "ay": ("ih",), "ur": ("uh",),
    **{c + c2: (c,) for c in ("p", "b", "t", "d", "k", "g", "f", "v", "s", "z", "m", "n", "l", "r")
       for c2 in ("", c)},
    "c": ("t", "s"), "ch": ("ch",), "sh": ("sh",), "sch": ("sh",), "zh": ("zh",), "h": ("hh",),
    "hh": ("hh",), "j": ("y",),
}

# Catalan (upc_catalan central phone set: upc_ca_ona_hts); 'ax' is the schwa.
_CATALAN_BASE: dict[str, Classes] = {
    "pau": SIL, "_": SIL, "#": SIL, "ax": ("ah",), "a": ("aa",), "e": ("ey",), "E": ("eh",),
    "i": ("iy",), "o": ("ow",), "O": ("ao",), "u": ("uw",),
    **_same("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "w", "z"),
    "j": ("y",), "J": ("n", "y"), "L": ("l", "y"), "rr": ("r",), "S": ("sh",), "Z": ("zh",),
}
CATALAN: dict[str, Classes] = {**_CATALAN_BASE, **{v + "1": _CATALAN_BASE[v] for v in "aeEioOu"}}

# voice name -> (festival voice, speaker, phone map)
FOREIGN_VOICES: dict[str, tuple[str, str, dict[str, Classes]]] = {
    "festival-it-lp": ("lp_diphone", "it-lp", ITALIAN),
    "festival-it-pc": ("pc_diphone", "it-pc", ITALIAN),
    "festival-fi-lj": ("suo_fi_lj_diphone", "fi-lj", FINNISH),
    "festival-fi-mv": ("hy_fi_mv_diphone", "fi-mv", FINNISH),
    "festival-cs-dita": ("czech_dita", "cs-dita", CZECH),
    "festival-cs-ph": ("czech_ph", "cs-ph", CZECH),
    "festival-ru-nsh": ("msu_ru_nsh_clunits", "ru-nsh", RUSSIAN),
    "festival-ca-ona": ("upc_ca_ona_hts", "ca-ona", CATALAN),
}
# Debian package of each festival voice (the encoder recipe's corpus needs them installed).
PACKAGES: dict[str, str] = {
    "lp_diphone": "festvox-italp16k", "pc_diphone": "festvox-itapc16k",
    "suo_fi_lj_diphone": "festvox-suopuhe-lj", "hy_fi_mv_diphone": "festvox-suopuhe-mv",
    "czech_dita": "festvox-czech-dita", "czech_ph": "festvox-czech-ph",
    "msu_ru_nsh_clunits": "festvox-ru", "upc_ca_ona_hts": "festvox-ca-ona-hts",
}
