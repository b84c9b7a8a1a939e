"""The suite tests itself: are its verdicts honest?

- *Variants* (``variants.py``) are builds of our charts that keep every promise while changing what the
  README and the contracts leave open: template file names and object order, helper names, extra labels
  and annotations, objects emitted as a ``v1 List``, quoting, an extra large CRD and an unrelated
  ConfigMap. The suites must pass on them: a failure is a false alarm.
- *Mutants* (``mutants.py``) are builds that break exactly one promise each with a small, realistic edit.
  The suites must fail on them, and a test naming the broken contract id must be among the failures.

``pytest tests/selfcheck`` (or ``nox -s selfcheck``) builds both and runs the suites against them in inner
pytest sessions (``runner.py``). ``pytest tests`` leaves this directory alone: it takes minutes.
"""
