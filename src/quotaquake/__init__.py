"""quotaquake: prove that an API gateway's rate limiting holds under load and under faults.

The shape of the code is record -> check -> render:

* ``quotaquake.stack``: bring the system under test up and down (local processes, Kong via
  Testcontainers, or an existing deployment) and describe it in a state file.
* ``quotaquake.load``: Locust users driving an open-model arrival rate and recording every request.
* ``quotaquake.chaos``: a Chaos Toolkit extension that breaks services while load runs.
* ``quotaquake.verify``: pure checkers from a recorded history to pass / fail / unknown verdicts.
* ``quotaquake.report``: HTML, plots and JUnit from verdicts; they never decide anything.
"""

__version__ = "0.1.0"
