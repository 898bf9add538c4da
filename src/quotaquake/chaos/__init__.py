"""Chaos Toolkit extension and runner for quotaquake stacks.

Experiments (``chaos/*.json``) name activities by module and function:

- ``quotaquake.chaos.actions``: kill_service, stop_service, resume_service, restart_service,
  kill_gateway_replicas, restore_all (the rollback: restore and check health). Each is the face of a
  fault module of ``quotaquake.faults`` (the fault registry).
- ``quotaquake.chaos.probes``: gateway_healthy, service_reachable, recent_error_rate, recent_429_rate,
  quota_enforced, known_consumer_works.
- ``quotaquake.chaos.control``: the ``quotaquake-preflight`` control (bad targets stop the run early).

For ``quotaquake run --chaos``: ``quotaquake.chaos.runner.ChaosRun`` runs an experiment while load flows;
``quotaquake.chaos.journal.fault_windows`` turns its journal into fault windows (through the fault
registry), which the run folder stores; ``quotaquake.chaos.ledger`` names where probes record the
requests they send through the gateway.
Nothing is imported here, so that importing an activity module stays cheap.
"""
