"""Offline speech synthesis with libespeak-ng (formant synthesis) through ctypes.

The library and its voice data come from the ``espeakng-loader`` wheel
(``pip install espeakng-loader``). One engine per process, initialised on first use in
synchronous mode; samples arrive through a callback as int16 chunks at 22 050 Hz.

Prosody is set with ``espeak_SetParameter``: ``rate`` (words per minute, 80-450, default 175),
``volume`` (0-200, default 100), ``pitch`` (base pitch 0-100, default 50) and ``pitch_range``
(0-100, default 50). Voices are ``<language>+<variant>`` names such as ``en-us+f3`` (female
variants ``f1``-``f5``) or ``en+m7`` (male variants ``m1``-``m8``).

Determinism: given the same sequence of calls in a fresh process the output is identical,
but libespeak-ng keeps a pitch-flutter phase across utterances that no API call resets, so
the same text synthesised twice in one process can differ by a few samples.
:func:`write_utterances_isolated` therefore renders fixed blocks of utterances, each in a
fresh ``python -m ser_diag.models.speech_synth`` process: byte-identical files whatever the
number of CPUs or what the calling process synthesised before.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np
from scipy.signal import firwin, resample_poly

#: libespeak-ng's native output rate for its formant voices.
ESPEAK_SAMPLE_RATE = 22050

# espeak_AUDIO_OUTPUT / espeak_PARAMETER / flag values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)

FEMALE_VARIANTS: tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5")
MALE_VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
ENGLISH_ACCENTS: tuple[str, ...] = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029",
                                    "en-us-nyc")


@dataclass(frozen=True)
class Prosody:
    """espeak-ng prosody parameters (see module docstring for ranges)."""

    rate: int = 175
    volume: int = 100
    pitch: int = 50
    pitch_range: int = 50

    def clipped(self) -> "Prosody":
        """The same prosody with every value inside espeak-ng's accepted range."""
        return Prosody(rate=int(np.clip(self.rate, 80, 450)),
                       volume=int(np.clip(self.volume, 0, 200)),
                       pitch=int(np.clip(self.pitch, 0, 100)),
                       pitch_range=int(np.clip(self.pitch_range, 0, 100)))


class _Engine:
    """The process-wide libespeak-ng instance (the library is a singleton itself)."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("speech synthesis needs the espeakng-loader wheel: "
                              "pip install espeakng-loader") from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     espeakng_loader.get_data_path().encode(), 0)
        if rate != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected {ESPEAK_SAMPLE_RATE} Hz")
        self.lib = lib
        self.chunks: list[np.ndarray] = []
        # keep a reference: ctypes frees the trampoline when the Python object is collected
        self.callback = _CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()

    def _collect(self, wav, n_samples, events):
        if n_samples > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def synthesize(self, text: str, voice: str, prosody: Prosody, seed: int) -> np.ndarray:
        prosody = prosody.clipped()
        data = text.encode("utf-8") + b"\0"
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"unknown espeak-ng voice {voice!r} (try e.g. 'en-us+f3', 'en+m7')")
            for parameter, value in ((_RATE, prosody.rate), (_VOLUME, prosody.volume),
                                     (_PITCH, prosody.pitch), (_RANGE, prosody.pitch_range)):
                self.lib.espeak_SetParameter(parameter, value, 0)
            self.lib.espeak_ng_SetRandSeed(seed)
            self.chunks = []
            status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                           None, None)
            if status != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
            self.lib.espeak_Synchronize()
            chunks, self.chunks = self.chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
    return _engine


def synthesize(text: str, voice: str = "en-us", prosody: Prosody = Prosody(), seed: int = 0,
               sample_rate: int = ESPEAK_SAMPLE_RATE) -> np.ndarray:
    """Speak ``text`` with ``voice`` and ``prosody``; return mono int16 samples at ``sample_rate``.

    ``seed`` seeds libespeak-ng's noise generator. Resampling from 22 050 Hz uses a polyphase
    filter (:func:`resample_to`).
    """
    audio = _get_engine().synthesize(text, voice, prosody, seed)
    return resample_to(audio, ESPEAK_SAMPLE_RATE, sample_rate)


def resample_to(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling of int16 audio (e.g. 22 050 -> 16 000 Hz is up 320, down 441).

    >>> resample_to(np.zeros(441, dtype=np.int16), 22050, 16000).shape
    (320,)
    """
    if rate_in == rate_out:
        return audio
    g = int(np.gcd(rate_in, rate_out))
    up, down = rate_out // g, rate_in // g
    y = resample_poly(audio.astype(np.float64), up, down, window=_lowpass(up, down))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


