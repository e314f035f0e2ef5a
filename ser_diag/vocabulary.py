"""A corpus' vocabulary as a value: its classes, attributes and scales, splits and column names.

A :class:`Vocabulary` says what the labels of one emotion corpus mean: the class codes scored
in macro-F1 (in their fixed order) with display names, the codes that may appear in labels but
are not scored (MSP-Podcast's ``O``/``X``), codes read as a scored one (IEMOCAP's excitement
merged into happy), 0 to 3 dimensional :class:`Attribute` s with their scale, the split names,
and which columns hold the file, the class, the speaker, the gender and the split. Compare
audformat's ``Scheme``: the corpus' vocabulary as data, not as module constants.

Presets ship for MSP-Podcast (the default, built from :mod:`ser_diag.schema`), IEMOCAP,
CREMA-D, EmoDB and MSP-IMPROV (:func:`preset`); any other corpus is a short JSON or YAML file
(:meth:`Vocabulary.from_file`). Today only :data:`MSP_PODCAST` drives the analyses (issue 22).

>>> voc = preset("IEMOCAP")
>>> voc.classes, voc.resolve("excited"), voc.resolve("frustrated")
(('neutral', 'happy', 'sad', 'angry'), 'happy', None)
>>> [(a.name, a.low, a.high) for a in voc.attributes]
[('activation', 1.0, 5.0), ('valence', 1.0, 5.0), ('dominance', 1.0, 5.0)]
>>> Vocabulary("mine", classes=("calm", "calm", "tense"))
Traceback (most recent call last):
...
ser_diag.vocabulary.VocabularyError: classes: 'calm' appears twice
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
import types
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from ser_diag import schema
from ser_diag.errors import InputError, quoted

__all__ = ["Attribute", "Vocabulary", "VocabularyError", "VocabularyFileError", "preset", "PRESETS",
           "MSP_PODCAST", "IEMOCAP", "CREMA_D", "EMODB", "MSP_IMPROV"]

MIN_CLASSES, MAX_CLASSES, MAX_ATTRIBUTES = 2, 20, 3
#: The column keys of a vocabulary (fields and file keys); speaker, gender, split may be None.
COLUMN_KEYS = ("file_column", "class_column", "speaker_column", "gender_column", "split_column")
_OPTIONAL_COLUMNS = ("speaker_column", "gender_column", "split_column")
FILE_KEYS = ("name", "description", "classes", "excluded", "merged", "attributes", "splits") + COLUMN_KEYS
ATTRIBUTE_KEYS = ("name", "low", "high", "display")


class VocabularyError(ValueError):
    """A vocabulary that cannot be: ``key`` (the field or file key, e.g. ``attributes[1].low``)
    and one sentence, ``message``; ``str()`` reads ``key: message``."""

    def __init__(self, key: str | None, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}" if key else message)


class VocabularyFileError(InputError):
    """A bad vocabulary file: an :class:`~ser_diag.errors.InputError` whose line names the key
    (``file: key 'attributes[0].high': ...``); ``column`` and ``key`` hold the key."""

    def __init__(self, file, key: str, message: str):
        super().__init__(file, None, f"key {quoted(key)}: {message}")
        self.column = self.key = key
        self.message = message


# --------------------------------------------------------------------------- values

@dataclasses.dataclass(frozen=True)
class Attribute:
    """A dimensional attribute: ``name`` (its column), its scale ``low`` < ``high``, and
    ``display`` (what people read; default: the name).

    >>> Attribute("EmoAct", 1, 7, "arousal")
    Attribute(name='EmoAct', low=1.0, high=7.0, display='arousal')
    >>> Attribute("valence", -1, 1).display
    'valence'
    >>> Attribute("valence", 5, 1)
    Traceback (most recent call last):
    ...
    ser_diag.vocabulary.VocabularyError: high: 1.0 is not above low (5.0)
    """

    name: str
    low: float
    high: float
    display: str = ""

    def __post_init__(self):
        _check_text(self.name, "name")
        for key in ("low", "high"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise VocabularyError(key, f"{quoted(value)} is not a finite number")
            object.__setattr__(self, key, float(value))
        if not self.low < self.high:
            raise VocabularyError("high", f"{self.high} is not above low ({self.low})")
        object.__setattr__(self, "display", self.display or self.name)
        _check_text(self.display, "display")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """One corpus' vocabulary (see the module docstring); checked on construction, a
    :class:`VocabularyError` (a ``ValueError``) naming the field otherwise.

    ``classes``: the scored codes in macro-F1 order (2 to 20, any strings); ``class_names``:
    code -> display name (default: the code); ``excluded``: codes labels may hold that are not
    scored; ``merged``: code -> the scored code it counts as; ``attributes``: 0 to 3
    :class:`Attribute`; ``splits``: split names; ``*_column``: the label columns (speaker,
    gender and split may be None: the corpus has none); ``description``: where the convention
    comes from (not compared).

    >>> voc = Vocabulary("mine", classes=("calm", "tense"), class_names={"calm": "Calm"},
    ...                  attributes=(Attribute("arousal", 0, 1),), gender_column=None)
    >>> voc.class_names["tense"], voc.attribute("arousal").high, voc.label_codes
    ('tense', 1.0, ('calm', 'tense'))
    >>> Vocabulary.from_dict(voc.to_dict()) == voc
    True
    """

    name: str
    classes: tuple[str, ...]
    class_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    excluded: tuple[str, ...] = ()
    merged: Mapping[str, str] = dataclasses.field(default_factory=dict)
    attributes: tuple[Attribute, ...] = ()
    splits: tuple[str, ...] = ()
    file_column: str = "file"
    class_column: str = "emotion"
    speaker_column: str | None = "speaker"
    gender_column: str | None = "gender"
    split_column: str | None = "split"
    description: str = dataclasses.field(default="", compare=False)

    def __post_init__(self):
        _check_text(self.name, "name")
        classes = _codes(self.classes, "classes")
        if not MIN_CLASSES <= len(classes) <= MAX_CLASSES:
            raise VocabularyError("classes", f"{len(classes)} classes; a vocabulary scores "
                                             f"{MIN_CLASSES} to {MAX_CLASSES}")
        names = _mapping(self.class_names, "class_names")
        for code, display in names.items():
            if code not in classes:
                raise VocabularyError("class_names", f"{quoted(code)} is not one of the classes")
            _check_text(display, f"class_names[{code!r}]")
        excluded = _codes(self.excluded, "excluded")
        _disjoint(excluded, classes, "excluded", "a scored class")
        merged = _mapping(self.merged, "merged")
        for code, target in merged.items():
            _check_text(code, "merged")
            _disjoint((code,), classes + excluded, "merged", "a class or an excluded code")
            if target not in classes:
                raise VocabularyError(f"merged[{code!r}]", f"{quoted(target)} is not one of the classes")
        attributes = tuple(self.attributes)
        if len(attributes) > MAX_ATTRIBUTES or not all(isinstance(a, Attribute) for a in attributes):
            raise VocabularyError("attributes", f"at most {MAX_ATTRIBUTES} Attribute values, "
                                                f"not {quoted(self.attributes)}")
        _codes([a.name for a in attributes], "attributes")
        splits = _codes(self.splits, "splits")
        columns = {}
        for key in COLUMN_KEYS:
            value = getattr(self, key)
            if value is None and key in _OPTIONAL_COLUMNS:
                continue
            _check_text(value, key)
            if value in columns.values():
                other = next(k for k, v in columns.items() if v == value)
                raise VocabularyError(key, f"{value!r} is also the {other}")
            columns[key] = value
        for a in attributes:
            if a.name in columns.values():
                raise VocabularyError("attributes", f"{a.name!r} is also a column of the labels")
        if not isinstance(self.description, str):
            raise VocabularyError("description", f"{quoted(self.description)} is not text")
        for key, value in (("classes", classes), ("excluded", excluded), ("attributes", attributes),
                           ("splits", splits), ("merged", types.MappingProxyType(merged)),
                           ("class_names", types.MappingProxyType({c: names.get(c, c) for c in classes}))):
            object.__setattr__(self, key, value)

    def __hash__(self) -> int:
        return hash(json.dumps({k: v for k, v in self.to_dict().items() if k != "description"}))

    def __copy__(self) -> Vocabulary:
        return self

    def __deepcopy__(self, memo) -> Vocabulary:
        """A vocabulary is immutable: a deep copy (pandas copies a frame's ``attrs`` so) is itself."""
        return self

    def __reduce__(self):
        """Pickled as its plain data (the read-only mappings do not pickle), a preset as itself."""
        if PRESETS.get(self.name) == self:
            return preset, (self.name,)
        return Vocabulary.from_dict, (self.to_dict(),)

    def __repr__(self) -> str:
        scales = ", ".join(f"{a.name} {a.low:g}-{a.high:g}" for a in self.attributes) or "none"
        return (f"<Vocabulary {self.name}: {len(self.classes)} classes ({' '.join(self.classes)}), "
                f"attributes {scales}, {len(self.splits)} splits>")

    # ----------------------------------------------------------------------- lookups

    @property
    def label_codes(self) -> tuple[str, ...]:
        """Every code a label may hold: the classes, then the excluded and the merged codes."""
        return self.classes + self.excluded + tuple(self.merged)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def prob_columns(self) -> tuple[str, ...]:
        """The optional per-class probability columns of prediction files: ``P_<code>``.

        >>> CREMA_D.prob_columns[:2]
        ('P_anger', 'P_disgust')
        """
        return tuple(f"P_{c}" for c in self.classes)

    @property
    def attribute_ranges(self) -> dict[str, tuple[float, float]]:
        """Each attribute's scale ``(low, high)`` by name.

        >>> IEMOCAP.attribute_ranges["valence"]
        (1.0, 5.0)
        """
        return {a.name: (a.low, a.high) for a in self.attributes}

    @property
    def attribute_displays(self) -> dict[str, str]:
        """Each attribute's display name by name (MSP-Podcast: ``EmoAct`` -> ``arousal``)."""
        return {a.name: a.display for a in self.attributes}

    def attribute(self, name: str) -> Attribute:
        """The :class:`Attribute` named ``name``."""
        for a in self.attributes:
            if a.name == name:
                return a
        raise ValueError(f"{name!r} is not an attribute of {self.name} ({', '.join(self.attribute_names) or 'none'})")

    def resolve(self, code: str) -> str | None:
        """The scored class a label code counts as; None for an excluded code.

        >>> MSP_PODCAST.resolve("A"), MSP_PODCAST.resolve("X")
        ('A', None)
        """
        if code in self.class_names:
            return code
        if code in self.merged:
            return self.merged[code]
        if code in self.excluded:
            return None
        raise ValueError(f"{quoted(code)} is not a label code of {self.name} ({' '.join(self.label_codes)})")

    # ----------------------------------------------------------------------- the file format

    def to_dict(self) -> dict:
        """The vocabulary as plain data, the layout of a vocabulary file (JSON or YAML):
        ``classes`` maps each code to its display name, in macro-F1 order.

        >>> EMODB.to_dict()["classes"]["boredom"], EMODB.to_dict()["attributes"]
        ('Boredom', [])
        """
        data = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data.update(classes=dict(self.class_names), excluded=list(self.excluded), merged=dict(self.merged),
                    attributes=[dataclasses.asdict(a) for a in self.attributes], splits=list(self.splits))
        data.update({key: getattr(self, key) for key in COLUMN_KEYS})
        return data

    @classmethod
    def from_dict(cls, data: Mapping, name: str | None = None) -> Vocabulary:
        """A vocabulary from plain data (:meth:`to_dict`'s layout); ``classes`` may also be a
        list of codes (each its own display name). Only ``classes`` is required (``name``:
        the data's, else the argument). Unknown or duplicate keys, wrong types and bad ranges
        raise :class:`VocabularyError` naming the key.

        >>> Vocabulary.from_dict({"classes": ["angry", "calm"], "atributes": []}, name="x")
        Traceback (most recent call last):
        ...
        ser_diag.vocabulary.VocabularyError: atributes: unknown key (did you mean 'attributes'?); a vocabulary has name, description, ...
        """
        data = _object(data, None)
        _known_keys(data, FILE_KEYS, "")
        if "classes" not in data:
            raise VocabularyError("classes", "missing: list the scored class codes (2 to 20)")
        if name is None and "name" not in data:
            raise VocabularyError("name", "missing: name the corpus")
        kwargs = {"name": data.get("name", name)}
        classes = data["classes"]
        if isinstance(classes, Mapping):
            classes = _object(classes, "classes")
            kwargs.update(classes=tuple(classes), class_names=classes)
        else:
            kwargs["classes"] = _list(classes, "classes")
        for key in ("excluded", "splits"):
            if key in data:
                kwargs[key] = _list(data[key], key)
        if "merged" in data:
            kwargs["merged"] = _object(data["merged"], "merged")
        kwargs["attributes"] = tuple(_attribute(a, f"attributes[{i}]")
                                     for i, a in enumerate(_list(data.get("attributes", []), "attributes")))
        kwargs.update({key: data[key] for key in COLUMN_KEYS + ("description",) if key in data})
        try:
            return cls(**kwargs)
        except VocabularyError as exc:          # display names sit under the file's "classes"
            if exc.key and exc.key.startswith("class_names"):
                raise VocabularyError("classes" + exc.key[len("class_names"):], exc.message) from None
            raise

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary file: ``.json``, or ``.yaml``/``.yml`` (with PyYAML), in
        :meth:`to_dict`'s layout; the name defaults to the file's stem. A bad file raises
        :class:`VocabularyFileError` (an :class:`~ser_diag.errors.InputError`): one line
        naming the file and the key.

        >>> import tempfile; folder = tempfile.mkdtemp()
        >>> path = Path(folder, "lab.json")
        >>> _ = path.write_text('{"classes": {"calm": "Calm", "tense": "Tense", "calm": "Quiet"}}')
        >>> Vocabulary.from_file(path)
        Traceback (most recent call last):
        ...
        ser_diag.vocabulary.VocabularyFileError: .../lab.json: key "classes['calm']": key 'calm' appears twice
        >>> _ = path.write_text('{"classes": {"calm": "Calm", "tense": "Tense"}, "gender_column": null}')
        >>> Vocabulary.from_file(path)
        <Vocabulary lab: 2 classes (calm tense), attributes none, 0 splits>
        >>> import shutil; shutil.rmtree(folder)
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".yaml", ".yml"):
            raise InputError(path, None, "a vocabulary file ends in .json, .yaml or .yml")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise InputError(path, None, f"cannot read the vocabulary file ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise InputError(path, None, "not UTF-8 text") from None
        if not text.strip():
            raise InputError(path, None, "empty vocabulary file")
        data = _load_json(text, path) if suffix == ".json" else _load_yaml(text, path)
        try:
            return cls.from_dict(data, name=path.stem)
        except VocabularyError as exc:
            if exc.key is None:
                raise InputError(path, None, exc.message) from None
            raise VocabularyFileError(path, exc.key, exc.message) from None


# --------------------------------------------------------------------------- checks

def _folded(name) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _check_text(value, key: str) -> None:
    """``value`` is non-empty text without surrounding blanks (cells are read stripped)."""
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, (bool, numbers.Number)) else ""
        raise VocabularyError(key, f"{quoted(value)} is not text{hint}")
    if not value.strip():
        raise VocabularyError(key, "empty text")
    if value != value.strip():
        raise VocabularyError(key, f"{value!r} has blanks around it")


