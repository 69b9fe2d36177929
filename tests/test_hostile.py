"""Hostile input: every case completes, accounts for every record, and explains every rejection."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import REASON_CODES
from etl.pipeline import RunResult
from tests.helpers import assert_accounted, events, ingest_text, record, run_at, table, write

FIXTURES = Path(__file__).parent / "fixtures" / "hostile"
ROOT = Path(__file__).resolve().parents[1]


def run_files(tmp_path: Path, files: dict[str, Any], **options: Any) -> tuple[RunResult, pl.DataFrame, pl.DataFrame]:
    landing = tmp_path / "landing"
    for name, content in files.items():
        write(landing, name, content)
    result = run_at(landing, tmp_path / "wh", **options)
    assert_accounted(result.document)
    quarantine = table(tmp_path / "wh", "quarantine")
    if quarantine.height:
        assert set(quarantine["reason"].to_list()) <= REASON_CODES
        assert quarantine.filter(pl.col("detail").str.len_chars() == 0).height == 0
    return result, events(tmp_path / "wh"), quarantine


def pretty_array(records: list[Any]) -> str:
    return json.dumps(records, indent=2)


# --- JSON syntax ------------------------------------------------------------------------------


def test_one_bad_element_in_a_large_pretty_array(tmp_path: Path) -> None:
    records = [record(f"u{i}") for i in range(3000)]
    text = pretty_array(records)
    lines = text.split("\n")
    target = next(i for i, line in enumerate(lines) if '"id": "u1500"' in line)
    lines[target] = lines[target].rstrip(",")  # a comma missing inside element 1500
    result, _loaded, quarantine = run_files(tmp_path, {"big.json": "\n".join(lines)})
    assert result.document["totals"]["loaded"] == 2999 and result.exit_code == 0
    [row] = quarantine.rows(named=True)
    assert row["position"] == "element 1500" and row["reason"] == "invalid_json"
    assert f"line {target + 2}" in row["detail"] and "column" in row["detail"]
    assert '"u1500"' in row["raw"] and row["source_file"] == "big.json"


def test_unbalanced_element_resynchronises_at_the_next_element(tmp_path: Path) -> None:
    text = pretty_array([record("u0"), record("u1", properties={"a": 1}), record("u2"), record("u3")])
    broken = text.replace('"a": 1\n    }', '"a": 1\n', 1)  # element 1 loses a closing brace
    _result, loaded, quarantine = run_files(tmp_path, {"f.json": broken})
    assert sorted(loaded["user_id"].to_list()) == ["u0", "u2", "u3"]
    assert quarantine["position"].to_list() == ["element 1"]


def test_bad_ndjson_lines(tmp_path: Path) -> None:
    lines = [json.dumps(record("u1")), '{"id": "u2", "event": ', "not json", json.dumps(record("u3"))]
    _, loaded, quarantine = run_files(tmp_path, {"f.ndjson": "\n".join(lines)})
    assert loaded.height == 2
    assert quarantine["position"].to_list() == ["line 2", "line 3"]
    assert quarantine["detail"].to_list()[0] == "Expecting value at line 2, column 22"


def test_the_platforms_api_example_verbatim(tmp_path: Path) -> None:
    text = (FIXTURES / "seed-api-example.json").read_text()
    result, loaded, quarantine = run_files(tmp_path, {"api.json": text})
    assert result.exit_code == 3 and loaded.is_empty()
    [row] = quarantine.rows(named=True)
    assert row["raw"] == text.rstrip("\n") and row["position"] == "document"
    assert row["detail"] == "Expecting ',' delimiter at line 6, column 11"


# --- truncation, emptiness, encodings ----------------------------------------------------------


def test_truncated_json_file(tmp_path: Path) -> None:
    text = pretty_array([record("u0"), record("u1"), record("u2")])
    _, loaded, quarantine = run_files(tmp_path, {"f.json": text[: len(text) - 40]})
    assert loaded["user_id"].to_list() == ["u0", "u1"]
    assert quarantine["reason"].to_list() == ["invalid_json"] and "truncated" in quarantine["detail"][0]


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(json.dumps([record(f"u{i}") for i in range(5000)]).encode())
    result, loaded, quarantine = run_files(tmp_path, {"f.json.gz": data[: len(data) // 2]})
    assert loaded.height > 1000 and quarantine.height == 1
    assert "compressed stream is truncated" in quarantine["detail"][0]
    assert result.document["totals"]["read"] == loaded.height + 1


def test_not_gzip_at_all(tmp_path: Path) -> None:
    result, _, quarantine = run_files(tmp_path, {"f.json.gz": b"this is not gzip", "ok.json": [record()]})
    assert result.exit_code == 3
    assert quarantine["source_file"].to_list() == ["f.json.gz"]


@pytest.mark.parametrize("content", [b"", b"   \n", b"[]", b"[ ]\n", b"\n\n\n"])
def test_empty_files_hold_no_records(tmp_path: Path, content: bytes) -> None:
    result, loaded, quarantine = run_files(tmp_path, {"f.json": content, "g.ndjson": content})
    assert result.exit_code == 0 and result.document["totals"]["read"] == 0
    assert loaded.is_empty() and quarantine.is_empty()


def test_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    ndjson = "\ufeff" + "\r\n\r\n".join(json.dumps(record(f"u{i}")) for i in range(3)) + "\r\n"
    array = "\ufeff" + pretty_array([record("a"), record("b")]).replace("\n", "\r\n")
    _, loaded, quarantine = run_files(tmp_path, {"f.ndjson": ndjson, "g.json": array})
    assert loaded.height == 5 and quarantine.is_empty()


def test_top_level_values_that_are_not_objects(tmp_path: Path) -> None:
    _, loaded, quarantine = run_files(
        tmp_path, {"a.json": "42", "b.json": '"text"', "c.json": "null", "d.json": [[record()]], "e.ndjson": "7\n[1]\n"}
    )
    assert loaded.is_empty()
    assert quarantine["reason"].to_list() == ["not_an_object"] * 6
    assert "found an array" in quarantine.filter(pl.col("source_file") == "d.json")["detail"][0]


def test_invalid_utf8_in_one_record(tmp_path: Path) -> None:
    good = json.dumps(record("u1")).encode()
    bad = json.dumps(record("u2", channel="XX")).encode().replace(b"XX", b"\xc3\x28")
    _, loaded, quarantine = run_files(
        tmp_path, {"f.ndjson": good + b"\n" + bad + b"\n", "g.json": b"[" + good + b"," + bad + b"]"}
    )
    assert loaded.height == 1  # the same good record in both files
    assert quarantine["reason"].to_list() == ["invalid_utf8", "invalid_utf8"]
    assert all("\ufffd" in raw for raw in quarantine["raw"].to_list())


def test_nul_bytes(tmp_path: Path) -> None:
    raw_nul = json.dumps(record("u1", channel="AB")).encode().replace(b"AB", b"A\x00B")
    escaped = json.dumps(record("u2", channel="A\u0000B")).encode()
    _, loaded, quarantine = run_files(tmp_path, {"f.ndjson": raw_nul + b"\n" + escaped + b"\n"})
    assert loaded["channel"].to_list() == ["A\x00B"]
    assert quarantine["reason"].to_list() == ["invalid_json"]


def test_non_ascii_and_emoji_in_every_string_field_and_file_name(tmp_path: Path) -> None:
    rec = {
        "id": "Zoë-🚀",
        "event": "Message Clicked",
        "timestamp": "2024-05-01T10:00:00Z",
        "channel": "📧 Émail",
        "type": "Nieuwsbrief – ünïcode",
        "url": "https://例え.jp/パス?q=✓",
        "campaignId": "Kampagne-ß",
        "messageId": "メッセージ",
        "note": "日本語 🎉",
    }
    _, loaded, quarantine = run_files(tmp_path, {"dossier été/fichier 🎉 ñ.json": [rec]})
    assert quarantine.is_empty()
    row = loaded.row(0, named=True)
    assert (row["user_id"], row["channel"], row["message_type"], row["url"], row["campaign_id"], row["message_id"]) == (
        rec["id"], rec["channel"], rec["type"], rec["url"], rec["campaignId"], rec["messageId"]
    )  # fmt: skip
    assert json.loads(row["extra"]) == {"note": "日本語 🎉"}
    assert row["source_file"] == "dossier été/fichier 🎉 ñ.json"


# --- types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["id", "userId", "event", "timestamp", "channel", "type", "url", "campaignId", "messageId"]
)
@pytest.mark.parametrize("value", [1.5, True, {"k": "v"}, ["x"]])
def test_wrong_type_in_every_field(tmp_path: Path, field: str, value: Any) -> None:
    if field == "timestamp" and value == 1.5:
        return  # a number is an epoch timestamp (1.5 s after 1970), not a wrong type
    rec = record("u1")
    if field == "userId":
        rec.pop("id")
    rec[field] = value
    outcome = ingest_text("f.ndjson", json.dumps(rec) + "\n", tmp_path)
    [row] = outcome.quarantine.rows(named=True)
    assert row["reason"] == "wrong_type" and row["detail"].startswith(field)


def test_huge_integer_id_is_its_decimal_string(tmp_path: Path) -> None:
    outcome = ingest_text("f.ndjson", json.dumps(record(2**80, campaignId=2**80)) + "\n", tmp_path)
    assert outcome.events.row(0, named=True)["user_id"] == str(2**80)
    assert outcome.events.row(0, named=True)["campaign_id"] == str(2**80)


def test_duplicate_keys_last_value_wins(tmp_path: Path) -> None:
    text = '{"id": "first", "id": "second", "event": "Message Sent", "timestamp": "2024-05-01"}\n'
    outcome = ingest_text("f.ndjson", text, tmp_path)
    assert outcome.events["user_id"].to_list() == ["second"]


# --- size ------------------------------------------------------------------------------------------


def test_ten_megabyte_string_field_loads_and_a_limit_quarantines_it(tmp_path: Path) -> None:
    big = record("u1", note="x" * 10_000_000)
    _, loaded, _ = run_files(tmp_path / "a", {"f.json": [record("u0"), big, record("u2")]})
    assert loaded.height == 3
    _result, loaded, quarantine = run_files(
        tmp_path / "b", {"f.json": [record("u0"), big, record("u2")], "g.ndjson": json.dumps(big) + "\n"},
        max_record_bytes=1_000_000,
    )  # fmt: skip
    assert sorted(loaded["user_id"].to_list()) == ["u0", "u2"]
    assert quarantine["reason"].to_list() == ["record_too_large", "record_too_large"]
    assert all(len(raw) < 5000 for raw in quarantine["raw"].to_list())
    assert "10,000,0" in quarantine["detail"][0]


def test_extra_nested_ten_thousand_levels(tmp_path: Path) -> None:
    deep = '{"a": ' * 10_000 + "1" + "}" * 10_000
    rec = json.dumps(record("u1"))[:-1] + ', "extra": ' + deep + "}"
    shallow = json.dumps(record("u2", extra={"a": {"b": 1}}))
    _, loaded, quarantine = run_files(
        tmp_path, {"f.ndjson": rec + "\n" + shallow + "\n", "g.json": f"[{rec}, {shallow}]"}
    )
    assert loaded["user_id"].to_list() == ["u2"]
    assert quarantine["reason"].to_list() == ["too_deeply_nested", "too_deeply_nested"]


def test_max_depth_is_configurable(tmp_path: Path) -> None:
    rec = record("u1", extra={"a": {"b": {"c": {"d": 1}}}})
    _, loaded, _ = run_files(tmp_path / "a", {"f.json": [rec]})
    assert loaded.height == 1
    _, loaded, quarantine = run_files(tmp_path / "b", {"f.json": [rec]}, max_depth=3)
    assert loaded.is_empty() and quarantine["reason"].to_list() == ["too_deeply_nested"]


def _bomb(path: Path, expanded: int, shape: str) -> None:
    block = b"a" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b'[{"id": "u1", "event": "Message Sent", "note": "' if shape == "json" else b'{"id": "u1", "note": "')
        for _ in range(expanded // len(block)):
            out.write(block)
        end = (
            b'"}, {"id": "u2", "event": "Message Sent"}]'
            if shape == "json"
            else b'"}\n{"id": "u2", "event": "Message Sent"}\n'
        )
        out.write(end)


@pytest.mark.heavy
@pytest.mark.parametrize("shape", ["json", "ndjson"])
def test_decompression_bomb_keeps_memory_bounded(tmp_path: Path, shape: str) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    bomb = landing / f"bomb.{shape}.gz"
    _bomb(bomb, 300 << 20, shape)
    assert bomb.stat().st_size * 500 < 300 << 20  # expands more than 500 times
    # Peak RSS of this process image (VmHWM): ru_maxrss would also count the pytest process it forked from.
    probe = (
        "import re, sys\n"
        "from etl.cli.app import app\n"
        "try:\n    app()\nexcept SystemExit as done:\n    code = done.code\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(peak, code, file=sys.stderr)\n"
    )
    args = [
        "run",
        "--landing",
        str(landing),
        "--warehouse",
        str(tmp_path / "wh"),
        "-q",
        "--max-record-bytes",
        "1000000",
    ]
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    peak_kib, code = done.stderr.strip().splitlines()[-1].split()
    assert code == "0"
    assert int(peak_kib) < 450 * 1024, f"peak RSS {int(peak_kib) // 1024} MiB for a 300 MiB expansion"
    quarantine = table(tmp_path / "wh", "quarantine")
    assert quarantine["reason"].to_list() == ["record_too_large"]
    assert "314,5" in quarantine["detail"][0]


# --- the landing zone --------------------------------------------------------------------------


def test_symlink_out_of_the_landing_zone_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps([record("stolen")]))
    landing = tmp_path / "landing"
    write(landing, "ok.json", [record("u1")])
    os.symlink(outside, landing / "link.json")
    os.symlink(tmp_path, landing / "dirlink")
    inside = landing / "inside-link.json"
    os.symlink(landing / "ok.json", inside)
    result = run_at(landing, tmp_path / "wh")
    assert events(tmp_path / "wh")["user_id"].to_list() == ["u1"]
    assert any("link.json" in note and "outside" in note for note in result.document["notes"])


def test_unreadable_file_is_reported_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl import storage

    landing = tmp_path / "landing"
    write(landing, "locked.json", [record("u0")])
    write(landing, "ok.json", [record("u1")])
    real = storage.sha256_of

    def denied(store: object, key: str, expect_etag: str = "") -> str:
        if key == "locked.json":
            raise PermissionError(13, "Permission denied", key)
        return real(store, key, expect_etag)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "sha256_of", denied)
    result = run_at(landing, tmp_path / "wh")
    assert result.exit_code == 0 and events(tmp_path / "wh")["user_id"].to_list() == ["u1"]
    assert any(
        note.startswith("locked.json: skipped, cannot be read (Permission denied)") for note in result.document["notes"]
    )
    monkeypatch.setattr(storage, "sha256_of", real)
    assert run_at(landing, tmp_path / "wh").document["totals"]["files_new"] == 1  # picked up once readable


def test_min_file_age_skips_files_still_being_written(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "old.json", [record("u0")])
    old = time.time() - 3600
    os.utime(landing / "old.json", (old, old))
    write(landing, "fresh.json", [record("u1")])
    result = run_at(landing, tmp_path / "wh", min_file_age=60)
    assert result.document["totals"]["files_new"] == 1
    assert any("fresh.json: skipped for now" in note for note in result.document["notes"])
    os.utime(landing / "fresh.json", (old, old))
    assert run_at(landing, tmp_path / "wh", min_file_age=60).document["totals"]["files_new"] == 1


# --- properties -------------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s.strip()
)
valid_records = st.fixed_dictionaries(
    {
        "id": st.one_of(texts, st.integers(0, 10**30)),
        "event": st.sampled_from(["Message Sent", "Message Delivered", "Message Clicked", "Message hard_bounced"]),
        "timestamp": st.datetimes(
            min_value=__import__("datetime").datetime(1990, 1, 1), max_value=__import__("datetime").datetime(2024, 5, 1)
        ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    },
    optional={
        "channel": texts,
        "type": texts,
        "campaignId": st.one_of(texts, st.integers(0, 10**9)),
        "messageId": texts,
    },
)


@settings(max_examples=60)
@given(st.lists(valid_records, min_size=1, max_size=8))
def test_valid_records_always_load_unchanged(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    outcome = ingest_text("f.json", records, tmp_path)
    assert outcome.quarantine.is_empty() and outcome.events.height == len(records)
    rows = outcome.events.sort("_ordinal").rows(named=True)
    for rec, row in zip(records, rows, strict=True):
        assert row["user_id"] == str(rec["id"]) and row["event"] == rec["event"]
        assert row["event_ts"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == rec["timestamp"]
        assert row["campaign_id"] == (str(rec["campaignId"]) if "campaignId" in rec else None)
        assert row["channel"] == rec.get("channel") and row["message_type"] == rec.get("type")


mutation = st.sampled_from(["drop", "retype", "corrupt", "truncate", "none"])


def mutated_feed(cases: list[Any], as_array: bool) -> bytes:
    pieces: list[bytes] = []
    for rec, how, where, noise in cases:
        rec = dict(rec)
        keys = sorted(rec)
        if how == "drop":
            rec.pop(keys[where % len(keys)])
        elif how == "retype":
            rec[keys[where % len(keys)]] = [1.5, True, None, {"x": []}, []][where % 5]
        data = json.dumps(rec, ensure_ascii=False).encode()
        if how == "corrupt":
            data = data[: where % len(data)] + noise + data[where % len(data) :]
        elif how == "truncate":
            data = data[: where % len(data)]
        pieces.append(data)
    return (b"[" + b",\n".join(pieces) + b"]") if as_array else b"\n".join(pieces) + b"\n"


mutated_cases = st.lists(
    st.tuples(valid_records, mutation, st.integers(0, 1000), st.binary(min_size=1, max_size=3)), min_size=1, max_size=6
)


@settings(max_examples=80)
@given(mutated_cases, st.booleans())
def test_mutated_records_load_or_quarantine_never_crash(tmp_path: Path, cases: list[Any], as_array: bool) -> None:
    outcome = ingest_text("f.json" if as_array else "f.ndjson", mutated_feed(cases, as_array), tmp_path)
    assert outcome.read == outcome.events.height + outcome.quarantine.height


@settings(max_examples=15)
@given(mutated_cases, st.booleans())
def test_a_run_over_mutated_records_accounts_for_every_one(tmp_path: Path, cases: list[Any], as_array: bool) -> None:
    landing = tmp_path / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    write(landing, "f.json" if as_array else "f.ndjson", mutated_feed(cases, as_array))
    shutil.rmtree(tmp_path / "wh", ignore_errors=True)
    result = run_at(landing, tmp_path / "wh")
    assert result.exit_code in (0, 3)
    assert_accounted(result.document)
