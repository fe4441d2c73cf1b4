"""The HTTP listener's parts without a master: the [corral] http keys and
their load-time refusal, the request parser's limits, the exposition
format's escaping."""

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral import config, httpspec
from corral.errors import ConfigError
from corral.frontends import httpmetrics, httpwire
from corral.frontends.httpwire import HttpError


def load(tmp_path, corral_table):
    path = tmp_path / "c.toml"
    path.write_text(f"[corral]\n{corral_table}\n[services.a]\ncommand = [\"true\"]\n")
    return config.load(str(path))


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:9001", ("tcp", "127.0.0.1", 9001)),
    ("[::1]:80", ("tcp", "::1", 80)),
    ("localhost:0", ("tcp", "localhost", 0)),
    ("unix:///run/c.http", ("unix", "/run/c.http")),
])
def test_addresses(value, expected):
    assert httpspec.parse_address(value) == expected


@pytest.mark.parametrize("value", ["", "9001", ":9001", "host:http", "h:70000", "unix://rel",
                                   17])
def test_bad_addresses(value):
    with pytest.raises(ValueError):
        httpspec.parse_address(value)


def test_the_keys_load(tmp_path):
    master = load(tmp_path, 'http = "127.0.0.1:9001"\nhttp_token = "0123456789abcdefXYZ"').master
    assert (master.http, master.http_auth, master.http_token) == \
        ("127.0.0.1:9001", "token", "0123456789abcdefXYZ")
    assert load(tmp_path, "").master.http is None  # off by default
    assert "0123456789" not in repr(master)  # the token is not printed


@pytest.mark.parametrize("table, key, words", [
    ('http = "0.0.0.0:9001"\nhttp_auth = "none"', "http", "without auth"),
    ('http = "example.com:9001"\nhttp_auth = "none"', "http", "without auth"),
    ('http = "9001"', "http", "HOST:PORT"),
    ('http_auth = "open"', "http_auth", "token, none"),
    ('http_token = "short"', "http_token", "at least 16"),
])
def test_bad_keys_are_refused_at_load(tmp_path, table, key, words):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, table)
    assert f"'{key}'" in str(caught.value) and words in str(caught.value)


def test_loopback_and_unix_may_go_without_auth(tmp_path):
    assert load(tmp_path, 'http = "127.0.0.1:1"\nhttp_auth = "none"').master.http_auth == "none"
    assert load(tmp_path, 'http = "unix:///tmp/x"\nhttp_auth = "none"').master.http


def parse(data, limit=httpwire.MAX_HEAD):
    async def go():
        reader = asyncio.StreamReader(limit=limit)
        reader.feed_data(data)
        reader.feed_eof()
        return await httpwire.read_request(reader)
    return asyncio.run(go())


def test_a_request_is_parsed():
    request = parse(b"POST /api/stop?x=1&x=2&v HTTP/1.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 17\r\n\r\n{\"names\": [\"a\"]}\n")
    assert (request.method, request.path, request.query["x"], request.arg("v")) == \
        ("POST", "/api/stop", ["1", "2"], "")
    assert request.json() == {"names": ["a"]}
    assert parse(b"") is None


@pytest.mark.parametrize("data, status", [
    (b"PUT / HTTP/1.1\r\n\r\n", 405),
    (b"GET / HTTP/2\r\n\r\n", 400),
    (b"GET http://x/ HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", 400),
    (b"GET /a/../b HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x", 400),
])
def test_bad_requests(data, status):
    with pytest.raises(HttpError) as caught:
        parse(data)
    assert caught.value.status == status