def _codes(values, key: str) -> tuple[str, ...]:
    """A tuple of distinct, checked strings."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise VocabularyError(key, f"a list of names, not {quoted(values)}")
    for value in values:
        _check_text(value, key)
    twice = [v for v, n in Counter(values).items() if n > 1]
    if twice:
        raise VocabularyError(key, f"{twice[0]!r} appears twice")
    return tuple(values)


def _disjoint(codes, others, key: str, what: str) -> None:
    both = [c for c in codes if c in others]
    if both:
        raise VocabularyError(key, f"{both[0]!r} is also {what}")


def _mapping(value, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise VocabularyError(key, f"a mapping, not {quoted(value)}")
    return dict(value)


def _list(value, key: str) -> tuple:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise VocabularyError(key, f"a list, not {quoted(value)}")
    return tuple(value)


class _Object(dict):
    """A JSON object / YAML mapping that remembers the keys it held twice."""

    duplicates: tuple = ()


def _object(value, key: str | None) -> Mapping:
    """``value`` as a mapping without repeated keys (``key``: where it sits)."""
    if not isinstance(value, Mapping):
        raise VocabularyError(key, f"a mapping (JSON object), not {quoted(value)}")
    twice = getattr(value, "duplicates", ())
    if twice:
        where = f"{key}[{twice[0]!r}]" if key else str(twice[0])
        raise VocabularyError(where, f"key {twice[0]!r} appears twice")
    return value


def _known_keys(data: Mapping, known: Sequence[str], prefix: str) -> None:
    for k in data:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            what = "an attribute" if prefix else "a vocabulary"
            raise VocabularyError(f"{prefix}{k}", f"unknown key{hint}; {what} has {', '.join(known)}")


def _attribute(data, key: str) -> Attribute:
    data = _object(data, key)
    _known_keys(data, ATTRIBUTE_KEYS, f"{key}.")
    for field in ("name", "low", "high"):
        if field not in data:
            raise VocabularyError(f"{key}.{field}", "missing")
    try:
        return Attribute(data["name"], data["low"], data["high"], data.get("display", ""))
    except VocabularyError as exc:
        raise VocabularyError(f"{key}.{exc.key}", exc.message) from None


def _pairs(pairs) -> _Object:
    obj = _Object(pairs)
    obj.duplicates = tuple(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def _load_json(text: str, path: Path):
    try:
        return json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(path, None, f"not valid JSON: {exc.msg} (column {exc.colno})", row=exc.lineno) from None


def _load_yaml(text: str, path: Path):
    try:
        import yaml
    except ImportError:
        raise InputError(path, None, "reading YAML needs PyYAML (pip install pyyaml); "
                                     "or write the vocabulary as JSON") from None

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node):
        loader.flatten_mapping(node)
        return _pairs(loader.construct_pairs(node, deep=True))

    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise InputError(path, None, f"not valid YAML: {problem}",
                         row=mark.line + 1 if mark is not None else None) from None


# --------------------------------------------------------------------------- presets

_FILE, _CLASS, *_ATTRIBUTE_COLUMNS, _SPEAKER, _GENDER, _SPLIT = schema.CONSENSUS_COLUMNS

#: The default. MSP-Podcast release 1.12 and the Interspeech 2025 SER challenge: 8 classes in
#: the challenge's logit order, O (other) and X (no consensus) in labels but not scored,
#: arousal/valence/dominance averaged on 1-7, ``Split_Set``'s five splits.
MSP_PODCAST = Vocabulary(
    name="msp-podcast", classes=schema.CLASS_CODES, class_names=schema.CLASS_NAMES,
    excluded=schema.EXTRA_CODES,
    attributes=tuple(Attribute(a, schema.ATTRIBUTE_MIN, schema.ATTRIBUTE_MAX, schema.ATTRIBUTE_NAMES[a])
                     for a in schema.ATTRIBUTES),
    splits=schema.SPLITS, file_column=_FILE, class_column=_CLASS, speaker_column=_SPEAKER,
    gender_column=_GENDER, split_column=_SPLIT,
    description="MSP-Podcast 1.12 / Interspeech 2025 SER challenge: 8 classes (O, X unscored), "
                "attributes averaged on 1-7, five splits (msp_podcast_format.md)")

#: IEMOCAP (Busso et al. 2008) as usually scored: 4 classes with excitement merged into happy,
#: the other categories and no agreement (xxx) not scored; activation/valence/dominance
#: annotated on 1-5; 10 speakers in 5 sessions (leave-one-session-out).
IEMOCAP = Vocabulary(
    name="iemocap", classes=("neutral", "happy", "sad", "angry"),
    class_names={"neutral": "Neutral", "happy": "Happiness", "sad": "Sadness", "angry": "Anger"},
    excluded=("frustrated", "surprised", "fearful", "disgusted", "other", "xxx"),
    merged={"excited": "happy"},
    attributes=(Attribute("activation", 1, 5, "arousal"), Attribute("valence", 1, 5),
                Attribute("dominance", 1, 5)),
    splits=tuple(f"Session{i}" for i in range(1, 6)), split_column="session",
    description="IEMOCAP (Busso et al. 2008), 4-class setup with excitement merged into happy; "
                "activation/valence/dominance on 1-5; 10 speakers, sessions 1-5")

#: CREMA-D (Cao et al. 2014): 6 acted classes (ANG DIS FEA HAP NEU SAD in its file names),
#: 91 actors, no dimensional attributes, no official splits.
CREMA_D = Vocabulary(
    name="crema-d", classes=("anger", "disgust", "fear", "happy", "neutral", "sad"),
    class_names={"anger": "Anger", "disgust": "Disgust", "fear": "Fear", "happy": "Happiness",
                 "neutral": "Neutral", "sad": "Sadness"},
    description="CREMA-D (Cao et al. 2014): 6 acted classes, 91 actors, no attributes, no official splits")

#: EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005): 7 acted classes
#: (audformat's ``emotion`` scheme), 10 speakers, no attributes, no official splits.
EMODB = Vocabulary(
    name="emodb", classes=("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"),
    class_names={c: c.capitalize() for c in ("anger", "boredom", "disgust", "fear", "happiness",
                                             "neutral", "sadness")},
    description="EmoDB (Burkhardt et al. 2005): 7 acted classes, 10 speakers, no attributes")

#: MSP-IMPROV (Busso et al. 2017): 4 classes with the single-letter codes of its
#: ``Evaluation.txt`` (O other and X no agreement not scored), arousal/valence/dominance on 1-5,
#: 12 actors in 6 sessions.
MSP_IMPROV = Vocabulary(
    name="msp-improv", classes=("A", "H", "S", "N"),
    class_names={"A": "Anger", "H": "Happiness", "S": "Sadness", "N": "Neutral"},
    excluded=("O", "X"),
    attributes=(Attribute("arousal", 1, 5), Attribute("valence", 1, 5), Attribute("dominance", 1, 5)),
    splits=tuple(f"Session{i}" for i in range(1, 7)), split_column="session",
    description="MSP-IMPROV (Busso et al. 2017): 4 classes (O, X unscored), attributes on 1-5, "
                "12 actors in sessions 1-6")

#: The presets by name.
PRESETS: Mapping[str, Vocabulary] = types.MappingProxyType(
    {v.name: v for v in (MSP_PODCAST, IEMOCAP, CREMA_D, EMODB, MSP_IMPROV)})


def preset(name: str) -> Vocabulary:
    """The preset vocabulary called ``name``; case, spaces, ``-`` and ``_`` do not matter.

    >>> preset("MSP_Podcast") is MSP_PODCAST, preset("crema-d").classes[:2]
    (True, ('anger', 'disgust'))
    >>> preset("ravdess")
    Traceback (most recent call last):
    ...
    ValueError: no preset vocabulary 'ravdess'; presets: msp-podcast, iemocap, crema-d, emodb, msp-improv
    """
    wanted = _folded(name)
    for key, vocabulary in PRESETS.items():
        if _folded(key) == wanted:
            return vocabulary
    raise ValueError(f"no preset vocabulary {quoted(name)}; presets: {', '.join(PRESETS)}")
