"""ClickHouse's HTTP interface over the embedded engine, driven by clickhouse-connect's HTTP
client (a driver we did not write) and by plain HTTP where a driver hides what is checked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from pydantic import SecretStr

from schemas.settings import ClickHouseHttpSettings, ClickHouseUser
from sinks.clickhouse import insert_json_rows, migrate, reader_dsn
from sinks.http.core import blocks
from sinks.http.core.encoding import decode
from sinks.http.discovery import announcement_path
from sinks.http.server import HttpInterface

from .helpers import ROOT, wait_for
from .jdbc_client import JdbcBatch, JdbcError, run_jdbc

ANALYST = ClickHouseUser(
    name="analyst",
    password=SecretStr("s3cret"),
    readonly=True,
    max_threads=2,
    max_execution_time_seconds=20,
)


@pytest.fixture(scope="module")
def interface(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpInterface]:
    folder = tmp_path_factory.mktemp("served") / "clickhouse"
    http = ClickHouseHttpSettings(port=0, users=[ClickHouseUser(name="default"), ANALYST])
    served = HttpInterface(folder, http).start()
    try:
        yield served
    finally:
        served.stop()  # chDB holds one folder per process: later tests open others


@pytest.fixture(scope="module")
def writer(interface: HttpInterface) -> Iterator[Client]:
    client = clickhouse_connect.get_client(dsn=reader_dsn(f"chdb://{interface.folder}"))
    migrate(client)
    client.command(
        "CREATE TABLE IF NOT EXISTS n (k UInt32, v String) ENGINE = MergeTree ORDER BY k"
    )
    yield client
    client.close()


def analyst(interface: HttpInterface, *, sessions: bool = True) -> Client:
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=interface.port,
        username="analyst",
        password="s3cret",
        autogenerate_session_id=sessions,
    )


def raw(
    interface: HttpInterface,
    query: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{interface.url}/?{query}",
        data=body,
        headers=headers or {},
        method="POST" if body else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:  # its socket closed now, not in a later test
            return error.code, _lower(error.headers.items()), error.read()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def test_the_drivers_client_reads_and_writes_with_deduplication_tokens(writer: Client) -> None:
    row = (
        b'[{"session_id":"s1","person_id":"p1","channel":"web","started_at":"2026-01-01 '
        b'00:00:00","ended_at":"2026-01-01 00:05:00","events":3,"friction":0,'
        b'"task_completed":true}]'
    )
    assert insert_json_rows(writer, "sessions", row, "offsets-0-9") == 1
    insert_json_rows(writer, "sessions", row, "offsets-0-9")  # a batch re-sent after a crash
    assert writer.query("SELECT count() FROM sessions").result_rows == [(1,)]
    assert writer.query("SELECT version(), timezone()").result_rows[0][1] == "Etc/UTC"


# The codings clickhouse-connect compresses inserts with (it reads deflate, not writes it).
@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip", None])
def test_every_compression_the_driver_offers_round_trips(
    interface: HttpInterface, compression: str | None
) -> None:
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=interface.port, compress=compression or False
    )
    table = f"c_{compression or 'none'}"
    client.command(f"CREATE TABLE {table} (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
    rows = [[k, f"value {k}" * 3] for k in range(20_000)]
    client.insert(table, rows, column_names=["k", "v"])
    assert client.query(f"SELECT count(), sum(k) FROM {table}").result_rows == [
        (20_000, sum(range(20_000)))
    ]
    assert client.query(f"SELECT k, v FROM {table} ORDER BY k").result_rows == [
        tuple(r) for r in rows
    ]
    client.close()


def test_formats_settings_and_query_parameters_as_clickhouse_takes_them(
    interface: HttpInterface,
) -> None:
    status, headers, body = raw(
        interface,
        "query=SELECT+%7Bn%3AUInt8%7D+*+2+AS+x&param_n=21&default_format=JSONEachRow"
        "&wait_end_of_query=1",  # read whole first, so the summary counts the result
    )
    assert (status, body) == (200, b'{"x":42}\n')
    assert headers["x-clickhouse-format"] == "JSONEachRow"
    summary = json.loads(headers["x-clickhouse-summary"])
    assert summary["result_rows"] == "1"
    status, headers, body = raw(
        interface, "query=SELECT+getSetting('max_block_size')+FORMAT+CSV&max_block_size=1234"
    )
    assert (status, body, headers["x-clickhouse-format"]) == (200, b"1234\n", "CSV")
    status, headers, body = raw(
        interface,
        "query=SELECT+number+FROM+numbers(50000)&enable_http_compression=1",
        headers={"Accept-Encoding": "gzip"},
    )
    assert headers["content-encoding"] == "gzip"


def test_the_interface_counts_what_it_answers_for_prometheus(interface: HttpInterface) -> None:
    def refused_so_far() -> float:
        with urllib.request.urlopen(f"{interface.url}/metrics", timeout=30) as response:
            text = response.read().decode()
        line = 'journeys_clickhouse_http_queries_total{kind="query",status="400"}'
        return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line))

    before = refused_so_far()
    assert raw(interface, "query=SELEC+1")[0] == 400
    assert refused_so_far() == before + 1


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd", "lz4"])
def test_a_large_result_streams_in_each_coding(interface: HttpInterface, coding: str) -> None:
    status, headers, body = raw(
        interface,
        "query=SELECT+number,toString(number)+FROM+numbers(2000000)+FORMAT+TSV"
        "&enable_http_compression=1&compress=1",
        headers={"Accept-Encoding": coding},
    )
    assert status == 200
    assert "content-length" not in headers  # sent as the engine produced it
    assert headers["content-encoding"] == coding
    lines = blocks.decompress(decode(body, coding)).splitlines()
    assert len(lines) == 2_000_000
    assert lines[-1] == b"1999999\t1999999"


def test_an_error_in_the_middle_of_a_stream_ends_the_body_with_its_text(
    interface: HttpInterface,
) -> None:
    status, _, body = raw(
        interface, "query=SELECT+throwIf(number+%3D+1500000)+FROM+numbers(2000000)"
    )
    assert status == 200  # the first blocks had been sent already, as with ClickHouse
    assert body.rstrip().splitlines()[-1].startswith(b"Code: 395. DB::Exception:")
    status, _, _ = raw(interface, "query=SELECT+throwIf(1)")
    assert status == 400  # before the first block, the status still tells


def test_clickhouses_own_block_compression_round_trips(interface: HttpInterface) -> None:
    status, _, body = raw(interface, "query=SELECT+number+FROM+numbers(300000)&compress=1")
    assert status == 200
    assert blocks.decompress(body).splitlines()[-1] == b"299999"
    status, _, _ = raw(
        interface,
        "query=INSERT+INTO+n+FORMAT+CSV&decompress=1",
        blocks.compress(b"1,one\n2,two\n"),
    )
    assert status == 200
    assert raw(interface, "query=SELECT+sum(k)+FROM+n+WHERE+k<3")[2] == b"3\n"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("query=SELECT+*+FROM+no_such_table", 404, "60"),
        ("query=SELEC+1", 400, "62"),
        ("query=SELECT+1&no-such=1", 400, "115"),
        ("query=INSERT+INTO+n+VALUES+(9,'x')", 403, "164"),  # a GET only reads
        ("query=SELECT+1&user=default&password=wrong", 403, "516"),
    ],
)
def test_errors_are_4xx_with_clickhouses_code_and_text(
    interface: HttpInterface, query: str, status: int, code: str
) -> None:
    got, headers, body = raw(interface, query)
    assert (got, headers["x-clickhouse-exception-code"]) == (status, code)
    assert body.startswith(f"Code: {code}. DB::Exception: ".encode())


def test_a_read_only_user_cannot_write_nor_raise_its_limits(
    interface: HttpInterface, writer: Client
) -> None:
    client = analyst(interface)
    assert client.query("SELECT count() FROM sessions").result_rows == [(1,)]
    with pytest.raises(DatabaseError, match=r"READONLY|readonly"):
        client.command("INSERT INTO n VALUES (7, 'x')")
    with pytest.raises(DatabaseError, match="readonly"):
        client.query("SELECT 1 SETTINGS max_threads = 64")
    status, _, body = raw(
        interface,
        "query=SELECT+getSetting('max_threads'),getSetting('max_execution_time')"
        "&max_threads=64&user=analyst&password=s3cret",
    )
    assert (status, body) == (200, b"2\t20\n")
    client.close()


def test_a_session_keeps_its_set_but_never_a_requests_settings(interface: HttpInterface) -> None:
    def ask(query: str) -> bytes:
        status, _, body = raw(interface, f"session_id=s-1&{query}")
        assert status == 200, body
        return body

    ask("query=SET+max_block_size%3D777")
    assert ask("query=SELECT+getSetting('max_block_size')") == b"777\n"
    assert ask("query=SELECT+getSetting('max_block_size')&max_block_size=5") == b"5\n"
    assert ask("query=SELECT+getSetting('max_block_size')") == b"777\n"
    # Another session, and no session, see the defaults.
    assert raw(interface, "session_id=s-2&query=SELECT+getSetting('max_block_size')")[2] != (
        b"777\n"
    )


def test_readers_never_see_counts_go_down_while_a_writer_inserts(
    interface: HttpInterface, writer: Client
) -> None:
    writer.command("CREATE TABLE live (k UInt32) ENGINE = MergeTree ORDER BY k")
    batches, per_batch = 40, 500
    seen: list[list[int]] = [[] for _ in range(4)]
    done = threading.Event()

    def read(slot: int) -> None:
        client = analyst(interface, sessions=False)
        while not done.is_set():
            seen[slot].append(int(client.query("SELECT count() FROM live").result_rows[0][0]))
        seen[slot].append(int(client.query("SELECT count() FROM live").result_rows[0][0]))
        client.close()

    readers = [threading.Thread(target=read, args=(slot,)) for slot in range(4)]
    for thread in readers:
        thread.start()
    for batch in range(batches):
        writer.insert("live", [[batch * per_batch + k] for k in range(per_batch)], ["k"])
    done.set()
    for thread in readers:
        thread.join(timeout=60)
    for counts in seen:
        assert counts == sorted(counts)
        assert counts[-1] == batches * per_batch
    assert sum(len(counts) for counts in seen) > 8  # the readers did read during the inserts


def test_readers_find_the_live_interface_only_while_it_serves(tmp_path: Path) -> None:
    folder = tmp_path / "clickhouse"
    dsn = f"chdb://{folder}"
    assert reader_dsn(dsn) == dsn
    # A file left by a process that died is not trusted.
    announcement_path(folder).write_text(
        json.dumps({"pid": 2**22 + 17, "host": "127.0.0.1", "port": 9, "user": "default"})
    )
    assert reader_dsn(dsn) == dsn
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "db", "serve", "--port", "0"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "JOURNEYS_CLICKHOUSE__DSN": dsn,
            "JOURNEYS_LOG_FORMAT": "text",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: reader_dsn(dsn).startswith("http://"), 60, "the interface to be found")
        client = clickhouse_connect.get_client(dsn=reader_dsn(dsn))
        assert client.query("SELECT 1").result_rows == [(1,)]
        client.close()
        second = subprocess.run(  # the folder is held: a second server says so in one line
            [sys.executable, "-m", "deploy.cli", "db", "serve", "--port", "0"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "JOURNEYS_CLICKHOUSE__DSN": dsn},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2
        assert (
            second.stderr.strip()
            .splitlines()[-1]
            .startswith(f"journeys: error: cannot open the embedded ClickHouse folder {folder}")
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert not announcement_path(folder).exists()
    assert reader_dsn(dsn) == dsn


def test_the_jdbc_driver_with_its_default_settings_reads_writes_and_reports_errors(
    interface: HttpInterface,
) -> None:
    url = f"jdbc:clickhouse://127.0.0.1:{interface.port}/default"
    results = run_jdbc(
        url,
        "default",
        "",
        [
            "CREATE TABLE j (id UInt32, name String, at DateTime64(3, 'UTC'), "
            "score Nullable(Float64)) ENGINE = MergeTree ORDER BY id",
            JdbcBatch(
                "INSERT INTO j (id, name, at, score) VALUES (?, ?, ?, ?)",
                [
                    [1, "ann", "2026-01-02 03:04:05", 1.5],
                    [2, "b'o\\b", "2026-01-03 00:00:00", None],
                ],
            ),
            "SELECT id, name, toString(at), score FROM j ORDER BY id",
            "SELECT count() AS n FROM numbers(250000)",
        ],
    )
    assert results[1].update_count == 2  # written_rows of the summary: one per row
    assert results[2].columns == ["id", "name", "toString(at)", "score"]
    assert results[2].rows == [
        ["1", "ann", "2026-01-02 03:04:05.000", "1.5"],
        ["2", "b'o\\b", "2026-01-03 00:00:00.000", None],
    ]
    assert results[3].rows == [["250000"]]
    with pytest.raises(JdbcError) as raised:
        run_jdbc(url, "default", "", ["SELECT * FROM no_such_table"])
    assert "Code: 60. DB::Exception" in raised.value.message
    with pytest.raises(JdbcError) as refused:
        run_jdbc(url, "analyst", "s3cret", ["INSERT INTO j VALUES (3, 'c', now(), 1)"])
    assert "164" in refused.value.message
    assert run_jdbc(url, "analyst", "s3cret", ["SELECT count() FROM j"])[0].rows == [["2"]]


def test_a_request_asking_readonly_reads_through_a_drivers_session(
    interface: HttpInterface, writer: Client
) -> None:
    # clickhouse-connect adds its own settings after the caller's `readonly` (journeys query
    # sql asks for it), on the session it keeps: the request reads, the session stays usable.
    client = clickhouse_connect.get_client(host="127.0.0.1", port=interface.port)
    assert client.query("SELECT count() FROM n", settings={"readonly": 1}).result_rows
    with pytest.raises(DatabaseError, match="readonly"):
        client.command("INSERT INTO n VALUES (8, 'x')", settings={"readonly": 1})
    client.command("INSERT INTO n VALUES (8, 'x')")
    assert client.query("SELECT count() FROM n WHERE k = 8").result_rows == [(1,)]
    client.close()
