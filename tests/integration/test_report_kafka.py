"""``coach report --brokers``: the same report from the topics as from the files."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coachflow.report import SOURCES
from schemas.topics import topic
from tests.unit.test_report import outdir, run  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.kafka


def test_report_from_topics_matches_files(brokers, outdir, monkeypatch, capsys) -> None:  # noqa: F811
    prefix = f"report-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": brokers})
    topics = {kind: f"{prefix}.{kind}" for kind in SOURCES}
    for future in admin.create_topics([NewTopic(t, 2, 1) for t in topics.values()]).values():
        future.result(30)
    try:
        producer = Producer({"bootstrap.servers": brokers})
        for kind in SOURCES:
            monkeypatch.setenv(f"COACH_{topic(kind).setting.upper()}", topics[kind])
            for line in (outdir / f"{kind}.jsonl").read_text().splitlines():
                producer.produce(topics[kind], value=line.encode(), key=json.loads(line)["conversation_id"])
        assert producer.flush(30) == 0
        from_files = json.loads(run([str(outdir), "--json", "--no-chart"], capsys)[1])
        code, out = run(["--brokers", brokers, "--json", "--no-chart"], capsys)
        from_topics = json.loads(out)
        assert code == 0 and from_topics["missing"] == []
        assert [s["records"] for s in from_topics["sources"].values()] == \
            [s["records"] for s in from_files["sources"].values()]
        for part in ("overall", "groups", "rules", "actions"):
            assert from_topics[part] == from_files[part], part
    finally:
        for future in admin.delete_topics(list(topics.values())).values():
            future.result(30)
