"""The reliability campaign as tests (``benchmarks/reliability.py`` prints the same cases as counts).

Bad inputs (>= 120) run in the default integration set; kills and interrupts at each stage, and the
concurrent commands, are ``slow``.
"""

from __future__ import annotations

import pytest

from tests.support import campaign
from tests.support.reliability import BadInput, bad_inputs, check_bad_input

pytestmark = pytest.mark.integration

BAD_INPUTS = bad_inputs()
KILL_CASES = campaign.kill_cases()


def test_the_campaign_is_as_large_as_promised():
    assert len(BAD_INPUTS) >= 120
    assert len(KILL_CASES) >= 24
    assert len({c.name for c in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.name for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case: BadInput, tmp_path):
    outcome = check_bad_input(case, tmp_path)
    assert outcome.ok, f"{outcome.problem}\n{outcome.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("case", KILL_CASES, ids=[c.name for c in KILL_CASES])
def test_kill_or_interrupt_leaves_nothing(case: campaign.KillCase, tmp_path):
    assert campaign.run_kill_case(case, tmp_path) == []


@pytest.mark.slow
def test_concurrent_commands_on_one_state_file_are_refused(tmp_path):
    assert campaign.concurrent_commands(tmp_path) == []


@pytest.mark.parametrize("name", sorted(campaign.deletion_cases()))
def test_no_folder_quotaquake_did_not_create_is_removed(name, tmp_path):
    assert campaign.deletion_cases()[name](tmp_path) == []


def test_another_local_user_reads_no_key(tmp_path):
    assert campaign.key_exposure(tmp_path) == []


@pytest.mark.slow
def test_run_folder_holds_no_raw_key(tmp_path):
    assert campaign.reports_mask_keys(tmp_path) == []
