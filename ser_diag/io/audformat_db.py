"""An audformat database (the format of audEERING's ``audb``) read into the internal labels frame.

:func:`read_database` loads the folder holding ``db.yaml`` with the ``audformat`` library
(imported on use, so ``import ser_diag`` stays light) and reads, from every filewise table:

* the categorical truth: the column of the labels scheme named ``emotion`` (or ``target``);
* the attributes: the columns of the numeric schemes named ``arousal``/``activation``,
  ``valence``, ``dominance`` (or ``attributes``), their scale the scheme's minimum/maximum;
* speaker and gender: columns named ``speaker`` / ``gender`` in any filewise table (or the
  ``gender`` entry of the speaker scheme's label dictionary or misc table);
* the split: ``split`` is a split id of ``db.splits``; its files are those of the tables with
  that ``split_id``.

File names stay audformat's relative paths (``wav/03a01Fa.wav``). The vocabulary is built from
the schemes when none is given (classes: the emotion scheme's labels; a scheme whose labels
are exactly a preset's codes takes that preset's scored / excluded / merged codes); a given
vocabulary decides those codes and must agree with the schemes. Prediction files use the
corpus' own names: ``file``, one column per scheme (``emotion``; ``arousal``, ...). Every
problem is one :class:`~ser_diag.errors.InputError` line.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import pandas as pd

from ser_diag.errors import InputError, InputWarning, quoted, warn
from ser_diag.io.corpus import is_synthetic
from ser_diag.vocabulary import PRESETS, Attribute, Vocabulary, VocabularyError

__all__ = ["read_database", "load_database", "DEFAULT_TARGET", "DEFAULT_ATTRIBUTES", "DEFAULT_SPLIT", "FILE_COLUMN",
           "GENDER_WORDS"]

DEFAULT_TARGET = "emotion"
#: Numeric schemes read as attributes when none are named, in this order (at most 3 found).
DEFAULT_ATTRIBUTES = ("arousal", "activation", "valence", "dominance")
#: The file column of prediction files for an audformat database.
FILE_COLUMN = "file"
_NUMERIC = ("float", "int")
#: Gender values read as ``Female`` / ``Male`` (any case); anything else is <NA> (unknown).
GENDER_WORDS = {"female": "Female", "f": "Female", "woman": "Female", "male": "Male", "m": "Male", "man": "Male"}
#: The split :func:`ser_diag.io.load` passes when none is given (MSP-Podcast's default): for a
#: corpus without a split of that name it means every file.
DEFAULT_SPLIT = "Development"
_STR = "str"


def load_database(path: str | os.PathLike):
    """``(audformat.Database, path of db.yaml)``; a database that cannot be loaded is one InputError."""
    import audformat

    path = Path(path)
    root = path.parent if path.name == "db.yaml" else path
    header = root / "db.yaml"
    if not header.is_file():
        raise InputError(header, None, "no such file: an audformat database is a folder holding db.yaml")
    try:
        with warnings.catch_warnings():   # the library's own deprecation notices are not the user's business
            warnings.simplefilter("ignore")
            db = audformat.Database.load(str(root), load_data=True)
    except Exception as exc:  # noqa: BLE001 - yaml, audformat and pandas errors alike: one line
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(header, None, f"cannot load the audformat database: {text}") from None
    return db, header


def _table_file(root: Path, table_id: str) -> Path:
    for ext in ("csv", "parquet", "pkl"):
        if (root / f"db.{table_id}.{ext}").is_file():
            return root / f"db.{table_id}.{ext}"
    return root / "db.yaml"


def _scheme_labels(db, scheme) -> dict:
    """A scheme's labels as ``{label: meta}`` (list, dictionary or misc table)."""
    labels = scheme.labels
    if labels is None:
        return {}
    if isinstance(labels, str):   # the ID of a misc table whose index holds the labels
        frame = db[labels].get()
        return {k: dict(v) for k, v in frame.to_dict(orient="index").items()}
    if isinstance(labels, dict):
        return dict(labels)
    return dict.fromkeys(labels)


def _columns_of(db, scheme_id: str, name: str | None = None) -> list[tuple[str, str]]:
    """``(table id, column id)`` of the filewise tables' columns with ``scheme_id`` (a column
    named after it first) or, with ``name``, the columns called ``name``."""
    found = []
    for table_id, table in db.tables.items():
        if not table.is_filewise:
            continue
        columns = [c for c, column in table.columns.items()
                   if (column.scheme_id == scheme_id if scheme_id else c == name)]
        columns.sort(key=lambda c: c != (scheme_id or name))
        if columns:
            found.append((table_id, columns[0]))
    return found


def _values(db, found, kind: str) -> pd.Series:
    """One value per file from the columns ``found`` (the first table holding a file wins)."""
    parts = [db[table_id].df[column] for table_id, column in found]
    parts = [p.astype(object) if isinstance(p.dtype, pd.CategoricalDtype) else p for p in parts]
    values = pd.concat(parts) if parts else pd.Series([], dtype=object)
    values.index = values.index.astype(str)
    values = values.groupby(level=0, sort=False).first()
    values.name = kind
    return values


