"""The install bench explains a slow ct run with ct's own last lines, and never prints a secret of the values."""

from __future__ import annotations

import base64

from chartproof import bench_install


def test_a_slow_ct_run_shows_its_last_lines_with_the_values_secrets_masked(tmp_path):
    secret = "Zq8-sEcret-pa55word"
    values = tmp_path / "values.yaml"
    values.write_text(f"auth:\n  password: {secret}\n")
    output = "\n".join([f"line {i}" for i in range(20)] + [f"NOTES: password is {secret}",
                                                           f"encoded {base64.b64encode(secret.encode()).decode()}"])
    tail = bench_install.last_lines(output, values, 4)
    assert tail.startswith("line 18 | line 19 | NOTES: password is "), tail
    assert secret not in tail and base64.b64encode(secret.encode()).decode() not in tail, tail
    row = {"chartproof_s": 5.0, "ct_s": 265.9, "ratio": 0.019, "chartproof_phases": {}, "ct_slow_output": tail}
    lines = bench_install.table({"scenarios": {"adaptive/autoscaling-on": row, "adaptive/cpu-only":
                                               {"chartproof_s": 1.6, "ct_s": 3.9, "ratio": 0.41}},
                                 "goal": 0.5, "met": True, "worst": 0.41}).splitlines()
    assert lines[2] == f"  ct took over 60 s: {tail}", lines
    assert not any("ct took over" in line for line in lines[3:]), "a ct run of usual length shows no output"


def test_a_ct_run_is_stamped_line_by_line_and_its_longest_silence_named(tmp_path):
    secret = "Zq8-sIlence-pa55word"
    values = tmp_path / "values.yaml"
    values.write_text(f"auth:\n  password: {secret}\n")
    script = f"echo 'Installing chart'; echo 'Deleting release {secret}' >&2; sleep 1.2; echo 'release uninstalled'"
    code, output, seconds = bench_install.stamped_run(["bash", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                                                      timeout=30)
    assert code == 0 and 1.2 <= seconds < 10, (code, seconds)
    stamps = [line.split("]")[0] for line in output.splitlines()]
    assert len(stamps) == 3 and all(stamp.startswith("[") and stamp.endswith("s") for stamp in stamps), output
    silence = bench_install.longest_silence(output, values)
    assert silence.startswith("longest silence 1.") and "'release uninstalled'" in silence, silence
    assert "Deleting release" in silence and secret not in silence, silence
    code, _, seconds = bench_install.stamped_run(["sleep", "20"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=1)
    assert code == -9 and seconds < 10, "a run past its timeout is killed"
