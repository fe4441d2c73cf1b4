"""The goals file: remembered starts and stops, never fatal."""

import json

from corral.supervisor.goals import GoalFile


def test_remember_read_back_and_reset(tmp_path):
    path = str(tmp_path / "c.sock.goals")
    lines = []
    goals = GoalFile(path, lines.append)
    assert goals.initial("web", True) == "up" and goals.initial("job", False) == "down"
    goals.remember(["web"], "down")
    goals.remember(["job"], "up")
    assert json.load(open(path)) == {"version": 1, "goals": {"job": "up", "web": "down"}}
    again = GoalFile(path, lines.append)
    assert again.initial("web", True) == "down" and again.initial("job", False) == "up"
    fresh = GoalFile(path, lines.append, reset=True)
    assert fresh.initial("web", True) == "up" and not (tmp_path / "c.sock.goals").exists()
    assert lines == []


def test_a_foreign_file_is_ignored_and_said(tmp_path):
    path = tmp_path / "c.sock.goals"
    lines = []
    for text in ('{"version": 2, "goals": {}}', '{"version": 1, "goals": {"web": "sideways"}}',
                 "[1, 2]", "\xff"):
        path.write_text(text, encoding="latin-1")
        assert GoalFile(str(path), lines.append).goals == {}
    assert len(lines) == 4 and all(line.startswith("ignoring the remembered goals") for line in lines)


def test_a_file_that_cannot_be_written_is_said_once(tmp_path):
    lines = []
    goals = GoalFile(str(tmp_path / "no" / "such" / "c.goals"), lines.append)
    goals.remember(["web"], "down")
    goals.remember(["web"], "up")
    assert len(lines) == 1 and lines[0].startswith("cannot remember the goals in ")
    assert goals.initial("web", False) == "up"  # this master still knows


def test_a_scaled_count_is_remembered_until_the_configs_numprocs_changes(tmp_path):
    from tests.replay.harness import command

    path = str(tmp_path / "c.sock.goals")
    lines = []
    goals = GoalFile(path, lines.append)
    goals.remember_count("web", 4, 2)
    goals.remember_count("job", 3, 1)
    assert json.load(open(path))["counts"] == {"web": [4, 2], "job": [3, 1]}
    again = GoalFile(path, lines.append)
    # job's numprocs is 2 in the config now: the config is the newer word
    assert again.scaled([command("web", numprocs=2), command("job", numprocs=2)]) == {"web": 4}
    assert json.load(open(path))["counts"] == {"web": [4, 2]}
    again.remember_count("web", 2, 2)  # scaled back to the config's count
    assert "counts" not in json.load(open(path))
    again.remember_count("web", 5, 2)
    again.forget_counts(["web"])  # a reload changed its entry
    assert GoalFile(path, lines.append).scaled([command("web", numprocs=2)]) == {}
    assert lines == []


def test_a_bad_count_entry_makes_the_file_foreign(tmp_path):
    path = tmp_path / "c.sock.goals"
    lines = []
    for counts in ({"web": [0, 1]}, {"web": 4}, {"web": [True, 1]}, []):
        path.write_text(json.dumps({"version": 1, "goals": {"web": "down"}, "counts": counts}))
        goals = GoalFile(str(path), lines.append)
        assert (goals.goals, goals.counts) == ({}, {})
    assert len(lines) == 4