def _attribute_schemes(db, header: Path, attributes, vocabulary: Vocabulary | None) -> list[Attribute]:
    """The attributes read (named by their schemes), each with its scale."""
    if attributes is not None:
        names = list(attributes)
    elif vocabulary is not None:
        names, missing = [], []
        for a in vocabulary.attributes:
            match = next((n for n in (a.name, a.display) if n in db.schemes), None)
            (missing.append(a.display) if match is None else names.append(match))
        if missing:
            warn(InputWarning(header, None, f"no scheme for the attributes {', '.join(missing)} of vocabulary "
                              f"{vocabulary.name}; {'they are' if len(missing) > 1 else 'it is'} not scored"))
    else:
        names = [n for n in DEFAULT_ATTRIBUTES if n in db.schemes and db.schemes[n].dtype in _NUMERIC][:3]
    out = []
    for name in names:
        if name not in db.schemes:
            raise InputError(header, name, f"unknown scheme {name!r} (--attributes); the database has schemes "
                             f"{', '.join(db.schemes) or 'none'}")
        scheme = db.schemes[name]
        if scheme.dtype not in _NUMERIC:
            raise InputError(header, name, f"scheme {name!r} is {scheme.dtype}, not a float or int scheme: "
                             "not an attribute")
        preset = None
        if vocabulary is not None:
            preset = next((a for a in vocabulary.attributes if name in (a.name, a.display)), None)
        low, high = scheme.minimum, scheme.maximum
        if preset is not None:
            if (low is not None and float(low) != preset.low) or (high is not None and float(high) != preset.high):
                raise InputError(header, name, f"scheme {name!r} spans [{low}, {high}] but vocabulary "
                                 f"{vocabulary.name} scores {preset.name} on [{preset.low:g}, {preset.high:g}]")
            low, high = preset.low, preset.high
        if low is None or high is None:
            raise InputError(header, name, f"scheme {name!r} has no minimum/maximum: add them to db.yaml "
                             "or give a vocabulary with the attribute's scale")
        try:
            out.append(Attribute(name, float(low), float(high), preset.display if preset else name))
        except VocabularyError as exc:
            raise InputError(header, name, f"scheme {name!r}: {exc}") from None
    return out


def _vocabulary(db, header: Path, target: str, codes: list, attributes: list[Attribute],
                vocabulary: Vocabulary | None) -> Vocabulary:
    """The vocabulary of the database: ``vocabulary`` (or the preset whose label codes the
    scheme's labels are) with the database's column names, else one built from the schemes."""
    if vocabulary is None:
        vocabulary = next((p for p in PRESETS.values() if codes and set(codes) == set(p.label_codes)), None)
    columns = dict(file_column=FILE_COLUMN, class_column=target, speaker_column="speaker",
                   gender_column="gender", split_column=None)
    try:
        if vocabulary is not None:
            unknown = [c for c in codes if c not in vocabulary.label_codes]
            if unknown:
                raise InputError(header, target, f"scheme {target!r} has label {quoted(unknown[0])}, not a code of "
                                 f"vocabulary {vocabulary.name} ({', '.join(vocabulary.label_codes)})")
            return dataclasses.replace(vocabulary, attributes=tuple(attributes), splits=tuple(db.splits), **columns)
        return Vocabulary(name=db.name or "audformat", classes=tuple(codes), attributes=tuple(attributes),
                          splits=tuple(db.splits), description=f"built from the schemes of {header}", **columns)
    except VocabularyError as exc:
        raise InputError(header, exc.key, f"no vocabulary from scheme {target!r}: {exc.message}") from None


