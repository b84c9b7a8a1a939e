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
    assert lines[2] == f"  ct took over 60 s; its last lines: {tail}", lines
    assert not any("its last lines" in line for line in lines[3:]), "a ct run of usual length shows no output"
