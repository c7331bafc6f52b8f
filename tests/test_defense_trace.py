"""experiments/defense_trace.py --summary: which honest devices a trace left out, and by which evidence."""

from __future__ import annotations

from conftest import load_experiment


def _trace() -> list[dict]:
    """Two waves of 4 devices on 2 edges (0, 1 on edge 0; 2, 3 on edge 1); device 3 attacks."""
    devices = {str(d): {"modalities": ["image"], "tasks": ["color"], "samples": 10, "edge": d // 2} for d in range(4)}
    wave = {"senders": [0, 1, 2, 3], "attackers": [3], "ratio": {"0": 1.0, "1": 1.0, "2": 3.0, "3": 1.0},
            # device 0 points against the others (direction); device 1 scores far below them (validation)
            "cos": {"0": -0.2, "1": 0.3, "2": 0.3, "3": 0.3}, "score": {"0": 0.0, "1": -1.0, "2": 0.01, "3": -0.01},
            "trust": {"0": -0.5, "1": -0.5, "2": 0.9, "3": -0.9}}
    return [{"accuracy": 0.4, "devices": devices, "events": [
        {"round": 0, "tier": "edge", "sent": 8, "kept": 5, "dropped": [[0, "m", "r"]] * 3, "clipped": [2]}]},
            {"round": 0, **wave}, {"round": 1, **wave}]


def test_summary_counts_honest_devices_left_out_by_their_evidence() -> None:
    dt = load_experiment("defense_trace")
    lines = dt.summary(_trace(), min_trust=-0.25)
    # honest: 0 (direction), 1 (validation), 2 (a scale outlier whatever its trust) in both waves; 3 attacks
    assert lines[0].startswith("accuracy 0.4000; honest device-waves left out: 6 of 6 (100.0 %)")
    assert "direction 2, validation 2, both 0, scale 2, neither 0" in lines[0]
    assert "  device 0: left out 2 of 2 waves; edge 0, image, tasks color, 10 samples" in lines
    assert "  edge defense: 8 updates, 3 dropped, 1 clipped" in lines
    shares = [line for line in lines if "between-edge share" in line]
    assert len(shares) == 2 and all(0.0 <= float(line.rsplit(" ", 1)[1]) <= 1.0 for line in shares)


def test_summary_leaves_trusted_honest_devices_in() -> None:
    dt = load_experiment("defense_trace")
    trace = _trace()
    for w in trace[1:]:
        w["trust"] = {"0": 0.5, "1": 0.5, "2": 0.5, "3": -0.9}
        w["ratio"] = {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0}
    assert dt.summary(trace, min_trust=-0.25)[0].startswith(
        "accuracy 0.4000; honest device-waves left out: 0 of 6 (0.0 %)")


def test_replay_recomputes_the_direction_evidence_and_reads_either_recorded_score() -> None:
    dt = load_experiment("defense_trace")
    wave = {"senders": [0, 1, 2, 3], "attackers": [3], "ratio": {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0},
            "cos": {"0": -0.2, "1": 0.05, "2": 0.3, "3": 0.3}, "dir": {"0": -1.0, "1": 0.05 / 0.175, "2": 1.0,
                                                                    "3": 1.0},
            "score": {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.0},
            # every sample alike: device 3 far below; by the held classes: device 2 far below
            "tasks_all": {"0": {"c": 0.0}, "1": {"c": 0.01}, "2": {"c": 0.0}, "3": {"c": -1.0}},
            "tasks_held": {"0": {"c": 0.0}, "1": {"c": 0.01}, "2": {"c": -1.0}, "3": {"c": 0.0}}}
    recorded, _ = dt.evidence(wave, 1.5, False, True, score="tasks_all")
    against, _ = dt.evidence(wave, 1.5, False, True, score="tasks_held", against_only=True)
    assert recorded[1] == 0.05 / 0.175 and recorded[3] == -1.0 and recorded[2] == 1.0
    assert against[1] == 1.0 and against[0] == -1.0 and against[2] == -1.0 and against[3] == 1.0
    lines = dt.scorings({"labelflip": [{}, wave, wave]}, decay=0.0, min_trust=0.0)  # this wave's evidence alone
    assert lines[2].startswith("| every sample") and lines[2].endswith("| - | 33.3 % | 100.0 % |")  # 0 and 3 out
    assert lines[4].endswith("| - | 66.7 % | 0.0 % |")  # honest 0 (direction) and 2 (held score) out