def _speakers(db, files: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Speaker and gender of each file (<NA> unknown)."""
    speaker = _values(db, _columns_of(db, None, "speaker"), "speaker").reindex(files)
    gender = _values(db, _columns_of(db, None, "gender"), "gender").reindex(files)
    if gender.isna().all() and speaker.notna().any():
        schemes = {db[t].columns[c].scheme_id for t, c in _columns_of(db, None, "speaker")} - {None}
        for scheme_id in schemes:
            labels = _scheme_labels(db, db.schemes[scheme_id])
            genders = {str(k): v.get("gender") for k, v in labels.items() if isinstance(v, dict)}
            if any(v is not None for v in genders.values()):
                gender = speaker.astype(object).map(lambda s: genders.get(str(s)) if pd.notna(s) else None)
                break
    words = gender.astype(object).map(lambda g: GENDER_WORDS.get(str(g).strip().lower()) if pd.notna(g) else None)
    speaker = speaker.astype(object).map(lambda s: str(s) if pd.notna(s) else None)
    return (pd.Series(pd.array(speaker.to_numpy(), dtype=_STR)),
            pd.Series(pd.array(words.to_numpy(), dtype=_STR)))


def _splits_of(db, files: pd.Index) -> pd.Series:
    """Each file's split id (the first table with a split_id holding it), <NA> when none."""
    split = pd.Series(None, index=files, dtype=object)
    for table_id, table in db.tables.items():
        if table.is_filewise and table.split_id is not None:
            held = files.isin(table.df.index.astype(str))
            split[held & split.isna().to_numpy()] = table.split_id
    return pd.Series(pd.array(split.to_numpy(), dtype=_STR))


def _check_complete(db, root: Path, values: pd.Series, found, scheme: str, files: pd.Index) -> None:
    missing = values.reindex(files).isna().to_numpy()
    if missing.any():
        name = files[missing.argmax()]
        table_id = found[0][0]
        raise InputError(_table_file(root, table_id), found[0][1],
                         f"file {quoted(name)} has no {scheme!r} value ({int(missing.sum())} files; "
                         f"tables {', '.join(t for t, _ in found)})")


def read_database(path: str | os.PathLike, split: str | None = None, vocabulary: Vocabulary | None = None,
                  target: str | None = None, attributes=None) -> tuple[pd.DataFrame, Vocabulary]:
    """``(labels, vocabulary)`` of the audformat database at ``path`` (see the module docstring):
    the internal labels frame (``FileName, EmoClass, <attributes>, SpkrID, Gender, Split_Set``;
    ``attrs``: ``source`` = db.yaml, ``split``, ``synthetic``) and the vocabulary it is scored
    with. ``split``: a split id (None: every file; MSP-Podcast's default ``"Development"`` means
    every file too when the database has no such split)."""
    db, header = load_database(path)
    root = header.parent
    target = target or DEFAULT_TARGET
    if target not in db.schemes:
        raise InputError(header, target, f"unknown scheme {target!r} (the categorical truth, --target); the "
                         f"database has schemes {', '.join(db.schemes) or 'none'}")
    scheme = db.schemes[target]
    codes = [str(c) for c in _scheme_labels(db, scheme)]
    if not codes and vocabulary is None:
        raise InputError(header, target, f"scheme {target!r} has no labels: give them in db.yaml or "
                         "give a vocabulary (--vocabulary)")
    chosen = _attribute_schemes(db, header, attributes, vocabulary)
    voc = _vocabulary(db, header, target, codes, chosen, vocabulary)
    found = {target: _columns_of(db, target)}
    found.update({a.name: _columns_of(db, a.name) for a in chosen})
    for name, places in found.items():
        if not places:
            raise InputError(header, name, f"no filewise table has a column of scheme {name!r} "
                             "(segmented tables are not read)")
    values = {name: _values(db, places, name) for name, places in found.items()}
    files = pd.Index(sorted(set().union(*(v.index for v in values.values()))), dtype=object)
    for name, series in values.items():
        _check_complete(db, root, series, found[name], name, files)
    truth = values[target].reindex(files).astype(str)
    unknown = ~truth.isin(voc.label_codes)
    if unknown.any():
        raise InputError(_table_file(root, found[target][0][0]), found[target][0][1],
                         f"label {quoted(truth[unknown].iloc[0])} of file {quoted(truth.index[unknown.argmax()])} "
                         f"is not a code of vocabulary {voc.name} ({', '.join(voc.label_codes)})")
    labels = {"FileName": pd.array(list(files), dtype=_STR),
              "EmoClass": pd.array(truth.replace(dict(voc.merged)).to_numpy(), dtype=_STR)}
    for a in voc.attributes:
        number = pd.to_numeric(values[a.name].reindex(files), errors="coerce").to_numpy(dtype="float64")
        bad = ~((number >= a.low) & (number <= a.high))
        if bad.any():
            raise InputError(_table_file(root, found[a.name][0][0]), found[a.name][0][1],
                             f"{number[bad.argmax()]!r} of file {quoted(files[bad.argmax()])} is outside "
                             f"[{a.low:g}, {a.high:g}] or not a number")
        labels[a.name] = number
    speaker, gender = _speakers(db, files)
    labels.update(SpkrID=speaker.array, Gender=gender.array, Split_Set=_splits_of(db, files).array)
    frame = pd.DataFrame(labels)
    if split is not None:
        if split in db.splits:
            frame = frame.loc[(frame["Split_Set"] == split).to_numpy()].reset_index(drop=True)
            if frame.empty:
                raise InputError(header, "split_id", f"split {split!r} holds none of the labelled files "
                                 f"(no table with split_id {split!r} has a {target!r} column)")
        elif split != DEFAULT_SPLIT:
            raise InputError(header, "split_id", f"no split {split!r} in the database; its splits are "
                             f"{', '.join(db.splits) or 'none (leave --split out to score every file)'}")
        else:
            split = None
    frame.attrs.update(source=str(header), split=split, synthetic=is_synthetic(root))
    return frame, voc
