"""The chaos test of issue 8 (tests/test_chaos.py) and its parts.

- ``scenario``: the run as data, from one seeded RNG (targets' outages and blips, kills, the
  helpdesk's misbehaviour);
- ``flapper``: TCP targets the test takes up and down, recording the real toggle times;
- ``runner``: plays a scenario against real processes and gathers the evidence;
- ``checker``: the judge, pure: evidence in, violations and figures out
  (tests/test_chaos_checker.py proves it can fail);
- ``cluster``: for the run on two agents sharing PostgreSQL, which agent each kill hits and when
  the cluster surely watched every target (tests/test_chaos_cluster.py).

Run it: ``make chaos`` (``make chaos-cluster`` for two agents), or ``.venv/bin/pytest -m chaos
-s``; replay with ``WATCHDESK_CHAOS_SEED=N``; keep the evidence with
``WATCHDESK_CHAOS_EVIDENCE=DIR``; judge saved evidence again with ``python -m
tests.chaos.checker FILE``.
"""
