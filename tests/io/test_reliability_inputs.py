"""Inputs that used to crash or pass silently (issue 10) and predictions outside 1-7 (issue 8):
each is one located InputError (or one InputWarning), never a traceback or a silent loss."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.cli import main
from ser_diag.errors import MAX_MESSAGE_CHARS, InputError, InputWarning
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, CONSENSUS_COLUMNS, PROB_COLUMNS

HEADER = ",".join(CONSENSUS_COLUMNS)
N = 24


def label_rows(n: int = N) -> list[str]:
    """Development labels: classes cycle over the 8 codes, 4 speakers, no O/X."""
    return [f"MSP-PODCAST_{k:04d}_0001.wav,{CLASS_CODES[k % 8]},{1 + k % 7},{7 - k % 7},4.0,{k % 4},"
            f"{'Female' if k % 2 else 'Male'},Development" for k in range(n)]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def corpus(root: Path, rows: list[str] | None = None) -> Path:
    write(root / "Labels" / "labels_consensus.csv", "\n".join([HEADER] + (rows or label_rows())) + "\n")
    return root


def files(n: int = N) -> list[str]:
    return [f"MSP-PODCAST_{k:04d}_0001.wav" for k in range(n)]


def categorical(path: Path, names: list[str], codes=None, probs=None) -> Path:
    frame = pd.DataFrame({"FileName": names, "EmoClass": codes or [CLASS_CODES[k % 8] for k in range(len(names))]})
    if probs is not None:
        frame[list(PROB_COLUMNS)] = probs
    return io.write_categorical_predictions(frame, path)


def attributes(path: Path, names: list[str], values=None) -> Path:
    values = np.full((len(names), 3), 4.0) if values is None else values
    return io.write_attribute_predictions(pd.DataFrame({"FileName": names, **dict(zip(ATTRIBUTES, values.T))}), path)


def located(err, file, row=None, column=None) -> str:
    message = str(err.value)
    assert "\n" not in message and len(message) < MAX_MESSAGE_CHARS
    assert message.startswith(str(file)), message
    assert err.value.row == row, message
    assert err.value.column == column, message
    return message


# ------------------------------------------------------------------------ blank, long, header

@pytest.mark.parametrize("text", ["", "\n\n\n", "   \n\t\n  \n", "\r\n \r\n"])
@pytest.mark.parametrize("reader", [io.read_labels, io.read_predictions, io.read_detailed_labels])
def test_blank_or_white_space_file_is_one_error(tmp_path, text, reader):
    file = write(tmp_path / "x.csv", text)
    with pytest.raises(InputError) as err:
        reader(file)
    assert "no header" in located(err, file, row=1)


def test_blank_lines_above_the_header_are_counted(tmp_path):
    rows = label_rows()
    rows[2] = rows[2].replace(",Development", ",Dev")
    file = write(tmp_path / "labels.csv", "\n\n" + "\n".join([HEADER] + rows) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "'Dev'" in located(err, file, row=3 + 3, column="Split_Set")


@pytest.mark.parametrize("column", ["EmoClass", "FileName", "EmoAct", "SpkrID"])
def test_a_huge_cell_gives_a_short_message(tmp_path, column):
    rows = label_rows()
    position = CONSENSUS_COLUMNS.index(column)
    cells = rows[4].split(",")
    cells[position] = "Q" * 2_000_000
    rows[4] = ",".join(cells)
    if column == "FileName":  # make it a duplicate too: the message quotes the name
        rows[6] = ",".join([cells[0]] + rows[6].split(",")[1:])
    file = write(tmp_path / "labels.csv", "\n".join([HEADER] + rows) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    message = located(err, file, row=8 if column == "FileName" else 6, column=column)
    assert "chars)" in message


def test_a_huge_file_name_not_in_the_labels_gives_a_short_line(tmp_path, capsys):
    root = corpus(tmp_path / "c")
    names = files()
    names[3] = "x" * 1_000_000 + ".wav"
    attributes(tmp_path / "p" / "s1" / "attributes.csv", names)
    assert main(["evaluate", "--labels", str(root), "--predictions", str(tmp_path / "p"),
                 "--bootstrap", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and len(lines[0]) < 500 and "attributes.csv" in lines[0]


def test_a_column_named_twice_in_the_header_is_an_error(tmp_path):
    rows = [r + ",A" for r in label_rows()]
    file = write(tmp_path / "labels.csv", "\n".join([HEADER + ",EmoClass"] + rows) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "2 times" in located(err, file, row=1, column="EmoClass")
    pred = write(tmp_path / "p.csv", "FileName,EmoAct,EmoVal,EmoDom,EmoAct\na.wav,1,2,3,4\n")
    with pytest.raises(InputError) as err:
        io.read_predictions(pred)
    located(err, pred, row=1, column="EmoAct")


# ------------------------------------------------------------------- lines an editor shows

def test_rows_after_a_quoted_line_break_keep_the_editor_line(tmp_path):
    rows = label_rows()
    rows[1] = '"MSP-PODCAST_9999\n_0001.wav"' + rows[1][rows[1].index(","):]  # lines 3-4
    rows[3] = rows[3].replace(",Development", ",Dev")  # record 5 starts on line 6
    file = write(tmp_path / "labels.csv", "\n".join([HEADER] + rows) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    located(err, file, row=6, column="Split_Set")
    lines = file.read_text().splitlines()
    assert ",Dev" in lines[6 - 1] and ",Dev," not in lines[6 - 1]


def test_too_many_fields_after_a_quoted_line_break_names_the_editor_line(tmp_path):
    rows = label_rows()
    rows[0] = '"a\n\nb.wav"' + rows[0][rows[0].index(","):]  # lines 2-4
    rows[2] += ",extra"  # line 6
    file = write(tmp_path / "labels.csv", "\n".join([HEADER] + rows) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "9 fields" in located(err, file, row=6)


def test_a_windows_1252_byte_names_its_line(tmp_path):
    rows = label_rows()
    text = "\n".join([HEADER] + rows) + "\n"
    data = text.encode().replace(rows[5].encode(), rows[5].replace("Female", "F\u00e9male").encode("cp1252"))
    file = write(tmp_path / "labels.csv", data)
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    message = located(err, file, row=7)
    assert "0xe9" in message and "UTF-8" in message and "byte 1" not in message


def test_an_unclosed_quote_names_its_line(tmp_path):
    rows = label_rows()
    rows[3] = '"' + rows[3]
    file = write(tmp_path / "labels.csv", "\n".join([HEADER] + rows) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "quote" in located(err, file, row=5)


# ------------------------------------------------------------------- folders that vanished

def predictions_folder(tmp_path: Path) -> Path:
    root = tmp_path / "predictions"
    for system in ("s1", "s2"):
        categorical(root / system / "categorical.csv", files())
        attributes(root / system / "attributes.csv", files())
    return root


def test_a_system_folder_one_level_too_deep_is_an_error(tmp_path):
    root = predictions_folder(tmp_path)
    (root / "s2" / "run1").mkdir()
    for name in ("categorical.csv", "attributes.csv"):
        os.replace(root / "s2" / name, root / "s2" / "run1" / name)
    with pytest.raises(InputError) as err:
        io.read_systems(root)
    assert "'run1'" in located(err, root / "s2")


def test_a_categorical_csv_that_is_a_folder_is_an_error(tmp_path):
    root = predictions_folder(tmp_path)
    os.remove(root / "s1" / "categorical.csv")
    (root / "s1" / "categorical.csv").mkdir()
    with pytest.raises(InputError) as err:
        io.read_systems(root)
    assert "folder" in located(err, root / "s1" / "categorical.csv")


def test_a_csv_symlink_loop_is_an_error(tmp_path):
    root = predictions_folder(tmp_path)
    link = root / "s1" / "categorical.csv"
    os.remove(link)
    os.symlink(link, link)
    with pytest.raises(InputError) as err:
        io.read_systems(root)
    assert "loop" in located(err, link)


def test_a_system_folder_symlink_loop_is_a_warning_naming_it(tmp_path):
    root = predictions_folder(tmp_path)
    os.symlink(root / "s3", root / "s3")
    with pytest.warns(InputWarning, match="s3: a symbolic link that loops"):
        predictions = io.read_systems(root)
    assert sorted(predictions["system"].unique()) == ["s1", "s2"]


# ------------------------------------------------------------------- messages that blame right

def test_every_label_x_says_no_file_has_one_of_the_8_classes(tmp_path):
    rows = [",".join([r.split(",")[0], "X"] + r.split(",")[2:]) for r in label_rows()]
    root = corpus(tmp_path / "c", rows)
    categorical(tmp_path / "p" / "s1" / "categorical.csv", files())
    with pytest.raises(InputError) as err:
        io.load(root, tmp_path / "p")
    message = located(err, root / "Labels" / "labels_consensus.csv", column="EmoClass")
    assert "no file of split Development has one of the 8 classes" in message


def test_emoclass_that_is_not_the_argmax_is_warned_with_the_count(tmp_path):
    names = files()
    probs = np.full((N, 8), 0.02)
    probs[np.arange(N), np.arange(N) % 8] = 0.86  # argmax = the cycled code
    codes = [CLASS_CODES[k % 8] for k in range(N)]
    for k in (3, 10, 17):  # planted disagreements
        codes[k] = CLASS_CODES[(k + 1) % 8]
    file = categorical(tmp_path / "s1.csv", names, codes, probs)
    with pytest.warns(InputWarning) as record:
        frame = io.read_predictions(file)
    messages = [str(w.message) for w in record if issubclass(w.category, InputWarning)]
    assert len(messages) == 1
    assert "in 3 of 24 rows" in messages[0] and messages[0].startswith(f"{file}: row 5")
    assert frame["EmoClass"].tolist() == codes  # scored as given
    probs[10, [10 % 8, 11 % 8]] = 0.44  # a tie agrees
    codes[3] = codes[17] = CLASS_CODES[3]
    codes[17] = CLASS_CODES[17 % 8]
    file = categorical(tmp_path / "s2.csv", names, codes, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        io.read_predictions(file)


def detailed_lines() -> list[str]:
    return ["FileName,EmoDetail",
            "a.wav,WORKER00001; Angry; Annoyed; A:5.0; V:2.0; D:6.0;",
            "a.wav,WORKER00002; Angry; ; A:4.0; V:2.0; D:5.0;",
            "b.wav,WORKER00001; Sad; ; A:2.0; V:2.0; D:2.0;",
            "b.wav,WORKER00003; Sad; ; A:2.0; V:2.0; D:2.0;"]


def test_detailed_labels_exact_duplicate_judgement_is_an_error(tmp_path):
    lines = detailed_lines()
    file = write(tmp_path / "detailed.csv", "\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(InputError) as err:
        io.read_detailed_labels(file)
    assert "repeats row 4" in located(err, file, row=6, column="EmoDetail")
    # the same worker rating two files, or two workers the same file identically, is fine
    assert len(io.read_detailed_labels(write(tmp_path / "ok.csv", "\n".join(lines) + "\n"))) == 4


def test_detailed_labels_missing_emodetail_is_named(tmp_path):
    lines = detailed_lines()
    file = write(tmp_path / "detailed.csv", "\n".join(["FileName,EmoDetial"] + lines[1:]) + "\n")
    with pytest.raises(InputError) as err:
        io.read_detailed_labels(file)
    located(err, file, row=1, column="EmoDetail")
    v2 = write(tmp_path / "v2.csv", "FileName,WorkerID,EmoClass_Major,EmoAct,EmoVal,EmoDom\na.wav,W1,Angry,1,2,3\n")
    with pytest.raises(InputError) as err:
        io.read_detailed_labels(v2)
    located(err, v2, row=1, column="EmoClass_Second")


# ------------------------------------------------------------------- predictions outside 1-7

def out_of_range_values() -> np.ndarray:
    values = np.full((N, 3), 4.0)
    values[2, 0], values[5, 1], values[9, 2], values[11, 0] = 7.3, 0.8, 9.25, -1.5
    return values


def test_predictions_outside_1_7_are_scored_as_given_and_warned_once(tmp_path):
    root = corpus(tmp_path / "c")
    planted = out_of_range_values()
    attributes(tmp_path / "p" / "s1" / "attributes.csv", files(), planted)
    attributes(tmp_path / "p" / "s2" / "attributes.csv", files())
    with pytest.warns(InputWarning) as record:
        data = io.load(root, tmp_path / "p")
    messages = [str(w.message) for w in record if issubclass(w.category, InputWarning)]
    assert len(messages) == 1, messages
    assert "4 attribute predictions outside [1, 7] (min -1.5, max 9.25" in messages[0]
    assert messages[0].startswith(str(tmp_path / "p" / "s1" / "attributes.csv"))
    merged = data["attributes"]
    s1 = merged[merged["system"] == "s1"].set_index("FileName").loc[files()]
    np.testing.assert_array_equal(s1[[f"{a}_pred" for a in ATTRIBUTES]].to_numpy(), planted)


def test_out_of_range_predictions_through_the_cli_print_one_warning_line(tmp_path, capsys):
    root = corpus(tmp_path / "c")
    attributes(tmp_path / "p" / "s1" / "attributes.csv", files(), out_of_range_values())
    with warnings.catch_warnings():
        warnings.resetwarnings()  # as a fresh interpreter
        code = main(["evaluate", "--labels", str(root), "--predictions", str(tmp_path / "p"),
                     "--bootstrap", "0", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    warning_lines = [line for line in err.splitlines() if "outside [1, 7]" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: "), err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "", "7,3"])
def test_non_finite_predictions_stay_an_error(tmp_path, value):
    lines = ["FileName,EmoAct,EmoVal,EmoDom"] + [f"{f},4,4,4" for f in files()]
    lines[4] = f"{files()[3]},4,\"{value}\",4"
    file = write(tmp_path / "attributes.csv", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        io.validate_submission(file, labels=corpus(tmp_path / "c"))
    located(err, file, row=5, column="EmoVal")


def test_labels_outside_1_7_stay_an_error(tmp_path):
    rows = label_rows()
    rows[6] = rows[6].replace(",4.0,", ",7.5,")
    root = corpus(tmp_path / "c", rows)
    with pytest.raises(InputError) as err:
        io.read_labels(root)
    assert "7.5 outside [1, 7]" in located(err, root / "Labels" / "labels_consensus.csv", row=8, column="EmoDom")


def test_validate_warns_on_out_of_range_and_strict_makes_it_an_error(tmp_path):
    root = corpus(tmp_path / "c")
    file = attributes(tmp_path / "attributes.csv", files(), out_of_range_values())
    with pytest.warns(InputWarning, match=r"row 4, column 'EmoAct': 4 attribute predictions outside \[1, 7\] "
                                          r"\(min -1.5, max 9.25\)"):
        assert io.validate_submission(file, labels=root).startswith("OK: ")
    with pytest.raises(InputError) as err:
        io.validate_submission(file, labels=root, strict=True)
    assert "--strict" in located(err, file, row=4, column="EmoAct")
    inside = attributes(tmp_path / "inside.csv", files())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert io.validate_submission(inside, labels=root, strict=True).startswith("OK: ")


def test_utf16_and_semicolon_files_say_what_they_are(tmp_path):
    text = "\n".join([HEADER] + label_rows()) + "\n"
    utf16 = write(tmp_path / "utf16.csv", text.encode("utf-16"))
    with pytest.raises(InputError) as err:
        io.read_labels(utf16)
    assert "UTF-16" in located(err, utf16, row=1)
    semicolons = write(tmp_path / "semicolons.csv", text.replace(",", ";"))
    with pytest.raises(InputError) as err:
        io.read_labels(semicolons)
    assert "use commas" in located(err, semicolons, row=1, column="FileName")


def test_a_file_list_that_is_not_utf8_or_a_folder_is_one_error(tmp_path):
    submission = attributes(tmp_path / "attributes.csv", files())
    listing = write(tmp_path / "list.txt", ("\n".join(files()[:3]) + "\nF\u00e9male.wav\n").encode("cp1252"))
    with pytest.raises(InputError) as err:
        io.validate_submission(submission, file_list=listing)
    assert "0xe9" in located(err, listing, row=4)
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(InputError) as err:
        io.validate_submission(submission, file_list=tmp_path / "folder.txt")
    assert "folder" in located(err, tmp_path / "folder.txt")