def test_the_xmlrpc_listener_reads_through_the_same_parser_with_its_limits():
    from corral.frontends import xmlrpc_http

    def xml(data):
        async def go():
            reader = asyncio.StreamReader(limit=httpwire.MAX_HEAD)
            reader.feed_data(data)
            reader.feed_eof()
            return await httpwire.read_request(reader, xmlrpc_http.MAX_BODY, idle=1.0)
        return asyncio.run(go())

    request = xml(b"POST /RPC2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert (request.method, request.path, request.body, request.keep_alive) == (
        "POST", "/RPC2", b"abc", True)                       # HTTP/1.1 keeps the connection
    assert not xml(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert xml(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive
    assert not xml(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive
    assert xml(b"POST / HTTP/1.1\r\n\r\n").body == b""       # no Content-Length: no body
    assert xml(b"") is None                                    # closed between requests
    big = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
    for data, status in ((big % (xmlrpc_http.MAX_BODY + 1), 413),
                         (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
                         (b"nonsense\r\n\r\n", 400), (b"GET / SPDY/3\r\n\r\n", 400)):
        with pytest.raises(HttpError) as caught:
            xml(data)
        assert caught.value.status == status, data
    body = b"x" * (httpwire.MAX_BODY + 1)                     # over the dashboard's, under XML-RPC's
    assert xml(big % len(body) + body).body == body
    with pytest.raises(HttpError):
        parse(big % len(body) + body)


def test_basic_auth_is_read_once_for_both_listeners():
    import base64

    def headers(text):
        return {"authorization": "Basic " + base64.b64encode(text.encode()).decode()}

    assert httpwire.basic_auth(headers("u:p:w")) == ("u", "p:w")
    assert httpwire.basic_auth(headers("token")) == ("token", "")
    for bad in ({}, {"authorization": "Bearer x"}, {"authorization": "Basic !!!"}):
        assert httpwire.basic_auth(bad) is None


def test_labels_are_escaped():
    out = []
    family = httpmetrics._Family(out, "x", "gauge", "help")
    family.add(1, ("instance", 'a"b\\c\nd'))
    text = "".join(line + "\n" for line in family.lines)
    [parsed] = text_string_to_metric_families(text)
    assert parsed.samples[0].labels["instance"] == 'a"b\\c\nd'


class _FakeOps:
    """What Exposition.render reads of api.Operations, for two instances."""

    def __init__(self):
        self.states = {"web:0": "RUNNING", "web:1": "RUNNING"}
        self.started = {"web:0": 1000.5, "web:1": 1000.25}
        self.exit_codes = {}
        self.restarts = {}
        self.rss = 4096
        self.lines = 3

    def briefs(self):
        from corral.supervisor.report import Brief
        return [Brief(name, "web", state, self.started.get(name), self.exit_codes.get(name))
                for name, state in self.states.items()]

    def usage(self):
        from corral.supervisor.report import TreeUsage
        return {"web:0": TreeUsage(1.5, 0.0, self.rss)}

    def restarts_by_reason(self):
        return dict(self.restarts)

    def log_counts(self):
        from corral.api import LogCount
        return {"web": LogCount(self.lines, 10 * self.lines)}

    def log_lines_dropped(self):
        return 0

    def events_dropped(self):
        return 0

    def master_process(self):
        from corral.api import MasterProcess
        return MasterProcess(1, 1.0, 0.5, 1 << 20, 9)


def _samples(body):
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_kept_series_follow_a_move_and_a_restart():
    """The series Exposition keeps between scrapes are keyed by what they
    show: the second scrape has the new state and the new count."""
    ops, exposition = _FakeOps(), httpmetrics.Exposition()

    def state(samples, instance, name):
        labels = (("instance", instance), ("service", "web"), ("state", name))
        return samples[("corral_instance_state", labels)]

    def restarts(samples, instance, reason):
        labels = (("instance", instance), ("reason", reason), ("service", "web"))
        return samples[("corral_instance_restarts_total", labels)]

    first = _samples(exposition.render(ops))
    assert state(first, "web:1", "RUNNING") == 1 and state(first, "web:1", "BACKOFF") == 0
    assert restarts(first, "web:1", "crash") == 0
    ops.states["web:1"] = "BACKOFF"
    ops.restarts[("web:1", "crash")] = 2
    second = _samples(exposition.render(ops))
    assert state(second, "web:1", "RUNNING") == 0 and state(second, "web:1", "BACKOFF") == 1
    assert restarts(second, "web:1", "crash") == 2 and restarts(second, "web:0", "crash") == 0
    assert state(second, "web:0", "RUNNING") == 1  # kept from the first scrape
    assert sum(1 for k in second if k[0] == "corral_instance_state") == 2 * len(httpmetrics.STATES)
    assert second[("corral_instance_memory_rss_bytes",
                   (("instance", "web:0"), ("service", "web")))] == 4096


def test_a_scrape_with_nothing_moved_still_has_the_new_usage_and_counts():
    """The families kept whole while nothing moved sit beside the ones made
    at each scrape: cpu, rss and the log counts are new every time, and a
    respawn or an exit changes the kept start time and exit code."""
    ops, exposition = _FakeOps(), httpmetrics.Exposition()
    web0 = (("instance", "web:0"), ("service", "web"))
    first = exposition.render(ops)
    assert exposition.render(ops) == first
    ops.rss, ops.lines = 8192, 5
    second = _samples(exposition.render(ops))
    assert second[("corral_instance_memory_rss_bytes", web0)] == 8192
    assert second[("corral_service_log_lines_total", (("service", "web"),))] == 5
    assert second[("corral_instance_start_time_seconds", web0)] == 1000.5
    ops.started["web:0"], ops.exit_codes["web:1"] = 2000.75, 3
    third = _samples(exposition.render(ops))
    assert third[("corral_instance_start_time_seconds", web0)] == 2000.75
    assert third[("corral_instance_last_exit_code", (("instance", "web:1"), ("service", "web")))] == 3
    assert ("corral_instance_last_exit_code", web0) not in third
