"""k6 as a second load engine (``quotaquake run --engine k6``): the same scenario, the same history.

* ``scenario``: a scenario file's ``ScenarioDefaults`` and hook, read without running it; its ``--qq-*``
  options parsed as Locust parses them;
* ``plan``: the traffic mix drawn from ``quotaquake.load.traffic``, VU sizing, the generated script
  (``script.js`` with the plan inlined);
* ``schedule``: k6's arrival-rate executors for each load shape, their tick times, and how intended send
  times are rebuilt from them (what is recorded as intended vs sent, and how lag is measured);
* ``samples``: k6's CSV output -> history rows (``quotaquake.runfolder.history.SCHEMA``);
* ``runner``: the k6 process, its progress and stop, ``engine.json``.
"""

from quotaquake.load.k6.runner import K6Result, check_k6_request, run_k6

__all__ = ["K6Result", "check_k6_request", "run_k6"]