@functools.lru_cache(maxsize=8)
def _lowpass(up: int, down: int) -> np.ndarray:
    """scipy's default ``resample_poly`` anti-aliasing filter (Kaiser beta 5), designed once."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def voice_name(accent: str, variant: str) -> str:
    """``voice_name("en-us", "f3") == "en-us+f3"``."""
    return f"{accent}+{variant}"


def trim_silence(audio: np.ndarray, threshold: int = 64) -> np.ndarray:
    """Drop leading/trailing samples with ``|x| <= threshold`` (espeak-ng pads each clause).

    >>> trim_silence(np.array([0, 3, 500, -900, 2, 0], dtype=np.int16)).tolist()
    [500, -900]
    """
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0]:loud[-1] + 1] if loud.size else audio


def render_utterance(spec: dict, sample_rate: int = 16000) -> np.ndarray:
    """One int16 recording from a spec: clauses spoken with one voice and prosody.

    ``spec`` keys: ``clauses`` (list of str), ``voice``, ``rate``, ``volume``, ``pitch``,
    ``pitch_range``, ``pause_s`` (silence between clauses), ``lead_s``/``trail_s`` (silence at
    the ends), ``noise_seed`` and ``noise_sd`` (Gaussian recording noise floor, int16 units).
    """
    prosody = Prosody(rate=spec["rate"], volume=spec["volume"], pitch=spec["pitch"],
                      pitch_range=spec["pitch_range"])
    parts = [np.zeros(int(spec["lead_s"] * sample_rate))]
    for j, clause in enumerate(spec["clauses"]):
        if j:
            parts.append(np.zeros(int(spec["pause_s"] * sample_rate)))
        speech = synthesize(clause, spec["voice"], prosody, seed=spec["noise_seed"] % 65536,
                            sample_rate=sample_rate)
        parts.append(trim_silence(speech).astype(np.float64))
    parts.append(np.zeros(int(spec["trail_s"] * sample_rate)))
    audio = np.concatenate(parts)
    audio += np.random.default_rng(spec["noise_seed"]).normal(0, spec["noise_sd"], size=audio.size)
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


def write_utterances(specs: list[dict], sample_rate: int = 16000) -> None:
    """Render each spec (see :func:`render_utterance`) to the 16-bit PCM wav at ``spec["path"]``."""
    import soundfile as sf

    for spec in specs:
        sf.write(spec["path"], render_utterance(spec, sample_rate), sample_rate, subtype="PCM_16")


def _json_scalar(value):
    """numpy scalars in specs (e.g. from a DataFrame) as plain Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__} in an utterance spec")


def write_utterances_isolated(specs: list[dict], sample_rate: int = 16000, block_size: int = 100,
                              max_workers: int | None = None) -> None:
    """:func:`write_utterances` in fresh processes, one per fixed block of ``block_size`` specs.

    Blocks run ``max_workers`` at a time (default: CPU count). The files depend only on the
    specs and ``block_size``, not on ``max_workers`` or on this process's history.
    """
    blocks = [specs[i:i + block_size] for i in range(0, len(specs), block_size)]
    if not blocks:
        return

    def run(block: list[dict]) -> None:
        done = subprocess.run([sys.executable, "-m", "ser_diag.models.speech_synth", str(sample_rate)],
                              input=json.dumps(block, default=_json_scalar), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"speech synthesis worker failed: {done.stderr.strip()[-2000:]}")

    workers = max(1, min(len(blocks), max_workers or os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, blocks))


if __name__ == "__main__":
    write_utterances(json.load(sys.stdin), sample_rate=int(sys.argv[1]))
